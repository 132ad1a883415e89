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

// ArgmaxRowsInto is ArgmaxRows with the indices left on the device, as
// values of dst, a buffer of the backend's type (nn.ArgmaxSetter): the
// same kernel's choice, ties and NaNs included.
func (be *Backend) ArgmaxRowsInto(dst, x nn.Buffer, rows, cols int) {
	const op = "ArgmaxRowsInto"
	check(op, nn.CheckRows(rows, cols))
	xs, ds := be.buf(x, rows*cols, op, "x"), be.buf(dst, rows, op, "dst")
	at := be.actType(op, arg{"x", xs})
	be.wantOwn(op, arg{"dst", ds})
	if rows == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	k := be.fnAs(op, at, "cross_entropy", "argmax_rows_into")
	be.launch(op, k, dim(be.rowBlocks(rows)), dim(256), 0, pArg(ds), pArg(xs), iArg(rows), iArg(cols))
}

// MeanLoss sets out[0] = Σ loss / n, n the targets that are not ignore
// (0 when n is 0), without a read-back (nn.DeviceLoss): the sum is Sum's
// reduction, and the division and the rounding happen on the device as
// the host's would. n is derived from targets at each launch of a graph
// that captured the call. out and loss are of the backend's type.
func (be *Backend) MeanLoss(out, loss nn.Buffer, targets []int32, ignore int32) {
	const op = "MeanLoss"
	o, l := be.buf(out, 1, op, "out"), be.buf(loss, -1, op, "loss")
	be.wantOwn(op, arg{"out", o}, arg{"loss", l})
	be.enter(op)
	defer be.exit()
	cnt := be.uploadDerived(op, 1, countTargets(targets, ignore))
	defer be.release(cnt)
	sum := be.newBuffer(1+reduceBlocks(l.n), nn.Float64)
	defer be.release(sum)
	if l.n > 0 {
		be.queueReduce(op, l, false, pArg(sum), pArg(sum)+8)
	} else {
		be.zeroDoubles(op, sum.ptr, 1)
	}
	k := be.fn(op, "cross_entropy", "loss_mean")
	be.launch(op, k, dim(1), dim(1), 0, pArg(o), pArg(sum), pArg(cnt))
}

// MeanLossGrad fills dloss with g[0]/n (1/n when g is nil), 0 when n is 0,
// without a read-back (nn.DeviceLoss), as MeanLoss. dloss and g are of
// the backend's type.
func (be *Backend) MeanLossGrad(dloss, g nn.Buffer, targets []int32, ignore int32) {
	const op = "MeanLossGrad"
	d := be.buf(dloss, -1, op, "dloss")
	gp := uint64(0)
	be.wantOwn(op, arg{"dloss", d})
	if g != nil {
		gb := be.buf(g, 1, op, "g")
		be.wantOwn(op, arg{"g", gb})
		gp = pArg(gb)
	}
	if d.n == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	cnt := be.uploadDerived(op, 1, countTargets(targets, ignore))
	defer be.release(cnt)
	k := be.fn(op, "cross_entropy", "loss_mean_grad")
	be.launch(op, k, dim(be.blocksFor(d.n, 256)), dim(256), 0, pArg(d), gp, pArg(cnt), iArg(d.n))
}

// countTargets fills one word with the number of targets that are not
// ignore (MeanLoss's n).
func countTargets(targets []int32, ignore int32) func(dst []int32) error {
	return func(dst []int32) error {
		n := int32(0)
		for _, t := range targets {
			if t != ignore {
				n++
			}
		}
		dst[0] = n
		return nil
	}
}
