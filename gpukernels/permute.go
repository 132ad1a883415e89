package gpukernels

import "seqbench/nn"

// tiledBatchRank is the most batch dims permute_tiled takes (the plan's
// rank less its two transposed dims).
const tiledBatchRank = 4

// outerDims is the kernel arguments of the first k of a plan's dims and
// their strides, each list padded to slots with dims of 1 and strides of 0.
func outerDims(dims, strides []int, k, slots int) []uint64 {
	args := make([]uint64, 2*slots)
	for i := range slots {
		args[i], args[slots+i] = iArg(1), iArg(0)
		if i < k {
			args[i], args[slots+i] = iArg(dims[i]), iArg(strides[i])
		}
	}
	return args
}

// rowsGrid is permute_rows' launch for rows of inner elements of type at:
// threads per row (tpr: the power of two at or above the row's length in
// elements or, in the bfloat16 build, in vectors of 8, at most 256),
// and the grid: enough blocks to fill the device, each walking many rows,
// a long row spread over grid x as copyGrid spreads it.
func (be *Backend) rowsGrid(at nn.DType, rows, inner int) (tpr, bx, by int) {
	cols := inner
	if at == nn.BFloat16 {
		cols = (inner + 7) / 8
	}
	tpr = 1
	for tpr < 256 && tpr < cols {
		tpr *= 2
	}
	rpb := 256 / tpr
	bx = min((cols+tpr-1)/tpr, 1024)
	by = min((rows+rpb-1)/rpb, max(1, be.maxGrid*8/bx), 65535)
	return tpr, bx, by
}

// Permute writes out = x transposed by perm (out dim i is x dim perm[i]),
// x having the given shape; accumulate adds into out. nn.PlanPermute drops
// dims of size 1 and merges out dims that walk x contiguously. Then a
// permutation that keeps the last dim moves rows (permute_rows); one whose
// dim before the last is x's contiguous one is a batch of transposes
// (permute_tiled, through shared memory); any other maps each out element
// to its x element (permute, a thread per element).
// out and x are both of the backend's type or both bfloat16 (copied
// exactly; a sum rounds once).
func (be *Backend) Permute(out, x nn.Buffer, shape []int, perm []int, accumulate bool) {
	const op = "Permute"
	plan, err := nn.PlanPermute(shape, perm)
	check(op, err)
	n := plan.N
	o := be.buf(out, n, op, "out")
	xs := be.buf(x, n, op, "x")
	at := be.actType(op, arg{"out", o}, arg{"x", xs})
	if n == 0 {
		return
	}
	dims, strides, r := plan.Dims, plan.Strides, plan.Rank
	be.enter(op)
	defer be.exit()
	if r == 0 || (r == 1 && strides[0] == 1) {
		if accumulate {
			be.elementwise(op, at, "axpy", n, pArg(o), pArg(xs), fArg(1), iArg(n))
			return
		}
		be.copy(op, o, xs, n)
		return
	}
	for i := r; i < nn.MaxPermuteRank; i++ {
		dims[i], strides[i] = 1, 0
	}
	small := n < 1<<32
	if strides[r-1] == 1 {
		// Rows of the innermost dim are contiguous in x: copy rows.
		inner := dims[r-1]
		rows := n / inner
		args := append([]uint64{pArg(o), pArg(xs), iArg(rows), iArg(inner), iArg(r - 1)},
			outerDims(dims[:], strides[:], r-1, nn.MaxPermuteRank)...)
		tpr, bx, by := be.rowsGrid(at, rows, inner)
		args = append(args, bArg(accumulate), bArg(small), iArg(tpr))
		k := be.fnAs(op, at, "memory", "permute_rows")
		be.launch(op, k, dim2(bx, by), dim(256), 0, args...)
		return
	}
	if r >= 2 && strides[r-2] == 1 && r-2 <= tiledBatchRank {
		// A batch of transposes: the dim before the last is contiguous in
		// x. Tiles through shared memory keep both sides coalesced.
		A, C := dims[r-2], dims[r-1]
		nb := n / (A * C)
		args := append([]uint64{pArg(o), pArg(xs), iArg(nb), iArg(A), iArg(C), iArg(strides[r-1]), iArg(r - 2)},
			outerDims(dims[:], strides[:], r-2, tiledBatchRank)...)
		args = append(args, bArg(accumulate))
		name, S := "permute_tiled", 32
		if at == nn.BFloat16 { // 64×64 tiles: a warp moves whole 128-byte lines
			name, S = "permute_tiled64", 64
		}
		k := be.fnAs(op, at, "memory", name)
		be.launch(op, k, dim3((C+S-1)/S, (A+S-1)/S, min(nb, 65535)), dim2(32, 8), 0, args...)
		return
	}
	k := be.fnAs(op, at, "memory", "permute")
	args := []uint64{pArg(o), pArg(xs), iArg(n), iArg(r)}
	for _, d := range dims {
		args = append(args, iArg(d))
	}
	for _, s := range strides {
		args = append(args, iArg(s))
	}
	args = append(args, bArg(accumulate), bArg(small))
	be.launch(op, k, dim(be.blocksFor(n, 256)), dim(256), 0, args...)
}
