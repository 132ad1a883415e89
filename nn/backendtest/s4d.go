package backendtest

import (
	"fmt"
	"math"
	"math/cmplx"
	"testing"

	"seqbench/nn"
)

func init() {
	registerFused("S4DKernel", testS4DKernel)
	registerFused("FFTConv", testFFTConv)
	registerFused("S4DRecurrent", testS4DRecurrent)
}

// refS4DDisc returns the ZOH-discretised mode w = exp(dt·A) and
// C̃ = C·(exp(dt·A) − 1)/A of channel h, mode n. exp(z) − 1 is written as
// expm1(x)·cos y − 2·sin²(y/2) + i·exp(x)·sin y, because the plain
// difference loses half the digits at the usual dt = 1e-3 and the finite
// differences of this reference would drown in its rounding.
func refS4DDisc(logDt, aRe, aIm, cRe, cIm []float64, N2, h, n int) (w, ct complex128) {
	dt := math.Exp(logDt[h])
	A := complex(aRe[h*N2+n], aIm[h*N2+n])
	z := complex(dt, 0) * A
	x, y := real(z), imag(z)
	em1 := complex(math.Expm1(x)*math.Cos(y)-2*math.Pow(math.Sin(y/2), 2), math.Exp(x)*math.Sin(y))
	return cmplx.Exp(z), complex(cRe[h*N2+n], cIm[h*N2+n]) * em1 / A
}

// refS4DKernel is the definition, every power a direct exp:
//
//	K[h,k] = 2·Re Σ_n C̃[h,n]·exp(dt·A[h,n]·k)
func refS4DKernel(logDt, aRe, aIm, cRe, cIm []float64, H, N2, L int) []float64 {
	K := make([]float64, H*L)
	for h := range H {
		dt := math.Exp(logDt[h])
		for n := range N2 {
			_, ct := refS4DDisc(logDt, aRe, aIm, cRe, cIm, N2, h, n)
			z := complex(dt*aRe[h*N2+n], dt*aIm[h*N2+n])
			for k := range L {
				K[h*L+k] += 2 * real(ct*cmplx.Exp(z*complex(float64(k), 0)))
			}
		}
	}
	return K
}

// refCausalConv is the direct O(L²) sum (D nil: no skip):
//
//	out[b,h,t] = Σ_{k≤t} K[h,k]·u[b,h,t−k] + D[h]·u[b,h,t]
func refCausalConv(u, K, D []float64, B, H, L int) []float64 {
	out := make([]float64, B*H*L)
	for b := range B {
		for h := range H {
			row := u[(b*H+h)*L : (b*H+h+1)*L]
			for t := range L {
				s := 0.0
				for k := 0; k <= t; k++ {
					s += K[h*L+k] * row[t-k]
				}
				if D != nil {
					s += D[h] * row[t]
				}
				out[(b*H+h)*L+t] = s
			}
		}
	}
	return out
}

// s4dParams are random S4D parameters in the ranges models use: log dt in
// [lo, hi], A_re in −[aLo, aHi], A_im near S4D-Lin's π·n, C ~ N(0, 1).
type s4dParams struct {
	logDt, aRe, aIm, cRe, cIm      nn.Buffer
	logDtS, aReS, aImS, cReS, cImS []float64
}

func (tt *tester) s4dParams(H, N2 int, logDtLo, logDtHi, aReLo, aReHi float64) *s4dParams {
	p := &s4dParams{}
	p.logDt, p.logDtS = tt.input(tt.uniform(H, logDtLo, logDtHi))
	are := tt.uniform(H*N2, aReLo, aReHi)
	aim := tt.uniform(H*N2, -0.5, 0.5)
	for i := range are {
		are[i] = -are[i]
		aim[i] += math.Pi * float64(i%N2)
	}
	p.aRe, p.aReS = tt.input(are)
	p.aIm, p.aImS = tt.input(aim)
	p.cRe, p.cReS = tt.input(tt.randn(H * N2))
	p.cIm, p.cImS = tt.input(tt.randn(H * N2))
	return p
}

func (p *s4dParams) args(H, N2, L int) nn.S4DArgs {
	return nn.S4DArgs{H: H, N2: N2, L: L, LogDt: p.logDt, ARe: p.aRe, AIm: p.aIm, CRe: p.cRe, CIm: p.cIm}
}

