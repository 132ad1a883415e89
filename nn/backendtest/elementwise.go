package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// Elementwise ops run over n = out.Len() elements, so their outputs carry no
// guard; a longInputs case gives the inputs a NaN tail past n instead, which
// the op must neither read nor size itself by.
type elemCase struct {
	n          int
	longInputs bool
}

var elemCases = []elemCase{{1, false}, {7, false}, {1000, false}, {4099, false}, {13, true}, {1000, true}}

func elemDesc(c elemCase) string {
	if c.longInputs {
		return fmt.Sprintf("n%d_long_inputs", c.n)
	}
	return fmt.Sprintf("n%d", c.n)
}

// elemInput uploads vals, with a NaN tail when the case asks for one.
func (tt *tester) elemInput(c elemCase, vals []float64) (nn.Buffer, []float64) {
	if c.longInputs {
		return tt.input(vals)
	}
	return tt.exact(vals)
}

func testAdd(t *testing.T, b nn.Backend) {
	runCases(t, b, "Add", elemCases, elemDesc, func(tt *tester, c elemCase) {
		a, as := tt.elemInput(c, tt.randn(c.n))
		bb, bs := tt.elemInput(c, tt.randn(c.n))
		out, _ := tt.exact(nans(c.n))
		tt.b.Add(out, a, bb)
		want := make([]float64, c.n)
		for i := range want {
			want[i] = as[i] + bs[i]
		}
		tt.fwd("out", tt.b.Read(out), want)
	})
}

func testMul(t *testing.T, b nn.Backend) {
	runCases(t, b, "Mul", elemCases, elemDesc, func(tt *tester, c elemCase) {
		a, as := tt.elemInput(c, tt.randn(c.n))
		bb, bs := tt.elemInput(c, tt.randn(c.n))
		out, _ := tt.exact(nans(c.n))
		tt.b.Mul(out, a, bb)
		want := make([]float64, c.n)
		for i := range want {
			want[i] = as[i] * bs[i]
		}
		tt.fwd("out", tt.b.Read(out), want)
	})
}

type mulBackCase struct {
	n        int
	noDA     bool
	noDB     bool
	sameBufs bool // a and b are one buffer (x ⊙ x)
}

func testMulBackward(t *testing.T, b nn.Backend) {
	cases := []mulBackCase{{n: 1}, {n: 7}, {n: 300}, {n: 300, noDA: true}, {n: 300, noDB: true}, {n: 31, sameBufs: true}}
	desc := func(c mulBackCase) string {
		return fmt.Sprintf("n%d_noDA%v_noDB%v_same%v", c.n, c.noDA, c.noDB, c.sameBufs)
	}
	runCases(t, b, "MulBackward", cases, desc, func(tt *tester, c mulBackCase) {
		a, as := tt.exact(tt.randn(c.n))
		// With one buffer for both factors the reference still takes two
		// slices, so that each side's difference perturbs one factor.
		bb, bs := a, append([]float64(nil), as...)
		if !c.sameBufs {
			bb, bs = tt.exact(tt.randn(c.n))
		}
		dout, douts := tt.exact(tt.randn(c.n))
		f := func() []float64 {
			out := make([]float64, c.n)
			for i := range out {
				out[i] = as[i] * bs[i]
			}
			return out
		}
		var da, db accum
		var daBuf, dbBuf nn.Buffer
		if !c.noDA {
			da = tt.accum(c.n, false)
			daBuf = da.buf
		}
		if !c.noDB {
			db = tt.accum(c.n, false)
			dbBuf = db.buf
		}
		tt.b.MulBackward(daBuf, dbBuf, a, bb, dout)
		if !c.noDA {
			tt.grad("da", tt.delta("da", da), vjp(f, as, douts))
		}
		if !c.noDB {
			tt.grad("db", tt.delta("db", db), vjp(f, bs, douts))
		}
	})
}

func testAxpy(t *testing.T, b nn.Backend) {
	type axpyCase struct {
		n     int
		alpha float64
	}
	cases := []axpyCase{{1, 1}, {7, -0.7}, {1000, 2.5}, {4099, 1}, {13, 0}}
	desc := func(c axpyCase) string { return fmt.Sprintf("n%d_alpha%g", c.n, c.alpha) }
	runCases(t, b, "Axpy", cases, desc, func(tt *tester, c axpyCase) {
		x, xs := tt.exact(tt.randn(c.n))
		y, ys := tt.exact(tt.randn(c.n))
		tt.b.Axpy(c.alpha, x, y)
		want := make([]float64, c.n)
		for i := range want {
			want[i] = ys[i] + c.alpha*xs[i]
		}
		tt.fwd("y", tt.b.Read(y), want)
		tt.fwd("x unchanged", tt.b.Read(x), xs)
	})
}

