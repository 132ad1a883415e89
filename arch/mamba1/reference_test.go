package mamba1_test

import (
	"math"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/mamba1"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// refForward is the Mamba LM written out as loops over host values in
// mamba_ssm's conventions (Mamba.forward's slow path with
// selective_scan_ref): in_proj rows split [x | z], conv1d over time per
// channel with torch's weight (E, 1, W) as (E, W), x_proj rows split
// [dt | B | C], δ = softplus(dt_proj(dt)), A = −exp(A_log). The gradient
// check cannot see a layout mistake that is consistent between forward and
// backward; this comparison can.
func refForward(b nn.Backend, m *mamba1.Model, ids []int32, B, L int) []float64 {
	read := func(t *nn.Tensor) []float64 {
		if t == nil {
			return nil
		}
		return b.Read(t.Data)
	}
	d := m.Embed.W.Dim(1)
	linear := archtest.RefLinear
	norm := func(x []float64, layer nn.Layer) []float64 { return archtest.RefNorm(b, x, d, layer) }
	silu := func(x float64) float64 { return x / (1 + math.Exp(-x)) }
	softplus := func(x float64) float64 {
		if x > 20 {
			return x
		}
		return math.Log1p(math.Exp(x))
	}

	table := read(m.Embed.W)
	x := archtest.RefEmbed(table, ids, d)
	for _, blk := range m.Blocks {
		mx := blk.Mixer
		E, N, R, W := mx.E, mx.N, mx.R, mx.ConvW.Dim(1)
		xz := linear(norm(x, blk.Norm), read(mx.InProj.W), nil, d, 2*E) // (B·L, 2E)
		cw, cb := read(mx.ConvW), read(mx.ConvB)
		u := make([]float64, B*L*E) // conv output, (B·L, E)
		for bb := range B {
			for e := range E {
				for t := range L {
					s := cb[e]
					for k := range W {
						if src := t - W + 1 + k; src >= 0 {
							s += cw[e*W+k] * xz[(bb*L+src)*2*E+e]
						}
					}
					u[(bb*L+t)*E+e] = silu(s)
				}
			}
		}
		dbl := linear(u, read(mx.XProj.W), nil, E, R+2*N)
		dtw, dtb, alog, D := read(mx.DtProj.W), read(mx.DtProj.B), read(mx.ALog), read(mx.D)
		y := make([]float64, B*L*E)
		for bb := range B {
			h := make([]float64, E*N)
			for t := range L {
				row := dbl[(bb*L+t)*(R+2*N) : (bb*L+t+1)*(R+2*N)]
				dt, Bv, Cv := row[:R], row[R:R+N], row[R+N:]
				for e := range E {
					s := dtb[e]
					for r := range R {
						s += dtw[e*R+r] * dt[r]
					}
					delta := softplus(s)
					ut := u[(bb*L+t)*E+e]
					out := D[e] * ut
					for n := range N {
						A := -math.Exp(alog[e*N+n])
						h[e*N+n] = math.Exp(delta*A)*h[e*N+n] + delta*Bv[n]*ut
						out += Cv[n] * h[e*N+n]
					}
					y[(bb*L+t)*E+e] = out * silu(xz[(bb*L+t)*2*E+E+e])
				}
			}
		}
		o := linear(y, read(mx.OutProj.W), nil, E, d)
		for i := range x {
			x[i] += o[i]
		}
		archtest.RefAddMLP(b, x, d, blk.Norm2, blk.MLP)
	}
	x = norm(x, m.NormF)
	if m.Head != nil {
		return linear(x, read(m.Head.W), read(m.Head.B), d, m.Head.W.Dim(0))
	}
	return linear(x, table, nil, d, m.Embed.W.Dim(0))
}

func TestMatchesReference(t *testing.T) {
	b := cpukernels.New[float64]()
	archtest.CheckReference(t, b, cases(variants()...), archtest.RefOptions{
		Vocab: 7, B: 2, L: 6, Seed: 41,
		Ref: func(m arch.Model, _ arch.Config, ids []int32, B, L int) []float64 {
			return refForward(b, m.(*mamba1.Model), ids, B, L)
		},
		Err: archtest.Rel(1e-3), Tol: 1e-12, Randomize: randomize,
	})
}