func (p *s4dParams) kernel(H, N2, L int) []float64 {
	return refS4DKernel(p.logDtS, p.aReS, p.aImS, p.cReS, p.cImS, H, N2, L)
}

type s4dCase struct {
	B, H, N2, L int
	skip        bool   // with D
	fast        bool   // dt up to 1 and A_re down to −60: modes die within a few steps
	only        string // S4DKernel: the one gradient wanted ("" all)
	h0          bool   // S4DRecurrent: random initial state
	noState     bool   // S4DRecurrent: nil state
	noDU, noDK  bool   // FFTConv: gradients not wanted
}

func s4dDesc(c s4dCase) string {
	s := fmt.Sprintf("B%d_H%d_L%d", c.B, c.H, c.L)
	if c.N2 > 0 {
		s = fmt.Sprintf("B%d_H%d_N2%d_L%d", c.B, c.H, c.N2, c.L)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{c.skip, "_D"}, {c.fast, "_fastdecay"}, {c.h0, "_h0"}, {c.noState, "_nostate"}, {c.noDU, "_noDU"}, {c.noDK, "_noDK"}} {
		if f.on {
			s += f.name
		}
	}
	if c.only != "" {
		s += "_only" + c.only
	}
	return s
}

// s4dGrid is L = 1, 5, 33, 100 × H = 1, 3 × the given N2s.
func s4dGrid(B int, skip bool, N2s ...int) []s4dCase {
	var cs []s4dCase
	for _, L := range []int{1, 5, 33, 100} {
		for _, H := range []int{1, 3} {
			for _, N2 := range N2s {
				cs = append(cs, s4dCase{B: B, H: H, N2: N2, L: L, skip: skip})
			}
		}
	}
	return cs
}

func (tt *tester) s4dCaseParams(c s4dCase) *s4dParams {
	if c.fast {
		return tt.s4dParams(c.H, c.N2, -1, 0, 20, 60)
	}
	return tt.s4dParams(c.H, c.N2, math.Log(1e-3), math.Log(0.5), 0.1, 1)
}

// smallAccum is optAccum pre-filled with N(0, 1e-6) values: the gradients
// of A at small L are O(dt²) (~1e-7 at dt = 1e-3), and in float32 an O(1)
// starting value would round them away before after − before is read.
func (tt *tester) smallAccum(n int, skip bool) (accum, nn.Buffer) {
	if skip {
		return accum{}, nil
	}
	vals := tt.randn(n)
	for i := range vals {
		vals[i] *= 1e-3
	}
	buf, before := tt.upload(append(vals, gradGuard))
	a := accum{buf, before, n}
	return a, a.buf
}

// vjp4 is vjp with the 4-point central difference and a larger step,
// h = 1e-4·max(1, |x[i]|):
//
//	g[i] = (−f(x+2h) + 8·f(x+h) − 8·f(x−h) + f(x−2h)) / 12h   (each ⟨dout, ·⟩)
//
// The kernel's gradients in A are O(dt²) while ⟨dout, K⟩ is O(dt): at
// dt = 1e-3 vjp's rounding noise (~1e-16·|f|/h) reaches a few 1e-7 of
// them. The larger step cuts that 100×, and the O(h⁴) truncation of the
// stencil stays below 1e-9 for the phases (dt·A·k ≲ 50) of these cases.
func vjp4(f func() []float64, x, dout []float64) []float64 {
	g := make([]float64, len(x))
	for i, xi := range x {
		h := 1e-4 * max(1, math.Abs(xi))
		at := func(v float64) float64 {
			x[i] = v
			return dot(dout, f())
		}
		g[i] = (-at(xi+2*h) + 8*at(xi+h) - 8*at(xi-h) + at(xi-2*h)) / (12 * h)
		x[i] = xi
	}
	return g
}

