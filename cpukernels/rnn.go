package cpukernels

import (
	"math"

	"seqbench/nn"
)

// LSTM and GRU layers (torch.nn.LSTM / torch.nn.GRU, one layer,
// batch_first). Both share one skeleton:
//
//  1. the input projection of every step at once, one GEMM
//     x (B·L, I) · Wihᵀ (I, G·H), written straight into saved (or into a
//     scratch of a few steps when nothing is saved);
//  2. the recurrence: per step the hidden projection h_{t−1}·Whhᵀ
//     (B × G·H × H multiply-adds, register-blocked dot products) followed
//     by the gate nonlinearities, computed in float64 and rounded to T.
//
// The recurrence runs in one of two parallel layouts. With at least as
// many sequences as workers, each worker owns a slice of the batch and runs
// every step of it with no synchronization at all. With fewer sequences
// (generation, B = 1) each worker owns a slice of the hidden units — the
// rows of every gate that feed them — and the workers meet once per step,
// since step t+1 reads all of h_t.
//
// The backward runs the same loop in reverse and stores the gradients of
// the gate pre-activations of every step (dgates, (B·L, 4H)); the weight
// gradients are then GEMMs over all steps at once: dWih += dgatesᵀ·x,
// dx += dgates·Wih, dbias += column sums and dWhh += Σ_t dgates_tᵀ·h_{t−1}
// as one GEMM over the stacked previous states (rows of out shifted by one
// step).

// Below this many multiply-adds a unit of parallel work does not pay for a
// goroutine; above rnnUnitModeMin per step, splitting one step over the
// hidden units beats running fewer sequences than workers side by side.
const (
	rnnParallelMin = 1 << 15
	rnnUnitModeMin = 1 << 16
	// rnnScratchElems bounds the input-projection scratch of a forward that
	// saves nothing (inference): the steps are projected a chunk at a time.
	rnnScratchElems = 1 << 18
)

// rnn is one validated LSTM or GRU call with its unwrapped buffers.
type rnn[T Float] struct {
	op                     string
	gru                    bool
	B, L, I, H, G, GH      int
	x, wih, whh, bih, bhh  []T
	h0, c0                 []T // nil: zeros
	out                    []T
	saved                  []T // nil when not saved (forward) / required (backward)
	per                    int // elements of saved per (b, t): 5H (LSTM), 4H (GRU)
	lim, tiny              float64
	bx                     []float64 // bias added to the gate pre-activations (G·H)
	bhn                    []float64 // GRU: b_hn, inside r ⊙ (W_hn h + b_hn)
	hh                     []T       // (B, G·H) hidden projection of the current step
	c                      []T       // (B, H) LSTM cell state of the current step
	pre                    []T       // input projections: pre[(b·preL + t − t0)·preLd + j]
	preL, preLd, t0        int
	dout, dg, whhT, dh, cy []T // backward: see backward
}

// newRNN checks a's shapes and buffers (panicking with the op's name on a
// mismatch) and folds the biases into the per-gate vectors the cells add.
func newRNN[T Float](op string, gru bool, a nn.RNNArgs) *rnn[T] {
	G := 4
	if gru {
		G = 3
	}
	check(op, a.Check(gru))
	r := &rnn[T]{op: op, gru: gru, B: a.B, L: a.L, I: a.I, H: a.H, G: G, GH: G * a.H,
		lim: expLimit[T](), tiny: minNormal[T]()}
	r.per = 5 * a.H
	if gru {
		r.per = 4 * a.H
	}
	r.x = data[T](a.X, a.B*a.L*a.I, op, "X")
	r.wih = data[T](a.Wih, r.GH*a.I, op, "Wih")
	r.whh = data[T](a.Whh, r.GH*a.H, op, "Whh")
	opt := func(b nn.Buffer, n int, name string) []T {
		if b == nil {
			return nil
		}
		return data[T](b, n, op, name)
	}
	r.bih, r.bhh = opt(a.Bih, r.GH, "Bih"), opt(a.Bhh, r.GH, "Bhh")
	r.h0 = opt(a.H0, a.B*a.H, "H0")
	r.c0 = opt(a.C0, a.B*a.H, "C0")

	// LSTM adds both biases to every gate; GRU keeps b_hn apart (it is
	// multiplied by r).
	r.bx = make([]float64, r.GH)
	for j := range r.bx {
		if r.bih != nil {
			r.bx[j] += float64(r.bih[j])
		}
		if r.bhh != nil && (!gru || j < 2*a.H) {
			r.bx[j] += float64(r.bhh[j])
		}
	}
	if gru {
		r.bhn = make([]float64, a.H)
		if r.bhh != nil {
			for u := range r.bhn {
				r.bhn[u] = float64(r.bhh[2*a.H+u])
			}
		}
	}
	return r
}

