package gpukernels

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"seqbench/nn"
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

// TestGPUEmbeddingBFloat16: the bfloat16 cast of the table gathered into a
// bfloat16 out (an exact copy), and a bfloat16 dout scatter-added into the
// float32 master's gradient (see TestGPUNormsBFloat16 for the tolerances).
func TestGPUEmbeddingBFloat16(t *testing.T) {
	needGPU(t)
	type eCase struct{ V, d, n int }
	for _, c := range []eCase{{10, 7, 33}, {16, 64, 5000}, {50257, 300, 2048}, {3, 513, 9}} {
		t.Run(fmt.Sprintf("V%d_d%d_n%d", c.V, c.d, c.n), func(t *testing.T) {
			b := newBFChecker(t, "Embedding", uint64(c.V*c.n))
			ids := make([]int32, c.n)
			for i := range ids {
				ids[i] = int32(b.rng.IntN(c.V))
			}
			table := b.inAs(nn.BFloat16, b.randn(c.V*c.d, 1))
			out := b.outAs(nn.BFloat16, c.n*c.d)
			b.g.Embedding(out.g, table.g, ids, c.d)
			b.c.Embedding(out.c, table.c, ids, c.d)
			b.outH("out", out)

			dout := b.inAs(nn.BFloat16, b.randn(c.n*c.d, 1))
			dtable := b.accAs(nn.Float32, c.V*c.d, 1)
			b.g.EmbeddingBackward(dtable.g, dout.g, ids, c.d)
			b.c.EmbeddingBackward(dtable.c, dout.c, ids, c.d)
			b.accF("dtable", dtable)
		})
	}
}

// TestGPUCrossEntropyBFloat16: bfloat16 logits, float32 loss, lse and
// dloss, the gradient rounded into bfloat16 dlogits (a fresh one, zeros,
// as the tape gives it, and one holding values), and ArgmaxRows on the
// bfloat16 logits, whose ties are common.
func TestGPUCrossEntropyBFloat16(t *testing.T) {
	needGPU(t)
	type ceCase struct {
		rows, V int
		scale   float64
	}
	const ignore = -100
	for _, c := range []ceCase{{7, 2, 1}, {513, 100, 3}, {64, 50257, 2}, {3, 4099, 30}, {10000, 17, 1}} {
		t.Run(fmt.Sprintf("rows%d_V%d_scale%g", c.rows, c.V, c.scale), func(t *testing.T) {
			b := newBFChecker(t, "CrossEntropy", uint64(c.rows*c.V))
			targets := make([]int32, c.rows)
			for i := range targets {
				targets[i] = int32(b.rng.IntN(c.V))
				if i%5 == 4 {
					targets[i] = ignore
				}
			}
			logits := b.inAs(nn.BFloat16, b.randn(c.rows*c.V, c.scale))
			loss, lse := b.outAs(nn.Float32, c.rows), b.outAs(nn.Float32, c.rows)
			b.g.CrossEntropy(loss.g, lse.g, logits.g, targets, c.rows, c.V, ignore)
			b.c.CrossEntropy(loss.c, lse.c, logits.c, targets, c.rows, c.V, ignore)
			b.outF("loss", loss)
			b.outF("lse", lse)

			dloss := b.inAs(nn.Float32, b.randn(c.rows, 1))
			for _, scale := range []float64{0, 1} {
				dlogits := b.accAs(nn.BFloat16, c.rows*c.V, scale)
				b.g.CrossEntropyBackward(dlogits.g, logits.g, lse.g, dloss.g, targets, c.rows, c.V, ignore)
				b.c.CrossEntropyBackward(dlogits.c, logits.c, lse.c, dloss.c, targets, c.rows, c.V, ignore)
				b.accH(fmt.Sprintf("dlogits_before%g", scale), dlogits)
			}

			got := b.g.ArgmaxRows(logits.g, c.rows, c.V)
			want := b.c.ArgmaxRows(logits.c, c.rows, c.V)
			if !slices.Equal(got, want) {
				t.Errorf("ArgmaxRows differs: got %v, want %v", head(got), head(want))
			}
		})
	}
}

// TestEmbeddingCrossEntropyTypes: Embedding's table and out, and
// EmbeddingBackward's dout, are activations (all float32 or all bfloat16),
// its dtable float32; CrossEntropy's logits and dlogits are activations, its
// loss, lse and dloss float32. Other combinations panic naming the buffer
// before the device is touched (see TestNormTypes); the allowed ones pass
// the checks on empty batches.
func TestEmbeddingCrossEntropyTypes(t *testing.T) {
	be := devicelessBackend()
	buf := func(dt nn.DType) func(int) *Buffer {
		return func(n int) *Buffer { return &Buffer{n: n, dt: dt, be: be} }
	}
	h, f, d := buf(nn.BFloat16), buf(nn.Float32), buf(nn.Float64)
	ids := []int32{1, 0}
	expectPanic(t, "Embedding: out is float32 but table is bfloat16", func() { be.Embedding(f(6), h(6), ids, 3) })
	expectPanic(t, "Embedding: table is float64, must be float32 or bfloat16", func() { be.Embedding(f(6), d(6), ids, 3) })
	expectPanic(t, "EmbeddingBackward: dtable is bfloat16, must be float32", func() { be.EmbeddingBackward(h(6), h(6), ids, 3) })
	expectPanic(t, "EmbeddingBackward: dout is float64, must be float32 or bfloat16", func() {
		be.EmbeddingBackward(f(6), d(6), ids, 3)
	})
	const rows, V = 2, 3
	tg := []int32{0, 2}
	expectPanic(t, "CrossEntropy: loss is bfloat16, must be float32", func() { be.CrossEntropy(h(rows), f(rows), h(rows*V), tg, rows, V, -100) })
	expectPanic(t, "CrossEntropy: lse is bfloat16, must be float32", func() { be.CrossEntropy(f(rows), h(rows), h(rows*V), tg, rows, V, -100) })
	expectPanic(t, "CrossEntropyBackward: lse is bfloat16, must be float32", func() {
		be.CrossEntropyBackward(h(rows*V), h(rows*V), h(rows), f(rows), tg, rows, V, -100)
	})
	expectPanic(t, "CrossEntropyBackward: dloss is bfloat16, must be float32", func() {
		be.CrossEntropyBackward(h(rows*V), h(rows*V), f(rows), h(rows), tg, rows, V, -100)
	})
	expectPanic(t, "CrossEntropyBackward: logits is float32 but dlogits is bfloat16", func() {
		be.CrossEntropyBackward(h(rows*V), f(rows*V), f(rows), f(rows), tg, rows, V, -100)
	})
	for _, act := range []func(int) *Buffer{f, h} {
		be.Embedding(act(0), act(6), nil, 3)
		be.EmbeddingBackward(f(6), act(0), nil, 3)
		be.CrossEntropy(f(0), f(0), act(0), nil, 0, V, -100)
		be.CrossEntropyBackward(act(0), act(0), f(0), f(0), nil, 0, V, -100)
	}
}
