package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// RunBF16Elementwise checks the elementwise, reduction and layout ops of a
// mixed-precision backend in the type combinations that RunBF16 leaves
// out: every operand of the elementwise ops float32 or bfloat16 on its own
// (each position of the type mask), activations with a float32 operand,
// AddBias with a bfloat16 bias (what Linear passes), SumRows into
// bfloat16, CopyBlock and Permute on bfloat16 (and CopyBlock between the
// types), and ArgmaxRows on bfloat16, whose rounding makes ties common.
//
// Tolerances are those of bf16.go. CopyBlock and Permute are checked bit
// for bit instead: a copy is exact, and an accumulated element is one
// float32 addition of two exact values rounded once to the destination's
// type, which every correct kernel computes identically.
func RunBF16Elementwise(t *testing.T, b nn.MixedBackend) {
	t.Run("ElementwiseTypes", func(t *testing.T) { testBF16ElementwiseTypes(t, b) })
	t.Run("ActTypes", func(t *testing.T) { testBF16ActTypes(t, b) })
	t.Run("BiasTypes", func(t *testing.T) { testBF16BiasTypes(t, b) })
	t.Run("CopyBlock", func(t *testing.T) { testBF16CopyBlock(t, b) })
	t.Run("Permute", func(t *testing.T) { testBF16Permute(t, b) })
	t.Run("ArgmaxRows", func(t *testing.T) { testBF16ArgmaxRows(t, b) })
}

// testBF16ElementwiseTypes: Add, Mul and Axpy with each operand's type set
// on its own (dts = out, a, b), and MulBackward with da and db of
// different types.
func testBF16ElementwiseTypes(t *testing.T, b nn.MixedBackend) {
	var cases []dtCase
	for _, dts := range [][]nn.DType{{bf16, fp32, fp32}, {fp32, fp32, bf16}, {fp32, bf16, fp32},
		{bf16, fp32, bf16}, {fp32, fp32, fp32}} {
		cases = append(cases, dtCase{1003, dts})
	}
	cases = append(cases, dtCase{40005, []nn.DType{bf16, fp32, bf16}}, dtCase{40005, []nn.DType{bf16, bf16, bf16}})
	runCases(t, b, "BF16ElementwiseTypes", cases, dtCaseDesc, func(tt *tester, c dtCase) {
		n, od, ad, bd := c.n, c.dts[0], c.dts[1], c.dts[2]
		a, as := tt.exactAs(ad, tt.randn(n))
		bb, bs := tt.exactAs(bd, tt.randn(n))
		sum, prod := make([]float64, n), make([]float64, n)
		for i := range sum {
			sum[i], prod[i] = as[i]+bs[i], as[i]*bs[i]
		}
		out := tt.exactOut(od, n)
		tt.b.Add(out, a, bb)
		tt.checkExactOut("Add", out, sum)
		out = tt.exactOut(od, n)
		tt.b.Mul(out, a, bb)
		tt.checkExactOut("Mul", out, prod)

		// da of out's type, db of b's; a dout of a's.
		dout, douts := tt.exactAs(ad, tt.randn(n))
		da, db := tt.exactAccumAs(od, n), tt.exactAccumAs(bd, n)
		tt.b.MulBackward(da.buf, db.buf, a, bb, dout)
		wa, wb := make([]float64, n), make([]float64, n)
		for i := range wa {
			wa[i], wb[i] = douts[i]*bs[i], douts[i]*as[i]
		}
		tt.checkAccum("MulBackward da", da, wa)
		tt.checkAccum("MulBackward db", db, wb)
		// db alone (da nil): its type mask bit must not shift.
		db = tt.exactAccumAs(bd, n)
		tt.b.MulBackward(nil, db.buf, a, bb, dout)
		tt.checkAccum("MulBackward db alone", db, wb)

		y := tt.exactAccumAs(od, n)
		tt.b.Axpy(2.5, bb, y.buf)
		want := make([]float64, n)
		for i := range want {
			want[i] = 2.5 * bs[i]
		}
		tt.checkAccum("Axpy", y, want)
	})
}

