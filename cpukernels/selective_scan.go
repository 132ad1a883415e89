package cpukernels

import (
	"math"

	"seqbench/nn"
)

// SelectiveScan is mamba_ssm's selective_scan_fn (selective_scan_ref): for
// each batch b and channel d, reading group g = d/(D/G) of Bm and Cm,
//
//	δ_t = delta[b,d,t] + deltaBias[d]              (softplus'ed when asked)
//	for n := 0; n < N; n++ {
//		h := H0[b,d,n]                              // 0 when H0 is nil
//		for t := 0; t < L; t++ {
//			h = exp(δ_t·A[d,n])·h + δ_t·Bm[b,g,n,t]·u[b,d,t]
//			y[t] += Cm[b,g,n,t]·h
//		}
//		hT[b,d,n] = h
//	}
//	out[b,d,t] = (y[t] + Dskip[d]·u[b,d,t]) · SiLU(z[b,d,t])   // gate only with z
//
// The state dimension is the outer loop so that every inner loop walks
// contiguous rows of Bm and Cm; states and sums are float64. exp arguments
// below T's limit give exactly 0 and states below T's smallest normal are
// flushed to 0, so long decays never reach subnormal numbers (docs/DESIGN.md,
// "Subnormal floats"). Each (b, d) row is one unit of parallel work and
// touches only its own out, H0 and hT elements, so hT may be H0 (in place).
func (be *Backend[T]) SelectiveScan(out, hT nn.Buffer, a nn.ScanArgs) {
	const op = "SelectiveScan"
	s := unpackScan[T](op, a)
	os := data[T](out, s.B*s.D*s.L, op, "out")
	var hs []T
	if hT != nil {
		hs = data[T](hT, s.B*s.D*s.N, op, "hT")
	}
	L, N := s.L, s.N
	be.parallelFor(s.B*s.D, max(1, 2048/max(1, N*L)), func(lo, hi int) {
		w := newScanRow(L)
		for r := lo; r < hi; r++ {
			b, d := r/s.D, r%s.D
			s.prepare(w, b, d)
			Bg, Cg := s.group(b, d)
			for n := range N {
				h := scanState(w.dl, w.du, Bg[n*L:(n+1)*L], Cg[n*L:(n+1)*L], w.y, nil, nil,
					float64(s.A[d*N+n]), s.initial(r, n), s.lim, s.tiny)
				if hs != nil {
					hs[r*N+n] = T(h)
				}
			}
			or := os[r*L : (r+1)*L]
			for t, y := range w.y {
				if s.z != nil {
					y *= scanSiLU(float64(s.z[r*L+t]), s.lim)
				}
				or[t] = flush[T](y, s.tiny)
			}
		}
	})
}

