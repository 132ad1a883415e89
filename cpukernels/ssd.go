package cpukernels

import (
	"math"

	"seqbench/nn"
)

// SSD is Mamba-2's state space dual (mamba_ssm's mamba_chunk_scan_combined
// without z) for x (B, L, H, P), dt (B, L, H), A (H), Bm, Cm (B, L, G, N),
// optional Dskip, DtBias (H) and initial state H0 (B, H, P, N). Head h reads
// group g = h/(H/G). Its definition is the recurrence
//
//	for each b, h:                         // hs (P, N) = H0[b,h] or zeros
//		for t := range L {
//			d := dt[b,t,h] + DtBias[h]     // softplus(d) when DtSoftplus
//			hs[p,n] = exp(d·A[h])·hs[p,n] + d·x[b,t,h,p]·Bm[b,t,g,n]
//			out[b,t,h,p] = Σ_n hs[p,n]·Cm[b,t,g,n] + Dskip[h]·x[b,t,h,p]
//		}
//		hT[b,h] = hs
//
// but it is computed by the chunked SSD algorithm (Mamba-2, §6), chunk by
// chunk of Q = a.Chunk steps (the last one may be shorter). With s_i the
// cumulative sum of d·A inside the chunk and hs the state entering it:
//
//	y_i  = Σ_{j≤i} exp(s_i − s_j)·(C_i·B_j)·d_j·x_j     intra-chunk (L ∘ C Bᵀ) X
//	     + exp(s_i)·hs·C_i                              state → output
//	     + Dskip·x_i
//	hs  ← exp(s_Q)·hs + Σ_j exp(s_Q − s_j)·d_j·x_j ⊗ B_j    chunk state, carried
//
// Every exp takes a segment sum (never exp(s_i)·exp(−s_j), which would
// overflow), clamped so that arguments below T's range give exactly 0, and
// the carried state and every result are flushed below T's smallest normal:
// a long decay never walks through subnormals. The work is parallel over
// (b, h); each worker computes in float64 with O(Q·(P+N) + P·N) scratch.
// SSDChunked (ssd_chunked.go) is the same algorithm in the phases of the
// GPU's chunked kernel, the reference that kernel is tested against.
func (be *Backend[T]) SSD(out, hT nn.Buffer, a nn.SSDArgs) {
	s := newSSDOp[T]("SSD", a)
	nx := a.B * a.L * a.H * a.P
	o := data[T](out, nx, "SSD", "out")
	var hTs []T
	if hT != nil {
		hTs = data[T](hT, a.B*a.H*a.P*a.N, "SSD", "hT")
	}
	be.parallelFor(a.B*a.H, 1, func(lo, hi int) {
		w := s.newScratch(false)
		for bh := lo; bh < hi; bh++ {
			s.forwardHead(w, o, hTs, bh/a.H, bh%a.H)
		}
	})
}

// SSDBackward accumulates the gradients of SSD (any of them may be nil) by
// the adjoint of the chunked algorithm. Inside a chunk, with y_i and hs (the
// state entering it) as in SSD, dhs the adjoint of the state leaving it,
// e_ij = exp(s_i − s_j) and g_ij = dy_i·x_j:
//
//	dx_j  += Σ_{i≥j} e_ij·(C_i·B_j)·d_j·dy_i + exp(s_Q − s_j)·d_j·dhs·B_j + Dskip·dy_j
//	dC_i  += Σ_{j≤i} e_ij·d_j·g_ij·B_j + exp(s_i)·hsᵀ·dy_i
//	dB_j  += Σ_{i≥j} e_ij·d_j·g_ij·C_i + exp(s_Q − s_j)·d_j·dhsᵀ·x_j
//	dd_j  += Σ_{i≥j} e_ij·(C_i·B_j)·g_ij + exp(s_Q − s_j)·x_j·dhs·B_j
//	ds_i  from every exp(·) it enters (with its argument's sign), then
//	da_k  = Σ_{i≥k} ds_i (s is a cumulative sum), dd_k += A·da_k, dA += d_k·da_k
//	dhs'  = exp(s_Q)·dhs + Σ_i exp(s_i)·dy_i ⊗ C_i     (the adjoint of hs)
//
// and dd passes through the softplus into dDt and dDtBias. Given hs and dhs
// of every chunk, the chunks are independent, so it runs in two phases, over
// blocks of batch elements: (1) parallel over (b, h), a forward pass stores
// the state entering each chunk and a reverse pass the adjoint leaving it
// (both O(Q·P·N) per chunk); (2) parallel over (b, g, chunk), the chunk's
// gradients, summing the heads of the group in order (dB and dC are shared
// by them, and so is C_i·B_j, computed once: O(Q²) scratch). dA, dD and dDtBias, shared by the batch, are summed per
// (b, h, chunk) and reduced in a fixed order at the end: the result does
// not depend on the number of workers. The stored states are
// 2·b_block·H·⌈L/Q⌉·P·N float64, b_block sized to give every worker work. A
// given H0 is honoured.
func (be *Backend[T]) SSDBackward(g nn.SSDGrads, a nn.SSDArgs, dout nn.Buffer) {
	be.ssdBackward("SSDBackward", g, nil, a, dout, false)
}

