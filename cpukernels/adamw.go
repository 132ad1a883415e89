package cpukernels

import (
	"math"

	"seqbench/nn"
)

// AdamW is one step of torch.optim.AdamW over n = p.Len() parameters:
//
//	bc1, bc2 := 1-β1^t, 1-β2^t
//	for i := range p {
//		p[i] *= 1 - lr*wd
//		m[i] = β1*m[i] + (1-β1)*g[i]
//		v[i] = β2*v[i] + (1-β2)*g[i]*g[i]
//		p[i] -= lr/bc1 * m[i] / (sqrt(v[i])/sqrt(bc2) + eps)
//	}
//
// Each element is computed in float64 and stored once as T; a.Copy, when
// given, gets the stored parameter. A gradient is first multiplied by
// a.GradScale in T, as Scale stores it (an exact no-op for 1). Moments below
// T's smallest normal are stored as 0: a parameter whose gradient stays zero
// would otherwise decay v into subnormals over ~10⁵ float32 steps.
func (be *Backend[T]) AdamW(p, g, m, v nn.Buffer, a nn.AdamWArgs) {
	check("AdamW", a.Check())
	pd := data[T](p, -1, "AdamW", "p")
	n := len(pd)
	gd := data[T](g, n, "AdamW", "g")
	md := data[T](m, n, "AdamW", "m")
	vd := data[T](v, n, "AdamW", "v")
	var cd []T
	if a.Copy != nil {
		cd = data[T](a.Copy, n, "AdamW", "copy")
	}
	b1, b2 := a.Beta1, a.Beta2
	decay := 1 - a.LR*a.WeightDecay
	stepSize := a.LR / (1 - math.Pow(b1, float64(a.Step)))
	bc2Sqrt := math.Sqrt(1 - math.Pow(b2, float64(a.Step)))
	tiny := minNormal[T]()
	gs := T(1)
	if a.GradScale != 0 {
		gs = T(a.GradScale) // as Scale: the factor and the product in T
	}
	be.parallelFor(n, copyGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gi := float64(gd[i] * gs)
			mi := b1*float64(md[i]) + (1-b1)*gi
			vi := b2*float64(vd[i]) + (1-b2)*gi*gi
			md[i] = flush[T](mi, tiny)
			vd[i] = flush[T](vi, tiny)
			pd[i] = T(float64(pd[i])*decay - stepSize*mi/(math.Sqrt(vi)/bc2Sqrt+a.Eps))
			if cd != nil {
				cd[i] = pd[i]
			}
		}
	})
}
