package mamba2_test

import (
	"math"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/mamba2"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// refForward is the Mamba-2 LM written out as loops over host values in
// mamba_ssm's conventions (Mamba2.forward's unfused path, with the SSD as
// its defining recurrence): in_proj rows split [z | x | B | C | dt], conv1d
// over time per channel of [x | B | C] with torch's weight (K, 1, W) as
// (K, W), then SiLU; head h reads group h/(H/G) of B and C;
// dt = softplus(dt + dt_bias), A = −exp(A_log); y = RMSNorm per group of
// E/G channels of y·SiLU(z), times norm.weight. The gradient check cannot
// see a layout mistake that is consistent between forward and backward;
// this comparison can.
func refForward(b nn.Backend, m *mamba2.Model, ids []int32, B, L int) []float64 {
	read := func(t *nn.Tensor) []float64 { return b.Read(t.Data) }
	d := m.Embed.W.Dim(1)
	linear := func(x, w []float64, in, out int) []float64 { return archtest.RefLinear(x, w, nil, in, out) }
	// rms normalises every run of n values of x by its root mean square and
	// scales element i of a row of width len(w) by w[i].
	rms := func(x []float64, n int, w []float64, eps float64) []float64 {
		y := make([]float64, len(x))
		for r := range len(x) / n {
			ss := 0.0
			for _, v := range x[r*n : (r+1)*n] {
				ss += v * v
			}
			s := 1 / math.Sqrt(ss/float64(n)+eps)
			for i := r * n; i < (r+1)*n; i++ {
				y[i] = x[i] * s * w[i%len(w)]
			}
		}
		return y
	}
	silu := func(v float64) float64 { return v / (1 + math.Exp(-v)) }
	emb := read(m.Embed.W)
	x := archtest.RefEmbed(emb, ids, d)
	for _, blk := range m.Blocks {
		mx := blk.Mixer
		E, H, P, G, N := mx.E, mx.H, mx.P, mx.G, mx.N
		K, W := E+2*G*N, mx.ConvW.Dim(1)
		F := 2*E + 2*G*N + H
		h := rms(x, d, read(blk.Norm.W), blk.Norm.Eps)
		zx := linear(h, read(mx.InProj.W), d, F)
		cw, cb := read(mx.ConvW), read(mx.ConvB)
		xbc := make([]float64, B*L*K) // (B, L, K) after conv and SiLU
		for bi := range B {
			for c := range K {
				for t := range L {
					s := cb[c]
					for k := range W {
						if tt := t - W + 1 + k; tt >= 0 {
							s += cw[c*W+k] * zx[(bi*L+tt)*F+E+c]
						}
					}
					xbc[(bi*L+t)*K+c] = silu(s)
				}
			}
		}
		alog, dtb, D := read(mx.ALog), read(mx.DtBias), read(mx.D)
		y := make([]float64, B*L*E)
		for bi := range B {
			for hh := range H {
				g := hh / (H / G)
				A := -math.Exp(alog[hh])
				st := make([]float64, P*N)
				for t := range L {
					row := bi*L + t
					dt := zx[row*F+2*E+2*G*N+hh] + dtb[hh]
					dt = math.Log1p(math.Exp(dt))
					dA := math.Exp(dt * A)
					for p := range P {
						xv := xbc[row*K+hh*P+p]
						out := D[hh] * xv
						for n := range N {
							st[p*N+n] = dA*st[p*N+n] + dt*xv*xbc[row*K+E+g*N+n]
							out += st[p*N+n] * xbc[row*K+E+G*N+g*N+n]
						}
						y[row*E+hh*P+p] = out
					}
				}
			}
		}
		for r := range B * L {
			for c := range E {
				y[r*E+c] *= silu(zx[r*F+c])
			}
		}
		y = rms(y, E/G, read(mx.NormW), mx.Eps)
		out := linear(y, read(mx.OutProj.W), E, d)
		for i := range x {
			x[i] += out[i]
		}
		archtest.RefAddMLP(b, x, d, blk.Norm2, blk.MLP)
	}
	normF := m.NormF.(*nn.RMSNorm)
	x = rms(x, d, read(normF.W), normF.Eps)
	head := emb
	if m.Head != nil {
		head = read(m.Head.W)
	}
	return linear(x, head, d, len(head)/d)
}

// Forward equals the loops for every variant (at chunk sizes that split the
// sequence), to float64 rounding.
func TestForwardMatchesReference(t *testing.T) {
	b := cpukernels.New[float64]()
	archtest.CheckReference(t, b, cases(variants()...), archtest.RefOptions{
		Vocab: 7, B: 2, L: 7, Seed: 21,
		Ref: func(m arch.Model, _ arch.Config, ids []int32, B, L int) []float64 {
			return refForward(b, m.(*mamba2.Model), ids, B, L)
		},
		Err: archtest.Rel(1e-3), Tol: 1e-12,
	})
}