// testBF16ActTypes: activations whose out (or dx) and x, dout differ in
// type.
func testBF16ActTypes(t *testing.T, b nn.MixedBackend) {
	type actCase struct {
		kind nn.Activation
		dts  []nn.DType // out or dx, x, dout
	}
	var cases []actCase
	for _, kind := range []nn.Activation{nn.Identity, nn.ReLU, nn.GELU, nn.SiLU, nn.Exp} {
		for _, dts := range [][]nn.DType{{fp32, bf16, bf16}, {bf16, fp32, bf16}, {bf16, bf16, fp32}} {
			cases = append(cases, actCase{kind, dts})
		}
	}
	desc := func(c actCase) string { return c.kind.String() + "_" + dtDesc(c.dts...) }
	runCases(t, b, "BF16ActTypes", cases, desc, func(tt *tester, c actCase) {
		n := 777
		x, xs := tt.exactAs(c.dts[1], tt.randnAway(n, 0.05))
		out := tt.exactOut(c.dts[0], n)
		tt.b.Act(c.kind, out, x)
		want := make([]float64, n)
		for i, v := range xs {
			want[i] = refAct(c.kind, v)
		}
		tt.checkExactOut("out", out, want)

		dout, douts := tt.exactAs(c.dts[2], tt.randn(n))
		dx := tt.exactAccumAs(c.dts[0], n)
		tt.b.ActBackward(c.kind, dx.buf, x, dout)
		for i, v := range xs {
			h := 1e-6 * max(1, math.Abs(v))
			want[i] = douts[i] * (refAct(c.kind, v+h) - refAct(c.kind, v-h)) / (2 * h)
		}
		tt.checkAccum("dx", dx, want)
	})
}

// testBF16BiasTypes: AddBias in the combinations (out, x, bias) hhh (a
// Linear's cast bias) and fhh, and SumRows into a bfloat16 and a float32
// out.
func testBF16BiasTypes(t *testing.T, b nn.MixedBackend) {
	type biasCase struct {
		shape2
		dts []nn.DType // out, x, bias
	}
	cases := []biasCase{{shape2{1, 1}, []nn.DType{bf16, bf16, bf16}}, {shape2{300, 65}, []nn.DType{bf16, bf16, bf16}},
		{shape2{50, 3}, []nn.DType{bf16, bf16, bf16}}, {shape2{7, 13}, []nn.DType{fp32, bf16, bf16}},
		{shape2{9, 1000}, []nn.DType{bf16, fp32, bf16}}}
	desc := func(c biasCase) string { return shape2Desc(c.shape2) + "_" + dtDesc(c.dts...) }
	runCases(t, b, "BF16BiasTypes", cases, desc, func(tt *tester, c biasCase) {
		n := c.rows * c.cols
		x, xs := tt.inputAs(c.dts[1], tt.randn(n))
		bias, bs := tt.inputAs(c.dts[2], tt.randn(c.cols))
		out := tt.outputAs(c.dts[0], n)
		tt.b.AddBias(out, x, bias, c.rows, c.cols)
		want := make([]float64, n)
		for i := range want {
			want[i] = xs[i] + bs[i%c.cols]
		}
		tt.checkOut("AddBias", out, n, want)

		db := tt.accumAs(c.dts[0], c.cols)
		tt.b.SumRows(db.buf, x, c.rows, c.cols)
		sums := make([]float64, c.cols)
		for i, v := range xs {
			sums[i%c.cols] += v
		}
		tt.checkAccum("SumRows", db, sums)
	})
}

// ewRound is v rounded once to type dt (float32 or bfloat16).
func ewRound(dt nn.DType, v float32) float64 {
	if dt == bf16 {
		return float64(nn.RoundBF16(v))
	}
	return float64(v)
}

// ewSum is what an accumulating copy stores: before + v in float32,
// rounded once to dst's type.
func ewSum(dt nn.DType, before, v float64) float64 {
	return ewRound(dt, float32(before)+float32(v))
}

// ewCheckBits fails on the first element of got that is not want bit for bit.
func (tt *tester) ewCheckBits(name string, got, want []float64) {
	tt.Helper()
	for i := range want {
		if !same(got[i], want[i]) {
			tt.Fatalf("%s: [%d] = %v, want %v", name, i, got[i], want[i])
		}
	}
}

type copyBlockBF16Case struct {
	copyBlockCase
	dst, src nn.DType
}

