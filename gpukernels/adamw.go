package gpukernels

import (
	"fmt"
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
// Each element is computed in the backend's type (adamw.cu says why) and
// stored once; moments below the smallest normal number are stored as 0
// (as cpukernels). p, g, m and v are of the backend's type: under bf16 the
// masters, their gradients and the moments are float32 (docs/PRECISION.md),
// and a bfloat16 one panics. a.Copy, of the backend's type or bfloat16,
// gets each updated parameter rounded once (the bfloat16 build of the
// kernel writes it as cast_to_bf16 does).
func (be *Backend) AdamW(p, g, m, v nn.Buffer, a nn.AdamWArgs) {
	const op = "AdamW"
	check(op, a.Check())
	pd := be.buf(p, -1, op, "p")
	n := pd.n
	gd, md, vd := be.buf(g, n, op, "g"), be.buf(m, n, op, "m"), be.buf(v, n, op, "v")
	be.wantOwn(op, arg{"p", pd}, arg{"g", gd}, arg{"m", md}, arg{"v", vd})
	cd := be.optBuf(a.Copy, n, op, "copy")
	at := be.dtype
	if cd != nil {
		if cd.dt != be.dtype && cd.dt != nn.BFloat16 {
			panic(fmt.Sprintf("gpukernels.%s: copy is %v, must be %v or bfloat16", op, cd.dt, be.dtype))
		}
		at = cd.dt
	}
	if n == 0 {
		return
	}
	decay := 1 - a.LR*a.WeightDecay
	stepSize := a.LR / (1 - math.Pow(a.Beta1, float64(a.Step)))
	bc2Sqrt := math.Sqrt(1 - math.Pow(a.Beta2, float64(a.Step)))
	be.enter(op)
	defer be.exit()
	k := be.fnAs(op, at, "adamw", "adamw")
	gscale := a.GradScale
	if gscale == 0 {
		gscale = 1
	}
	be.launch(op, k, dim(be.blocksFor(n, 256)), dim(256), 0, pArg(pd), pArg(gd), pArg(md), pArg(vd), pArg(cd), iArg(n),
		fArg(gscale), fArg(a.Beta1), fArg(a.Beta2), fArg(decay), fArg(stepSize), fArg(bc2Sqrt), fArg(a.Eps))
}