// unitMode says whether to split each step over hidden units (few
// sequences, large H) rather than the sequences over workers.
func (r *rnn[T]) unitMode(workers int) bool {
	return r.B < workers && r.B*r.GH*r.H >= rnnUnitModeMin
}

// recur runs step(t, b0, b1, u0, u1) for t over ts (in that order) on every
// (batch, unit) block, in the parallel layout that fits the shape.
func (r *rnn[T]) recur(be *Backend[T], ts []int, step func(t, b0, b1, u0, u1 int)) {
	if r.unitMode(be.workers) {
		grain := (rnnParallelMin + r.B*r.G*r.H - 1) / (r.B * r.G * r.H)
		for _, t := range ts {
			be.parallelFor(r.H, grain, func(u0, u1 int) { step(t, 0, r.B, u0, u1) })
		}
		return
	}
	work := max(1, len(ts)*r.GH*r.H)
	be.parallelFor(r.B, (rnnParallelMin+work-1)/work, func(b0, b1 int) {
		for _, t := range ts {
			step(t, b0, b1, 0, r.H)
		}
	})
}

// steps returns t0, t0+1, ..., t1−1 (reversed when back).
func steps(t0, t1 int, back bool) []int {
	ts := make([]int, t1-t0)
	for i := range ts {
		ts[i] = t0 + i
		if back {
			ts[i] = t1 - 1 - i
		}
	}
	return ts
}

// hprev returns h_{t−1} of sequence b0 onwards with its row stride, or nil
// for a zero initial state.
func (r *rnn[T]) hprev(t, b0 int) ([]T, int) {
	if t > 0 {
		return r.out[(b0*r.L+t-1)*r.H:], r.L * r.H
	}
	if r.h0 == nil {
		return nil, 0
	}
	return r.h0[b0*r.H:], r.H
}

// forward is the shared forward: projections, then the recurrence with
// cell as the gate nonlinearity.
func (r *rnn[T]) forward(be *Backend[T], hT, cT nn.Buffer) {
	B, L, H, GH := r.B, r.L, r.H, r.GH
	r.hh = make([]T, B*GH)
	if !r.gru {
		r.c = make([]T, B*H)
		if r.c0 != nil {
			copy(r.c, r.c0)
		}
	}
	proj := func(t0, t1 int, c []T, ldc, stride int) {
		if t1 == t0 {
			return
		}
		args := nn.GemmArgs{TransB: true, M: t1 - t0, N: GH, K: r.I, Alpha: 1, LDA: r.I, LDB: r.I, LDC: ldc,
			StrideA: L * r.I, StrideC: stride, Batch: B}
		if t1-t0 == L { // the whole batch is one (B·L)-row matrix
			args.M, args.Batch, args.StrideA, args.StrideC = B*L, 1, 0, 0
		}
		be.Gemm(Buf[T](r.x[t0*r.I:]), Buf[T](r.wih), Buf[T](c), args)
	}
	if r.saved != nil {
		r.pre, r.preL, r.preLd = r.saved, L, r.per
		proj(0, L, r.saved, r.per, L*r.per)
		r.recur(be, steps(0, L, false), r.stepForward)
	} else if L > 0 {
		tc := min(L, max(1, rnnScratchElems/(B*GH)))
		r.pre, r.preL, r.preLd = make([]T, B*tc*GH), tc, GH
		for t0 := 0; t0 < L; t0 += tc {
			t1 := min(L, t0+tc)
			r.t0 = t0
			proj(t0, t1, r.pre, GH, tc*GH)
			r.recur(be, steps(t0, t1, false), r.stepForward)
		}
	}

	if hT != nil {
		d := data[T](hT, B*H, r.op, "hT")
		for b := range B {
			switch {
			case L > 0:
				copy(d[b*H:(b+1)*H], r.out[(b*L+L-1)*H:])
			case r.h0 != nil:
				copy(d[b*H:(b+1)*H], r.h0[b*H:])
			default:
				clear(d[b*H : (b+1)*H])
			}
		}
	}
	if cT != nil {
		copy(data[T](cT, B*H, r.op, "cT")[:B*H], r.c)
	}
}

