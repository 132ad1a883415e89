package ssm_test

import (
	"math"
	"math/cmplx"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/ssm"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// refForward is the s4d model written out as loops over host values, in
// the conventions of the S4D reference (s4d.py): C stored as
// view_as_real (H, N/2, 2), A = −exp(log_A_real) + i·A_imag, the kernel
// by its definition, the convolution as a direct sum, and GLU taking the
// first half times the sigmoid of the second. The gradient check cannot
// see a layout mistake that forward and backward share; this can.
func refForward(b nn.Backend, m *ssm.Model, c *ssm.Config, ids []int32, B, L int) []float64 {
	read := func(t *nn.Tensor) []float64 { return b.Read(t.Data) }
	d := c.DModel
	norm := func(x []float64, l nn.Layer) []float64 {
		ps := l.Params("")
		w := read(ps[0].T)
		var bias []float64
		if len(ps) > 1 {
			bias = read(ps[1].T)
		}
		out := make([]float64, len(x))
		for r := 0; r < len(x)/d; r++ {
			row := x[r*d : (r+1)*d]
			mean, ss := 0.0, 0.0
			if c.Norm == "layernorm" {
				for _, v := range row {
					mean += v / float64(d)
				}
			}
			for _, v := range row {
				ss += (v - mean) * (v - mean) / float64(d)
			}
			rstd := 1 / math.Sqrt(ss+c.NormEps)
			for i, v := range row {
				out[r*d+i] = (v - mean) * rstd * w[i]
				if bias != nil {
					out[r*d+i] += bias[i]
				}
			}
		}
		return out
	}
	linear := func(x []float64, l *nn.Linear) []float64 {
		var bias []float64
		if l.B != nil {
			bias = read(l.B)
		}
		return archtest.RefLinear(x, read(l.W), bias, l.W.Dim(1), l.W.Dim(0))
	}
	emb := read(m.Embed.W)
	x := archtest.RefEmbed(emb, ids, d)
	for _, blk := range m.Blocks {
		s := blk.SSM
		H, N2 := s.H, s.N2
		logDt, logA, aIm, C, D := read(s.LogDt), read(s.LogAReal), read(s.AImag), read(s.C), read(s.D)
		K := make([]float64, H*L)
		for h := range H {
			dt := complex(math.Exp(logDt[h]), 0)
			for n := range N2 {
				i := h*N2 + n
				A := complex(-math.Exp(logA[i]), aIm[i])
				ct := complex(C[2*i], C[2*i+1]) * (cmplx.Exp(dt*A) - 1) / A
				for k := range L {
					K[h*L+k] += 2 * real(ct*cmplx.Exp(dt*A*complex(float64(k), 0)))
				}
			}
		}
		u := norm(x, blk.Norm)
		y := make([]float64, B*L*H) // (B, L, H)
		for bb := range B {
			for h := range H {
				for t := range L {
					acc := D[h] * u[(bb*L+t)*H+h]
					for k := 0; k <= t; k++ {
						acc += K[h*L+k] * u[(bb*L+t-k)*H+h]
					}
					y[(bb*L+t)*H+h] = 0.5 * acc * (1 + math.Erf(acc/math.Sqrt2))
				}
			}
		}
		z := linear(y, s.Out)
		for r := range B * L {
			for h := range H {
				v := z[r*s.Out.W.Dim(0)+h]
				if s.GLU {
					v /= 1 + math.Exp(-z[r*2*H+H+h])
				}
				x[r*d+h] += v
			}
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
	archtest.CheckReference(t, b, cases(allConfigs()...), archtest.RefOptions{
		Vocab: 7, B: 2, L: 11, Seed: 41,
		Ref: func(m arch.Model, c arch.Config, ids []int32, B, L int) []float64 {
			return refForward(b, m.(*ssm.Model), c.(*ssm.Config), ids, B, L)
		},
		Err: archtest.Rel(1), Tol: 1e-10, Randomize: randomize,
	})
}
