package cpukernels

import (
	"math"

	"seqbench/nn"
)

// SSDChunked computes the same op as SSD (nn.SSDArgs: out and, when hT is
// given, the final state, starting from H0) in the phases a GPU kernel runs
// as separate launches, with Q = a.Chunk (gpukernels/NOTES.md, "the chunked
// algorithm (CPU reference)"). For chunk c of n ≤ Q steps of head h, with
// d_i the effective dt, s_i = Σ_{k≤i} d_k·A the cumulative decay inside the
// chunk and e_ij = exp(s_i − s_j) the segment-sum decay:
//
//	(a) d_i, s_i                                            per chunk
//	(b) S_c = Σ_j exp(s_n − s_j)·d_j·x_j ⊗ B_j = Xᵀ·(w ⊙ B)   the chunk's own
//	    state (from zero), in parallel over (b, h, chunk)
//	(c) hs_0 = H0, hs_{c+1} = exp(s_n)·hs_c + S_c             a scan over chunks
//	    per (b, h); hT = hs_{last+1}
//	(d) y_i = Σ_{j≤i} e_ij·(C_i·B_j)·d_j·x_j + exp(s_i)·hs_c·C_i + D·x_i
//	    in parallel over (b, g, chunk), C·Bᵀ shared by the group's heads
//
// Every exp is of a segment sum and clamped, and the states and results are
// flushed below T's smallest normal, as in SSD. The work is in float64; the
// states of one block of batch elements (B_block·H·⌈L/Q⌉·P·N float64) are
// held between the phases.
func (be *Backend[T]) SSDChunked(out, hT nn.Buffer, a nn.SSDArgs) {
	const op = "SSDChunked"
	s := newSSDOp[T](op, a)
	o := data[T](out, a.B*a.L*a.H*a.P, op, "out")
	var hTs []T
	if hT != nil {
		hTs = data[T](hT, a.B*a.H*a.P*a.N, op, "hT")
	}
	H, G, PN := a.H, a.G, a.P*a.N
	nc := (a.L + a.Chunk - 1) / a.Chunk
	nb := min(a.B, max(1, (2*be.workers+G*nc-1)/max(1, G*nc)))
	states, decays := make([]float64, nb*H*nc*PN), make([]float64, nb*H*nc)
	for b0 := 0; b0 < a.B; b0 += nb {
		n := min(nb, a.B-b0)
		be.chunkStates(s, states, nil, decays, b0, n)
		be.parallelFor(n*H, 1, func(lo, hi int) {
			hs := make([]float64, PN)
			for bh := lo; bh < hi; bh++ {
				b, h := b0+bh/H, bh%H
				s.loadH0(hs, b, h)
				s.scanStates(hs, states[bh*nc*PN:(bh+1)*nc*PN], decays[bh*nc:(bh+1)*nc])
				if hTs != nil {
					o := (b*H + h) * PN
					for i, v := range hs {
						hTs[o+i] = flush[T](v, s.tiny)
					}
				}
			}
		})
		be.parallelFor(n*G*nc, 1, func(lo, hi int) {
			w := s.newScratch(true)
			for item := lo; item < hi; item++ {
				s.chunkOutput(w, o, states, b0, item/(G*nc), item/nc%G, item%nc)
			}
		})
	}
}

// SSDChunkedBackward accumulates the gradients of SSDChunked (any may be
// nil), and of H0 into dH0 (B, H, P, N) when it is not nil (H0 itself may be
// nil: zeros). It is SSDBackward with the boundary states found in phases:
//
//	(b) S_c as in SSDChunked and R_c = Σ_i exp(s_i)·dy_i ⊗ C_i = dYᵀ·(e ⊙ C),
//	    in parallel over (b, h, chunk)
//	(c) the forward scan gives the state entering each chunk; backwards,
//	    dhs_last = 0 and dhs_{c−1} = exp(s_n of c)·dhs_c + R_c, the adjoint of
//	    the state leaving each chunk (dH0 = exp(s_n of 0)·dhs_0 + R_0)
//	(d) each chunk's gradients from those two states (backwardChunk, the
//	    adjoint of SSD's step (d) and of the chunk state, documented at
//	    SSDBackward), in parallel over (b, g, chunk), with the heads of a group
//	    and the per-chunk sums of dA, dD, dDtBias reduced in a fixed order.
func (be *Backend[T]) SSDChunkedBackward(g nn.SSDGrads, dH0 nn.Buffer, a nn.SSDArgs, dout nn.Buffer) {
	be.ssdBackward("SSDChunkedBackward", g, dH0, a, dout, true)
}

// chunkBoundaries fills, for batch elements [b0, b0+n), states with the
// state entering each chunk and dstates with the adjoint of the state
// leaving it (each (bi, h, chunk) P·N), and adds the adjoint of H0 into dh0
// when it is not nil. decays is scratch of n·H·chunks.
func (be *Backend[T]) chunkBoundaries(s *ssdOp[T], states, dstates, decays []float64, dh0 []T, b0, n int) {
	H, PN := s.H, s.P*s.N
	nc := (s.L + s.Chunk - 1) / s.Chunk
	be.chunkStates(s, states, dstates, decays, b0, n)
	be.parallelFor(n*H, 1, func(lo, hi int) {
		hs := make([]float64, PN)
		for bh := lo; bh < hi; bh++ {
			b, h := b0+bh/H, bh%H
			st, dst, dec := states[bh*nc*PN:(bh+1)*nc*PN], dstates[bh*nc*PN:(bh+1)*nc*PN], decays[bh*nc:(bh+1)*nc]
			s.loadH0(hs, b, h)
			s.scanStates(hs, st, dec)
			// Backwards: dst[c] holds R_c; it becomes dhs_c.
			clear(hs)
			for c := nc - 1; c >= 0; c-- {
				r := dst[c*PN : (c+1)*PN]
				for k, v := range hs {
					hs[k], r[k] = s.flushed(dec[c]*v+r[k]), v
				}
			}
			if dh0 != nil {
				o := (b*H + h) * PN
				for k, v := range hs {
					dh0[o+k] += flush[T](v, s.tiny)
				}
			}
		}
	})
}

