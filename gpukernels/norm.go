package gpukernels

import "seqbench/nn"

// rowThreads is the block size of a one-block-per-row kernel for rows of
// length d: a multiple of 32 up to 256, so short rows do not idle 8 warps.
func rowThreads(d int) int { return min(256, max(32, (d+31)/32*32)) }

// rowBlocks is the grid of a one-block-per-row kernel (grid-stride).
func (be *Backend) rowBlocks(rows int) int { return max(1, min(rows, be.maxGrid*4)) }

// warpRows reports whether rows of length d take the warp-per-row kernels
// (norm.cu: float32, whole float4s, at most 1024 elements).
func (be *Backend) warpRows(d int) bool {
	return be.dtype == nn.Float32 && d%4 == 0 && d <= 1024
}

// normLaunch runs a norm kernel: the warp-per-row form name+"_warp" when
// warpRows(d), else the block-per-row form.
func (be *Backend) normLaunch(op, name string, rows, d int, args ...uint64) {
	if be.warpRows(d) {
		k := be.fn(op, "norm", name+"_warp")
		be.launch(op, k, dim(be.blocksFor(rows*32, 256)), dim(256), 0, args...)
		return
	}
	k := be.fn(op, "norm", name)
	be.launch(op, k, dim(be.rowBlocks(rows)), dim(rowThreads(d)), 0, args...)
}

// RMSNorm normalises each row of x (rows, d) by its root mean square:
//
//	rstd[r] = 1 / sqrt(Σ_c x[r,c]²/d + eps)
//	out[r,c] = x[r,c]·rstd[r]·w[c]
func (be *Backend) RMSNorm(out, rstd, x, w nn.Buffer, rows, d int, eps float64) {
	const op = "RMSNorm"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	o, rs := be.buf(out, n, op, "out"), be.buf(rstd, rows, op, "rstd")
	xs, ws := be.buf(x, n, op, "x"), be.buf(w, d, op, "w")
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	be.normLaunch(op, "rmsnorm_fwd", rows, d, pArg(o), pArg(rs), pArg(xs), pArg(ws),
		iArg(rows), iArg(d), fArg(eps))
}

// RMSNormBackward accumulates the gradients of RMSNorm, with s = rstd[r]:
//
//	dx[r,c] += s·w[c]·g[r,c] − s³/d · x[r,c] · Σ_k g[r,k]·w[k]·x[r,k]
//	dw[c]   += Σ_r g[r,c]·x[r,c]·s
//
// dx or dw may be nil; dw is a deterministic column sum in double.
func (be *Backend) RMSNormBackward(dx, dw, x, w, rstd, dout nn.Buffer, rows, d int) {
	const op = "RMSNormBackward"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	xs, ws := be.buf(x, n, op, "x"), be.buf(w, d, op, "w")
	rs, gs := be.buf(rstd, rows, op, "rstd"), be.buf(dout, n, op, "dout")
	dX, dW := be.optBuf(dx, n, op, "dx"), be.optBuf(dw, d, op, "dw")
	if rows == 0 || (dX == nil && dW == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	if dX != nil {
		be.normLaunch(op, "rmsnorm_bwd_dx", rows, d, pArg(dX), pArg(xs), pArg(ws), pArg(rs), pArg(gs),
			iArg(rows), iArg(d))
	}
	if dW != nil {
		be.colSum(op, dW, xs, gs, nil, rs, rows, d, 1)
	}
}

// LayerNorm normalises each row of x (rows, d) to zero mean and unit
// (biased) variance, then scales and shifts:
//
//	mean[r] = Σ_c x[r,c]/d
//	rstd[r] = 1 / sqrt(Σ_c (x[r,c] − mean[r])²/d + eps)
//	out[r,c] = (x[r,c] − mean[r])·rstd[r]·w[c] + b[c]
//
// b may be nil (no bias).
func (be *Backend) LayerNorm(out, mean, rstd, x, w, b nn.Buffer, rows, d int, eps float64) {
	const op = "LayerNorm"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	o, xs, ws := be.buf(out, n, op, "out"), be.buf(x, n, op, "x"), be.buf(w, d, op, "w")
	ms, rs := be.buf(mean, rows, op, "mean"), be.buf(rstd, rows, op, "rstd")
	bs := be.optBuf(b, d, op, "b")
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	be.normLaunch(op, "layernorm_fwd", rows, d, pArg(o), pArg(ms), pArg(rs), pArg(xs), pArg(ws),
		pArg(bs), iArg(rows), iArg(d), fArg(eps))
}

// LayerNormBackward accumulates the gradients of LayerNorm, with
// x̂ = (x[r,c] − mean[r])·rstd[r] and ĝ = g[r,c]·w[c]:
//
//	dx[r,c] += rstd[r]·(ĝ − Σ_k ĝ_k/d − x̂·Σ_k ĝ_k·x̂_k/d)
//	dw[c]   += Σ_r g[r,c]·x̂
//	db[c]   += Σ_r g[r,c]
//
// Any of dx, dw, db may be nil.
func (be *Backend) LayerNormBackward(dx, dw, db, x, w, mean, rstd, dout nn.Buffer, rows, d int) {
	const op = "LayerNormBackward"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	xs, ws, gs := be.buf(x, n, op, "x"), be.buf(w, d, op, "w"), be.buf(dout, n, op, "dout")
	ms, rs := be.buf(mean, rows, op, "mean"), be.buf(rstd, rows, op, "rstd")
	dX, dW, dB := be.optBuf(dx, n, op, "dx"), be.optBuf(dw, d, op, "dw"), be.optBuf(db, d, op, "db")
	if rows == 0 || (dX == nil && dW == nil && dB == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	if dX != nil {
		be.normLaunch(op, "layernorm_bwd_dx", rows, d, pArg(dX), pArg(xs), pArg(ws), pArg(ms), pArg(rs),
			pArg(gs), iArg(rows), iArg(d))
	}
	if dW != nil {
		be.colSum(op, dW, xs, gs, ms, rs, rows, d, 2)
	}
	if dB != nil {
		be.colSum(op, dB, gs, nil, nil, nil, rows, d, 0)
	}
}
