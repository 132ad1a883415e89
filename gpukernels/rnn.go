package gpukernels

import "seqbench/nn"

// rnnPersistentFromEnv is the backend's rnnPersistent at creation: on
// unless SEQBENCH_RNN_PERSISTENT=0.
func rnnPersistentFromEnv() bool { return envSwitch("SEQBENCH_RNN_PERSISTENT") }

// LSTM and GRU layers (torch.nn.LSTM / torch.nn.GRU, one layer,
// batch_first), as cpukernels/rnn.go: the input projection of every step
// is one cuBLAS GEMM x (B·L, I)·Wihᵀ written straight into saved (or into a
// scratch of a chunk of steps when nothing is saved). The recurrence runs,
// where it fits, as one persistent cooperative kernel (rnn_persist_* in
// rnn.cu: each block owns a slice of hidden units and holds their rows of
// Whh in registers; blocks meet at a grid-wide barrier between steps). At
// B 8, H 1024 on an H200 a step takes ~5.5 µs that way, forward or
// backward, and two bench runs agree within 1% (gpukernels/NOTES.md).
// Elsewhere (float64, larger H, or SEQBENCH_RNN_PERSISTENT=0) it runs per
// step: one GEMM h_{t−1}·Whhᵀ for the whole batch and one gate kernel, two
// launches a step, PyTorch's scheme for cuDNN-less RNNs, whose time is
// much the host's launch work (~17 µs a step at that shape, and up to 40%
// apart between two runs on one host). The backward runs the recurrence in
// reverse (dg_{t+1}·Whh and the backward cell, persistent or per step),
// storing the gate gradients dg (B, L, 4H) of every step, then every
// weight gradient is one GEMM over all steps.
//
// Under bf16 (docs/PRECISION.md) x, out, saved, dout and dX are bfloat16
// and everything else float32. The reference (cpukernels.BF16) runs the
// float32 op on the bfloat16 values and rounds out and saved (or dX) once
// when it returns: the input projection multiplies bfloat16 x by float32
// weights, h_{t−1} and c_{t−1} pass between steps unrounded, and so do hT
// and cT; the backward reads the rounded saved. The GPU does the same on
// float32 copies (rnnForwardAs, rnnBackward): x cast to float32 (exact) for
// the projection GEMM and dWih, out and saved kept in float32 scratches
// through the recurrence and rounded once into out and saved, saved cast
// back to float32 for the backward recurrence, out cast to float32 for dWhh
// and the GRU's h_{t−1}, dX accumulated in a float32 copy and rounded once.
// Only dout is read as bfloat16 by the kernels (the bfloat16 build of the
// backward cells); every other conversion is the cast of Copy.

// rnnScratchElems bounds the input-projection scratch of a forward that
// saves nothing: the steps are projected a chunk at a time (a variable
// for the tests).
var rnnScratchElems = 1 << 22

// at is a view of b from element off on (not owned: never freed).
func (b *Buffer) at(off int) *Buffer {
	if off == 0 {
		return b
	}
	return &Buffer{ptr: b.ptr + uint64(off*b.esize()), n: b.n - off, dt: b.dt, be: b.be}
}

// copyRows is CopyBlock inside an op: dst[dOff + r·dStride + c] (+)=
// src[sOff + r·sStride + c] for r < rows, c < cols, both of the backend's
// type (the LSTM and GRU copy only float32 states and sums with it).
func (be *Backend) copyRows(op string, d *Buffer, dOff, dStride int, s *Buffer, sOff, sStride, rows, cols int, acc bool) {
	if rows == 0 || cols == 0 {
		return
	}
	k := be.fn(op, "memory", "copy_block")
	bx := min((cols+255)/256, 1024)
	by := min(rows, max(1, be.maxGrid*8/bx), 65535)
	be.launch(op, k, dim2(bx, by), dim(256), 0, pArg(d), iArg(dOff), iArg(dStride), pArg(s), iArg(sOff), iArg(sStride),
		iArg(rows), iArg(cols), bArg(acc), 0, 0)
}