// ssdBackward is SSDBackward (phased false) and SSDChunkedBackward (phased
// true, which also accumulates dH0 when it is not nil): they differ only in
// how the boundary states are found, per (b, h) walking the chunks in order
// (boundaries) or in the three phases of ssd_chunked.go.
func (be *Backend[T]) ssdBackward(op string, g nn.SSDGrads, dH0 nn.Buffer, a nn.SSDArgs, dout nn.Buffer, phased bool) {
	s := newSSDOp[T](op, a)
	nx, nd, nbc := a.B*a.L*a.H*a.P, a.B*a.L*a.H, a.B*a.L*a.G*a.N
	s.dout = data[T](dout, nx, op, "dout")
	grad := func(b nn.Buffer, n int, name string) []T {
		if b == nil {
			return nil
		}
		return data[T](b, n, op, name)
	}
	s.dX, s.dDt = grad(g.X, nx, "dX"), grad(g.Dt, nd, "dDt")
	s.dB, s.dC = grad(g.Bm, nbc, "dBm"), grad(g.Cm, nbc, "dCm")
	dA, dD, dBias := grad(g.A, a.H, "dA"), grad(g.Dskip, a.H, "dDskip"), grad(g.DtBias, a.H, "dDtBias")
	dh0 := grad(dH0, a.B*a.H*a.P*a.N, "dH0")
	check(op, g.Check(a))
	if s.dX == nil && s.dDt == nil && s.dB == nil && s.dC == nil && dA == nil && dD == nil && dBias == nil && dh0 == nil {
		return
	}
	H, G, PN := a.H, a.G, a.P*a.N
	nc := (a.L + a.Chunk - 1) / a.Chunk
	nb := min(a.B, max(1, (2*be.workers+G*nc-1)/max(1, G*nc))) // L 0: no chunks
	states, dstates := make([]float64, nb*H*nc*PN), make([]float64, nb*H*nc*PN)
	var decays []float64 // phased: exp(s_Q) of each (b, h, chunk) of the block
	if phased {
		decays = make([]float64, nb*H*nc)
	}
	// Per-(b, h, chunk) sums of dA, dD, dDtBias, reduced below.
	perChunk := make([]float64, 3*a.B*H*nc)
	for b0 := 0; b0 < a.B; b0 += nb {
		n := min(nb, a.B-b0)
		if phased {
			be.chunkBoundaries(s, states, dstates, decays, dh0, b0, n)
		} else {
			be.parallelFor(n*H, 1, func(lo, hi int) {
				w := s.newScratch(true)
				for bh := lo; bh < hi; bh++ {
					off := bh * nc * PN
					s.boundaries(w, b0+bh/H, bh%H, states[off:off+nc*PN], dstates[off:off+nc*PN])
				}
			})
		}
		if s.dX == nil && s.dDt == nil && s.dB == nil && s.dC == nil && dA == nil && dD == nil && dBias == nil {
			continue // dH0 alone
		}
		be.parallelFor(n*G*nc, 1, func(lo, hi int) {
			w := s.newScratch(true)
			for item := lo; item < hi; item++ {
				bi, g, c := item/(G*nc), item/nc%G, item%nc
				s.backwardChunk(w, perChunk, states, dstates, b0, bi, g, c)
			}
		})
	}
	for i, d := range [][]T{dA, dD, dBias} {
		if d == nil {
			continue
		}
		for h := range H {
			sum := 0.0
			for b := range a.B {
				for c := range nc {
					sum += perChunk[3*((b*H+h)*nc+c)+i]
				}
			}
			d[h] += flush[T](sum, minNormal[T]())
		}
	}
}