// stepForward computes h_t (and c_t) of sequences [b0, b1) and units
// [u0, u1): the hidden projection of the rows of every gate feeding those
// units, then the cell.
func (r *rnn[T]) stepForward(t, b0, b1, u0, u1 int) {
	H, GH := r.H, r.GH
	hp, ld := r.hprev(t, b0)
	for g := range r.G {
		if hp == nil {
			for b := b0; b < b1; b++ {
				clear(r.hh[b*GH+g*H+u0 : b*GH+g*H+u1])
			}
			continue
		}
		matvecRows(r.hh[b0*GH:], GH, hp, ld, b1-b0, r.whh, H, H, g*H+u0, g*H+u1, false)
	}
	for b := b0; b < b1; b++ {
		p := r.pre[(b*r.preL+t-r.t0)*r.preLd:]
		q := r.hh[b*GH : (b+1)*GH]
		o := r.out[(b*r.L+t)*H : (b*r.L+t+1)*H]
		if r.gru {
			var hrow []T // nil: h_{t−1} = 0
			if hp != nil {
				hrow = hp[(b-b0)*ld : (b-b0)*ld+H]
			}
			r.gruCell(p, q, hrow, o, u0, u1)
		} else {
			r.lstmCell(p, q, r.c[b*H:(b+1)*H], o, u0, u1)
		}
	}
}

// lstmCell is, for u in [u0, u1), with a = x·Wihᵀ (in p) + h·Whhᵀ (in q) +
// b_ih + b_hh,
//
//	i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
//	c = f·c + i·g;  h = o·tanh(c)
//
// saving [i f g o c] over the pre-activations in p when saving.
func (r *rnn[T]) lstmCell(p, q, c, h []T, u0, u1 int) {
	H, lim, tiny, bx := r.H, r.lim, r.tiny, r.bx
	for u := u0; u < u1; u++ {
		ig := sigmoid(float64(p[u])+float64(q[u])+bx[u], lim)
		fg := sigmoid(float64(p[H+u])+float64(q[H+u])+bx[H+u], lim)
		gg := math.Tanh(float64(p[2*H+u]) + float64(q[2*H+u]) + bx[2*H+u])
		og := sigmoid(float64(p[3*H+u])+float64(q[3*H+u])+bx[3*H+u], lim)
		// A closing forget gate decays c geometrically: flush it before it
		// turns subnormal.
		ct := flush[T](fg*float64(c[u])+ig*gg, tiny)
		c[u] = ct
		h[u] = flush[T](og*math.Tanh(float64(ct)), tiny)
		if r.saved != nil {
			p[u], p[H+u], p[2*H+u], p[3*H+u], p[4*H+u] = T(ig), T(fg), flush[T](gg, tiny), T(og), ct
		}
	}
}

// gruCell is, for u in [u0, u1), with x·Wihᵀ in p and h·Whhᵀ in q,
//
//	r = σ(x_r + b_ir + h_r + b_hr);  z = σ(x_z + b_iz + h_z + b_hz)
//	hn = h_n + b_hn;  n = tanh(x_n + b_in + r·hn);  h' = (1 − z)·n + z·h
//
// saving [r z n hn] over p when saving. hp is h_{t−1} (empty: zeros).
func (r *rnn[T]) gruCell(p, q, hp, h []T, u0, u1 int) {
	H, lim, tiny, bx := r.H, r.lim, r.tiny, r.bx
	for u := u0; u < u1; u++ {
		rg := sigmoid(float64(p[u])+float64(q[u])+bx[u], lim)
		zg := sigmoid(float64(p[H+u])+float64(q[H+u])+bx[H+u], lim)
		hn := float64(q[2*H+u]) + r.bhn[u]
		ng := math.Tanh(float64(p[2*H+u]) + bx[2*H+u] + rg*hn)
		prev := 0.0
		if len(hp) > 0 {
			prev = float64(hp[u])
		}
		// z → 1 with n ≈ 0 decays h geometrically: flush before subnormal.
		h[u] = flush[T]((1-zg)*ng+zg*prev, tiny)
		if r.saved != nil {
			p[u], p[H+u], p[2*H+u], p[3*H+u] = T(rg), T(zg), flush[T](ng, tiny), flush[T](hn, tiny)
		}
	}
}