// SelectiveScanBackward accumulates the gradients of SelectiveScan (from
// a.H0 when given) by the adjoint recurrence run backwards in time. With
// dy_t = dout_t·SiLU(z_t), a_t = exp(δ_t·A[d,n]) and, for each (b, d, n),
//
//	g_t = a_{t+1}·g_{t+1} + dy_t·Cm_t           (g_L = 0: dLoss/dh_t)
//	dCm_t += dy_t·h_t          dBm_t += g_t·δ_t·u_t
//	du_t  += g_t·δ_t·Bm_t      dδ_t  += g_t·(Bm_t·u_t + A·a_t·h_{t−1})
//	dA    += g_t·δ_t·a_t·h_{t−1}
//
// plus du_t += Dskip·dy_t, dDskip += Σ dy_t·u_t, dz_t += dout_t·y_t·SiLU'(z_t),
// and the softplus' chain to delta and deltaBias. Each (d, n) pair is run
// forward once, keeping its L states and decays (O(L) memory per worker).
//
// Work is split in tasks (b, g, block of the group's channels) fixed by the
// shapes alone, so results do not depend on the number of workers: a task
// owns the rows of du, ddelta, dz of its channels; dA, dDskip, ddeltaBias
// (shared over b) and dBm, dCm (shared by a group's channels) go through
// float64 partials per task or per (b, d), summed afterwards in a fixed
// order. Any gradient may be nil.
func (be *Backend[T]) SelectiveScanBackward(g nn.ScanGrads, a nn.ScanArgs, dout nn.Buffer) {
	const op = "SelectiveScanBackward"
	s := unpackScan[T](op, a)
	B, D, L, N, G := s.B, s.D, s.L, s.N, s.G
	nBDL, nBGNL := B*D*L, B*G*N*L
	gs := data[T](dout, nBDL, op, "dout")
	grad := func(buf nn.Buffer, n int, name string) []T {
		if buf == nil {
			return nil
		}
		return data[T](buf, n, op, name)
	}
	du, ddelta, dz := grad(g.U, nBDL, "dU"), grad(g.Delta, nBDL, "dDelta"), grad(g.Z, nBDL, "dZ")
	dA, dB, dC := grad(g.A, D*N, "dA"), grad(g.Bm, nBGNL, "dBm"), grad(g.Cm, nBGNL, "dCm")
	dD, ddb := grad(g.Dskip, D, "dDskip"), grad(g.DeltaBias, D, "dDeltaBias")
	if s.z == nil {
		dz = nil
	}
	if s.Dskip == nil {
		dD = nil
	}
	if s.dbias == nil {
		ddb = nil
	}
	if du == nil && ddelta == nil && dz == nil && dA == nil && dB == nil && dC == nil && dD == nil && ddb == nil {
		return
	}
	if nBDL == 0 {
		return
	}

	// Tasks: (b, g, blk) with blk splitting the Dg channels of a group when
	// there are too few (b, g) pairs to keep workers busy.
	Dg := D / G
	nblk := min(Dg, (scanMinTasks+B*G-1)/(B*G))
	bs := (Dg + nblk - 1) / nblk
	nblk = (Dg + bs - 1) / bs
	tasks := B * G * nblk
	var pB, pC []float64 // per-task dBm, dCm when groups are split
	if nblk > 1 {
		if dB != nil {
			pB = make([]float64, tasks*N*L)
		}
		if dC != nil {
			pC = make([]float64, tasks*N*L)
		}
	}
	var pA, pD, pDB []float64 // per (b, d)
	if dA != nil {
		pA = make([]float64, B*D*N)
	}
	if dD != nil {
		pD = make([]float64, B*D)
	}
	if ddb != nil {
		pDB = make([]float64, B*D)
	}
	sg := scanGrads[T]{du: du, ddelta: ddelta, dz: dz, dout: gs, pA: pA, pD: pD, pDB: pDB,
		wantB: dB != nil, wantC: dC != nil}

	be.parallelFor(tasks, 1, func(lo, hi int) {
		w := newScanRow(L)
		w.dy, w.hs, w.e = make([]float64, L), make([]float64, L), make([]float64, L)
		w.duAcc, w.ddAcc = make([]float64, L), make([]float64, L)
		var accB, accC []float64
		if sg.wantB {
			accB = make([]float64, N*L)
		}
		if sg.wantC {
			accC = make([]float64, N*L)
		}
		for task := lo; task < hi; task++ {
			bg, blk := task/nblk, task%nblk
			b, grp := bg/G, bg%G
			clear(accB)
			clear(accC)
			for d := grp*Dg + blk*bs; d < min(grp*Dg+(blk+1)*bs, (grp+1)*Dg); d++ {
				s.backwardRow(w, &sg, b, d, accB, accC)
			}
			// A task's own group slice of dBm, dCm (when unsplit) or its
			// partial.
			off := bg * N * L
			for _, p := range []struct {
				acc, part []float64
				out       []T
			}{{accB, pB, dB}, {accC, pC, dC}} {
				switch {
				case p.out == nil:
				case p.part != nil:
					copy(p.part[task*N*L:(task+1)*N*L], p.acc)
				default:
					o := p.out[off : off+N*L]
					for i, v := range p.acc {
						o[i] = flush[T](float64(o[i])+v, s.tiny)
					}
				}
			}
		}
	})

	// Fixed-order reductions of the partials.
	if pB != nil || pC != nil {
		be.parallelFor(B*G*N, max(1, copyGrain/max(1, nblk*L)), func(lo, hi int) {
			for row := lo; row < hi; row++ {
				bg, n := row/N, row%N
				for _, p := range []struct {
					part []float64
					out  []T
				}{{pB, dB}, {pC, dC}} {
					if p.part == nil {
						continue
					}
					o := p.out[(bg*N+n)*L : (bg*N+n+1)*L]
					for t := range o {
						v := float64(o[t])
						for blk := range nblk {
							v += p.part[((bg*nblk+blk)*N+n)*L+t]
						}
						o[t] = flush[T](v, s.tiny)
					}
				}
			}
		})
	}
	sumOverBatch := func(out []T, part []float64, width int) {
		if out == nil {
			return
		}
		for i := range D * width {
			v := float64(out[i])
			for b := range B {
				v += part[b*D*width+i]
			}
			out[i] = flush[T](v, s.tiny)
		}
	}
	sumOverBatch(dA, pA, N)
	sumOverBatch(dD, pD, 1)
	sumOverBatch(ddb, pDB, 1)
}