func testS4DKernel(t *testing.T, b nn.Backend) {
	cases := s4dGrid(1, false, 1, 4)
	cases = append(cases,
		s4dCase{B: 1, H: 2, N2: 16, L: 64},
		s4dCase{B: 1, H: 2, N2: 3, L: 100, fast: true},
		s4dCase{B: 1, H: 2, N2: 3, L: 9, only: "LogDt"},
		s4dCase{B: 1, H: 2, N2: 3, L: 9, only: "ARe"},
		s4dCase{B: 1, H: 2, N2: 3, L: 9, only: "CIm"},
	)
	runCases(t, b, "S4DKernel", cases, s4dDesc, func(tt *tester, c s4dCase) {
		H, N2, L := c.H, c.N2, c.L
		p := tt.s4dCaseParams(c)
		K := tt.output(H * L)
		tt.b.S4DKernel(K, p.args(H, N2, L))
		f := func() []float64 { return p.kernel(H, N2, L) }
		tt.fwd("K", tt.result("K", K, H*L), f())

		dK, dKs := tt.input(tt.randn(H * L))
		type gradIn struct {
			name string
			xs   []float64
			n    int
		}
		ins := []gradIn{{"LogDt", p.logDtS, H}, {"ARe", p.aReS, H * N2}, {"AIm", p.aImS, H * N2},
			{"CRe", p.cReS, H * N2}, {"CIm", p.cImS, H * N2}}
		accs := make([]accum, len(ins))
		bufs := make([]nn.Buffer, len(ins))
		for i, in := range ins {
			accs[i], bufs[i] = tt.smallAccum(in.n, c.only != "" && c.only != in.name)
		}
		tt.b.S4DKernelBackward(nn.S4DGrads{LogDt: bufs[0], ARe: bufs[1], AIm: bufs[2], CRe: bufs[3], CIm: bufs[4]},
			p.args(H, N2, L), dK)
		for i, in := range ins {
			if bufs[i] != nil {
				tt.grad("d"+in.name, tt.delta("d"+in.name, accs[i]), vjp4(f, in.xs, dKs))
			}
		}
	})
}

func testFFTConv(t *testing.T, b nn.Backend) {
	var cases []s4dCase
	for _, skip := range []bool{false, true} {
		cases = append(cases, s4dGrid(2, skip, 0)...) // no modes: N2 is the kernel's
	}
	cases = append(cases,
		s4dCase{B: 1, H: 1, L: 64},             // L a power of two: n = 2L exactly
		s4dCase{B: 3, H: 2, L: 17, skip: true}, // an odd batch: one row unpaired
		s4dCase{B: 7, H: 1, L: 20, skip: true}, // one channel split into shares
		s4dCase{B: 40, H: 1, L: 3, skip: true}, // many shares of several pairs
		s4dCase{B: 2, H: 3, L: 9, skip: true, noDU: true},
		s4dCase{B: 2, H: 3, L: 9, skip: true, noDK: true},
		s4dCase{B: 2, H: 3, L: 9, noDU: true, noDK: true},
	)
	runCases(t, b, "FFTConv", cases, s4dDesc, func(tt *tester, c s4dCase) {
		B, H, L := c.B, c.H, c.L
		n := B * H * L
		u, us := tt.input(tt.randn(n))
		K, ks := tt.input(tt.randn(H * L))
		var D nn.Buffer
		var ds []float64
		if c.skip {
			D, ds = tt.input(tt.randn(H))
		}
		out := tt.output(n)
		tt.b.FFTConv(out, u, K, D, B, H, L)
		f := func() []float64 { return refCausalConv(us, ks, ds, B, H, L) }
		tt.fwd("out", tt.result("out", out, n), f())

		dout, douts := tt.input(tt.randn(n))
		du, duBuf := tt.optAccum(n, c.noDU)
		dK, dKBuf := tt.optAccum(H*L, c.noDK)
		dD, dDBuf := tt.optAccum(H, !c.skip)
		tt.b.FFTConvBackward(duBuf, dKBuf, dDBuf, u, K, D, dout, B, H, L)
		if !c.noDU {
			tt.grad("du", tt.delta("du", du), vjp(f, us, douts))
		}
		if !c.noDK {
			tt.grad("dK", tt.delta("dK", dK), vjp(f, ks, douts))
		}
		if c.skip {
			tt.grad("dD", tt.delta("dD", dD), vjp(f, ds, douts))
		}
	})
}