func testScale(t *testing.T, b nn.Backend) {
	type scaleCase struct {
		n int
		s float64
	}
	cases := []scaleCase{{1, 2.5}, {7, -1}, {1000, 0.3}, {4099, 0}}
	desc := func(c scaleCase) string { return fmt.Sprintf("n%d_s%g", c.n, c.s) }
	runCases(t, b, "Scale", cases, desc, func(tt *tester, c scaleCase) {
		x, xs := tt.exact(tt.randn(c.n))
		tt.b.Scale(x, c.s)
		want := make([]float64, c.n)
		for i := range want {
			want[i] = c.s * xs[i]
		}
		tt.fwd("x", tt.b.Read(x), want)
	})
}

type actCase struct {
	kind nn.Activation
	n    int
	wide bool // inputs uniform in [−30, 30]: saturation and overflow of naive formulas
}

func actInputs(tt *tester, c actCase) []float64 {
	if c.wide {
		return tt.uniform(c.n, -30, 30)
	}
	// 2·N(0,1), kept 0.05 away from 0 (ReLU's kink) for the differences.
	x := tt.randnAway(c.n, 0.025)
	for i := range x {
		x[i] *= 2
	}
	return x
}

func testAct(t *testing.T, b nn.Backend) {
	var cases []actCase
	for _, k := range activations {
		cases = append(cases, actCase{k, 1, false}, actCase{k, 7, false}, actCase{k, 1000, false}, actCase{k, 1000, true})
	}
	desc := func(c actCase) string { return fmt.Sprintf("%v_n%d_wide%v", c.kind, c.n, c.wide) }
	runCases(t, b, "Act", cases, desc, func(tt *tester, c actCase) {
		x, xs := tt.exact(actInputs(tt, c))
		out, _ := tt.exact(nans(c.n))
		tt.b.Act(c.kind, out, x)
		want := make([]float64, c.n)
		for i, v := range xs {
			want[i] = refAct(c.kind, v)
		}
		tt.fwd("out", tt.b.Read(out), want)
	})
}

func testActBackward(t *testing.T, b nn.Backend) {
	var cases []actCase
	for _, k := range activations {
		cases = append(cases, actCase{k, 1, false}, actCase{k, 7, false}, actCase{k, 200, false})
	}
	desc := func(c actCase) string { return fmt.Sprintf("%v_n%d", c.kind, c.n) }
	runCases(t, b, "ActBackward", cases, desc, func(tt *tester, c actCase) {
		x, xs := tt.exact(actInputs(tt, c))
		dout, douts := tt.exact(tt.randn(c.n))
		dx := tt.accum(c.n, false)
		tt.b.ActBackward(c.kind, dx.buf, x, dout)
		f := func() []float64 {
			out := make([]float64, c.n)
			for i, v := range xs {
				out[i] = refAct(c.kind, v)
			}
			return out
		}
		tt.grad("dx", tt.delta("dx", dx), vjp(f, xs, douts))
	})
}

type rowsCase struct {
	rows, cols int
	inPlace    bool
}

var rowsCases = []rowsCase{{1, 1, false}, {3, 5, false}, {17, 13, false}, {64, 33, false}, {1, 1000, false}, {1000, 3, false}, {17, 13, true}}

func rowsDesc(c rowsCase) string {
	if c.inPlace {
		return fmt.Sprintf("%dx%d_in_place", c.rows, c.cols)
	}
	return fmt.Sprintf("%dx%d", c.rows, c.cols)
}

func testAddBias(t *testing.T, b nn.Backend) {
	runCases(t, b, "AddBias", rowsCases, rowsDesc, func(tt *tester, c rowsCase) {
		n := c.rows * c.cols
		x, xs := tt.input(tt.randn(n))
		bias, bs := tt.input(tt.randn(c.cols))
		out := x // out = x, as nn.Linear calls it
		if !c.inPlace {
			out = tt.output(n)
		}
		tt.b.AddBias(out, x, bias, c.rows, c.cols)
		want := make([]float64, n)
		for r := 0; r < c.rows; r++ {
			for k := 0; k < c.cols; k++ {
				want[r*c.cols+k] = xs[r*c.cols+k] + bs[k]
			}
		}
		tt.fwd("out", tt.result("out", out, n), want)
	})
}