// scanMinTasks is how many backward tasks the split aims for at least: a
// constant, not the worker count, so that results are reproducible on any
// machine.
const scanMinTasks = 16

// scanOp holds the unwrapped inputs of a scan.
type scanOp[T Float] struct {
	B, D, L, N, G, Dg int
	u, delta, A       []T
	Bm, Cm            []T
	Dskip, z, dbias   []T // nil when absent
	h0                []T // nil: zeros
	softplus          bool
	lim, tiny         float64
}

func unpackScan[T Float](op string, a nn.ScanArgs) *scanOp[T] {
	check(op, a.Check())
	nBDL, nBGNL := a.B*a.D*a.L, a.B*a.G*a.N*a.L
	s := &scanOp[T]{B: a.B, D: a.D, L: a.L, N: a.N, G: a.G, Dg: a.D / a.G,
		u: data[T](a.U, nBDL, op, "U"), delta: data[T](a.Delta, nBDL, op, "Delta"),
		A: data[T](a.A, a.D*a.N, op, "A"), Bm: data[T](a.Bm, nBGNL, op, "Bm"), Cm: data[T](a.Cm, nBGNL, op, "Cm"),
		softplus: a.DeltaSoftplus, lim: expLimit[T](), tiny: minNormal[T]()}
	if a.Dskip != nil {
		s.Dskip = data[T](a.Dskip, a.D, op, "Dskip")
	}
	if a.Z != nil {
		s.z = data[T](a.Z, nBDL, op, "Z")
	}
	if a.DeltaBias != nil {
		s.dbias = data[T](a.DeltaBias, a.D, op, "DeltaBias")
	}
	if a.H0 != nil {
		s.h0 = data[T](a.H0, a.B*a.D*a.N, op, "H0")
	}
	return s
}

// scanRow is one worker's float64 scratch for a (b, d) row.
type scanRow struct {
	raw, dl, du, y []float64 // delta + bias, δ, δ·u, y (skip included)
	// Backward only.
	dy           []float64 // dout·SiLU(z)
	hs, e        []float64 // h_t and a_t of the current n
	duAcc, ddAcc []float64 // du and dδ summed over n
}

func newScanRow(L int) *scanRow {
	return &scanRow{raw: make([]float64, L), dl: make([]float64, L), du: make([]float64, L), y: make([]float64, L)}
}

// prepare fills w.raw, w.dl, w.du and starts w.y with the skip term.
func (s *scanOp[T]) prepare(w *scanRow, b, d int) {
	r := b*s.D + d
	ur, dr := s.u[r*s.L:(r+1)*s.L], s.delta[r*s.L:(r+1)*s.L]
	bias, skip := 0.0, 0.0
	if s.dbias != nil {
		bias = float64(s.dbias[d])
	}
	if s.Dskip != nil {
		skip = float64(s.Dskip[d])
	}
	for t, v := range dr {
		x := float64(v) + bias
		w.raw[t] = x
		if s.softplus && x <= softplusThreshold {
			x = math.Log1p(expClamped(x, s.lim))
		}
		u := float64(ur[t])
		w.dl[t], w.du[t], w.y[t] = x, x*u, skip*u
	}
}

// group returns the (N, L) slices of Bm and Cm that channel d of batch b reads.
func (s *scanOp[T]) group(b, d int) (Bg, Cg []T) {
	off := (b*s.G + d/s.Dg) * s.N * s.L
	return s.Bm[off : off+s.N*s.L], s.Cm[off : off+s.N*s.L]
}

func (s *scanOp[T]) initial(r, n int) float64 {
	if s.h0 == nil {
		return 0
	}
	return float64(s.h0[r*s.N+n])
}