// testBF16CopyBlock: CopyBlock within bfloat16 and between the types.
func testBF16CopyBlock(t *testing.T, b nn.MixedBackend) {
	var cases []copyBlockBF16Case
	for _, dts := range [][2]nn.DType{{bf16, bf16}, {bf16, fp32}, {fp32, bf16}} {
		for _, acc := range []bool{false, true} {
			// Offsets, strides and widths that are all multiples of 8 (a
			// kernel may move 16 bytes of bfloat16 at once) and not.
			for _, c := range []copyBlockCase{{2, 7, 0, 3, 5, 3, acc}, {3, 29, 1, 31, 17, 13, acc}, {1, 1, 0, 1, 1, 257, acc},
				{0, 3, 0, 0, 4, 3, acc}, {8, 48, 16, 40, 9, 24, acc}, {0, 16, 8, 0, 5, 8, acc}} {
				cases = append(cases, copyBlockBF16Case{c, dts[0], dts[1]})
			}
		}
	}
	desc := func(c copyBlockBF16Case) string {
		return fmt.Sprintf("%s_%dx%d_dst%d+%d_src%d+%d_acc%v", dtDesc(c.dst, c.src), c.rows, c.cols, c.dstOff,
			c.dstStride, c.srcOff, c.srcStride, c.accumulate)
	}
	runCases(t, b, "BF16CopyBlock", cases, desc, func(tt *tester, c copyBlockBF16Case) {
		span := func(off, stride int) int { return off + (c.rows-1)*stride + c.cols }
		nd, ns := span(c.dstOff, c.dstStride)+2, span(c.srcOff, c.srcStride)
		src, srcs := tt.exactAs(c.src, tt.randn(ns))
		dst, before := tt.exactAs(c.dst, tt.randn(nd))
		tt.b.CopyBlock(dst, c.dstOff, c.dstStride, src, c.srcOff, c.srcStride, c.rows, c.cols, c.accumulate)
		want := append([]float64(nil), before...)
		for r := 0; r < c.rows; r++ {
			for k := 0; k < c.cols; k++ {
				d, v := c.dstOff+r*c.dstStride+k, srcs[c.srcOff+r*c.srcStride+k]
				if c.accumulate {
					want[d] = ewSum(c.dst, want[d], v)
				} else {
					want[d] = ewRound(c.dst, float32(v))
				}
			}
		}
		tt.ewCheckBits("dst", tt.readAs("dst", dst, c.dst), want)
	})
}

// testBF16Permute: bfloat16 in and out, through each of Permute's paths (a
// plain copy or sum, rows of the innermost dim, one element at a time).
func testBF16Permute(t *testing.T, b nn.MixedBackend) {
	var cases []permuteCase
	for _, acc := range []bool{false, true} {
		for _, c := range []permuteCase{
			{shape: []int{3, 5}, perm: []int{0, 1}},
			{shape: []int{2, 7, 3, 5}, perm: []int{0, 2, 1, 3}},
			{shape: []int{2, 3, 5, 4}, perm: []int{3, 1, 0, 2}},
			{shape: []int{4, 33, 40}, perm: []int{1, 0, 2}},
			{shape: []int{2, 7, 3, 16}, perm: []int{0, 2, 1, 3}},
		} {
			c.accumulate = acc
			cases = append(cases, c)
		}
	}
	desc := func(c permuteCase) string { return fmt.Sprintf("%v_%v_acc%v", c.shape, c.perm, c.accumulate) }
	runCases(t, b, "BF16Permute", cases, desc, func(tt *tester, c permuteCase) {
		n := nn.NumElems(c.shape)
		x, xs := tt.exactAs(bf16, tt.randn(n))
		want := refPermute(xs, c.shape, c.perm)
		out, before := tt.exactAs(bf16, tt.randn(n))
		if c.accumulate {
			for i := range want {
				want[i] = ewSum(bf16, before[i], want[i])
			}
		}
		tt.b.Permute(out, x, c.shape, c.perm, c.accumulate)
		tt.ewCheckBits("out", tt.readAs("out", out, bf16), want)
	})
}

// testBF16ArgmaxRows: bfloat16 rows with many ties (values on a coarse
// grid), which must go to the first index.
func testBF16ArgmaxRows(t *testing.T, b nn.MixedBackend) {
	cases := []shape2{{1, 1}, {5, 1000}, {64, 33}, {300, 7}}
	runCases(t, b, "BF16ArgmaxRows", cases, shape2Desc, func(tt *tester, c shape2) {
		v := tt.randn(c.rows * c.cols)
		for i := range v {
			v[i] = math.Round(v[i]*4)/4 - 10
		}
		x, xs := tt.exactAs(bf16, v)
		got := tt.b.ArgmaxRows(x, c.rows, c.cols)
		if len(got) != c.rows {
			tt.Fatalf("ArgmaxRows returned %d indices, want %d", len(got), c.rows)
		}
		for r := 0; r < c.rows; r++ {
			row := xs[r*c.cols : (r+1)*c.cols]
			want := 0
			for j, v := range row {
				if v > row[want] {
					want = j
				}
			}
			if int(got[r]) != want {
				tt.Fatalf("row %d: argmax %d, want %d (the first of the largest, %v)", r, got[r], want, row[want])
			}
		}
	})
}