func testSumRows(t *testing.T, b nn.Backend) {
	var cases []rowsCase
	for _, c := range rowsCases {
		if !c.inPlace {
			cases = append(cases, c)
		}
	}
	runCases(t, b, "SumRows", cases, rowsDesc, func(tt *tester, c rowsCase) {
		x, xs := tt.input(tt.randn(c.rows * c.cols))
		out := tt.accum(c.cols, true)
		tt.b.SumRows(out.buf, x, c.rows, c.cols)
		want := make([]float64, c.cols)
		for r := 0; r < c.rows; r++ {
			for k := 0; k < c.cols; k++ {
				want[k] += xs[r*c.cols+k]
			}
		}
		tt.fwd("out after − before", tt.delta("out", out), want)
	})
}

var reduceSizes = []int{1, 2, 7, 1000, 10007}

// testSum measures the error against Σ|x|, the scale a sum's rounding error
// is relative to (the sum itself may cancel to near 0).
func testSum(t *testing.T, b nn.Backend) {
	runCases(t, b, "Sum", reduceSizes, sizeDesc, func(tt *tester, n int) {
		x, xs := tt.exact(tt.randn(n))
		got := tt.b.Sum(x)
		want, abs := 0.0, 0.0
		for _, v := range xs {
			want += v
			abs += math.Abs(v)
		}
		if e := math.Abs(got - want); !(e <= tt.fwdTol*abs) {
			tt.Errorf("Sum = %.12g, want %.12g: |error| %.3g > %.1g·Σ|x|", got, want, e, tt.fwdTol)
		}
	})
}

func testSumSquares(t *testing.T, b nn.Backend) {
	runCases(t, b, "SumSquares", reduceSizes, sizeDesc, func(tt *tester, n int) {
		vals := tt.randn(n)
		x, xs := tt.exact(vals)
		want := 0.0
		for _, v := range xs {
			want += v * v
		}
		tt.fwd("sum of squares", []float64{tt.b.SumSquares(x)}, []float64{want})
		for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			i := tt.rng.IntN(n)
			vals[i] = bad
			tt.b.Write(x, vals)
			if s := tt.b.SumSquares(x); !math.IsNaN(s) && !math.IsInf(s, 0) {
				tt.Errorf("SumSquares with x[%d] = %v is %v, want non-finite", i, bad, s)
			}
			vals[i] = xs[i]
		}
	})
}

// testSumSquaresEach checks nn.SumSquaresEach against SumSquares of each
// buffer, bit for bit (a backend's one-round-trip form must not change the
// grad norm), over buffers of several sizes including an empty one, of
// every element type the backend stores (activations too on a mixed
// backend), with one buffer non-finite in the second round.
func testSumSquaresEach(t *testing.T, b nn.Backend) {
	runCases(t, b, "SumSquaresEach", []int{1}, func(int) string { return "mixed" }, func(tt *tester, _ int) {
		sizes := append([]int{0}, reduceSizes...)
		var xs []nn.Buffer
		for _, n := range sizes {
			x, _ := tt.exact(tt.randn(n))
			xs = append(xs, x)
		}
		if m, ok := b.(nn.MixedBackend); ok && m.ActDType() != b.DType() {
			for _, n := range []int{5, 3000} {
				x, _ := tt.exactAs(m.ActDType(), tt.randn(n))
				xs = append(xs, x)
			}
		}
		check := func(round string) {
			got := nn.SumSquaresEach(tt.b, xs)
			if len(got) != len(xs) {
				tt.Fatalf("%s: SumSquaresEach of %d buffers returned %d values", round, len(xs), len(got))
			}
			for i, x := range xs {
				want := tt.b.SumSquares(x)
				if math.Float64bits(got[i]) != math.Float64bits(want) {
					tt.Errorf("%s: SumSquaresEach[%d] (len %d) = %v, SumSquares = %v", round, i, x.Len(), got[i], want)
				}
			}
		}
		check("finite")
		bad := tt.randn(xs[3].Len())
		bad[len(bad)/2] = math.Inf(-1)
		tt.b.Write(xs[3], bad)
		check("one buffer with -Inf")
		if s := nn.SumSquaresEach(tt.b, nil); len(s) != 0 {
			tt.Errorf("SumSquaresEach of no buffers = %v, want empty", s)
		}
	})
}