// zero sets the first n elements of d to 0.
func (be *Backend) zero(op string, d *Buffer, n int) {
	if n > 0 {
		be.profStart(op)
		be.queued(op, be.drv.MemsetD32Async(d.ptr, 0, uint64(n*d.esize()/4), be.stream))
	}
}

// rnnBufs is one validated LSTM or GRU call.
type rnnBufs struct {
	op                    string
	gru                   bool
	B, L, I, H, G, GH     int
	per                   int // elements of saved per (b, t): 5H (LSTM), 4H (GRU)
	x, wih, whh, bih, bhh *Buffer
	h0, c0                *Buffer
}

func (be *Backend) unpackRNN(op string, gru bool, a nn.RNNArgs) *rnnBufs {
	G := 4
	if gru {
		G = 3
	}
	check(op, a.Check(gru))
	r := &rnnBufs{op: op, gru: gru, B: a.B, L: a.L, I: a.I, H: a.H, G: G, GH: G * a.H, per: 5 * a.H}
	if gru {
		r.per = 4 * a.H
	}
	r.x = be.buf(a.X, a.B*a.L*a.I, op, "X")
	r.wih, r.whh = be.buf(a.Wih, r.GH*a.I, op, "Wih"), be.buf(a.Whh, r.GH*a.H, op, "Whh")
	r.bih, r.bhh = be.optBuf(a.Bih, r.GH, op, "Bih"), be.optBuf(a.Bhh, r.GH, op, "Bhh")
	r.h0 = be.optBuf(a.H0, a.B*a.H, op, "H0")
	if !gru {
		r.c0 = be.optBuf(a.C0, a.B*a.H, op, "C0")
	}
	be.wantOwn(op, arg{"Wih", r.wih}, arg{"Whh", r.whh}, arg{"Bih", r.bih}, arg{"Bhh", r.bhh}, arg{"H0", r.h0},
		arg{"C0", r.c0})
	return r
}

// rnnForwardAs is rnnForward for activations x, out and saved (nil: not
// kept) of type at. With bfloat16 ones it runs the float32 recurrence on a
// float32 copy of x (exact) into a float32 out and a float32 saved, each
// rounded once into out and saved at the end, as the reference does:
// h_{t−1}, c_{t−1}, hT and cT are then the unrounded float32 states. The
// float32 saved is released as soon as it is cast: it is the largest
// buffer of the op (5H or 4H per (b, t) at 4 bytes).
func (be *Backend) rnnForwardAs(at nn.DType, r *rnnBufs, out, saved, hT, cT *Buffer) {
	if at != nn.BFloat16 {
		be.rnnForward(r, out, saved, hT, cT)
		return
	}
	nx, no, ns := r.B*r.L*r.I, r.B*r.L*r.H, r.B*r.L*r.per
	x32, out32 := be.newBuffer(nx, be.dtype), be.newBuffer(no, be.dtype)
	defer be.release(x32)
	defer be.release(out32)
	var saved32 *Buffer
	if saved != nil {
		saved32 = be.newBuffer(ns, be.dtype)
	}
	be.copy(r.op, x32, r.x, nx)
	r32 := *r
	r32.x = x32
	be.rnnForward(&r32, out32, saved32, hT, cT)
	if saved32 != nil {
		be.copy(r.op, saved, saved32, ns)
		be.release(saved32)
	}
	be.copy(r.op, out, out32, no)
}

