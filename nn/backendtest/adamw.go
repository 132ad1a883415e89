package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// refAdamW is one step of torch.optim.AdamW on every element:
//
//	p *= 1 − lr·wd
//	m = β1·m + (1−β1)·g
//	v = β2·v + (1−β2)·g²
//	p −= lr · (m/(1−β1^t)) / (sqrt(v/(1−β2^t)) + eps)
func refAdamW(p, g, m, v []float64, a nn.AdamWArgs) {
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Step))
	for i := range p {
		p[i] *= 1 - a.LR*a.WeightDecay
		m[i] = a.Beta1*m[i] + (1-a.Beta1)*g[i]
		v[i] = a.Beta2*v[i] + (1-a.Beta2)*g[i]*g[i]
		p[i] -= a.LR * (m[i] / bc1) / (math.Sqrt(v[i]/bc2) + a.Eps)
	}
}

func testAdamW(t *testing.T, b nn.Backend) {
	type adamCase struct {
		n                      int
		lr, b1, b2, eps, decay float64
	}
	cases := []adamCase{
		{1, 1e-2, 0.9, 0.999, 1e-8, 0.1},
		{7, 1e-3, 0.9, 0.95, 1e-8, 0},
		{1000, 3e-2, 0.8, 0.99, 1e-6, 0.5},
		{4099, 1e-2, 0.9, 0.999, 1e-8, 0.1},
	}
	desc := func(c adamCase) string {
		return fmt.Sprintf("n%d_lr%g_b%g_%g_eps%g_wd%g", c.n, c.lr, c.b1, c.b2, c.eps, c.decay)
	}
	// The copy (AdamWArgs.Copy) is of the activation type: a mixed
	// backend's, else the backend's own. It is written on steps 2 and 3.
	act := b.DType()
	if m, ok := b.(nn.MixedBackend); ok {
		act = m.ActDType()
	}
	// Step 3 also runs with GradScale, against a twin whose gradient
	// Scale multiplied first: the same bits, and g left unchanged.
	runCases(t, b, "AdamW", cases, desc, func(tt *tester, c adamCase) {
		p, ps := tt.exact(tt.randn(c.n))
		g, _ := tt.exact(nans(c.n))
		m, ms := tt.exact(make([]float64, c.n))
		v, vs := tt.exact(make([]float64, c.n))
		cp, cast := tt.allocAs(c.n, act), tt.allocAs(c.n, act)
		tt.b.Fill(cp, math.NaN())
		for step := 1; step <= 3; step++ {
			gv := tt.randn(c.n)
			tt.b.Write(g, gv)
			gs := tt.b.Read(g)
			a := nn.AdamWArgs{LR: c.lr, Beta1: c.b1, Beta2: c.b2, Eps: c.eps, WeightDecay: c.decay, Step: step}
			if step > 1 {
				a.Copy = cp
			}
			if step == 3 {
				tt.adamWScaled(p, g, m, v, a, 0.37)
			}
			tt.b.AdamW(p, g, m, v, a)
			refAdamW(ps, gs, ms, vs, a)
			tt.fwd(fmt.Sprintf("step %d: p", step), tt.b.Read(p), ps)
			tt.fwd(fmt.Sprintf("step %d: m", step), tt.b.Read(m), ms)
			tt.fwd(fmt.Sprintf("step %d: v", step), tt.b.Read(v), vs)
			tt.fwd(fmt.Sprintf("step %d: g unchanged", step), tt.b.Read(g), gs)
			if step == 1 {
				continue
			}
			// The copy is the updated p as Copy rounds it, bit for bit.
			tt.b.Copy(cast, p)
			got, want := tt.b.Read(cp), tt.b.Read(cast)
			if act == bf16 {
				got = tt.readAs("copy", cp, act)
			}
			for i := range want {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					tt.Fatalf("step %d: copy[%d] = %v, Copy of p gives %v", step, i, got[i], want[i])
				}
			}
		}
	})
}

