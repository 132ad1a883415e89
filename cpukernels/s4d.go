package cpukernels

import (
	"math"

	"seqbench/nn"
)

// The S4D kernel and its recurrent (step) form. Each of the H channels has
// N2 complex modes (their conjugates implied); with dt = exp(log_dt) and
// z = dt·A, ZOH discretisation gives the per-step decay w = exp(z) and the
// input weight C̃ = C·(exp(z) − 1)/A = C·dt·ψ(z), ψ(z) = (exp(z) − 1)/z.
// Writing C̃ through ψ (computed with a complex expm1) keeps it accurate
// for |z| ≪ 1, where exp(z) − 1 cancels (dt = 1e-3 is the usual init), and
// finite at A = 0.
//
// Everything runs in complex128 whatever T is. Powers w^k are advanced by
// repeated multiplication and re-anchored with a direct exp(z·k) every
// s4dAnchor steps, so the error does not grow with k (one complex exp per
// s4dAnchor steps instead of one per step). A mode whose decay exp(Re(z)·k)
// has fallen below T's exp limit contributes nothing more: its remaining
// steps are skipped rather than run through subnormal numbers (docs/DESIGN.md,
// "Subnormal floats").

// s4dAnchor is how many powers of w follow one directly computed exp(z·k).
const s4dAnchor = 32

// s4dMode is one discretised mode.
type s4dMode struct {
	z, w, ct complex128 // dt·A, exp(z) (0 below the exp limit), C̃
	psi      complex128 // ψ(z)
}

// newS4DMode discretises A = aRe + i·aIm, C = cRe + i·cIm with step dt.
func newS4DMode(dt, aRe, aIm, cRe, cIm, lim float64) s4dMode {
	z := complex(dt*aRe, dt*aIm)
	m := s4dMode{z: z, psi: s4dPsi(z)}
	if real(z) >= lim {
		m.w = cexp(z)
	}
	m.ct = complex(cRe, cIm) * complex(dt, 0) * m.psi
	return m
}

// cexp is exp(z) (math/cmplx's, without its special-case branches).
func cexp(z complex128) complex128 {
	s, c := math.Sincos(imag(z))
	r := math.Exp(real(z))
	return complex(r*c, r*s)
}

// cexpm1 is exp(z) − 1 without cancellation for small |z|:
// expm1(x)·cos y − 2·sin²(y/2) + i·exp(x)·sin y.
func cexpm1(z complex128) complex128 {
	x, y := real(z), imag(z)
	s, c := math.Sincos(y)
	h := math.Sin(y / 2)
	return complex(math.Expm1(x)*c-2*h*h, math.Exp(x)*s)
}

// s4dPsi is ψ(z) = (exp(z) − 1)/z, ψ(0) = 1.
func s4dPsi(z complex128) complex128 {
	if z == 0 {
		return 1
	}
	return cexpm1(z) / z
}

// s4dPhi is ψ'(z) = (1 − exp(z)·(1 − z))/z² = Σ_j (j+1)·z^j/(j+2)!, the
// series for |z| < 1/2 (where the closed form cancels to ~z²/2) with terms
// falling by |z|/(j+3) per step: 20 of them reach far below 1e-17.
func s4dPhi(z complex128) complex128 {
	if real(z)*real(z)+imag(z)*imag(z) < 0.25 {
		sum, pow, fact := complex128(0), complex128(1), 2.0 // z^j, (j+2)!
		for j := range 20 {
			sum += complex(float64(j+1)/fact, 0) * pow
			pow *= z
			fact *= float64(j + 3)
		}
		return sum
	}
	return (1 - cexp(z)*(1-z)) / (z * z)
}

// s4dAnchorAt is w^k0 = exp(z·k0) computed directly, and false once
// exp(Re(z)·k0) < lim: from there on the mode contributes nothing in T.
// Callers advance it by p *= w for the next s4dAnchor − 1 steps (written
// out in each loop rather than through a callback: they are the hot loops).
func s4dAnchorAt(m *s4dMode, k0 int, lim float64) (complex128, bool) {
	x := real(m.z) * float64(k0)
	if x < lim {
		return 0, false
	}
	s, c := math.Sincos(imag(m.z) * float64(k0))
	r := math.Exp(x)
	return complex(r*c, r*s), true
}

// s4dArgs unwraps the parameters of a.
func s4dArgs[T Float](a nn.S4DArgs, op string) (logDt, aRe, aIm, cRe, cIm []T) {
	n := a.H * a.N2
	return data[T](a.LogDt, a.H, op, "LogDt"), data[T](a.ARe, n, op, "ARe"), data[T](a.AIm, n, op, "AIm"),
		data[T](a.CRe, n, op, "CRe"), data[T](a.CIm, n, op, "CIm")
}

