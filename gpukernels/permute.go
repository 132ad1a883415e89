package gpukernels

import (
	"fmt"

	"seqbench/nn"
)

// maxPermuteRank is the kernel's limit (its dims and strides are six
// parameters); cpukernels rejects the same ranks.
const maxPermuteRank = 6

// Permute writes out = x transposed by perm (out dim i is x dim perm[i]),
// x having the given shape; accumulate adds into out. As cpukernels.Permute,
// dims of size 1 are dropped and out dims that walk x contiguously are
// merged, so a permutation that keeps the last dims moves rows; the kernel
// then maps each out element to its x element (one thread per element).
func (be *Backend) Permute(out, x nn.Buffer, shape []int, perm []int, accumulate bool) {
	const op = "Permute"
	rank := len(shape)
	if rank > maxPermuteRank || len(perm) != rank {
		panic(fmt.Sprintf("gpukernels.Permute: perm %v for shape %v (rank ≤ %d, one perm entry per dim)", perm, shape, maxPermuteRank))
	}
	var seen [maxPermuteRank]bool
	for _, p := range perm {
		if p < 0 || p >= rank || seen[p] {
			panic(fmt.Sprintf("gpukernels.Permute: perm %v is not a permutation of 0..%d", perm, rank-1))
		}
		seen[p] = true
	}
	n := 1
	var xstride [maxPermuteRank]int
	for i := rank - 1; i >= 0; i-- {
		if shape[i] < 0 {
			panic(fmt.Sprintf("gpukernels.Permute: negative dim in shape %v", shape))
		}
		xstride[i] = n
		n *= shape[i]
	}
	o := be.buf(out, n, op, "out")
	xs := be.buf(x, n, op, "x")
	if n == 0 {
		return
	}
	var dims, strides [maxPermuteRank]int
	r := 0
	for i := 0; i < rank; i++ {
		d, s := shape[perm[i]], xstride[perm[i]]
		if d == 1 {
			continue
		}
		if r > 0 && strides[r-1] == s*d {
			dims[r-1] *= d
			strides[r-1] = s
			continue
		}
		dims[r], strides[r] = d, s
		r++
	}
	be.enter(op)
	defer be.exit()
	if r == 0 || (r == 1 && strides[0] == 1) {
		if accumulate {
			k := be.fn(op, "elementwise", "axpy")
			be.launch(op, k, dim(be.blocksFor(n, 256)), dim(256), 0, pArg(o), pArg(xs), fArg(1), iArg(n))
			return
		}
		be.copy(op, o, xs, n)
		return
	}
	for i := r; i < maxPermuteRank; i++ {
		dims[i], strides[i] = 1, 0
	}
	small := n < 1<<32
	if strides[r-1] == 1 {
		// Rows of the innermost dim are contiguous in x: copy rows.
		inner := dims[r-1]
		rows := n / inner
		args := []uint64{pArg(o), pArg(xs), iArg(rows), iArg(inner), iArg(r - 1)}
		for i := range maxPermuteRank {
			if i < r-1 {
				args = append(args, iArg(dims[i]))
			} else {
				args = append(args, iArg(1))
			}
		}
		for i := range maxPermuteRank {
			if i < r-1 {
				args = append(args, iArg(strides[i]))
			} else {
				args = append(args, iArg(0))
			}
		}
		args = append(args, bArg(accumulate), bArg(small))
		k := be.fn(op, "memory", "permute_rows")
		bx := min((inner+255)/256, 1024)
		by := min(rows, max(1, be.maxGrid*8/bx), 65535)
		be.launch(op, k, dim2(bx, by), dim(256), 0, args...)
		return
	}
	k := be.fn(op, "memory", "permute")
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