// LSTM is torch.nn.LSTM (one layer, batch_first) over x (B, L, I) with
// Wih (4H, I), Whh (4H, H), optional biases (4H), gates i, f, g, o:
//
//	h, c := H0 or 0, C0 or 0
//	for t := 0; t < L; t++ {
//		a := Wih·x_t + b_ih + Whh·h + b_hh            // (4H)
//		i, f, g, o := σ(a[0:H]), σ(a[H:2H]), tanh(a[2H:3H]), σ(a[3H:4H])
//		c = f⊙c + i⊙g
//		h = o⊙tanh(c)
//		out_t = h
//	}
//	hT, cT = h, c
//
// saved (B, L, 5H) holds [i f g o c] of every step.
func (be *Backend[T]) LSTM(out, hT, cT, saved nn.Buffer, a nn.RNNArgs) {
	r := newRNN[T]("LSTM", false, a)
	r.out = data[T](out, a.B*a.L*a.H, "LSTM", "out")
	if saved != nil {
		r.saved = data[T](saved, nn.LSTMSavedLen(a.B, a.L, a.H), "LSTM", "saved")
	}
	r.forward(be, hT, cT)
}

// GRU is torch.nn.GRU (one layer, batch_first) over x (B, L, I) with
// Wih (3H, I), Whh (3H, H), optional biases (3H), gates r, z, n:
//
//	h := H0 or 0
//	for t := 0; t < L; t++ {
//		gi := Wih·x_t + b_ih;  gh := Whh·h + b_hh      // (3H)
//		r, z := σ(gi[0:H] + gh[0:H]), σ(gi[H:2H] + gh[H:2H])
//		n := tanh(gi[2H:3H] + r⊙gh[2H:3H])
//		h = (1 − z)⊙n + z⊙h
//		out_t = h
//	}
//	hT = h
//
// saved (B, L, 4H) holds [r z n gh_n] of every step.
func (be *Backend[T]) GRU(out, hT, saved nn.Buffer, a nn.RNNArgs) {
	r := newRNN[T]("GRU", true, a)
	r.out = data[T](out, a.B*a.L*a.H, "GRU", "out")
	if saved != nil {
		r.saved = data[T](saved, nn.GRUSavedLen(a.B, a.L, a.H), "GRU", "saved")
	}
	r.forward(be, hT, nil)
}

// LSTMBackward accumulates the gradients of LSTM from out, saved and dout
// (B, L, H) by backpropagation through time. Beyond nn.SeqOps' contract it
// honours a given H0 and C0 (the gradient of Whh includes H0's term).
func (be *Backend[T]) LSTMBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	r := newRNN[T]("LSTMBackward", false, a)
	r.backward(be, g, out, saved, dout, nn.LSTMSavedLen(a.B, a.L, a.H))
}

// GRUBackward is LSTMBackward's counterpart.
func (be *Backend[T]) GRUBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	r := newRNN[T]("GRUBackward", true, a)
	r.backward(be, g, out, saved, dout, nn.GRUSavedLen(a.B, a.L, a.H))
}

