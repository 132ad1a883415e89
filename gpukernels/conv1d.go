package gpukernels

import (
	"fmt"

	"seqbench/nn"
)

// conv1dTiledFromEnv is the backend's conv1dTiled at creation: on unless
// SEQBENCH_CONV1D_TILED=0.
func conv1dTiledFromEnv() bool { return envSwitch("SEQBENCH_CONV1D_TILED") }

// The tiled kernels (conv1d.cu): a thread owns convCT consecutive
// positions of a row, up to convTiledThreads threads a block; widths up
// to convTiledMaxW.
const (
	convCT           = 8
	convTiledThreads = 256
	convTiledMaxW    = 4
)

var _ = defineContract("conv1d", contract{consts: func(nn.DType) map[string]int {
	return map[string]int{"CONV_CT": convCT}
}})

// useConv1DTiled reports whether a call of width W runs on the tiled kernels.
func (be *Backend) useConv1DTiled(L, W int) bool {
	return be.conv1dTiled && W <= convTiledMaxW && L > 0
}

// tiledGrid is the launch of the tiled kernels: threads (a multiple of 32)
// covering a row's L positions in segments of threads·convCT, one segment a
// block in x, rows in y (grid stride).
func (be *Backend) tiledGrid(rows, L int) (gx, gy, threads int) {
	per := (L + convCT - 1) / convCT
	threads = min(convTiledThreads, max(32, (per+31)/32*32))
	gx = (per + threads - 1) / threads
	return gx, min(rows, 65535), threads
}

// rowGrid is the grid of a kernel that gives blockIdx.y to rows and the
// threads of a block to consecutive positions of a row of length L (both
// grid-stride). About 8·maxGrid blocks in all: a block per row of a large
// tensor would spend more time starting blocks than in them (measured:
// Conv1D at 131072 blocks ran at 700 GB/s).
func (be *Backend) rowGrid(rows, L, threads int) (int, int) {
	gx := max(1, min((L+threads-1)/threads, be.maxGrid))
	return gx, max(1, min(rows, be.maxGrid*8/gx, 65535))
}

// Conv1D is the causal depthwise convolution of x (B, C, L) with w (C, W)
// and optional bias (C), then act (Identity or SiLU). With x[b,c,t] for
// t < 0 taken from state[b,c,W−1+t] (zeros when state is nil):
//
//	out[b,c,t] = act(bias[c] + Σ_k w[c,k]·x[b,c,t−W+1+k])
//
// A given state (B, C, W−1) is then overwritten with the last W−1 inputs of
// [state, x] (step mode). One thread an output (conv1d.cu); at L = 1 one
// launch, a thread a row, computes the output and advances the state.
//
// x and out are activations, of the backend's type or both bfloat16; w
// and bias are of the backend's type, and the state too or, with bfloat16
// activations, bfloat16 (it holds copies of the inputs: exact either way).
func (be *Backend) Conv1D(out, x, w, bias, state nn.Buffer, B, C, L, W int, act nn.Activation) {
	const op = "Conv1D"
	check(op, nn.CheckConv1D(B, C, L, W, act))
	n, S := B*C*L, W-1
	o, xs, ws := be.buf(out, n, op, "out"), be.buf(x, n, op, "x"), be.buf(w, C*W, op, "w")
	bs, ss := be.optBuf(bias, C, op, "bias"), be.optBuf(state, B*C*S, op, "state")
	at := be.actType(op, arg{"x", xs}, arg{"out", o})
	be.wantOwn(op, arg{"w", ws}, arg{"bias", bs})
	stbf := be.stateType(op, at, arg{"state", ss})
	rows := B * C
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	if L == 1 {
		be.launch(op, be.fnAs(op, at, "conv1d", "conv1d_step"), dim(be.blocksFor(rows, 128)), dim(128), 0, pArg(o),
			pArg(ss), bArg(stbf), pArg(xs), pArg(ws), pArg(bs), iArg(rows), iArg(C), iArg(W), bArg(act == nn.SiLU))
		return
	}
	if be.useConv1DTiled(L, W) {
		be.conv1dTiles++
		gx, gy, threads := be.tiledGrid(rows, L)
		be.launch(op, be.fnAs(op, at, "conv1d", fmt.Sprintf("conv1d_fwd_tiled%d", W)), dim2(gx, gy), dim(threads), 0,
			pArg(o), pArg(xs), pArg(ws), pArg(bs), pArg(ss), bArg(stbf), iArg(rows), iArg(C), iArg(L), bArg(act == nn.SiLU))
	} else if L > 0 {
		gx, gy := be.rowGrid(rows, L, 256)
		be.launch(op, be.fnAs(op, at, "conv1d", "conv1d_fwd"), dim2(gx, gy), dim(256), 0, pArg(o), pArg(xs), pArg(ws),
			pArg(bs), pArg(ss), bArg(stbf), iArg(rows), iArg(C), iArg(L), iArg(W), bArg(act == nn.SiLU))
	}
	if ss != nil && S > 0 && L > 0 {
		// After the forward in stream order: it read the old state.
		be.launch(op, be.fnAs(op, at, "conv1d", "conv1d_state"), dim(be.blocksFor(rows, 128)), dim(128), 0, pArg(ss),
			bArg(stbf), pArg(xs), iArg(rows), iArg(L), iArg(S))
	}
}

