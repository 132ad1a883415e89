package gpukernels

import "seqbench/nn"

// Permute writes out = x transposed by perm (out dim i is x dim perm[i]),
// x having the given shape; accumulate adds into out. nn.PlanPermute drops
// dims of size 1 and merges out dims that walk x contiguously, so a permutation that keeps the last dims moves rows; the kernel
// then maps each out element to its x element (one thread per element).
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
		args := []uint64{pArg(o), pArg(xs), iArg(rows), iArg(inner), iArg(r - 1)}
		for i := range nn.MaxPermuteRank {
			if i < r-1 {
				args = append(args, iArg(dims[i]))
			} else {
				args = append(args, iArg(1))
			}
		}
		for i := range nn.MaxPermuteRank {
			if i < r-1 {
				args = append(args, iArg(strides[i]))
			} else {
				args = append(args, iArg(0))
			}
		}
		args = append(args, bArg(accumulate), bArg(small))
		k := be.fnAs(op, at, "memory", "permute_rows")
		bx, by := be.copyGrid(at, false, rows, inner)
		be.launch(op, k, dim2(bx, by), dim(256), 0, args...)
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
