package gpukernels

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestGPUEmbedding(t *testing.T) {
	needGPU(t)
	type eCase struct{ V, d, n int }
	cases := []eCase{{1, 1, 1}, {10, 7, 33}, {16, 64, 5000}, {50257, 300, 2048}, {1000, 1, 100000}, {3, 513, 9}}
	for _, dt := range dtypes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/V%d_d%d_n%d", dt, c.V, c.d, c.n), func(t *testing.T) {
				ck := newChecker(t, dt, "Embedding", uint64(c.V*c.n))
				ids := make([]int32, c.n)
				for i := range ids {
					ids[i] = int32(ck.rng.IntN(c.V))
				}
				table := ck.in(ck.randn(c.V*c.d, 1))
				out := ck.out(c.n*c.d, false)
				ck.g.Embedding(out.g, table.g, ids, c.d)
				ck.c.Embedding(out.c, table.c, ids, c.d)
				ck.fwd("out", out)

				dout := ck.in(ck.randn(c.n*c.d, 1))
				dtable := ck.acc(c.V*c.d, true)
				ck.g.EmbeddingBackward(dtable.g, dout.g, ids, c.d)
				ck.c.EmbeddingBackward(dtable.c, dout.c, ids, c.d)
				ck.grad("dtable", dtable)
			})
		}
	}
	t.Run("bad_id", func(t *testing.T) {
		ck := newChecker(t, 0, "Embedding", 1)
		table, out := ck.alloc(4*3), ck.alloc(3)
		expectPanic(t, "outside the table's [0, 4)", func() { ck.g.Embedding(out, table, []int32{4}, 3) })
	})
}

// TestGroupByID checks the host-side grouping of EmbeddingBackward in
// both of its paths (counting sort and sort).
func TestGroupByID(t *testing.T) {
	ids := []int32{5, 2, 5, 0, 2, 5, 9}
	for _, V := range []int{10, 1 << 20} {
		order, starts, gid := groupByID(ids, V)
		if want := []int32{3, 1, 4, 0, 2, 5, 6}; !slices.Equal(order, want) {
			t.Errorf("V=%d: order %v, want %v", V, order, want)
		}
		if want := []int32{0, 1, 3, 6, 7}; !slices.Equal(starts, want) {
			t.Errorf("V=%d: starts %v, want %v", V, starts, want)
		}
		if want := []int32{0, 2, 5, 9}; !slices.Equal(gid, want) {
			t.Errorf("V=%d: gid %v, want %v", V, gid, want)
		}
	}
}

func TestGPUCrossEntropy(t *testing.T) {
	needGPU(t)
	type ceCase struct {
		rows, V int
		scale   float64
	}
	cases := []ceCase{{1, 1, 1}, {7, 2, 1}, {513, 100, 3}, {64, 50257, 2}, {3, 4099, 30}, {10000, 17, 1}}
	const ignore = -100
	for _, dt := range dtypes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/rows%d_V%d_scale%g", dt, c.rows, c.V, c.scale), func(t *testing.T) {
				ck := newChecker(t, dt, "CrossEntropy", uint64(c.rows*c.V))
				targets := make([]int32, c.rows)
				for i := range targets {
					targets[i] = int32(ck.rng.IntN(c.V))
					if i%5 == 4 {
						targets[i] = ignore
					}
				}
				logits := ck.in(ck.randn(c.rows*c.V, c.scale))
				loss, lse := ck.out(c.rows, false), ck.out(c.rows, false)
				ck.g.CrossEntropy(loss.g, lse.g, logits.g, targets, c.rows, c.V, ignore)
				ck.c.CrossEntropy(loss.c, lse.c, logits.c, targets, c.rows, c.V, ignore)
				ck.fwd("loss", loss)
				ck.fwd("lse", lse)

				dloss := ck.in(ck.randn(c.rows, 1))
				dlogits := ck.acc(c.rows*c.V, false)
				ck.g.CrossEntropyBackward(dlogits.g, logits.g, lse.g, dloss.g, targets, c.rows, c.V, ignore)
				ck.c.CrossEntropyBackward(dlogits.c, logits.c, lse.c, dloss.c, targets, c.rows, c.V, ignore)
				ck.grad("dlogits", dlogits)

				got := ck.g.ArgmaxRows(logits.g, c.rows, c.V)
				want := ck.c.ArgmaxRows(logits.c, c.rows, c.V)
				if !slices.Equal(got, want) {
					t.Errorf("ArgmaxRows differs: got %v, want %v", head(got), head(want))
				}
			})
		}
	}
	t.Run("argmax_ties_and_nan", func(t *testing.T) {
		ck := newChecker(t, 0, "CrossEntropy", 2)
		nan := math.NaN()
		rows := [][]float64{
			{1, 3, 3, 2},     // tie: the first
			{nan, 5, nan, 1}, // NaN wins, the first NaN
			{-1, -1, -1, -1},
			{0, 0, 9, nan},
		}
		cols := 600 // wider than a block, so the ties cross threads
		var vals []float64
		for _, r := range rows {
			full := make([]float64, cols)
			for i := range full {
				full[i] = -10
			}
			for j, v := range r {
				full[j*150+7] = v
			}
			vals = append(vals, full...)
		}
		x := ck.in(vals)
		got, want := ck.g.ArgmaxRows(x.g, len(rows), cols), ck.c.ArgmaxRows(x.c, len(rows), cols)
		if !slices.Equal(got, want) {
			t.Errorf("ArgmaxRows = %v, want %v", got, want)
		}
	})
}

func head(s []int32) []int32 { return s[:min(len(s), 10)] }

// TestGPUUploadRing queues more id uploads than the staging ring has slots,
// with no read in between, changing the host slice right after each call:
// every op must see the ids it was given.
func TestGPUUploadRing(t *testing.T) {
	ck := newChecker(t, 0, "Embedding", 3)
	const V, d, n, calls = 50, 16, 3000, 3*stagingSlots + 1
	table := ck.in(ck.randn(V*d, 1))
	ids := make([]int32, n)
	var outs []pair
	for call := range calls {
		for i := range ids {
			ids[i] = int32((i*7 + call*13) % V)
		}
		out := ck.out(n*d, false)
		ck.g.Embedding(out.g, table.g, ids, d)
		ck.c.Embedding(out.c, table.c, ids, d)
		outs = append(outs, out)
		clear(ids) // the backend must not read the slice after the call
	}
	for i, out := range outs {
		ck.fwd(fmt.Sprintf("call%d", i), out)
	}
}
