package cpukernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// permuteRef is the definition: out index i reads x at the index j with
// j[perm[d]] = i[d].
func permuteRef(x []float64, shape, perm []int) []float64 {
	rank := len(shape)
	oshape := make([]int, rank)
	for d, p := range perm {
		oshape[d] = shape[p]
	}
	n := len(x)
	out := make([]float64, n)
	idx, j := make([]int, rank), make([]int, rank)
	for o := 0; o < n; o++ {
		rem := o
		for d := rank - 1; d >= 0; d-- {
			idx[d] = rem % oshape[d]
			rem /= oshape[d]
		}
		for d, p := range perm {
			j[p] = idx[d]
		}
		src := 0
		for d := 0; d < rank; d++ {
			src = src*shape[d] + j[d]
		}
		out[o] = x[src]
	}
	return out
}

func TestPermute(t *testing.T) {
	cases := []struct{ shape, perm []int }{
		{[]int{}, []int{}},
		{[]int{5}, []int{0}},
		{[]int{3, 4}, []int{1, 0}},
		{[]int{2, 3, 4}, []int{0, 2, 1}},
		{[]int{2, 1, 4, 5}, []int{0, 2, 1, 3}}, // size-1 dim: a plain copy
		{[]int{2, 3, 4, 5}, []int{0, 2, 1, 3}}, // (B, L, H, D) -> (B, H, L, D)
		{[]int{2, 3, 4, 5}, []int{2, 3, 0, 1}}, // merges into a 2-D transpose
		{[]int{2, 3, 1, 4, 2, 3}, []int{5, 0, 4, 2, 1, 3}},
		{[]int{3, 0, 2}, []int{2, 0, 1}},    // empty
		{[]int{7, 300, 40}, []int{1, 0, 2}}, // over one grain: parallel
		{[]int{7, 300, 40}, []int{2, 1, 0}}, // parallel, strided inner loop
	}
	rng := rand.New(rand.NewPCG(5, 6))
	be := &Backend[float64]{workers: 3}
	for i, c := range cases {
		n := 1
		for _, d := range c.shape {
			n *= d
		}
		x := make([]float64, n)
		for k := range x {
			x[k] = rng.NormFloat64()
		}
		want := permuteRef(x, c.shape, c.perm)
		out := make(Buf[float64], n)
		be.Permute(out, Buf[float64](x), c.shape, c.perm, false)
		ewClose(t, fmt.Sprintf("case %d %v %v", i, c.shape, c.perm), out, want, 0, 0)
		be.Permute(out, Buf[float64](x), c.shape, c.perm, true)
		for k := range want {
			want[k] *= 2
		}
		ewClose(t, fmt.Sprintf("case %d %v %v accumulate", i, c.shape, c.perm), out, want, 0, 0)
	}
}

func TestPermuteBadArgs(t *testing.T) {
	be := New[float32]()
	b := be.Alloc(64)
	refPanics(t, "repeated", "not a permutation", func() { be.Permute(b, b, []int{2, 2}, []int{0, 0}, false) })
	refPanics(t, "out of range", "not a permutation", func() { be.Permute(b, b, []int{2, 2}, []int{0, 2}, false) })
	refPanics(t, "rank mismatch", "one perm entry per dim", func() { be.Permute(b, b, []int{2, 2}, []int{0}, false) })
	refPanics(t, "rank 7", "rank ≤ 6", func() {
		be.Permute(b, b, []int{1, 1, 1, 1, 1, 1, 1}, []int{0, 1, 2, 3, 4, 5, 6}, false)
	})
	refPanics(t, "short x", "x holds 64 elements, needs 65", func() { be.Permute(be.Alloc(65), b, []int{5, 13}, []int{1, 0}, false) })
}