// backward runs BPTT into dg (B, L, 4H), the gradients of the gate
// pre-activations, laid out [i f g o] for the LSTM and [r z hn n] for the
// GRU, where hn is the hidden-side n (W_hn h + b_hn, scaled by r) and n the
// input-side one: the first G·H columns meet Whh, b_hh and h_{t−1}, the
// input-side columns (all for the LSTM; r, z and n for the GRU) meet Wih,
// b_ih and x. Then every weight gradient is a GEMM over all steps.
func (r *rnn[T]) backward(be *Backend[T], g nn.RNNGrads, out, saved, dout nn.Buffer, savedLen int) {
	B, L, I, H, GH := r.B, r.L, r.I, r.H, r.GH
	r.out = data[T](out, B*L*H, r.op, "out")
	r.saved = data[T](saved, savedLen, r.op, "saved")
	r.dout = data[T](dout, B*L*H, r.op, "dout")
	if L == 0 {
		return
	}
	const DG = 4 // columns of dg per hidden unit, both cells
	r.dg = make([]T, B*L*DG*H)
	// Whh transposed (H, G·H): the recurrent dh_{t−1} = dgh_t·Whh is then a
	// contiguous dot product per hidden unit.
	r.whhT = make([]T, H*GH)
	for j := range GH {
		for k := range H {
			r.whhT[k*GH+j] = r.whh[j*H+k]
		}
	}
	r.dh = make([]T, B*H) // dh_t from the step after (via Whh)
	r.cy = make([]T, B*H) // carried: LSTM dc, GRU dh·z
	r.recur(be, steps(0, L, true), r.stepBackward)

	// Input-side column segments of dg and the Wih / b_ih rows they meet.
	type seg struct{ col, row, n int }
	segs := []seg{{0, 0, 4 * H}}
	if r.gru {
		segs = []seg{{0, 0, 2 * H}, {3 * H, 2 * H, H}}
	}
	rows := B * L
	for _, s := range segs {
		if g.X != nil {
			dx := data[T](g.X, rows*I, r.op, "dX")
			be.Gemm(Buf[T](r.dg[s.col:]), Buf[T](r.wih[s.row*I:]), Buf[T](dx), nn.GemmArgs{
				M: rows, N: I, K: s.n, Alpha: 1, Beta: 1, LDA: DG * H, LDB: I, LDC: I, Batch: 1})
		}
		if g.Wih != nil {
			dw := data[T](g.Wih, GH*I, r.op, "dWih")
			be.Gemm(Buf[T](r.dg[s.col:]), Buf[T](r.x), Buf[T](dw[s.row*I:]), nn.GemmArgs{
				TransA: true, M: s.n, N: I, K: rows, Alpha: 1, Beta: 1, LDA: DG * H, LDB: I, LDC: I, Batch: 1})
		}
	}
	if g.Bih != nil || g.Bhh != nil {
		// Long column sums: accumulate in float64.
		sums := make([]float64, DG*H)
		for i := range rows {
			for j, v := range r.dg[i*DG*H : (i+1)*DG*H] {
				sums[j] += float64(v)
			}
		}
		if g.Bih != nil {
			db := data[T](g.Bih, GH, r.op, "dBih")
			for _, s := range segs {
				for j := range s.n {
					db[s.row+j] += T(sums[s.col+j])
				}
			}
		}
		if g.Bhh != nil {
			db := data[T](g.Bhh, GH, r.op, "dBhh")
			for j := range GH {
				db[j] += T(sums[j])
			}
		}
	}
	if g.Whh != nil {
		dw := data[T](g.Whh, GH*H, r.op, "dWhh")
		if r.h0 != nil { // the t = 0 rows meet H0
			be.Gemm(Buf[T](r.dg), Buf[T](r.h0), Buf[T](dw), nn.GemmArgs{
				TransA: true, M: GH, N: H, K: B, Alpha: 1, Beta: 1, LDA: L * DG * H, LDB: H, LDC: H, Batch: 1})
		}
		// Row i of dg meets row i−1 of out, except at t = 0 (the previous
		// sequence's last state): zero those rows (dg is spent otherwise),
		// then one GEMM over the B·L − 1 shifted pairs.
		for b := 1; b < B; b++ {
			clear(r.dg[b*L*DG*H : b*L*DG*H+GH])
		}
		if rows > 1 {
			be.Gemm(Buf[T](r.dg[DG*H:]), Buf[T](r.out), Buf[T](dw), nn.GemmArgs{
				TransA: true, M: GH, N: H, K: rows - 1, Alpha: 1, Beta: 1, LDA: DG * H, LDB: H, LDC: H, Batch: 1})
		}
	}
}

