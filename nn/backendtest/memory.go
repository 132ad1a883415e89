package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// round is v as the backend's precision stores it.
func round(d nn.DType, v float64) float64 {
	if d == nn.Float32 {
		return float64(float32(v))
	}
	return v
}

func sizeDesc(n int) string { return fmt.Sprintf("n%d", n) }

var memSizes = []int{1, 2, 7, 1000, 4099}

func testMemory(t *testing.T, b nn.Backend) {
	runCases(t, b, "Memory", memSizes, sizeDesc, func(tt *tester, n int) {
		buf := tt.alloc(n)
		for i, v := range tt.b.Read(buf) {
			if v != 0 {
				tt.Fatalf("Alloc(%d): element [%d] = %v, want 0 (zero-filled)", n, i, v)
			}
		}
		vals := tt.randn(n)
		vals[0] = math.Inf(-1)
		if n > 1 {
			vals[1] = math.Copysign(0, -1)
		}
		tt.b.Write(buf, vals)
		got := tt.b.Read(buf)
		if len(got) != n {
			tt.Fatalf("Read returned %d elements, want %d", len(got), n)
		}
		for i, v := range vals {
			if want := round(tt.b.DType(), v); got[i] != want {
				tt.Fatalf("Write/Read: element [%d] = %v, want %v", i, got[i], want)
			}
		}
	})
}

func testFill(t *testing.T, b nn.Backend) {
	runCases(t, b, "Fill", memSizes, sizeDesc, func(tt *tester, n int) {
		for _, v := range []float64{-2.5, 0, math.NaN()} {
			buf, _ := tt.exact(tt.randn(n))
			tt.b.Fill(buf, v)
			for i, g := range tt.b.Read(buf) {
				if !same(g, v) {
					tt.Fatalf("Fill(%v): element [%d] = %v", v, i, g)
				}
			}
		}
	})
}

func testCopy(t *testing.T, b nn.Backend) {
	runCases(t, b, "Copy", memSizes, sizeDesc, func(tt *tester, n int) {
		src, want := tt.exact(tt.randn(n))
		dst, _ := tt.exact(nans(n))
		tt.b.Copy(dst, src)
		tt.fwd("dst", tt.b.Read(dst), want)
		tt.fwd("src", tt.b.Read(src), want)
	})
}

type copyBlockCase struct {
	dstOff, dstStride, srcOff, srcStride, rows, cols int
	accumulate                                       bool
}

func testCopyBlock(t *testing.T, b nn.Backend) {
	var cases []copyBlockCase
	for _, acc := range []bool{false, true} {
		cases = append(cases,
			copyBlockCase{0, 1, 0, 1, 1, 1, acc},
			copyBlockCase{0, 4, 0, 4, 3, 4, acc}, // contiguous
			copyBlockCase{2, 7, 0, 3, 5, 3, acc}, // concat: narrow into wide
			copyBlockCase{0, 2, 5, 9, 4, 2, acc}, // slice: wide into narrow
			copyBlockCase{3, 29, 1, 31, 17, 13, acc},
			copyBlockCase{1, 1, 0, 1, 1, 257, acc}, // one long row
			copyBlockCase{0, 5, 4, 1, 11, 1, acc},  // one column
		)
	}
	desc := func(c copyBlockCase) string {
		return fmt.Sprintf("%dx%d_dst%d+%d_src%d+%d_acc%v", c.rows, c.cols, c.dstOff, c.dstStride, c.srcOff, c.srcStride, c.accumulate)
	}
	runCases(t, b, "CopyBlock", cases, desc, func(tt *tester, c copyBlockCase) {
		span := func(off, stride int) int { return off + (c.rows-1)*stride + c.cols }
		nd, ns := span(c.dstOff, c.dstStride)+2, span(c.srcOff, c.srcStride)
		// src is NaN outside the block, dst random everywhere: every element
		// outside the block must keep its value.
		srcVals := nans(ns + 1)
		inBlock := func(n, off, stride int) []bool {
			m := make([]bool, n)
			for r := 0; r < c.rows; r++ {
				for k := 0; k < c.cols; k++ {
					m[off+r*stride+k] = true
				}
			}
			return m
		}
		srcMask := inBlock(ns+1, c.srcOff, c.srcStride)
		for i, in := range srcMask {
			if in {
				srcVals[i] = tt.rng.NormFloat64()
			}
		}
		src, srcStored := tt.upload(srcVals)
		dst, before := tt.upload(tt.randn(nd))
		tt.b.CopyBlock(dst, c.dstOff, c.dstStride, src, c.srcOff, c.srcStride, c.rows, c.cols, c.accumulate)
		got := tt.b.Read(dst)
		want := append([]float64(nil), before...)
		refCopyBlock(want, c.dstOff, c.dstStride, srcStored, c.srcOff, c.srcStride, c.rows, c.cols, c.accumulate)
		mask := inBlock(nd, c.dstOff, c.dstStride)
		var g, w []float64
		outside := make([]bool, nd)
		for i, in := range mask {
			outside[i] = !in
			if in {
				g, w = append(g, got[i]), append(w, want[i])
			}
		}
		tt.fwd("block", g, w)
		tt.untouched("dst", got, before, outside)
	})
}

type permuteCase struct {
	shape, perm []int
	accumulate  bool
}

func testPermute(t *testing.T, b nn.Backend) {
	base := []permuteCase{
		{shape: []int{3, 5}, perm: []int{1, 0}},
		{shape: []int{3, 5}, perm: []int{0, 1}},
		{shape: []int{1, 7}, perm: []int{1, 0}},
		{shape: []int{2, 3, 4}, perm: []int{0, 2, 1}},
		{shape: []int{2, 3, 4}, perm: []int{2, 0, 1}},
		{shape: []int{5, 1, 3}, perm: []int{1, 2, 0}},
		{shape: []int{2, 7, 3, 5}, perm: []int{0, 2, 1, 3}}, // (B, L, H, Dh) -> (B, H, L, Dh)
		{shape: []int{2, 3, 5, 4}, perm: []int{3, 1, 0, 2}},
		{shape: []int{3, 2, 1, 4}, perm: []int{0, 1, 3, 2}},
		{shape: []int{2, 1, 3, 2, 3}, perm: []int{4, 2, 0, 3, 1}},
		{shape: []int{3, 2, 2, 5, 2}, perm: []int{0, 3, 1, 4, 2}},
		{shape: []int{1, 2, 2, 3, 1, 2}, perm: []int{5, 3, 1, 0, 2, 4}},
	}
	var cases []permuteCase
	for _, acc := range []bool{false, true} {
		for _, c := range base {
			c.accumulate = acc
			cases = append(cases, c)
		}
	}
	desc := func(c permuteCase) string { return fmt.Sprintf("%v_%v_acc%v", c.shape, c.perm, c.accumulate) }
	runCases(t, b, "Permute", cases, desc, func(tt *tester, c permuteCase) {
		n := nn.NumElems(c.shape)
		x, xs := tt.input(tt.randn(n))
		want := refPermute(xs, c.shape, c.perm)
		if !c.accumulate {
			out := tt.output(n)
			tt.b.Permute(out, x, c.shape, c.perm, false)
			tt.fwd("out", tt.result("out", out, n), want)
			return
		}
		out := tt.accum(n, true)
		tt.b.Permute(out.buf, x, c.shape, c.perm, true)
		tt.fwd("out after − before", tt.delta("out", out), want)
	})
}
