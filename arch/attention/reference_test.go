package attention_test

import (
	"math"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/attention"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// refForward is the transformer written out as loops over host values, in
// the conventions of the PyTorch references (nanoGPT's fused c_attn split
// into q | k | v with heads (H, Dh) inside each; RoPE in the GPT-NeoX
// half-split layout). The gradient check cannot see a layout mistake that
// is consistent between forward and backward; this comparison can.
func refForward(b nn.Backend, m *attention.Model, c *attention.Config, ids []int32, B, L int) []float64 {
	read := func(t *nn.Tensor) []float64 {
		if t == nil {
			return nil
		}
		return b.Read(t.Data)
	}
	d, H := c.DModel, c.NHeads
	Dh := d / H
	linear := func(x []float64, l *nn.Linear) []float64 {
		return archtest.RefLinear(x, read(l.W), read(l.B), l.W.Dim(1), l.W.Dim(0))
	}
	norm := func(x []float64, layer nn.Layer) []float64 { return archtest.RefNorm(b, x, d, layer) }
	// rope rotates one head vector at position pos in place.
	rope := func(x []float64, pos int) {
		half := Dh / 2
		for i := range half {
			th := float64(pos) * math.Pow(c.RopeBase, -2*float64(i)/float64(Dh))
			a, bb := x[i], x[i+half]
			x[i] = a*math.Cos(th) - bb*math.Sin(th)
			x[i+half] = bb*math.Cos(th) + a*math.Sin(th)
		}
	}

	emb := read(m.Embed.W)
	x := archtest.RefEmbed(emb, ids, d)
	if m.PosEmbed != nil {
		pe := read(m.PosEmbed.W)
		for r := range B * L {
			for i := range d {
				x[r*d+i] += pe[(r%L)*d+i]
			}
		}
	}
	for _, blk := range m.Blocks {
		qkv := linear(norm(x, blk.Norm1), blk.Attn.QKV) // (B·L, 3d)
		head := func(which, bi, t, h int) []float64 {
			v := append([]float64(nil), qkv[(bi*L+t)*3*d+which*d+h*Dh:][:Dh]...)
			if which < 2 && c.Pos == "rope" {
				rope(v, t)
			}
			return v
		}
		o := make([]float64, B*L*d)
		for bi := range B {
			for h := range H {
				for t := range L {
					q := head(0, bi, t, h)
					s := make([]float64, t+1)
					mx := math.Inf(-1)
					for j := range t + 1 {
						k := head(1, bi, j, h)
						for i := range Dh {
							s[j] += q[i] * k[i] / math.Sqrt(float64(Dh))
						}
						mx = math.Max(mx, s[j])
					}
					z := 0.0
					for j := range s {
						s[j] = math.Exp(s[j] - mx)
						z += s[j]
					}
					for j := range t + 1 {
						v := head(2, bi, j, h)
						for i := range Dh {
							o[(bi*L+t)*d+h*Dh+i] += s[j] / z * v[i]
						}
					}
				}
			}
		}
		a := linear(o, blk.Attn.Proj)
		for i := range x {
			x[i] += a[i]
		}
		hn := norm(x, blk.Norm2)
		up := linear(hn, blk.MLP.Up)
		if blk.MLP.Gate != nil {
			g := linear(hn, blk.MLP.Gate)
			for i := range up {
				up[i] *= g[i] / (1 + math.Exp(-g[i]))
			}
		} else {
			for i, v := range up {
				up[i] = 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
			}
		}
		f := linear(up, blk.MLP.Down)
		for i := range x {
			x[i] += f[i]
		}
	}
	x = norm(x, m.NormF)
	if m.Head != nil {
		return linear(x, m.Head)
	}
	return linear(x, &nn.Linear{W: m.Embed.W})
}

func TestForwardMatchesReference(t *testing.T) {
	b := cpukernels.New[float64]()
	cs := []*attention.Config{
		tiny("rope", "gelu", "rmsnorm", false, true),
		tiny("learned", "swiglu", "layernorm", true, false),
		tiny("none", "gelu", "layernorm", false, false),
	}
	for _, c := range cs {
		c.RopeBase = 3 // large angles at short L, so a wrong pairing shows
	}
	archtest.CheckReference(t, b, cases(cs...), archtest.RefOptions{
		Vocab: 7, B: 2, L: 5, Seed: 21,
		Ref: func(m arch.Model, c arch.Config, ids []int32, B, L int) []float64 {
			return refForward(b, m.(*attention.Model), c.(*attention.Config), ids, B, L)
		},
		Err: archtest.Abs, Tol: 1e-12,
	})
}