// adamWScaled checks AdamW with GradScale s on copies of p, m and v against
// Scale(g, s) followed by AdamW on another set, bit for bit, and that g is
// left as it was. p, g, m and v are not changed.
func (tt *tester) adamWScaled(p, g, m, v nn.Buffer, a nn.AdamWArgs, s float64) {
	tt.Helper()
	n := p.Len()
	twin := func() (nn.Buffer, nn.Buffer, nn.Buffer) {
		p2, m2, v2 := tt.alloc(n), tt.alloc(n), tt.alloc(n)
		tt.b.Copy(p2, p)
		tt.b.Copy(m2, m)
		tt.b.Copy(v2, v)
		return p2, m2, v2
	}
	gBefore := tt.b.Read(g)
	pf, mf, vf := twin()
	fused := a
	fused.Copy, fused.GradScale = nil, s
	tt.b.AdamW(pf, g, mf, vf, fused)
	tt.fwd("GradScale: g unchanged", tt.b.Read(g), gBefore)
	ps, ms, vs := twin()
	gs := tt.alloc(n)
	tt.b.Copy(gs, g)
	tt.b.Scale(gs, s)
	plain := a
	plain.Copy = nil
	tt.b.AdamW(ps, gs, ms, vs, plain)
	for _, c := range []struct {
		name      string
		got, want nn.Buffer
	}{{"p", pf, ps}, {"m", mf, ms}, {"v", vf, vs}} {
		got, want := tt.b.Read(c.got), tt.b.Read(c.want)
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				tt.Fatalf("GradScale %v: %s[%d] = %v, Scale then AdamW gives %v", s, c.name, i, got[i], want[i])
			}
		}
	}
}

// testAdamWEach checks nn.AdamWEach (one launch where the backend has
// ManyAdamW) against AdamW on each tensor, bit for bit: tensors of several
// lengths (one spans many of the GPU's 8,192-element chunks and ends
// inside one, one is empty), their own
// learning rates and weight decays, copies on some, a GradScale, two steps.
func testAdamWEach(t *testing.T, b nn.Backend) {
	act := b.DType()
	if m, ok := b.(nn.MixedBackend); ok {
		act = m.ActDType()
	}
	sizes := []int{7, 70000, 1, 0, 4099}
	runCases(t, b, "AdamWEach", []int{0}, func(int) string { return "mixed" }, func(tt *tester, _ int) {
		type set struct{ p, g, m, v, cp []nn.Buffer }
		mk := func() set {
			var s set
			for i, n := range sizes {
				s.p, s.g = append(s.p, tt.alloc(n)), append(s.g, tt.alloc(n))
				s.m, s.v = append(s.m, tt.alloc(n)), append(s.v, tt.alloc(n))
				var cp nn.Buffer
				if i%2 == 0 {
					cp = tt.allocAs(n, act)
				}
				s.cp = append(s.cp, cp)
			}
			return s
		}
		each, one := mk(), mk()
		for i, n := range sizes {
			p, g := tt.randn(n), tt.randn(n)
			for _, s := range []set{each, one} {
				tt.b.Write(s.p[i], p)
				tt.b.Write(s.g[i], g)
			}
		}
		for step := 1; step <= 2; step++ {
			a := nn.AdamWArgs{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Step: step, GradScale: 0.5}
			ts := make([]nn.AdamWTensor, len(sizes))
			for i := range sizes {
				ts[i] = nn.AdamWTensor{P: each.p[i], G: each.g[i], M: each.m[i], V: each.v[i], Copy: each.cp[i],
					LR: 1e-3 * float64(i+1), WeightDecay: 0.1 * float64(i%3)}
				ai := a
				ai.LR, ai.WeightDecay, ai.Copy = ts[i].LR, ts[i].WeightDecay, one.cp[i]
				tt.b.AdamW(one.p[i], one.g[i], one.m[i], one.v[i], ai)
			}
			nn.AdamWEach(tt.b, ts, a)
			for i := range sizes {
				for _, c := range []struct {
					name      string
					got, want nn.Buffer
				}{{"p", each.p[i], one.p[i]}, {"m", each.m[i], one.m[i]}, {"v", each.v[i], one.v[i]}, {"copy", each.cp[i], one.cp[i]}} {
					if c.got == nil {
						continue
					}
					got, want := tt.b.Read(c.got), tt.b.Read(c.want)
					for j := range want {
						if math.Float64bits(got[j]) != math.Float64bits(want[j]) {
							tt.Fatalf("step %d, tensor %d (n %d): %s[%d] = %v, AdamW alone gives %v", step, i, sizes[i], c.name, j, got[j], want[j])
						}
					}
				}
			}
		}
	})
}
