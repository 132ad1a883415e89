package gpukernels

import "seqbench/nn"

// rowThreads is the block size of a one-block-per-row kernel for rows of
// length d: a multiple of 32 up to 256, so short rows do not idle 8 warps.
func rowThreads(d int) int { return min(256, max(32, (d+31)/32*32)) }

// rowBlocks is the grid of a one-block-per-row kernel (grid-stride).
func (be *Backend) rowBlocks(rows int) int { return max(1, min(rows, be.maxGrid*4)) }

// warpRows reports whether rows of length d take the warp-per-row kernels
// (norm.cu: a float32 backend, float32 or bfloat16 activations, whole
// groups of four, at most 1024 elements).
func (be *Backend) warpRows(d int) bool {
	return be.dtype == nn.Float32 && d%4 == 0 && d <= 1024
}

// normLaunch runs a norm kernel of the build for activations of type at:
// the warp-per-row form name+"_warp" when warpRows(d), else the
// block-per-row form.
func (be *Backend) normLaunch(op string, at nn.DType, name string, rows, d int, args ...uint64) {
	if be.warpRows(d) {
		k := be.fnAs(op, at, "norm", name+"_warp")
		be.launch(op, k, dim(be.blocksFor(rows*32, 256)), dim(256), 0, args...)
		return
	}
	k := be.fnAs(op, at, "norm", name)
	be.launch(op, k, dim(be.rowBlocks(rows)), dim(rowThreads(d)), 0, args...)
}

// RMSNorm normalises each row of x (rows, d) by its root mean square:
//
//	rstd[r] = 1 / sqrt(Σ_c x[r,c]²/d + eps)
//	out[r,c] = x[r,c]·rstd[r]·w[c]
//
// x and out are activations (both bfloat16 or both of the backend's type);
// w and rstd are of the backend's type.
func (be *Backend) RMSNorm(out, rstd, x, w nn.Buffer, rows, d int, eps float64) {
	const op = "RMSNorm"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	o, rs := be.buf(out, n, op, "out"), be.buf(rstd, rows, op, "rstd")
	xs, ws := be.buf(x, n, op, "x"), be.buf(w, d, op, "w")
	at := be.actType(op, arg{"x", xs}, arg{"out", o})
	be.wantOwn(op, arg{"w", ws}, arg{"rstd", rs})
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	be.normLaunch(op, at, "rmsnorm_fwd", rows, d, pArg(o), pArg(rs), pArg(xs), pArg(ws),
		iArg(rows), iArg(d), fArg(eps))
}

// RMSNormBackward accumulates the gradients of RMSNorm, with s = rstd[r]:
//
//	dx[r,c] += s·w[c]·g[r,c] − s³/d · x[r,c] · Σ_k g[r,k]·w[k]·x[r,k]
//	dw[c]   += Σ_r g[r,c]·x[r,c]·s
//
// dx or dw may be nil; dw is a deterministic column sum in double. x, dout
// and dx are activations; w, rstd and dw are of the backend's type.
func (be *Backend) RMSNormBackward(dx, dw, x, w, rstd, dout nn.Buffer, rows, d int) {
	const op = "RMSNormBackward"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	xs, ws := be.buf(x, n, op, "x"), be.buf(w, d, op, "w")
	rs, gs := be.buf(rstd, rows, op, "rstd"), be.buf(dout, n, op, "dout")
	dX, dW := be.optBuf(dx, n, op, "dx"), be.optBuf(dw, d, op, "dw")
	at := be.actType(op, arg{"x", xs}, arg{"dout", gs}, arg{"dx", dX})
	be.wantOwn(op, arg{"w", ws}, arg{"rstd", rs}, arg{"dw", dW})
	if rows == 0 || (dX == nil && dW == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	if dX != nil {
		be.normLaunch(op, at, "rmsnorm_bwd_dx", rows, d, pArg(dX), pArg(xs), pArg(ws), pArg(rs), pArg(gs),
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
// b may be nil (no bias). x and out are activations (both bfloat16 or both
// of the backend's type); w, b, mean and rstd are of the backend's type.
func (be *Backend) LayerNorm(out, mean, rstd, x, w, b nn.Buffer, rows, d int, eps float64) {
	const op = "LayerNorm"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	o, xs, ws := be.buf(out, n, op, "out"), be.buf(x, n, op, "x"), be.buf(w, d, op, "w")
	ms, rs := be.buf(mean, rows, op, "mean"), be.buf(rstd, rows, op, "rstd")
	bs := be.optBuf(b, d, op, "b")
	at := be.actType(op, arg{"x", xs}, arg{"out", o})
	be.wantOwn(op, arg{"w", ws}, arg{"b", bs}, arg{"mean", ms}, arg{"rstd", rs})
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	be.normLaunch(op, at, "layernorm_fwd", rows, d, pArg(o), pArg(ms), pArg(rs), pArg(xs), pArg(ws),
		pArg(bs), iArg(rows), iArg(d), fArg(eps))
}

// LayerNormBackward accumulates the gradients of LayerNorm, with
// x̂ = (x[r,c] − mean[r])·rstd[r] and ĝ = g[r,c]·w[c]:
//
//	dx[r,c] += rstd[r]·(ĝ − Σ_k ĝ_k/d − x̂·Σ_k ĝ_k·x̂_k/d)
//	dw[c]   += Σ_r g[r,c]·x̂
//	db[c]   += Σ_r g[r,c]
//
// Any of dx, dw, db may be nil. x, dout and dx are activations; w, mean,
// rstd, dw and db are of the backend's type.
func (be *Backend) LayerNormBackward(dx, dw, db, x, w, mean, rstd, dout nn.Buffer, rows, d int) {
	const op = "LayerNormBackward"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	xs, ws, gs := be.buf(x, n, op, "x"), be.buf(w, d, op, "w"), be.buf(dout, n, op, "dout")
	ms, rs := be.buf(mean, rows, op, "mean"), be.buf(rstd, rows, op, "rstd")
	dX, dW, dB := be.optBuf(dx, n, op, "dx"), be.optBuf(dw, d, op, "dw"), be.optBuf(db, d, op, "db")
	at := be.actType(op, arg{"x", xs}, arg{"dout", gs}, arg{"dx", dX})
	be.wantOwn(op, arg{"w", ws}, arg{"mean", ms}, arg{"rstd", rs}, arg{"dw", dW}, arg{"db", dB})
	if rows == 0 || (dX == nil && dW == nil && dB == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	if dX != nil {
		be.normLaunch(op, at, "layernorm_bwd_dx", rows, d, pArg(dX), pArg(xs), pArg(ws), pArg(ms), pArg(rs),
			pArg(gs), iArg(rows), iArg(d))
	}
	if dW != nil {
		be.colSum(op, dW, xs, gs, ms, rs, rows, d, 2)
	}
	if dB != nil {
		be.colSum(op, dB, gs, nil, nil, nil, rows, d, 0)
	}
}