// ssdOp holds the unwrapped operands of one SSD or SSDBackward call.
type ssdOp[T Float] struct {
	nn.SSDArgs
	hpg              int // heads per group
	x, dt, A, bm, cm []T
	D, bias, h0      []T // nil when absent
	lim, tiny        float64
	cut              float64 // exp(lim): the smallest nonzero clamped exp
	// backward only
	dout, dX, dDt, dB, dC []T
}

func newSSDOp[T Float](op string, a nn.SSDArgs) *ssdOp[T] {
	check(op, a.Check())
	nx, nd, nbc := a.B*a.L*a.H*a.P, a.B*a.L*a.H, a.B*a.L*a.G*a.N
	s := &ssdOp[T]{SSDArgs: a, hpg: a.H / a.G,
		x: data[T](a.X, nx, op, "X"), dt: data[T](a.Dt, nd, op, "Dt"), A: data[T](a.A, a.H, op, "A"),
		bm: data[T](a.Bm, nbc, op, "Bm"), cm: data[T](a.Cm, nbc, op, "Cm"),
		lim: expLimit[T](), tiny: minNormal[T](), cut: math.Exp(expLimit[T]()),
	}
	if a.Dskip != nil {
		s.D = data[T](a.Dskip, a.H, op, "Dskip")
	}
	if a.DtBias != nil {
		s.bias = data[T](a.DtBias, a.H, op, "DtBias")
	}
	if a.H0 != nil {
		s.h0 = data[T](a.H0, a.B*a.H*a.P*a.N, op, "H0")
	}
	return s
}

// ssdScratch is one worker's float64 workspace; a chunk's operands are
// copied in contiguously so the inner loops run over plain slices.
type ssdScratch struct {
	x, b, c  []float64 // (Q, P), (Q, N), (Q, N)
	d, dd, s []float64 // (Q): dt after bias/softplus, its derivative, cumsum of d·A
	ea       []float64 // (Q): exp(d·A), the one-step decays
	decays   bool      // every d·A ≤ 0 in the loaded chunk: see segDecay
	hs       []float64 // (P, N) carried state
	acc      []float64 // (P)
	dy, dx   []float64 // backward: (Q, P)
	ddt, ds  []float64 // backward: (Q)
	dhs      []float64 // backward: (P, N)
	dhb      []float64 // backward: (P)
	dBc, dCc []float64 // backward: (Q, N) of the group
	cb       []float64 // backward: (Q, Q) C_i·B_j of the group
}

func (s *ssdOp[T]) newScratch(backward bool) *ssdScratch {
	Q, P, N := min(s.Chunk, max(s.L, 1)), s.P, s.N
	w := &ssdScratch{
		x: make([]float64, Q*P), b: make([]float64, Q*N), c: make([]float64, Q*N),
		d: make([]float64, Q), dd: make([]float64, Q), s: make([]float64, Q), ea: make([]float64, Q),
		hs: make([]float64, P*N), acc: make([]float64, P),
	}
	if backward {
		w.dy, w.dx = make([]float64, Q*P), make([]float64, Q*P)
		w.ddt, w.ds = make([]float64, Q), make([]float64, Q)
		w.dhs, w.dhb = make([]float64, P*N), make([]float64, P)
		w.dBc, w.dCc = make([]float64, Q*N), make([]float64, Q*N)
		w.cb = make([]float64, Q*Q)
	}
	return w
}