// Conv1DBackward accumulates the gradients of Conv1D started from a zero
// state, with dp = act'(p)·dout (p the recomputed pre-activation):
//
//	dx[b,c,t−W+1+k] += w[c,k]·dp[b,c,t]      (for t−W+1+k ≥ 0)
//	dw[c,k]         += Σ_{b,t} dp[b,c,t]·x[b,c,t−W+1+k]
//	dbias[c]        += Σ_{b,t} dp[b,c,t]
//
// Any of dx, dw, dbias may be nil. dw and dbias are per-channel double sums
// in a fixed order (deterministic). x, dout and dx are activations (all of
// the backend's type or all bfloat16); w, bias, dw and dbias are of the
// backend's type. act'(p)·dout is float math: under SiLU it goes through a
// scratch buffer of the backend's type, never rounded to bfloat16.
func (be *Backend) Conv1DBackward(dx, dw, dbias, x, w, bias, dout nn.Buffer, B, C, L, W int, act nn.Activation) {
	const op = "Conv1DBackward"
	check(op, nn.CheckConv1D(B, C, L, W, act))
	n := B * C * L
	xs, ws, gs := be.buf(x, n, op, "x"), be.buf(w, C*W, op, "w"), be.buf(dout, n, op, "dout")
	bs := be.optBuf(bias, C, op, "bias")
	dX, dW, dB := be.optBuf(dx, n, op, "dx"), be.optBuf(dw, C*W, op, "dw"), be.optBuf(dbias, C, op, "dbias")
	at := be.actType(op, arg{"x", xs}, arg{"dout", gs}, arg{"dx", dX})
	be.wantOwn(op, arg{"w", ws}, arg{"bias", bs}, arg{"dw", dW}, arg{"dbias", dB})
	if n == 0 || (dX == nil && dW == nil && dB == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	rows := B * C
	if be.useConv1DTiled(L, W) {
		be.conv1dBackwardTiled(op, at, dX, dW, dB, xs, ws, bs, gs, B, C, L, W, act)
		return
	}
	gx, gy := be.rowGrid(rows, L, 256)
	// The kernels below read dp when given (SiLU), else dout (identity).
	var dp *Buffer
	if act == nn.SiLU {
		dp = be.newBuffer(n, be.dtype)
		defer be.release(dp)
		be.launch(op, be.fnAs(op, at, "conv1d", "conv1d_dp"), dim2(gx, gy), dim(256), 0, pArg(dp), pArg(xs), pArg(ws),
			pArg(bs), pArg(gs), iArg(rows), iArg(C), iArg(L), iArg(W))
	}
	if dX != nil {
		be.launch(op, be.fnAs(op, at, "conv1d", "conv1d_dx"), dim2(gx, gy), dim(256), 0, pArg(dX), pArg(dp), pArg(gs),
			pArg(ws), iArg(rows), iArg(C), iArg(L), iArg(W))
	}
	if dW != nil || dB != nil {
		be.launch(op, be.fnAs(op, at, "conv1d", "conv1d_dw"), dim(min(C, 65535)), dim(256), 0, pArg(dW), pArg(dB),
			pArg(xs), pArg(dp), pArg(gs), iArg(B), iArg(C), iArg(L), iArg(W))
	}
}

// conv1dBackwardTiled is Conv1DBackward on the tiled kernels: one pass
// computes dp in registers, adds into dx and leaves each block's sums for
// dw and dbias in a double scratch, which conv1d_dw_finish adds up per
// channel in a fixed order.
func (be *Backend) conv1dBackwardTiled(op string, at nn.DType, dX, dW, dB, xs, ws, bs, gs *Buffer, B, C, L, W int, act nn.Activation) {
	be.conv1dTiles++
	rows := B * C
	gx, gy, threads := be.tiledGrid(rows, L)
	var part *Buffer
	if dW != nil || dB != nil {
		part = be.newBuffer(rows*gx*(W+1), nn.Float64)
		defer be.release(part)
	}
	be.launch(op, be.fnAs(op, at, "conv1d", fmt.Sprintf("conv1d_bwd_tiled%d", W)), dim2(gx, gy), dim(threads), 0,
		pArg(dX), pArg(part), pArg(xs), pArg(ws), pArg(bs), pArg(gs), iArg(rows), iArg(C), iArg(L), bArg(act == nn.SiLU))
	if part != nil {
		be.launch(op, be.fnAs(op, at, "conv1d", "conv1d_dw_finish"), dim(be.blocksFor(C*(W+1), 128)), dim(128), 0,
			pArg(dW), pArg(dB), pArg(part), iArg(B), iArg(C), iArg(gx), iArg(W))
	}
}