// scanState runs state n of one channel through time and returns h_{L−1}:
//
//	for t := range dl {
//		e[t] = exp(dl[t]·a)                 // 0 when dl[t]·a < lim
//		h = e[t]·h + du[t]·Bn[t]             // 0 when |h| < tiny
//		hs[t] = h
//		y[t] += Cn[t]·h
//	}
//
// y may be nil; hs and e are both nil or both given. The loop is the hot spot of
// both scan passes: everything it reads is a local or a slice resliced to
// len(dl), so the compiler drops the bounds checks and keeps lim and tiny
// in registers.
func scanState[T Float](dl, du []float64, Bn, Cn []T, y, hs, e []float64, a, h, lim, tiny float64) float64 {
	L := len(dl)
	du, Bn, Cn = du[:L], Bn[:L], Cn[:L]
	if hs == nil && e == nil && y != nil {
		y = y[:L]
		for t, x := range dl {
			x *= a
			f := 0.0
			if x >= lim {
				f = scanExp(x)
			}
			h = f*h + du[t]*float64(Bn[t])
			if math.Abs(h) < tiny {
				h = 0
			}
			y[t] += float64(Cn[t]) * h
		}
		return h
	}
	hs, e = hs[:L], e[:L]
	for t, x := range dl {
		x *= a
		f := 0.0
		if x >= lim {
			f = scanExp(x)
		}
		h = f*h + du[t]*float64(Bn[t])
		if math.Abs(h) < tiny {
			h = 0
		}
		e[t], hs[t] = f, h
		if y != nil {
			y[t] += float64(Cn[t]) * h
		}
	}
	return h
}

// scanAdjoint runs the adjoint of state n (decay rate a, initial state
// h0) of one channel backwards in time, from the states w.hs and decays w.e
// that scanState kept, and returns its dA:
//
//	g := 0.0
//	for t := L − 1; t ≥ 0; t-- {
//		g = g·e[t+1] + dy[t]·Cn[t]          // e[L] = 0; 0 when |g| < tiny
//		accC[t] += dy[t]·hs[t]
//		accB[t] += g·du[t]                  // du = δ·u
//		duAcc[t] += g·δ[t]·Bn[t]
//		ddAcc[t] += g·(Bn[t]·u[t] + a·e[t]·hs[t−1])
//		dA += g·δ[t]·e[t]·hs[t−1]           // hs[−1] = h0
//	}
//
// accB and accC may be nil (not wanted).
func scanAdjoint[T Float](w *scanRow, Bn, Cn, u []T, accB, accC []float64, a, h0, tiny float64) float64 {
	L := len(w.dl)
	Bn, Cn, u = Bn[:L], Cn[:L], u[:L]
	dl, du, dy, hs, e := w.dl[:L], w.du[:L], w.dy[:L], w.hs[:L], w.e[:L]
	duAcc, ddAcc := w.duAcc[:L], w.ddAcc[:L]
	dA, g, eNext := 0.0, 0.0, 0.0
	for t := L - 1; t >= 0; t-- {
		g = g*eNext + dy[t]*float64(Cn[t])
		if math.Abs(g) < tiny {
			g = 0
		}
		hPrev := h0
		if t > 0 {
			hPrev = hs[t-1]
		}
		if accC != nil {
			accC[t] += dy[t] * hs[t]
		}
		if accB != nil {
			accB[t] += g * du[t]
		}
		bt := float64(Bn[t])
		duAcc[t] += g * dl[t] * bt
		gDecay := g * e[t] * hPrev // g·∂h_t/∂(δ_t·A)
		ddAcc[t] += g*bt*float64(u[t]) + a*gDecay
		dA += dl[t] * gDecay
		eNext = e[t]
	}
	return dA
}

// scanSiLU is x·sigmoid(x).
func scanSiLU(x, lim float64) float64 { return x * sigmoid(x, lim) }

// scanGrads are the outputs of the backward as seen by backwardRow: rows of
// du, ddelta, dz (nil: not wanted) and the float64 partials per (b, d).
type scanGrads[T Float] struct {
	du, ddelta, dz, dout []T
	pA, pD, pDB          []float64
	wantB, wantC         bool
}