// load copies steps [t0, t0+n) of head h of batch b into w: x, B, C, the
// effective dt with its derivative with respect to the raw dt, and the
// cumulative sums of dt·A.
func (s *ssdOp[T]) load(w *ssdScratch, b, h, t0, n int) {
	H, P, G, N := s.H, s.P, s.G, s.N
	g := h / s.hpg
	A := float64(s.A[h])
	bias := 0.0
	if s.bias != nil {
		bias = float64(s.bias[h])
	}
	cum := 0.0
	w.decays = true
	for i := range n {
		t := b*s.L + t0 + i
		xo, bo := (t*H+h)*P, (t*G+g)*N
		for p, v := range s.x[xo : xo+P] {
			w.x[i*P+p] = float64(v)
		}
		for k := range N {
			w.b[i*N+k] = float64(s.bm[bo+k])
			w.c[i*N+k] = float64(s.cm[bo+k])
		}
		d, dd := float64(s.dt[t*H+h])+bias, 1.0
		if s.DtSoftplus && d <= softplusThreshold {
			e := expClamped(d, s.lim)
			d, dd = math.Log1p(e), e/(1+e) // softplus and its derivative, the sigmoid
		}
		a := d * A
		cum += a
		w.d[i], w.dd[i], w.s[i] = d, dd, cum
		w.ea[i] = expClamped(a, s.lim)
		if a > 0 {
			w.decays = false
		}
	}
}

// startState sets w.hs to H0[b,h] or zeros.
func (s *ssdOp[T]) startState(w *ssdScratch, b, h int) {
	if s.h0 == nil {
		clear(w.hs)
		return
	}
	o := (b*s.H + h) * s.P * s.N
	for i, v := range s.h0[o : o+s.P*s.N] {
		w.hs[i] = float64(v)
	}
}

// advance carries w.hs over a loaded chunk of n steps:
// hs ← exp(s_Q)·hs + Σ_j exp(s_Q − s_j)·d_j·x_j ⊗ B_j, flushing subnormals.
func (s *ssdOp[T]) advance(w *ssdScratch, n int) {
	P, N := s.P, s.N
	sQ := w.s[n-1]
	if e := expClamped(sQ, s.lim); e != 1 {
		for i := range w.hs {
			w.hs[i] *= e
		}
	}
	for j := range n {
		f := expClamped(sQ-w.s[j], s.lim) * w.d[j]
		if f == 0 {
			continue
		}
		bj := w.b[j*N : (j+1)*N]
		for p := range P {
			ssdAxpy(w.hs[p*N:(p+1)*N], f*w.x[j*P+p], bj)
		}
	}
	for i, v := range w.hs {
		if math.Abs(v) < s.tiny {
			w.hs[i] = 0
		}
	}
}

// segDecay returns e_ij = exp(s_i − s_j) for row i of a loaded chunk,
// walked from j = i down, given prev = e_i,j+1. In a decaying chunk (every
// d·A ≤ 0, as A = −exp(A_log) makes it) it is the running product of the
// one-step decays, e_ij = e_i,j+1·exp(d_{j+1}·A), which saves an exp per
// pair; once that falls below exp's clamp every earlier j gives 0 too, and
// it returns −1 to end the row. Otherwise each e_ij is its own clamped exp.
func (s *ssdOp[T]) segDecay(w *ssdScratch, prev float64, i, j int) float64 {
	if j == i {
		return 1
	}
	if !w.decays {
		return expClamped(w.s[i]-w.s[j], s.lim)
	}
	if m := prev * w.ea[j+1]; m >= s.cut {
		return m
	}
	return -1
}