// rnnForward runs the LSTM (or GRU) over every step, writing out, saved
// (nil: not kept), hT and cT (nil: not wanted).
func (be *Backend) rnnForward(r *rnnBufs, out, saved, hT, cT *Buffer) {
	op, B, L, I, H, GH := r.op, r.B, r.L, r.I, r.H, r.GH
	var bufs []*Buffer
	defer func() {
		for _, b := range bufs {
			be.release(b)
		}
	}()
	scratch := func(n int) *Buffer {
		b := be.newBuffer(n, be.dtype)
		bufs = append(bufs, b)
		return b
	}
	// The LSTM's cell state: cT itself when given (C0 copied in first).
	var c *Buffer
	if !r.gru {
		c = cT
		if c == nil {
			c = scratch(B * H)
		}
		if r.c0 != nil {
			be.copyRows(op, c, 0, 0, r.c0, 0, 0, 1, B*H, false)
		} else {
			be.zero(op, c, B*H)
		}
	}
	if L > 0 {
		hh := scratch(B * GH)
		// pre holds the input projections: saved, or a chunk of tc steps.
		pre, preB, preT, tc := saved, L*r.per, r.per, L
		if saved == nil {
			tc = min(L, max(1, rnnScratchElems/(B*GH)))
			pre, preB, preT = scratch(B*tc*GH), tc*GH, GH
		}
		cell := be.fn(op, "rnn", "lstm_cell")
		if r.gru {
			cell = be.fn(op, "rnn", "gru_cell")
		}
		for t0 := 0; t0 < L; t0 += tc {
			t1 := min(L, t0+tc)
			proj := nn.GemmArgs{TransB: true, M: t1 - t0, N: GH, K: I, Alpha: 1, LDA: I, LDB: I, LDC: preT,
				StrideA: L * I, StrideC: preB, Batch: B}
			if t1-t0 == L { // the whole batch is one (B·L)-row matrix
				proj.M, proj.Batch, proj.StrideA, proj.StrideC = B*L, 1, 0, 0
			}
			be.gemm(op, r.x.at(t0*I), r.wih, pre, proj)
			if be.persistForward(r, t0, t1, pre, preB, preT, out, c, saved != nil) {
				continue
			}
			for t := t0; t < t1; t++ {
				// h_{t−1}: the previous output row, H0, or none (zeros).
				hp, hpB := r.h0, H
				if t > 0 {
					hp, hpB = out.at((t-1)*H), L*H
				}
				q := hh
				if hp == nil {
					q = nil
				} else {
					be.gemm(op, hp, r.whh, hh, nn.GemmArgs{TransB: true, M: B, N: GH, K: H, Alpha: 1, LDA: hpB, LDB: H,
						LDC: GH, Batch: 1})
				}
				p := pre.at((t - t0) * preT)
				if r.gru {
					be.launch(op, cell, dim(be.blocksFor(B*H, 256)), dim(256), 0, pArg(p), iArg(preB), pArg(q), pArg(r.bih),
						pArg(r.bhh), pArg(hp), iArg(hpB), pArg(out.at(t*H)), iArg(L*H), iArg(B), iArg(H), bArg(saved != nil))
				} else {
					be.launch(op, cell, dim(be.blocksFor(B*H, 256)), dim(256), 0, pArg(p), iArg(preB), pArg(q), pArg(r.bih),
						pArg(r.bhh), pArg(c), pArg(out.at(t*H)), iArg(L*H), iArg(B), iArg(H), bArg(saved != nil))
				}
			}
		}
	}
	if hT != nil {
		switch {
		case L > 0:
			be.copyRows(op, hT, 0, H, out, (L-1)*H, L*H, B, H, false)
		case r.h0 != nil:
			be.copyRows(op, hT, 0, 0, r.h0, 0, 0, 1, B*H, false)
		default:
			be.zero(op, hT, B*H)
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
// saved (B, L, 5H) holds [i f g o c] of every step, in out's type. hT and
// cT may be H0 and C0 (step mode in place).
func (be *Backend) LSTM(out, hT, cT, saved nn.Buffer, a nn.RNNArgs) {
	const op = "LSTM"
	r := be.unpackRNN(op, false, a)
	o := be.buf(out, a.B*a.L*a.H, op, "out")
	h, c := be.optBuf(hT, a.B*a.H, op, "hT"), be.optBuf(cT, a.B*a.H, op, "cT")
	s := be.optBuf(saved, nn.LSTMSavedLen(a.B, a.L, a.H), op, "saved")
	at := be.actType(op, arg{"X", r.x}, arg{"out", o}, arg{"saved", s})
	be.wantOwn(op, arg{"hT", h}, arg{"cT", c})
	be.enter(op)
	defer be.exit()
	be.rnnForwardAs(at, r, o, s, h, c)
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
// saved (B, L, 4H) holds [r z n gh_n] of every step, in out's type.
func (be *Backend) GRU(out, hT, saved nn.Buffer, a nn.RNNArgs) {
	const op = "GRU"
	r := be.unpackRNN(op, true, a)
	o := be.buf(out, a.B*a.L*a.H, op, "out")
	h := be.optBuf(hT, a.B*a.H, op, "hT")
	s := be.optBuf(saved, nn.GRUSavedLen(a.B, a.L, a.H), op, "saved")
	at := be.actType(op, arg{"X", r.x}, arg{"out", o}, arg{"saved", s})
	be.wantOwn(op, arg{"hT", h})
	be.enter(op)
	defer be.exit()
	be.rnnForwardAs(at, r, o, s, h, nil)
}

// LSTMBackward accumulates the gradients of LSTM from out, saved and dout
// (B, L, H) by backpropagation through time (honouring a given H0 and C0,
// as cpukernels does).
func (be *Backend) LSTMBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	be.rnnBackward("LSTMBackward", false, g, a, out, saved, dout, nn.LSTMSavedLen(a.B, a.L, a.H))
}

// GRUBackward is LSTMBackward's counterpart.
func (be *Backend) GRUBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	be.rnnBackward("GRUBackward", true, g, a, out, saved, dout, nn.GRUSavedLen(a.B, a.L, a.H))
}

// rnnBackward runs BPTT into dg (B, L, 4H), the gradients of the gate
// pre-activations, laid out [i f g o] for the LSTM and [r z hn n] for the
// GRU (hn the hidden-side n, n the input-side one): the first G·H columns
// meet Whh, b_hh and h_{t−1}; the input-side columns (all for the LSTM; r,
// z and n for the GRU) meet Wih, b_ih and x. Then every weight gradient is
// a GEMM over all steps, as in cpukernels.
func (be *Backend) rnnBackward(op string, gru bool, g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer, savedLen int) {
	r := be.unpackRNN(op, gru, a)
	B, L, I, H, GH := r.B, r.L, r.I, r.H, r.GH
	os, sv, gs := be.buf(out, B*L*H, op, "out"), be.buf(saved, savedLen, op, "saved"), be.buf(dout, B*L*H, op, "dout")
	dX, dWih, dWhh := be.optBuf(g.X, B*L*I, op, "dX"), be.optBuf(g.Wih, GH*I, op, "dWih"), be.optBuf(g.Whh, GH*H, op, "dWhh")
	dBih, dBhh := be.optBuf(g.Bih, GH, op, "dBih"), be.optBuf(g.Bhh, GH, op, "dBhh")
	at := be.actType(op, arg{"X", r.x}, arg{"out", os}, arg{"dout", gs}, arg{"dX", dX}, arg{"saved", sv})
	be.wantOwn(op, arg{"dWih", dWih}, arg{"dWhh", dWhh}, arg{"dBih", dBih}, arg{"dBhh", dBhh})
	if L == 0 || (dX == nil && dWih == nil && dWhh == nil && dBih == nil && dBhh == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	// Under bf16 the recurrence reads a float32 copy of saved (exact),
	// released when the recurrence is done, and the GRU's a float32 copy of
	// out for h_{t−1}; after it, the GEMMs read float32 copies of x and
	// out, and dX is accumulated in a float32 copy, rounded once into dX at
	// the end, as the reference does. Making the copies the GEMMs need only
	// after the float32 saved is gone keeps the two apart.
	bf16 := at == nn.BFloat16
	f32 := func(b *Buffer, n int) *Buffer {
		c := be.newBuffer(n, be.dtype)
		be.copy(op, c, b, n)
		return c
	}
	var sv32 *Buffer
	if bf16 {
		sv32 = f32(sv, savedLen)
		sv = sv32
		if gru {
			os = f32(os, B*L*H)
			defer be.release(os)
		}
	}
	const DG = 4 // columns of dg per hidden unit, both cells
	rows := B * L
	dg, dh, cy := be.newBuffer(rows*DG*H, be.dtype), be.newBuffer(B*H, be.dtype), be.newBuffer(B*H, be.dtype)
	defer be.release(dg)
	defer be.release(dh)
	defer be.release(cy)
	be.zero(op, cy, B*H)
	cell := be.fnAs(op, at, "rnn", "lstm_cell_bwd")
	if gru {
		cell = be.fnAs(op, at, "rnn", "gru_cell_bwd")
	}
	persisted := be.persistBackward(r, at, dg, sv, os, gs, cy)
	for t := L - 1; t >= 0 && !persisted; t-- {
		var rec *Buffer // dh_t from step t+1 through Whh (nil at the last step)
		if t < L-1 {
			be.gemm(op, dg.at((t+1)*DG*H), r.whh, dh, nn.GemmArgs{M: B, N: H, K: GH, Alpha: 1, LDA: L * DG * H, LDB: H,
				LDC: H, Batch: 1})
			rec = dh
		}
		// The previous state the cell needs: c_{t−1} (LSTM) or h_{t−1} (GRU).
		var prev *Buffer
		prevB := H
		switch {
		case t > 0 && gru:
			prev, prevB = os.at((t-1)*H), L*H
		case t > 0:
			prev, prevB = sv.at((t-1)*r.per+4*H), L*r.per
		case gru:
			prev = r.h0
		default:
			prev = r.c0
		}
		be.launch(op, cell, dim(be.blocksFor(B*H, 256)), dim(256), 0, pArg(dg.at(t*DG*H)), iArg(L*DG*H),
			pArg(sv.at(t*r.per)), iArg(L*r.per), pArg(prev), iArg(prevB), pArg(gs.at(t*H)), iArg(L*H), pArg(rec),
			pArg(cy), iArg(B), iArg(H))
	}
	var dX16 *Buffer
	if bf16 {
		be.release(sv32)
		if dWih != nil {
			r.x = f32(r.x, B*L*I)
			defer be.release(r.x)
		}
		if !gru && dWhh != nil {
			os = f32(os, B*L*H)
			defer be.release(os)
		}
		if dX != nil {
			dX16, dX = dX, f32(dX, B*L*I)
			defer be.release(dX)
		}
	}

	// Input-side column segments of dg and the Wih / b_ih rows they meet.
	type seg struct{ col, row, n int }
	segs := []seg{{0, 0, 4 * H}}
	if gru {
		segs = []seg{{0, 0, 2 * H}, {3 * H, 2 * H, H}}
	}
	for _, s := range segs {
		if dX != nil {
			be.gemm(op, dg.at(s.col), r.wih.at(s.row*I), dX, nn.GemmArgs{
				M: rows, N: I, K: s.n, Alpha: 1, Beta: 1, LDA: DG * H, LDB: I, LDC: I, Batch: 1})
		}
		if dWih != nil {
			be.gemm(op, dg.at(s.col), r.x, dWih.at(s.row*I), nn.GemmArgs{
				TransA: true, M: s.n, N: I, K: rows, Alpha: 1, Beta: 1, LDA: DG * H, LDB: I, LDC: I, Batch: 1})
		}
	}
	if dBih != nil || dBhh != nil {
		sums := be.newBuffer(DG*H, be.dtype)
		defer be.release(sums)
		be.zero(op, sums, DG*H)
		be.colSum(op, sums, dg, nil, nil, nil, rows, DG*H, 0)
		if dBih != nil {
			for _, s := range segs {
				be.copyRows(op, dBih, s.row, 0, sums, s.col, 0, 1, s.n, true)
			}
		}
		if dBhh != nil {
			be.copyRows(op, dBhh, 0, 0, sums, 0, 0, 1, GH, true)
		}
	}
	if dWhh != nil {
		if r.h0 != nil { // the t = 0 rows meet H0
			be.gemm(op, dg, r.h0, dWhh, nn.GemmArgs{
				TransA: true, M: GH, N: H, K: B, Alpha: 1, Beta: 1, LDA: L * DG * H, LDB: H, LDC: H, Batch: 1})
		}
		// Row i of dg meets row i−1 of out, except at t = 0 (the previous
		// sequence's last state): zero those rows (dg is spent otherwise),
		// then one GEMM over the B·L − 1 shifted pairs.
		if B > 1 {
			be.launch(op, be.fn(op, "rnn", "rnn_zero_rows"), dim(be.blocksFor((B-1)*GH, 256)), dim(256), 0, pArg(dg),
				iArg(B), iArg(L*DG*H), iArg(GH))
		}
		if rows > 1 {
			be.gemm(op, dg.at(DG*H), os, dWhh, nn.GemmArgs{
				TransA: true, M: GH, N: H, K: rows - 1, Alpha: 1, Beta: 1, LDA: DG * H, LDB: H, LDC: H, Batch: 1})
		}
	}
	if dX16 != nil {
		be.copy(op, dX16, dX, B*L*I)
	}
}

// rnnThreads, rnnBatchRows, rnnRows and rnnKV are the persistent kernels'
// block size, the batch rows they take at a time, the rows of a warp's item
// and the 4-vectors of a lane's share of a weight row; rnnSpan is the
// columns of an item. rnn.cu gets them as RNN_THREADS, RNN_BC, RNN_ROWS
// and RNN_KV (contract.go).
const (
	rnnThreads   = 256
	rnnBatchRows = 8
	rnnRows      = 8
	rnnKV        = 4
	rnnSpan      = 32 * 4 * rnnKV
)

var _ = defineContract("rnn", contract{consts: func(nn.DType) map[string]int {
	return map[string]int{"RNN_THREADS": rnnThreads, "RNN_BC": rnnBatchRows, "RNN_ROWS": rnnRows, "RNN_KV": rnnKV}
}})

// rnnPlan is a persistent launch: blocks of U hidden units, smem bytes of
// shared memory each.
type rnnPlan struct{ blocks, U, smem int }

// planPersist plans a persistent kernel over H hidden units on sms SMs: U
// units a block, at most one block per SM, each block's share of the
// step's product being rows(U) rows of cols columns held in registers as
// warp items of rnnRows rows × rnnSpan columns. ok is false where that
// does not fit: more items than warps, more shared memory than maxSmem, a
// barrier count that would wrap, or float64 (esize 8), whose weights would
// need twice the registers.
func planPersist(H, L, cols, esize, sms, maxSmem int, rows func(U int) int) (p rnnPlan, ok bool) {
	if esize != 4 {
		return p, false
	}
	p.U = (H + max(1, sms) - 1) / max(1, sms)
	p.blocks = (H + p.U - 1) / p.U
	nkc := (cols + rnnSpan - 1) / rnnSpan
	items := (rows(p.U) + rnnRows - 1) / rnnRows * nkc
	p.smem = (rnnBatchRows*nkc*rnnSpan + rnnThreads/32*rnnRows*rnnBatchRows) * esize // staged rows, partial sums
	return p, items <= rnnThreads/32 && p.smem <= maxSmem && uint64(L)*uint64(p.blocks) < 1<<32
}

// persistPlan is planPersist on this device for kernel name (its build
// for activations of type at), also checking that a block of it can be
// resident (registers): ok false, the caller runs the recurrence per step.
func (be *Backend) persistPlan(op, name string, at nn.DType, H, L, cols int, rows func(U int) int) (*kernel, rnnPlan, bool) {
	if !be.rnnPersistent {
		return nil, rnnPlan{}, false
	}
	p, ok := planPersist(H, L, cols, be.esize(), be.dev.SMs, be.dev.MaxSharedOptin, rows)
	if !ok {
		return nil, p, false
	}
	k := be.fnAs(op, at, "rnn", name)
	be.allowSmem(op, k, p.smem)
	fits, known := k.resident[p.smem]
	if !known {
		perSM, err := be.drv.MaxActiveBlocksPerSM(k.f, rnnThreads, p.smem)
		fits = err == nil && perSM >= 1
		if k.resident == nil {
			k.resident = map[int]bool{}
		}
		k.resident[p.smem] = fits
	}
	if !fits {
		return nil, p, false
	}
	be.rnnPersisted++
	return k, p, true
}

// persistForward runs steps [t0, t1) of r in one launch from their input
// projections in pre (row (b, t) at b·preB + (t − t0)·preT), when it fits.
func (be *Backend) persistForward(r *rnnBufs, t0, t1 int, pre *Buffer, preB, preT int, out, c *Buffer, save bool) bool {
	G, H, L := 4, r.H, r.L
	name := "lstm_persist"
	if r.gru {
		G, name = 3, "gru_persist"
	}
	k, p, ok := be.persistPlan(r.op, name, be.dtype, H, t1-t0, H, func(U int) int { return G * U })
	if !ok {
		return false
	}
	bar := be.newBuffer(1, be.dtype)
	defer be.release(bar)
	be.zero(r.op, bar, 1)
	h0, h0B := r.h0, H // h_{t0−1}: H0 (nil: zeros) or the previous chunk's last output
	if t0 > 0 {
		h0, h0B = out.at((t0-1)*H), L*H
	}
	args := []uint64{pArg(pre), iArg(preB), iArg(preT), pArg(r.whh), pArg(r.bih), pArg(r.bhh), pArg(h0), iArg(h0B)}
	if !r.gru {
		args = append(args, pArg(c))
	}
	args = append(args, pArg(out.at(t0*H)), iArg(L*H), iArg(r.B), iArg(t1-t0), iArg(H), iArg(p.U), bArg(save), pArg(bar))
	be.launchCooperative(r.op, k, dim(p.blocks), dim(rnnThreads), p.smem, args...)
	return true
}

// persistBackward runs the backward recurrence (into dg, carrying cy) in
// one launch, when it fits; dout is of type at, the others of the
// backend's type.
func (be *Backend) persistBackward(r *rnnBufs, at nn.DType, dg, sav, out, dout, cy *Buffer) bool {
	G, H, L := 4, r.H, r.L
	name := "lstm_persist_bwd"
	prv, prvB, prvT, prev0 := sav.at(4*H), L*r.per, r.per, r.c0 // c_{t−1}
	if r.gru {
		G, name = 3, "gru_persist_bwd"
		prv, prvB, prvT, prev0 = out, L*H, H, r.h0 // h_{t−1}
	}
	k, p, ok := be.persistPlan(r.op, name, at, H, L, G*H, func(U int) int { return U })
	if !ok {
		return false
	}
	bar := be.newBuffer(1, be.dtype)
	defer be.release(bar)
	be.zero(r.op, bar, 1)
	const DG = 4
	be.launchCooperative(r.op, k, dim(p.blocks), dim(rnnThreads), p.smem, pArg(dg), iArg(L*DG*H), iArg(DG*H), pArg(sav),
		iArg(L*r.per), iArg(r.per), pArg(prv), iArg(prvB), iArg(prvT), pArg(prev0), pArg(dout), iArg(L*H), pArg(r.whh),
		pArg(cy), iArg(r.B), iArg(L), iArg(H), iArg(p.U), pArg(bar))
	return true
}