// stepBackward computes dg_t of sequences [b0, b1) and units [u0, u1):
// dh_t = dout_t + dgh_{t+1}·Whh (+ the cell's carried term), then the cell.
func (r *rnn[T]) stepBackward(t, b0, b1, u0, u1 int) {
	H, L, GH := r.H, r.L, r.GH
	const DG = 4
	if t == L-1 {
		for b := b0; b < b1; b++ {
			clear(r.dh[b*H+u0 : b*H+u1])
		}
	} else {
		matvecRows(r.dh[b0*H:], H, r.dg[(b0*L+t+1)*DG*H:], L*DG*H, b1-b0, r.whhT, GH, GH, u0, u1, false)
	}
	for b := b0; b < b1; b++ {
		i := b*L + t
		s := r.saved[i*r.per : (i+1)*r.per]
		d := r.dg[i*DG*H : (i+1)*DG*H]
		do := r.dout[i*H : (i+1)*H]
		dh := r.dh[b*H : (b+1)*H]
		cy := r.cy[b*H : (b+1)*H]
		if r.gru {
			var hp []T
			switch {
			case t > 0:
				hp = r.out[(i-1)*H : i*H]
			case r.h0 != nil:
				hp = r.h0[b*H : (b+1)*H]
			}
			r.gruCellBackward(s, hp, do, dh, cy, d, u0, u1)
			continue
		}
		var cp []T
		switch {
		case t > 0:
			cp = r.saved[(i-1)*r.per+4*H : i*r.per]
		case r.c0 != nil:
			cp = r.c0[b*H : (b+1)*H]
		}
		r.lstmCellBackward(s, cp, do, dh, cy, d, u0, u1)
	}
}

// lstmCellBackward is, for u in [u0, u1), with s = [i f g o c] of step t,
// c_{t−1} in cp (empty: zeros) and dc carried in cy,
//
//	dh := dout + dh_rec;  tc := tanh(c)
//	dc := cy + dh·o·(1 − tc²);  cy = dc·f
//	d = [dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i·(1−g²), dh·tc·o(1−o)]
func (r *rnn[T]) lstmCellBackward(s, cp, dout, dh, cy, d []T, u0, u1 int) {
	H, tiny := r.H, r.tiny
	for u := u0; u < u1; u++ {
		ig, fg, gg, og, ct := float64(s[u]), float64(s[H+u]), float64(s[2*H+u]), float64(s[3*H+u]), float64(s[4*H+u])
		prev := 0.0
		if len(cp) > 0 {
			prev = float64(cp[u])
		}
		dht := float64(dout[u]) + float64(dh[u])
		tc := math.Tanh(ct)
		dc := float64(cy[u]) + dht*og*(1-tc*tc)
		d[u] = flush[T](dc*gg*ig*(1-ig), tiny)
		d[H+u] = flush[T](dc*prev*fg*(1-fg), tiny)
		d[2*H+u] = flush[T](dc*ig*(1-gg*gg), tiny)
		d[3*H+u] = flush[T](dht*tc*og*(1-og), tiny)
		// dc decays through the forget gates as c does forward.
		cy[u] = flush[T](dc*fg, tiny)
	}
}

// gruCellBackward is, for u in [u0, u1), with s = [r z n hn] of step t,
// h_{t−1} in hp (empty: zeros) and dh·z of step t+1 carried in cy,
//
//	dh := dout + dh_rec + cy;  cy = dh·z
//	dan := dh·(1−z)·(1−n²)
//	d = [dan·hn·r(1−r), dh·(h_{t−1} − n)·z(1−z), dan·r, dan]
func (r *rnn[T]) gruCellBackward(s, hp, dout, dh, cy, d []T, u0, u1 int) {
	H, tiny := r.H, r.tiny
	for u := u0; u < u1; u++ {
		rg, zg, ng, hn := float64(s[u]), float64(s[H+u]), float64(s[2*H+u]), float64(s[3*H+u])
		prev := 0.0
		if len(hp) > 0 {
			prev = float64(hp[u])
		}
		dht := float64(dout[u]) + float64(dh[u]) + float64(cy[u])
		dan := dht * (1 - zg) * (1 - ng*ng)
		d[u] = flush[T](dan*hn*rg*(1-rg), tiny)
		d[H+u] = flush[T](dht*(prev-ng)*zg*(1-zg), tiny)
		d[2*H+u] = flush[T](dan*rg, tiny)
		d[3*H+u] = flush[T](dan, tiny)
		cy[u] = flush[T](dht*zg, tiny)
	}
}