// forwardHead runs SSD for head h of batch b.
func (s *ssdOp[T]) forwardHead(w *ssdScratch, out, hT []T, b, h int) {
	H, P, N := s.H, s.P, s.N
	Dh := 0.0
	if s.D != nil {
		Dh = float64(s.D[h])
	}
	s.startState(w, b, h)
	for t0 := 0; t0 < s.L; t0 += s.Chunk {
		n := min(s.Chunk, s.L-t0)
		s.load(w, b, h, t0, n)
		for i := range n {
			y, ci := w.acc, w.c[i*N:(i+1)*N]
			if e := expClamped(w.s[i], s.lim); e != 0 {
				for p := range P {
					y[p] = e * ssdDot(w.hs[p*N:(p+1)*N], ci)
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
				ssdAxpy(y, m*w.d[j]*ssdDot(ci, w.b[j*N:(j+1)*N]), w.x[j*P:(j+1)*P])
			}
			o := ((b*s.L+t0+i)*H + h) * P
			for p, v := range y {
				out[o+p] = flush[T](v+Dh*w.x[i*P+p], s.tiny)
			}
		}
		s.advance(w, n)
	}
	if hT != nil {
		o := (b*H + h) * P * N
		for i, v := range w.hs {
			hT[o+i] = flush[T](v, s.tiny)
		}
	}
}

// boundaries fills, for head h of batch b, st[c] with the state entering
// chunk c and dst[c] with the adjoint of the state leaving it (each P·N).
func (s *ssdOp[T]) boundaries(w *ssdScratch, b, h int, st, dst []float64) {
	L, H, P, N, Q := s.L, s.H, s.P, s.N, s.Chunk
	PN := P * N
	s.startState(w, b, h)
	for c, t0 := 0, 0; t0 < L; c, t0 = c+1, t0+Q {
		copy(st[c*PN:(c+1)*PN], w.hs)
		n := min(Q, L-t0)
		s.load(w, b, h, t0, n)
		s.advance(w, n)
	}
	dhs := w.dhs
	clear(dhs)
	for c := (L+Q-1)/Q - 1; c >= 0; c-- {
		copy(dst[c*PN:(c+1)*PN], dhs)
		if c == 0 {
			break
		}
		t0 := c * Q
		n := min(Q, L-t0)
		s.load(w, b, h, t0, n)
		eQ := expClamped(w.s[n-1], s.lim)
		for k := range dhs {
			dhs[k] *= eQ
		}
		for i := range n {
			e := expClamped(w.s[i], s.lim)
			if e == 0 {
				continue
			}
			ci := w.c[i*N : (i+1)*N]
			o := ((b*L+t0+i)*H + h) * P
			for p := range P {
				ssdAxpy(dhs[p*N:(p+1)*N], e*float64(s.dout[o+p]), ci)
			}
		}
		for k, v := range dhs {
			if math.Abs(v) < s.tiny {
				dhs[k] = 0
			}
		}
	}
}

// backwardChunk accumulates every gradient of chunk c of group g of batch
// b0+bi, reading the boundary states of the batch block (states, dstates
// from boundaries). dx and ddt of the group's heads and dB, dC of the
// group over the chunk's steps are this call's alone; the batch-shared sums
// go to perChunk[3·((b·H+h)·chunks+c) + {0: dA, 1: dD, 2: dDtBias}].
func (s *ssdOp[T]) backwardChunk(w *ssdScratch, perChunk, states, dstates []float64, b0, bi, g, c int) {
	L, H, P, G, N, Q := s.L, s.H, s.P, s.G, s.N, s.Chunk
	nc := (L + Q - 1) / Q
	b, t0 := b0+bi, c*Q
	n := min(Q, L-t0)
	dBc, dCc := w.dBc[:n*N], w.dCc[:n*N]
	clear(dBc)
	clear(dCc)
	for h := g * s.hpg; h < (g+1)*s.hpg; h++ {
		A, Dh := float64(s.A[h]), 0.0
		if s.D != nil {
			Dh = float64(s.D[h])
		}
		off := ((bi*H+h)*nc + c) * P * N
		hs, dhs := states[off:off+P*N], dstates[off:off+P*N]
		s.load(w, b, h, t0, n)
		if h == g*s.hpg { // C_i·B_j is the group's: once for all its heads
			for i := range n {
				for j := 0; j <= i; j++ {
					w.cb[i*n+j] = ssdDot(w.c[i*N:(i+1)*N], w.b[j*N:(j+1)*N])
				}
			}
		}
		for i := range n {
			o := ((b*L+t0+i)*H + h) * P
			for p := range P {
				w.dy[i*P+p] = float64(s.dout[o+p])
			}
		}
		dx, ddt, ds := w.dx[:n*P], w.ddt[:n], w.ds[:n]
		clear(dx)
		clear(ddt)
		clear(ds)
		var sumDA, sumDD, sumDBias float64
		for i := range n {
			ci, dyi := w.c[i*N:(i+1)*N], w.dy[i*P:(i+1)*P]
			dci := dCc[i*N : (i+1)*N]
			// State → output: y_i += exp(s_i)·hs·C_i.
			if e := expClamped(w.s[i], s.lim); e != 0 {
				for p := range P {
					hp := hs[p*N : (p+1)*N]
					ds[i] += e * dyi[p] * ssdDot(hp, ci)
					ssdAxpy(dci, e*dyi[p], hp)
				}
			}
			// Intra-chunk: y_i += e_ij·(C_i·B_j)·d_j·x_j.
			m := 1.0
			for j := i; j >= 0; j-- {
				if m = s.segDecay(w, m, i, j); m < 0 {
					break
				} else if m == 0 {
					continue
				}
				bj, xj := w.b[j*N:(j+1)*N], w.x[j*P:(j+1)*P]
				cb, gij := w.cb[i*n+j], ssdDot(dyi, xj)
				ssdAxpy(dx[j*P:(j+1)*P], m*cb*w.d[j], dyi)
				f := m * w.d[j] * gij // d(loss)/d(C_i·B_j)
				ssdAxpy(dci, f, bj)
				ssdAxpy(dBc[j*N:(j+1)*N], f, ci)
				ddt[j] += m * cb * gij
				v := f * cb // m·∂/∂m: the adjoint of s_i − s_j
				ds[i] += v
				ds[j] -= v
			}
			if s.D != nil {
				ssdAxpy(dx[i*P:(i+1)*P], Dh, dyi)
				sumDD += ssdDot(dyi, w.x[i*P:(i+1)*P])
			}
		}
		// Chunk state: hs_next = exp(s_Q)·hs + Σ_j exp(s_Q − s_j)·d_j·x_j ⊗ B_j.
		sQ := w.s[n-1]
		ds[n-1] += expClamped(sQ, s.lim) * ssdDot(dhs, hs)
		for j := range n {
			e := expClamped(sQ-w.s[j], s.lim)
			if e == 0 {
				continue
			}
			bj, xj := w.b[j*N:(j+1)*N], w.x[j*P:(j+1)*P]
			for p := range P {
				w.dhb[p] = ssdDot(dhs[p*N:(p+1)*N], bj)
			}
			q := ssdDot(xj, w.dhb)
			ds[n-1] += e * w.d[j] * q
			ds[j] -= e * w.d[j] * q
			ssdAxpy(dx[j*P:(j+1)*P], e*w.d[j], w.dhb)
			ddt[j] += e * q
			dbj := dBc[j*N : (j+1)*N]
			for p := range P {
				ssdAxpy(dbj, e*w.d[j]*xj[p], dhs[p*N:(p+1)*N])
			}
		}
		// s is the cumulative sum of d·A: walk it back, then through the
		// bias and the softplus.
		da := 0.0
		for k := n - 1; k >= 0; k-- {
			da += ds[k]
			ddt[k] += A * da
			sumDA += w.d[k] * da
			draw := ddt[k] * w.dd[k]
			sumDBias += draw
			t := b*L + t0 + k
			if s.dDt != nil {
				s.dDt[t*H+h] += flush[T](draw, s.tiny)
			}
			if s.dX != nil {
				o := (t*H + h) * P
				for p, v := range dx[k*P : (k+1)*P] {
					s.dX[o+p] += flush[T](v, s.tiny)
				}
			}
		}
		r := 3 * ((b*H+h)*nc + c)
		perChunk[r], perChunk[r+1], perChunk[r+2] = sumDA, sumDD, sumDBias
	}
	for k := range n {
		o := ((b*L+t0+k)*G + g) * N
		if s.dB != nil {
			for i, v := range dBc[k*N : (k+1)*N] {
				s.dB[o+i] += flush[T](v, s.tiny)
			}
		}
		if s.dC != nil {
			for i, v := range dCc[k*N : (k+1)*N] {
				s.dC[o+i] += flush[T](v, s.tiny)
			}
		}
	}
}

// ssdDot is Σ a[i]·b[i], unrolled by 4 with independent sums so the
// multiply-adds pipeline (a fixed order: results are reproducible).
func ssdDot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// ssdAxpy is y += a·x.
func ssdAxpy(y []float64, a float64, x []float64) {
	x = x[:len(y)]
	i := 0
	for ; i+4 <= len(y); i += 4 {
		y[i] += a * x[i]
		y[i+1] += a * x[i+1]
		y[i+2] += a * x[i+2]
		y[i+3] += a * x[i+3]
	}
	for ; i < len(y); i++ {
		y[i] += a * x[i]
	}
}