// s4dModes discretises channel h's modes into ms (len N2) and returns dt.
func s4dModes[T Float](ms []s4dMode, h int, logDt, aRe, aIm, cRe, cIm []T, lim float64) float64 {
	dt := math.Exp(float64(logDt[h]))
	N2 := len(ms)
	for n := range ms {
		i := h*N2 + n
		ms[n] = newS4DMode(dt, float64(aRe[i]), float64(aIm[i]), float64(cRe[i]), float64(cIm[i]), lim)
	}
	return dt
}

// S4DKernel writes the convolution kernel K (H, L):
//
//	for h, k: K[h,k] = 2·Re Σ_n C̃[h,n]·exp(z[h,n]·k)
//
// with z = exp(LogDt[h])·A and C̃ = C·(exp(z) − 1)/A. Parallel over h; one
// float64 row of L per worker.
func (be *Backend[T]) S4DKernel(K nn.Buffer, a nn.S4DArgs) {
	const op = "S4DKernel"
	check(op, a.Check())
	H, N2, L := a.H, a.N2, a.L
	ks := data[T](K, H*L, op, "K")
	logDt, aRe, aIm, cRe, cIm := s4dArgs[T](a, op)
	lim, tiny := expLimit[T](), minNormal[T]()
	be.parallelFor(H, max(1, 8192/max(1, N2*L)), func(h0, h1 int) {
		ms := make([]s4dMode, N2)
		acc := make([]float64, L)
		for h := h0; h < h1; h++ {
			s4dModes(ms, h, logDt, aRe, aIm, cRe, cIm, lim)
			clear(acc)
			for n := range ms {
				m := &ms[n]
				ctr, cti, wr, wi := real(m.ct), imag(m.ct), real(m.w), imag(m.w)
				for k0 := 0; k0 < L; k0 += s4dAnchor {
					p, ok := s4dAnchorAt(m, k0, lim)
					if !ok {
						break
					}
					pr, pi := real(p), imag(p)
					for k := k0; k < min(k0+s4dAnchor, L); k++ {
						acc[k] += ctr*pr - cti*pi
						pr, pi = pr*wr-pi*wi, pr*wi+pi*wr
					}
				}
			}
			row := ks[h*L : (h+1)*L]
			for k, v := range acc {
				row[k] = flush[T](2*v, tiny)
			}
		}
	})
}

// S4DKernelBackward accumulates the parameter gradients of S4DKernel from
// dK (H, L). With S0 = Σ_k dK[k]·w^k and S1 = Σ_k k·dK[k]·w^k per mode,
// the loss is 2·Re Σ_n C·dt·ψ(z)·S0(z), holomorphic in C, A and z, so
// (∂/∂Re = 2·Re g', ∂/∂Im = −2·Im g'):
//
//	g'(C)      = dt·ψ(z)·S0
//	g'(A)      = C·dt²·(ψ'(z)·S0 + ψ(z)·S1)
//	∂/∂log_dt  = 2·Re Σ_n C·dt·(w·S0 + (w − 1)·S1)
//
// Any gradient may be nil. Parallel over h; every h writes only its own
// elements, so the result is deterministic.
func (be *Backend[T]) S4DKernelBackward(g nn.S4DGrads, a nn.S4DArgs, dK nn.Buffer) {
	const op = "S4DKernelBackward"
	check(op, a.Check())
	H, N2, L := a.H, a.N2, a.L
	n := H * N2
	dks := data[T](dK, H*L, op, "dK")
	logDt, aRe, aIm, cRe, cIm := s4dArgs[T](a, op)
	opt := func(b nn.Buffer, n int, name string) []T {
		if b == nil {
			return nil
		}
		return data[T](b, n, op, name)
	}
	gDt, gARe, gAIm := opt(g.LogDt, H, "LogDt"), opt(g.ARe, n, "ARe"), opt(g.AIm, n, "AIm")
	gCRe, gCIm := opt(g.CRe, n, "CRe"), opt(g.CIm, n, "CIm")
	lim := expLimit[T]()
	be.parallelFor(H, max(1, 8192/max(1, N2*L)), func(h0, h1 int) {
		ms := make([]s4dMode, N2)
		dk := make([]float64, L)
		for h := h0; h < h1; h++ {
			dt := s4dModes(ms, h, logDt, aRe, aIm, cRe, cIm, lim)
			for k := range dk {
				dk[k] = float64(dks[h*L+k])
			}
			dlogDt := 0.0
			for j := range ms {
				m := &ms[j]
				wr, wi := real(m.w), imag(m.w)
				var s0r, s0i, s1r, s1i float64
				for k0 := 0; k0 < L; k0 += s4dAnchor {
					p, ok := s4dAnchorAt(m, k0, lim)
					if !ok {
						break
					}
					pr, pi := real(p), imag(p)
					for k := k0; k < min(k0+s4dAnchor, L); k++ {
						v := dk[k]
						s0r += v * pr
						s0i += v * pi
						v *= float64(k)
						s1r += v * pr
						s1i += v * pi
						pr, pi = pr*wr-pi*wi, pr*wi+pi*wr
					}
				}
				S0, S1 := complex(s0r, s0i), complex(s1r, s1i)
				i := h*N2 + j
				C := complex(float64(cRe[i]), float64(cIm[i]))
				cdt := complex(dt, 0)
				if gCRe != nil || gCIm != nil {
					q := cdt * m.psi * S0
					if gCRe != nil {
						gCRe[i] += T(2 * real(q))
					}
					if gCIm != nil {
						gCIm[i] -= T(2 * imag(q))
					}
				}
				if gARe != nil || gAIm != nil {
					q := C * cdt * cdt * (s4dPhi(m.z)*S0 + m.psi*S1)
					if gARe != nil {
						gARe[i] += T(2 * real(q))
					}
					if gAIm != nil {
						gAIm[i] -= T(2 * imag(q))
					}
				}
				if gDt != nil {
					// w − 1 = z·ψ(z), exact where w was flushed to 0 too.
					dlogDt += 2 * dt * real(C*(m.w*S0+m.z*m.psi*S1))
				}
			}
			if gDt != nil {
				gDt[h] += T(dlogDt)
			}
		}
	})
}