// matvecRows is, for b < nb and j in [j0, j1),
//
//	dst[b*ldd+j] (+)= Σ_{k<K} x[b*ldx+k] · w[j*ldw+k]
//
// (accumulating when acc) in register blocks of 2 rows of x by 4 rows of w:
// eight independent sums, each x and w element loaded once per block.
func matvecRows[T Float](dst []T, ldd int, x []T, ldx, nb int, w []T, ldw, K, j0, j1 int, acc bool) {
	put := func(d []T, j int, v T) {
		if acc {
			d[j] += v
		} else {
			d[j] = v
		}
	}
	wr := func(j int) []T { return w[j*ldw : j*ldw+K] }
	b := 0
	for ; b+2 <= nb; b += 2 {
		x0, x1 := x[b*ldx:b*ldx+K], x[(b+1)*ldx:(b+1)*ldx+K]
		d0, d1 := dst[b*ldd:], dst[(b+1)*ldd:]
		j := j0
		for ; j+4 <= j1; j += 4 {
			s00, s01, s02, s03, s10, s11, s12, s13 := dot2x4(x0, x1, wr(j), wr(j+1), wr(j+2), wr(j+3))
			put(d0, j, s00)
			put(d0, j+1, s01)
			put(d0, j+2, s02)
			put(d0, j+3, s03)
			put(d1, j, s10)
			put(d1, j+1, s11)
			put(d1, j+2, s12)
			put(d1, j+3, s13)
		}
		for ; j < j1; j++ {
			wj := wr(j)
			var s0, s1 T
			for k, v := range wj {
				s0 += x0[k] * v
				s1 += x1[k] * v
			}
			put(d0, j, s0)
			put(d1, j, s1)
		}
	}
	if b < nb {
		x0 := x[b*ldx : b*ldx+K]
		d0 := dst[b*ldd:]
		j := j0
		for ; j+4 <= j1; j += 4 {
			s0, s1, s2, s3 := dot1x4(x0, wr(j), wr(j+1), wr(j+2), wr(j+3))
			put(d0, j, s0)
			put(d0, j+1, s1)
			put(d0, j+2, s2)
			put(d0, j+3, s3)
		}
		for ; j < j1; j++ {
			var s T
			for k, v := range wr(j) {
				s += x0[k] * v
			}
			put(d0, j, s)
		}
	}
}

// dot2x4 returns the dot products of x0 and x1 with w0..w3 (all of
// len(x0)).
func dot2x4[T Float](x0, x1, w0, w1, w2, w3 []T) (s00, s01, s02, s03, s10, s11, s12, s13 T) {
	n := len(x0)
	x1, w0, w1, w2, w3 = x1[:n], w0[:n], w1[:n], w2[:n], w3[:n]
	for k := range n {
		a, b := x0[k], x1[k]
		v := w0[k]
		s00 += a * v
		s10 += b * v
		v = w1[k]
		s01 += a * v
		s11 += b * v
		v = w2[k]
		s02 += a * v
		s12 += b * v
		v = w3[k]
		s03 += a * v
		s13 += b * v
	}
	return
}

// dot1x4 returns the dot products of x0 with w0..w3 (all of len(x0)).
func dot1x4[T Float](x0, w0, w1, w2, w3 []T) (s0, s1, s2, s3 T) {
	n := len(x0)
	w0, w1, w2, w3 = w0[:n], w1[:n], w2[:n], w3[:n]
	for k, a := range x0 {
		s0 += a * w0[k]
		s1 += a * w1[k]
		s2 += a * w2[k]
		s3 += a * w3[k]
	}
	return
}
