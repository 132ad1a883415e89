package backendtest

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

func testEmbedding(t *testing.T, b nn.Backend) {
	type embCase struct {
		V, d int
		ids  []int32 // nil: n random ids
		n    int
	}
	cases := []embCase{
		{V: 1, d: 1, ids: []int32{0, 0, 0}},
		{V: 7, d: 5, n: 11},
		{V: 3, d: 33, ids: []int32{2, 0, 2, 2, 1}},
		{V: 50, d: 16, n: 40},
		{V: 13, d: 3, ids: []int32{12}},
		{V: 1000, d: 7, n: 300},
	}
	desc := func(c embCase) string { return fmt.Sprintf("V%d_d%d_n%d", c.V, c.d, max(c.n, len(c.ids))) }
	runCases(t, b, "Embedding", cases, desc, func(tt *tester, c embCase) {
		ids := c.ids
		if ids == nil {
			ids = tt.ids(c.n, c.V)
			ids[0] = int32(c.V - 1) // the last row, off-by-one territory
			ids[len(ids)-1] = ids[0]
		}
		n := len(ids) * c.d
		table, ts := tt.input(tt.randn(c.V * c.d))
		out := tt.output(n)
		tt.b.Embedding(out, table, ids, c.d)
		tt.fwd("out", tt.result("out", out, n), refEmbedding(ts, ids, c.d))

		if c.V*c.d > 2000 {
			return // the differences cost V·d forwards
		}
		dout, douts := tt.input(tt.randn(n))
		dtable := tt.accum(c.V*c.d, true)
		tt.b.EmbeddingBackward(dtable.buf, dout, ids, c.d)
		f := func() []float64 { return refEmbedding(ts, ids, c.d) }
		tt.grad("dtable", tt.delta("dtable", dtable), vjp(f, ts, douts))
	})
}

type ceCase struct {
	rows, V    int
	ignore     int32
	ignored    []int // rows whose target is set to ignore
	offset     bool  // logits shifted far up: exp of the raw logits overflows
	noBackward bool
}

func testCrossEntropy(t *testing.T, b nn.Backend) {
	cases := []ceCase{
		{rows: 1, V: 1, ignore: -100},
		{rows: 1, V: 2, ignore: -100},
		{rows: 5, V: 7, ignore: -100, ignored: []int{1, 4}},
		{rows: 17, V: 33, ignore: 0}, // a pad id inside the vocabulary
		{rows: 3, V: 5, ignore: -1, ignored: []int{0, 1, 2}},
		{rows: 6, V: 11, ignore: -100, ignored: []int{2}, offset: true},
		{rows: 9, V: 1000, ignore: -100, ignored: []int{3}, noBackward: true},
	}
	desc := func(c ceCase) string {
		s := fmt.Sprintf("%dx%d_ignore%d_%dignored", c.rows, c.V, c.ignore, len(c.ignored))
		if c.offset {
			s += "_offset"
		}
		return s
	}
	runCases(t, b, "CrossEntropy", cases, desc, func(tt *tester, c ceCase) {
		n := c.rows * c.V
		lv := tt.randn(n)
		if c.offset {
			// Past exp's overflow: 88.7 in float32, 709.8 in float64.
			off := 100.0
			if tt.b.DType() == nn.Float64 {
				off = 800
			}
			for i := range lv {
				lv[i] = 2*lv[i] + off
			}
		}
		logits, ls := tt.input(lv)
		targets := tt.ids(c.rows, c.V)
		for _, r := range c.ignored {
			targets[r] = c.ignore
		}
		loss, lse := tt.output(c.rows), tt.output(c.rows)
		tt.b.CrossEntropy(loss, lse, logits, targets, c.rows, c.V, c.ignore)
		wantLoss, wantLse := refCrossEntropy(ls, targets, c.rows, c.V, c.ignore)
		tt.fwd("loss", tt.result("loss", loss, c.rows), wantLoss)
		// lse is checked on the rows that count: the backward reads no other.
		gotLse := tt.result("lse", lse, c.rows)
		var gl, wl []float64
		for r, tg := range targets {
			if tg != c.ignore {
				gl, wl = append(gl, gotLse[r]), append(wl, wantLse[r])
			}
		}
		tt.fwd("lse", gl, wl)
		if c.noBackward {
			return
		}

		dloss, dls := tt.input(tt.randn(c.rows)) // a different weight per row
		dlogits := tt.accum(n, true)
		tt.b.CrossEntropyBackward(dlogits.buf, logits, lse, dloss, targets, c.rows, c.V, c.ignore)
		f := func() []float64 { l, _ := refCrossEntropy(ls, targets, c.rows, c.V, c.ignore); return l }
		tt.grad("dlogits", tt.delta("dlogits", dlogits), vjp(f, ls, dls))
	})
}

func testArgmaxRows(t *testing.T, b nn.Backend) {
	type argCase struct{ rows, cols int }
	cases := []argCase{{1, 1}, {3, 7}, {5, 1000}, {64, 33}, {1000, 3}}
	desc := func(c argCase) string { return fmt.Sprintf("%dx%d", c.rows, c.cols) }
	runCases(t, b, "ArgmaxRows", cases, desc, func(tt *tester, c argCase) {
		v := tt.randn(c.rows * c.cols)
		for i := range v {
			v[i] -= 10 // all negative: a maximum started at 0 never moves
		}
		x, xs := tt.input(v)
		got := tt.b.ArgmaxRows(x, c.rows, c.cols)
		if len(got) != c.rows {
			tt.Fatalf("ArgmaxRows returned %d indices, want %d", len(got), c.rows)
		}
		bad := 0
		for r := 0; r < c.rows; r++ {
			row := xs[r*c.cols : (r+1)*c.cols]
			want := 0
			for j, v := range row {
				if v > row[want] {
					want = j
				}
			}
			if int(got[r]) != want {
				if bad < 5 {
					tt.Errorf("row %d: argmax %d (value %v), want %d (value %v)", r, got[r], row[min(max(int(got[r]), 0), c.cols-1)], want, row[want])
				}
				bad++
			}
		}
		if bad > 5 {
			tt.Errorf("%d of %d rows wrong", bad, c.rows)
		}
	})
}