// refS4DRecurrent is the convolution with the kernel plus what a carried
// initial state s0 (B, H, N2, 2) adds, and the final state:
//
//	out[t]  = (K ∗ u)[t] + D·u[t] + 2·Re Σ_n C̃[n]·w[n]^(t+1)·s0[n]
//	sL[n]   = w[n]^L·s0[n] + Σ_s w[n]^(L−1−s)·u[s]
func refS4DRecurrent(p *s4dParams, u, D, s0 []float64, B, H, N2, L int) (out, sL []float64) {
	out = refCausalConv(u, p.kernel(H, N2, L), D, B, H, L)
	sL = make([]float64, B*H*N2*2)
	for b := range B {
		for h := range H {
			r := b*H + h
			for n := range N2 {
				w, ct := refS4DDisc(p.logDtS, p.aReS, p.aImS, p.cReS, p.cImS, N2, h, n)
				var init complex128
				if s0 != nil {
					init = complex(s0[(r*N2+n)*2], s0[(r*N2+n)*2+1])
				}
				for t := range L {
					out[r*L+t] += 2 * real(ct*cmplx.Pow(w, complex(float64(t+1), 0))*init)
				}
				s := cmplx.Pow(w, complex(float64(L), 0)) * init
				for t := range L {
					s += cmplx.Pow(w, complex(float64(L-1-t), 0)) * complex(u[r*L+t], 0)
				}
				sL[(r*N2+n)*2], sL[(r*N2+n)*2+1] = real(s), imag(s)
			}
		}
	}
	return out, sL
}

func testS4DRecurrent(t *testing.T, b nn.Backend) {
	var cases []s4dCase
	for _, skip := range []bool{false, true} {
		cases = append(cases, s4dGrid(2, skip, 1, 4)...)
	}
	cases = append(cases,
		s4dCase{B: 3, H: 2, N2: 3, L: 40, skip: true, h0: true},
		s4dCase{B: 1, H: 3, N2: 4, L: 20, skip: true, fast: true, h0: true},
		s4dCase{B: 2, H: 2, N2: 3, L: 12, skip: true, noState: true},
	)
	runCases(t, b, "S4DRecurrent", cases, s4dDesc, func(tt *tester, c s4dCase) {
		B, H, N2, L := c.B, c.H, c.N2, c.L
		n, ns := B*H*L, B*H*N2*2
		p := tt.s4dCaseParams(c)
		u, us := tt.input(tt.randn(n))
		var D nn.Buffer
		var ds []float64
		if c.skip {
			D, ds = tt.input(tt.randn(H))
		}
		var s0 []float64
		if c.h0 {
			s0 = tt.randn(ns)
		}
		wantOut, wantS := refS4DRecurrent(p, us, ds, s0, B, H, N2, L)
		var state nn.Buffer
		if !c.noState {
			vals := append(make([]float64, ns), math.NaN())
			if s0 != nil {
				copy(vals, s0)
			}
			var stored []float64
			state, stored = tt.upload(vals)
			if s0 != nil {
				// Round the reference's s0 as the backend stores it.
				copy(s0, stored[:ns])
				wantOut, wantS = refS4DRecurrent(p, us, ds, s0, B, H, N2, L)
			}
		}
		out := tt.output(n)
		tt.b.S4DRecurrent(out, state, u, D, p.args(H, N2, L), B)
		tt.fwd("out", tt.result("out", out, n), wantOut)
		if c.noState {
			return
		}
		tt.fwd("state", tt.result("state", state, ns), wantS)

		// The same sequence in pieces (1, 2, the rest), carrying the state,
		// gives the same outputs: the ops' step mode.
		if L < 4 {
			return
		}
		vals := append(make([]float64, ns), math.NaN())
		copy(vals, s0)
		st2, _ := tt.upload(vals)
		got := make([]float64, n)
		pos := 0
		for _, T := range []int{1, 2, L - 3} {
			piece := make([]float64, B*H*T)
			for r := range B * H {
				copy(piece[r*T:(r+1)*T], us[r*L+pos:r*L+pos+T])
			}
			ub, _ := tt.input(piece)
			ob := tt.output(B * H * T)
			tt.b.S4DRecurrent(ob, st2, ub, D, p.args(H, N2, T), B)
			res := tt.result("chunk out", ob, B*H*T)
			for r := range B * H {
				copy(got[r*L+pos:r*L+pos+T], res[r*T:(r+1)*T])
			}
			pos += T
		}
		tt.fwd("out in pieces", got, wantOut)
		tt.fwd("state after pieces", tt.result("state after pieces", st2, ns), wantS)
	})
}
