package gpukernels

import (
	"unsafe"

	"seqbench/nn"
)

// CrossEntropy is the softmax cross-entropy of each row of logits (rows, V):
//
//	lse[r] = log Σ_c exp(logits[r,c])        // max-shifted, summed in double
//	loss[r] = lse[r] − logits[r, targets[r]] // 0 when targets[r] == ignore
//
// lse is computed for ignored rows too. It panics when a target other than
// ignore is outside [0, V). logits is an activation (bfloat16 or the
// backend's type); loss and lse are of the backend's type.
func (be *Backend) CrossEntropy(loss, lse, logits nn.Buffer, targets []int32, rows, V int, ignore int32) {
	const op = "CrossEntropy"
	ls, es := be.buf(loss, rows, op, "loss"), be.buf(lse, rows, op, "lse")
	xs := be.buf(logits, rows*V, op, "logits")
	check(op, nn.CheckTargets(targets, rows, V, ignore))
	at := be.actType(op, arg{"logits", xs})
	be.wantOwn(op, arg{"loss", ls}, arg{"lse", es})
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	tb := be.uploadInt32(op, targets[:rows], func(ts []int32) error { return nn.CheckTargets(ts, rows, V, ignore) })
	defer be.release(tb)
	k := be.fnAs(op, at, "cross_entropy", "ce_fwd")
	be.launch(op, k, dim(be.rowBlocks(rows)), dim(rowThreads(V)), 0, pArg(ls), pArg(es), pArg(xs), pArg(tb),
		iArg(rows), iArg(V), iArg(int(ignore)))
}

// CrossEntropyBackward accumulates the gradient of CrossEntropy from the
// lse it saved:
//
//	dlogits[r,c] += dloss[r]·(exp(logits[r,c] − lse[r]) − [c == t_r])
//
// for rows whose target is not ignore; results below the smallest normal
// number are flushed to 0. dlogits and logits are activations; lse and
// dloss are of the backend's type.
func (be *Backend) CrossEntropyBackward(dlogits, logits, lse, dloss nn.Buffer, targets []int32, rows, V int, ignore int32) {
	const op = "CrossEntropyBackward"
	n := rows * V
	ds, xs := be.buf(dlogits, n, op, "dlogits"), be.buf(logits, n, op, "logits")
	es, gs := be.buf(lse, rows, op, "lse"), be.buf(dloss, rows, op, "dloss")
	check(op, nn.CheckTargets(targets, rows, V, ignore))
	at := be.actType(op, arg{"dlogits", ds}, arg{"logits", xs})
	be.wantOwn(op, arg{"lse", es}, arg{"dloss", gs})
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	tb := be.uploadInt32(op, targets[:rows], func(ts []int32) error { return nn.CheckTargets(ts, rows, V, ignore) })
	defer be.release(tb)
	k := be.fnAs(op, at, "cross_entropy", "ce_bwd")
	be.launch(op, k, dim(be.rowBlocks(rows)), dim(rowThreads(V)), 0, pArg(ds), pArg(xs), pArg(es), pArg(gs), pArg(tb),
		iArg(rows), iArg(V), iArg(int(ignore)))
}

// ArgmaxRows returns, for each row of x (rows, cols), the index of its
// largest value, the first one on ties; a NaN counts as larger than any
// number (as torch.argmax). x is of the backend's type or bfloat16.
func (be *Backend) ArgmaxRows(x nn.Buffer, rows, cols int) []int32 {
	const op = "ArgmaxRows"
	check(op, nn.CheckRows(rows, cols))
	xs := be.buf(x, rows*cols, op, "x")
	at := be.actType(op, arg{"x", xs})
	idx := make([]int32, rows)
	if rows == 0 {
		return idx
	}
	be.enter(op)
	defer be.exit()
	ib := be.newBuffer(rows, nn.Float32)
	defer be.release(ib)
	k := be.fnAs(op, at, "cross_entropy", "argmax_rows")
	be.launch(op, k, dim(be.rowBlocks(rows)), dim(256), 0, pArg(ib), pArg(xs), iArg(rows), iArg(cols))
	be.download(op, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(idx))), 4*rows), ib.ptr)
	return idx
}
