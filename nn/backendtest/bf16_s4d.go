package backendtest

import (
	"math"
	"testing"

	"seqbench/nn"
)

// The bfloat16 cases of S4D's convolution and step mode that RunBF16's
// testBF16FFTConv and testBF16S4DRecurrent leave out: FFTConv without the
// skip, with one gradient not wanted, and past the length where a GPU
// backend leaves its shared-memory FFT for a direct kernel (L > 4096,
// n > 8192: another kernel, so another bfloat16 load and rounding path);
// S4DRecurrent without the skip and without a state. Tolerances as in
// bf16.go's header: u + the float32 tolerance for a bfloat16 output,
// the conditioning of the rounded sum for du, the float32 tolerances for
// dK and dD.

// RunBF16S4D runs the cases above on a mixed-precision backend. It belongs
// in RunBF16; until it is called there, gpukernels' TestGPUS4DBFloat16
// runs it on a GPU.
func RunBF16S4D(t *testing.T, b nn.MixedBackend) {
	t.Run("FFTConvVariants", func(t *testing.T) { testBF16FFTConvVariants(t, b) })
	t.Run("S4DRecurrentVariants", func(t *testing.T) { testBF16S4DRecurrentVariants(t, b) })
}

// testBF16FFTConvVariants runs the FFTConv cases above. The long rows take
// the analytic gradients of refCausalConv (central differences would cost
// O(L³)); the short ones also check those against vjp.
func testBF16FFTConvVariants(t *testing.T, b nn.MixedBackend) {
	cases := []s4dCase{
		{B: 2, H: 3, L: 9},
		{B: 2, H: 3, L: 9, skip: true, noDU: true},
		{B: 3, H: 2, L: 9, skip: true, noDK: true},
		{B: 1, H: 2, L: 4097, skip: true},
		{B: 3, H: 1, L: 4100},
	}
	runCases(t, b, "BF16FFTConvVariants", cases, s4dDesc, func(tt *tester, c s4dCase) {
		B, H, L := c.B, c.H, c.L
		n := B * H * L
		uu, us := tt.inputAs(bf16, tt.randn(n))
		K, ks := tt.inputAs(fp32, tt.randn(H*L))
		var D nn.Buffer
		var ds []float64
		if c.skip {
			D, ds = tt.inputAs(fp32, tt.randn(H))
		}
		out := tt.outputAs(bf16, n)
		tt.b.FFTConv(out, uu, K, D, B, H, L)
		f := func() []float64 { return refCausalConv(us, ks, ds, B, H, L) }
		tt.checkOut("out", out, n, f())

		dout, douts := tt.inputAs(bf16, tt.randn(n))
		wantDU, wantDK, wantDD := refCausalConvGrads(us, ks, ds, douts, B, H, L)
		if L <= 64 {
			AssertClose(tt, "reference du", wantDU, vjp(f, us, douts), 1e-6)
			AssertClose(tt, "reference dK", wantDK, vjp(f, ks, douts), 1e-6)
			if c.skip {
				AssertClose(tt, "reference dD", wantDD, vjp(f, ds, douts), 1e-6)
			}
		}
		var du, dK, dD accum
		if !c.noDU {
			du = tt.accumAs(bf16, n)
		}
		if !c.noDK {
			dK = tt.accumAs(fp32, H*L)
		}
		if c.skip {
			dD = tt.accumAs(fp32, H)
		}
		tt.b.FFTConvBackward(du.buf, dK.buf, dD.buf, uu, K, D, dout, B, H, L)
		if !c.noDU {
			tt.checkAccum("du", du, wantDU)
		}
		if !c.noDK {
			tt.checkAccum("dK", dK, wantDK)
		}
		if c.skip {
			tt.checkAccum("dD", dD, wantDD)
		}
	})
}

// refCausalConvGrads is the vector–Jacobian product of refCausalConv with
// dout, exactly (the convolution is linear in u, in K and in D):
//
//	du[b,h,s] = Σ_{t≥s} dout[b,h,t]·K[h,t−s] + D[h]·dout[b,h,s]
//	dK[h,k]   = Σ_b Σ_{t≥k} dout[b,h,t]·u[b,h,t−k]
//	dD[h]     = Σ_b Σ_t dout[b,h,t]·u[b,h,t]
//
// dD is nil when D is.
func refCausalConvGrads(u, K, D, dout []float64, B, H, L int) (du, dK, dD []float64) {
	du, dK = make([]float64, B*H*L), make([]float64, H*L)
	if D != nil {
		dD = make([]float64, H)
	}
	for b := range B {
		for h := range H {
			r := (b*H + h) * L
			ur, gr, kr := u[r:r+L], dout[r:r+L], K[h*L:(h+1)*L]
			for s := range L {
				acc := 0.0
				for t := s; t < L; t++ {
					acc += gr[t] * kr[t-s]
				}
				if D != nil {
					acc += D[h] * gr[s]
					dD[h] += gr[s] * ur[s]
				}
				du[r+s] = acc
			}
			for k := range L {
				acc := 0.0
				for t := k; t < L; t++ {
					acc += gr[t] * ur[t-k]
				}
				dK[h*L+k] += acc
			}
		}
	}
	return du, dK, dD
}

// testBF16S4DRecurrentVariants: S4D's step mode with a bfloat16 u and out
// and float32 parameters, without the skip, with and without a carried
// float32 state (zeros in, the final state out), over several steps.
func testBF16S4DRecurrentVariants(t *testing.T, b nn.MixedBackend) {
	cases := []s4dCase{{B: 3, H: 2, N2: 3, L: 5, noState: true}, {B: 2, H: 2, N2: 5, L: 17}}
	runCases(t, b, "BF16S4DRecurrentVariants", cases, s4dDesc, func(tt *tester, c s4dCase) {
		B, H, N2, L := c.B, c.H, c.N2, c.L
		n, ns := B*H*L, B*H*N2*2
		p := tt.s4dCaseParams(c)
		uu, us := tt.inputAs(bf16, tt.randn(n))
		wantOut, wantS := refS4DRecurrent(p, us, nil, nil, B, H, N2, L)
		var state nn.Buffer
		if !c.noState {
			state = tt.allocAs(ns+1, fp32)
			tt.b.Write(state, append(make([]float64, ns), math.NaN()))
		}
		out := tt.outputAs(bf16, n)
		tt.b.S4DRecurrent(out, state, uu, nil, p.args(H, N2, L), B)
		tt.checkOut("out", out, n, wantOut)
		if state != nil {
			tt.checkOut("state", state, ns, wantS)
		}
	})
}