// backwardRow does every gradient of row (b, d): its rows of du, ddelta
// and dz, its partials of dA, dDskip and ddeltaBias, and its dBm and dCm
// contributions added to accB and accC (N, L; nil: not wanted).
func (s *scanOp[T]) backwardRow(w *scanRow, g *scanGrads[T], b, d int, accB, accC []float64) {
	L, N := s.L, s.N
	r := b*s.D + d
	s.prepare(w, b, d)
	ur, gr := s.u[r*L:(r+1)*L], g.dout[r*L:(r+1)*L]
	var zr []T
	if s.z != nil {
		zr = s.z[r*L : (r+1)*L]
	}
	skip := 0.0
	if s.Dskip != nil {
		skip = float64(s.Dskip[d])
	}
	dD := 0.0
	for t, gv := range gr {
		dy := float64(gv)
		if zr != nil {
			dy *= scanSiLU(float64(zr[t]), s.lim)
		}
		w.dy[t], w.duAcc[t] = dy, skip*dy
		dD += dy * float64(ur[t])
	}
	clear(w.ddAcc)
	wantY := g.dz != nil
	Bg, Cg := s.group(b, d)
	for n := range N {
		an, Bn, Cn := float64(s.A[d*N+n]), Bg[n*L:(n+1)*L], Cg[n*L:(n+1)*L]
		h0 := s.initial(r, n)
		var y []float64
		if wantY {
			y = w.y
		}
		scanState(w.dl, w.du, Bn, Cn, y, w.hs, w.e, an, h0, s.lim, s.tiny)
		var aB, aC []float64
		if accB != nil {
			aB = accB[n*L : (n+1)*L]
		}
		if accC != nil {
			aC = accC[n*L : (n+1)*L]
		}
		gA := scanAdjoint(w, Bn, Cn, ur, aB, aC, an, h0, s.tiny)
		if g.pA != nil {
			g.pA[r*N+n] = gA
		}
	}

	if g.du != nil {
		row := g.du[r*L : (r+1)*L]
		for t, v := range w.duAcc {
			row[t] = flush[T](float64(row[t])+v, s.tiny)
		}
	}
	if g.dz != nil {
		row := g.dz[r*L : (r+1)*L]
		for t, y := range w.y {
			z := float64(zr[t])
			sg := sigmoid(z, s.lim)
			row[t] = flush[T](float64(row[t])+float64(gr[t])*y*sg*(1+z*(1-sg)), s.tiny)
		}
	}
	dBias := 0.0
	for t, v := range w.ddAcc {
		if s.softplus && w.raw[t] <= softplusThreshold {
			v *= sigmoid(w.raw[t], s.lim)
		}
		dBias += v
		if g.ddelta != nil {
			g.ddelta[r*L+t] = flush[T](float64(g.ddelta[r*L+t])+v, s.tiny)
		}
	}
	if g.pD != nil {
		g.pD[r] = dD
	}
	if g.pDB != nil {
		g.pDB[r] = dBias
	}
}

// scanExp is exp(x) for x ≥ −708 (the scans clamp below that), within 3 ulp,
// about twice as fast as math.Exp: with x = (64m + j)·ln2/64 + r, |r| ≤
// ln2/128,
//
//	exp(x) = 2^m · 2^(j/64) · exp(r)
//
// where 2^(j/64) comes from a table and exp(r) from its degree-6 Taylor
// polynomial (truncation r⁷/7! < 1e−18). x ≥ 709 (overflow) and NaN go to
// math.Exp.
func scanExp(x float64) float64 {
	if !(x < 709) {
		return math.Exp(x)
	}
	// Round x·64/ln2 to the integer k by the 1.5·2^52 trick.
	kf := x*(64/math.Ln2) + 0x1.8p52
	k := int64(math.Float64bits(kf) - math.Float64bits(0x1.8p52))
	kf -= 0x1.8p52
	// ln2/64 split in two (Go's math.Exp's Ln2Hi, Ln2Lo) so kf·hi is exact.
	r := x - kf*(6.93147180369123816490e-01/64) - kf*(1.90821492927058770002e-10/64)
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return math.Float64frombits(math.Float64bits(scanExpTable[k&63]*p) + uint64(k>>6)<<52)
}

// scanExpTable[j] = 2^(j/64).
var scanExpTable = func() (t [64]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / 64)
	}
	return t
}()