// S4DRecurrent runs the SSM of a as a recurrence over u (B, H, L),
// carrying state (B, H, N2, 2) in place (nil: zeros, not kept):
//
//	for t: for n: s[n] = w[n]·s[n] + u[t]
//	       out[t] = 2·Re Σ_n C̃[n]·s[n] + Dskip·u[t]
//
// which is FFTConv(u, S4DKernel) up to rounding. Dskip may be nil.
// Parallel over (b, h); the state is held in complex128 during the call and
// values below T's smallest normal number are flushed to 0, so a long
// decay never runs on subnormals.
func (be *Backend[T]) S4DRecurrent(out, state, u, Dskip nn.Buffer, a nn.S4DArgs, B int) {
	const op = "S4DRecurrent"
	check(op, nn.CheckS4DRecurrent(a, B))
	H, N2, L := a.H, a.N2, a.L
	os, us := data[T](out, B*H*L, op, "out"), data[T](u, B*H*L, op, "u")
	var st, ds []T
	if state != nil {
		st = data[T](state, B*H*N2*2, op, "state")
	}
	if Dskip != nil {
		ds = data[T](Dskip, H, op, "Dskip")
	}
	logDt, aRe, aIm, cRe, cIm := s4dArgs[T](a, op)
	lim, tiny := expLimit[T](), minNormal[T]()
	ms := make([]s4dMode, H*N2)
	for h := range H {
		s4dModes(ms[h*N2:(h+1)*N2], h, logDt, aRe, aIm, cRe, cIm, lim)
	}
	be.parallelFor(B*H, max(1, 8192/max(1, N2*L)), func(r0, r1 int) {
		sr, si := make([]float64, N2), make([]float64, N2)
		for r := r0; r < r1; r++ {
			h := r % H
			mh := ms[h*N2 : (h+1)*N2]
			if st != nil {
				for n := range N2 {
					sr[n], si[n] = float64(st[(r*N2+n)*2]), float64(st[(r*N2+n)*2+1])
				}
			} else {
				clear(sr)
				clear(si)
			}
			d := 0.0
			if ds != nil {
				d = float64(ds[h])
			}
			ur, or := us[r*L:(r+1)*L], os[r*L:(r+1)*L]
			for t, x := range ur {
				ut := float64(x)
				acc := 0.0
				for n := range mh {
					wr, wi := real(mh[n].w), imag(mh[n].w)
					xr, xi := wr*sr[n]-wi*si[n]+ut, wr*si[n]+wi*sr[n]
					if math.Abs(xr) < tiny {
						xr = 0
					}
					if math.Abs(xi) < tiny {
						xi = 0
					}
					sr[n], si[n] = xr, xi
					acc += real(mh[n].ct)*xr - imag(mh[n].ct)*xi
				}
				or[t] = flush[T](2*acc+d*ut, tiny)
			}
			if st != nil {
				for n := range N2 {
					st[(r*N2+n)*2], st[(r*N2+n)*2+1] = T(sr[n]), T(si[n])
				}
			}
		}
	})
}