// chunkStates runs phase (b) for batch elements [b0, b0+n): for each
// (bi, h, chunk) item, states[item] = S_c, decays[item] = exp(s_n) and, when
// dstates is not nil, dstates[item] = R_c.
func (be *Backend[T]) chunkStates(s *ssdOp[T], states, dstates, decays []float64, b0, n int) {
	H, P, N, Q, PN := s.H, s.P, s.N, s.Chunk, s.P*s.N
	nc := (s.L + Q - 1) / Q
	be.parallelFor(n*H*nc, 1, func(lo, hi int) {
		w := s.newScratch(false)
		for item := lo; item < hi; item++ {
			b, h, c := b0+item/(H*nc), item/nc%H, item%nc
			t0 := c * Q
			m := min(Q, s.L-t0)
			s.load(w, b, h, t0, m)
			st := states[item*PN : (item+1)*PN]
			clear(st)
			sQ := w.s[m-1]
			decays[item] = expClamped(sQ, s.lim)
			for j := range m {
				f := expClamped(sQ-w.s[j], s.lim) * w.d[j]
				if f == 0 {
					continue
				}
				bj := w.b[j*N : (j+1)*N]
				for p := range P {
					ssdAxpy(st[p*N:(p+1)*N], f*w.x[j*P+p], bj)
				}
			}
			if dstates == nil {
				continue
			}
			r := dstates[item*PN : (item+1)*PN]
			clear(r)
			for i := range m {
				e := expClamped(w.s[i], s.lim)
				if e == 0 {
					continue
				}
				ci := w.c[i*N : (i+1)*N]
				o := ((b*s.L+t0+i)*H + h) * P
				for p := range P {
					ssdAxpy(r[p*N:(p+1)*N], e*float64(s.dout[o+p]), ci)
				}
			}
		}
	})
}

// loadH0 sets hs to H0[b, h] or zeros.
func (s *ssdOp[T]) loadH0(hs []float64, b, h int) {
	if s.h0 == nil {
		clear(hs)
		return
	}
	o := (b*s.H + h) * s.P * s.N
	for i, v := range s.h0[o : o+s.P*s.N] {
		hs[i] = float64(v)
	}
}

// scanStates is phase (c) forwards for one (b, h): given hs = the initial
// state, st[c] = S_c and dec[c] = exp(s_n) of chunk c, it leaves in st[c]
// the state entering chunk c and in hs the final state.
func (s *ssdOp[T]) scanStates(hs, st, dec []float64) {
	PN := len(hs)
	for c, e := range dec {
		sc := st[c*PN : (c+1)*PN]
		for k, v := range hs {
			hs[k], sc[k] = s.flushed(e*v+sc[k]), v
		}
	}
}

// flushed is v, or 0 where T would hold it as a subnormal.
func (s *ssdOp[T]) flushed(v float64) float64 {
	if math.Abs(v) < s.tiny {
		return 0
	}
	return v
}

// chunkOutput is phase (d) for chunk c of group g of batch b0+bi: out of
// every head of the group, given states (the state entering each chunk).
func (s *ssdOp[T]) chunkOutput(w *ssdScratch, out []T, states []float64, b0, bi, g, c int) {
	L, H, P, N, Q := s.L, s.H, s.P, s.N, s.Chunk
	nc := (L + Q - 1) / Q
	b, t0 := b0+bi, c*Q
	n := min(Q, L-t0)
	for h := g * s.hpg; h < (g+1)*s.hpg; h++ {
		Dh := 0.0
		if s.D != nil {
			Dh = float64(s.D[h])
		}
		off := ((bi*H+h)*nc + c) * P * N
		hs := states[off : off+P*N]
		s.load(w, b, h, t0, n)
		if h == g*s.hpg { // C_i·B_j is the group's: once for all its heads
			for i := range n {
				for j := 0; j <= i; j++ {
					w.cb[i*n+j] = ssdDot(w.c[i*N:(i+1)*N], w.b[j*N:(j+1)*N])
				}
			}
		}
		for i := range n {
			y, ci := w.acc, w.c[i*N:(i+1)*N]
			if e := expClamped(w.s[i], s.lim); e != 0 {
				for p := range P {
					y[p] = e * ssdDot(hs[p*N:(p+1)*N], ci)
				}
			} else {
				clear(y)
			}
			m := 1.0
			for j := i; j >= 0; j-- {
				if m = s.segDecay(w, m, i, j); m < 0 {
					break
				} else if m == 0 {
					continue
				}
				ssdAxpy(y, m*w.cb[i*n+j]*w.d[j], w.x[j*P:(j+1)*P])
			}
			o := ((b*L+t0+i)*H + h) * P
			for p, v := range y {
				out[o+p] = flush[T](v+Dh*w.x[i*P+p], s.tiny)
			}
		}
	}
}
