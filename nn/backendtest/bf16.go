package backendtest

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"seqbench/nn"
)

// The bfloat16 cases of a mixed-precision backend (docs/PRECISION.md).
// Each op receives its buffers in the types the bfloat16 model path gives
// it (activations and their gradients bfloat16; masters' gradients,
// statistics and losses float32) and is compared with the float64
// reference evaluated on the same bfloat16-rounded inputs. What remains is
// then the error of the op's float32 math and of the rounding of its
// bfloat16 outputs, and the tolerances are built from it:
//
//   - a bfloat16 output written once is off by at most u = 2⁻⁸ (bfloat16's
//     unit roundoff) relative to each element, so by u norm-wise, plus the
//     float32 tolerance for the float32 math before the rounding;
//   - a bfloat16 buffer accumulated into (a backward's dx += …) is rounded
//     after the addition: the added part is off by u·|before + added|, so
//     the relative tolerance on the added part is u·‖before+added‖/‖added‖
//     (the conditioning of the sum, computed from the data), plus the
//     float32 gradient tolerance;
//   - a float32 output (statistics, losses, masters' gradients) has the
//     float32 tolerances: its inputs are exact, its math is float32.
//
// Every value read back from a bfloat16 buffer must be a bfloat16 value: a
// kernel that forgot to round an output fails there.

// RunBF16 checks b's bfloat16 buffers and the ops that the bfloat16 model
// path calls with them.
func RunBF16(t *testing.T, b nn.MixedBackend) {
	t.Run("Cast", func(t *testing.T) { testBF16Cast(t, b) })
	t.Run("Elementwise", func(t *testing.T) { testBF16Elementwise(t, b) })
	t.Run("SumSquaresEach", func(t *testing.T) { testSumSquaresEach(t, b) })
	t.Run("AdamW", func(t *testing.T) { testAdamW(t, b) }) // float32 masters, a bfloat16 copy
	t.Run("AdamWEach", func(t *testing.T) { testAdamWEach(t, b) })
	t.Run("ElementwiseTypes", func(t *testing.T) { RunBF16Elementwise(t, b) })
	t.Run("Act", func(t *testing.T) { testBF16Act(t, b) })
	t.Run("Bias", func(t *testing.T) { testBF16Bias(t, b) })
	t.Run("Gemm", func(t *testing.T) { testBF16Gemm(t, b) })
	t.Run("Norms", func(t *testing.T) { testBF16Norms(t, b) })
	t.Run("Embedding", func(t *testing.T) { testBF16Embedding(t, b) })
	t.Run("CrossEntropy", func(t *testing.T) { testBF16CrossEntropy(t, b) })
	t.Run("RoPE", func(t *testing.T) { testBF16RoPE(t, b) })
	t.Run("Attention", func(t *testing.T) { testBF16Attention(t, b) })
	t.Run("AttentionTiles", func(t *testing.T) { RunBF16AttentionTiles(t, b) })
	t.Run("Conv1D", func(t *testing.T) { testBF16Conv1D(t, b) })
	t.Run("Conv1DState", func(t *testing.T) { BF16Conv1DState(t, b) })
	t.Run("SelectiveScan", func(t *testing.T) { testBF16SelectiveScan(t, b) })
	t.Run("SelectiveScanState", func(t *testing.T) { BF16SelectiveScanState(t, b) })
	t.Run("SSD", func(t *testing.T) { testBF16SSD(t, b) })
	t.Run("SSDStates", func(t *testing.T) { RunBF16SSDStates(t, b) })
	t.Run("LSTM", func(t *testing.T) { testBF16RNN(t, b, false) })
	t.Run("GRU", func(t *testing.T) { testBF16RNN(t, b, true) })
	t.Run("LSTMState", func(t *testing.T) { testBF16RNNState(t, b, false) })
	t.Run("GRUState", func(t *testing.T) { testBF16RNNState(t, b, true) })
	t.Run("RNNContracts", func(t *testing.T) { testBF16RNNContracts(t, b) })
	t.Run("FFTConv", func(t *testing.T) { testBF16FFTConv(t, b) })
	t.Run("S4DRecurrent", func(t *testing.T) { testBF16S4DRecurrent(t, b) })
	t.Run("S4DCases", func(t *testing.T) { RunBF16S4D(t, b) })
	t.Run("Contracts", func(t *testing.T) { testBF16Contracts(t, b) })
}

const (
	bf16 = nn.BFloat16
	fp32 = nn.Float32
)

// u is bfloat16's unit roundoff.
const u = nn.BF16UnitRoundoff

func (tt *tester) mixed() nn.MixedBackend { return tt.b.(nn.MixedBackend) }

// inputAs uploads vals plus a NaN guard into a buffer of type dt and
// returns the stored (rounded) values.
func (tt *tester) inputAs(dt nn.DType, vals []float64) (nn.Buffer, []float64) {
	buf := tt.allocAs(len(vals)+1, dt)
	tt.b.Write(buf, append(append([]float64(nil), vals...), math.NaN()))
	stored := tt.readAs("input", buf, dt)
	return buf, stored[:len(vals)]
}

// allocAs allocates n elements of type dt: the backend's own, or another
// of a mixed backend.
func (tt *tester) allocAs(n int, dt nn.DType) nn.Buffer {
	if dt == tt.b.DType() {
		return tt.alloc(n)
	}
	buf := tt.mixed().AllocAs(n, dt)
	tt.bufs = append(tt.bufs, buf)
	if buf.Len() != n {
		tt.Fatalf("AllocAs(%d, %v) returned a buffer of Len %d", n, dt, buf.Len())
	}
	if got := nn.DTypeOf(tt.b, buf); got != dt {
		tt.Fatalf("AllocAs(%d, %v) returned a %v buffer", n, dt, got)
	}
	return buf
}

// readAs reads buf and checks that every value is one of type dt.
func (tt *tester) readAs(name string, buf nn.Buffer, dt nn.DType) []float64 {
	tt.Helper()
	got := tt.b.Read(buf)
	for i, v := range got {
		ok := float64(float32(v)) == v || math.IsNaN(v)
		if dt == bf16 {
			ok = ok && nn.IsBF16(float32(v))
		}
		if !ok {
			tt.Fatalf("%s: element [%d] = %v is not a %v value", name, i, v, dt)
		}
	}
	return got
}

// outputAs is a NaN-poisoned output of n elements of type dt plus a guard.
func (tt *tester) outputAs(dt nn.DType, n int) nn.Buffer {
	buf := tt.allocAs(n+1, dt)
	tt.b.Fill(buf, math.NaN())
	return buf
}

// resultAs reads an outputAs buffer, checks its type's values and guard.
func (tt *tester) resultAs(name string, buf nn.Buffer, n int) []float64 {
	tt.Helper()
	got := tt.readAs(name, buf, nn.DTypeOf(tt.b, buf))
	if len(got) != n+1 {
		tt.Fatalf("%s: Read returned %d elements, want %d", name, len(got), n+1)
	}
	if !math.IsNaN(got[n]) {
		tt.Errorf("%s: guard element [%d] past the output was overwritten with %v", name, n, got[n])
	}
	return got[:n]
}

// accumAs is an accumulated buffer of type dt pre-filled with random
// values and the guard.
func (tt *tester) accumAs(dt nn.DType, n int) accum {
	buf := tt.allocAs(n+1, dt)
	tt.b.Write(buf, append(tt.randn(n), gradGuard))
	return accum{buf, tt.readAs("accum", buf, dt), n}
}

// exactAs and exactAccumAs are inputAs and accumAs without the guard, for
// the elementwise ops, whose length is their buffers'.
func (tt *tester) exactAs(dt nn.DType, vals []float64) (nn.Buffer, []float64) {
	buf := tt.allocAs(len(vals), dt)
	tt.b.Write(buf, vals)
	return buf, tt.readAs("input", buf, dt)
}

func (tt *tester) exactAccumAs(dt nn.DType, n int) accum {
	buf, before := tt.exactAs(dt, tt.randn(n))
	return accum{buf, before, n}
}

// exactOut is an elementwise op's NaN-poisoned output.
func (tt *tester) exactOut(dt nn.DType, n int) nn.Buffer {
	buf := tt.allocAs(n, dt)
	tt.b.Fill(buf, math.NaN())
	return buf
}

// checkExactOut is checkOut for an exactOut buffer.
func (tt *tester) checkExactOut(name string, buf nn.Buffer, want []float64) {
	tt.Helper()
	got := tt.readAs(name, buf, nn.DTypeOf(tt.b, buf))
	tol := tt.fwdTol
	if nn.DTypeOf(tt.b, buf) == bf16 {
		tol += u
	}
	AssertClose(tt, name, got, want, tol)
}

// checkOut compares an output written once: u for the rounding of a
// bfloat16 output plus the float32 forward tolerance.
func (tt *tester) checkOut(name string, buf nn.Buffer, n int, want []float64) {
	tt.Helper()
	got := tt.resultAs(name, buf, n)
	tol := tt.fwdTol
	if nn.DTypeOf(tt.b, buf) == bf16 {
		tol += u
	}
	AssertClose(tt, name, got, want, tol)
}

// checkAccum compares what an op added to an accumulated buffer with want:
// into bfloat16, u times the conditioning ‖before+want‖/‖want‖ of the
// rounded sum, plus the float32 gradient tolerance.
func (tt *tester) checkAccum(name string, a accum, want []float64) {
	tt.Helper()
	tt.checkAccumPlus(name, a, want, 0)
}

// checkAccumPlus is checkAccum with extra added to the tolerance: the
// error of what the op read from bfloat16 beyond its inputs (a saved
// intermediate), derived where it is called.
func (tt *tester) checkAccumPlus(name string, a accum, want []float64, extra float64) {
	tt.Helper()
	tt.readAs(name, a.buf, nn.DTypeOf(tt.b, a.buf))
	got := tt.delta(name, a)
	tol := tt.gradTol + extra
	if nn.DTypeOf(tt.b, a.buf) == bf16 {
		sum := make([]float64, len(want))
		for i := range want {
			sum[i] = a.before[i] + want[i]
		}
		tol += u * norm(sum) / norm(want)
	}
	AssertClose(tt, name, got, want, tol)
}

func norm(x []float64) float64 { return math.Sqrt(dot(x, x)) }

func dtDesc(dts ...nn.DType) string {
	s := ""
	for _, d := range dts {
		if d == bf16 {
			s += "h"
		} else {
			s += "f"
		}
	}
	return s
}

// testBF16Cast checks Write, Read, Fill and Copy between the types: exact
// conversions, one rounding to nearest with ties to even.
func testBF16Cast(t *testing.T, b nn.MixedBackend) {
	runCases(t, b, "BF16Cast", []int{1, 9, 5000}, sizeDesc, func(tt *tester, n int) {
		vals := tt.randn(n)
		// Ties, just-off ties, a value float32 would round onto a tie,
		// subnormals, specials.
		special := []float64{1 + 1.0/256, 1 + 3.0/256, -(1 + 1.0/256 + 1.0/(1<<20)),
			1 + 1.0/256 + math.Ldexp(1, -40), math.Ldexp(1, -134), math.Ldexp(3, -134),
			math.Inf(1), math.Inf(-1), math.NaN(), math.Copysign(0, -1), 3.4e38}
		for i := range vals {
			if i < len(special) {
				vals[i] = special[i]
			}
		}
		h := tt.allocAs(n, bf16)
		tt.b.Write(h, vals)
		got := tt.readAs("Write/Read", h, bf16)
		for i, v := range vals {
			if want := nn.RoundBF16From64(v); !same(got[i], want) {
				tt.Fatalf("Write %v: stored %v, want %v", v, got[i], want)
			}
		}
		// float32 → bfloat16 by Copy rounds the float32 values once.
		f := tt.allocAs(n, fp32)
		tt.b.Write(f, vals)
		fs := tt.b.Read(f)
		h2 := tt.allocAs(n, bf16)
		tt.b.Copy(h2, f)
		got = tt.readAs("Copy f→h", h2, bf16)
		for i, v := range fs {
			if want := float64(nn.RoundBF16(float32(v))); !same(got[i], want) {
				tt.Fatalf("Copy of float32 %v: %v, want %v", v, got[i], want)
			}
		}
		// bfloat16 → float32 is exact.
		f2 := tt.allocAs(n, fp32)
		tt.b.Copy(f2, h2)
		back := tt.b.Read(f2)
		for i := range back {
			if !same(back[i], got[i]) {
				tt.Fatalf("Copy h→f [%d]: %v, want %v", i, back[i], got[i])
			}
		}
		tt.b.Fill(h, 1+1.0/256+math.Ldexp(1, -40))
		for i, v := range tt.readAs("Fill", h, bf16) {
			if v != 1+1.0/128 {
				tt.Fatalf("Fill [%d]: %v, want %v (one rounding)", i, v, 1+1.0/128)
			}
		}
	})
}

type dtCase struct {
	n   int
	dts []nn.DType
}

func dtCaseDesc(c dtCase) string { return fmt.Sprintf("n%d_%s", c.n, dtDesc(c.dts...)) }

// testBF16Elementwise: Add, Mul, MulBackward, Axpy, Scale in the type
// combinations dts = (out or accumulated, first input, second input).
func testBF16Elementwise(t *testing.T, b nn.MixedBackend) {
	cases := []dtCase{
		{1, []nn.DType{bf16, bf16, bf16}}, {777, []nn.DType{bf16, bf16, bf16}},
		{777, []nn.DType{bf16, bf16, fp32}}, {777, []nn.DType{fp32, bf16, bf16}},
		{40000, []nn.DType{bf16, bf16, bf16}},
	}
	runCases(t, b, "BF16Elementwise", cases, dtCaseDesc, func(tt *tester, c dtCase) {
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

		dout, douts := tt.exactAs(ad, tt.randn(n))
		da, db := tt.exactAccumAs(od, n), tt.exactAccumAs(od, n)
		tt.b.MulBackward(da.buf, db.buf, a, bb, dout)
		wa, wb := make([]float64, n), make([]float64, n)
		for i := range wa {
			wa[i], wb[i] = douts[i]*bs[i], douts[i]*as[i]
		}
		tt.checkAccum("MulBackward da", da, wa)
		tt.checkAccum("MulBackward db", db, wb)

		y := tt.exactAccumAs(od, n)
		tt.b.Axpy(-0.75, a, y.buf)
		want := make([]float64, n)
		for i := range want {
			want[i] = -0.75 * as[i]
		}
		tt.checkAccum("Axpy", y, want)

		tt.b.Scale(a, 1.0/3)
		got := tt.readAs("Scale", a, ad)
		for i := range want {
			want[i] = as[i] / 3
		}
		tol := tt.fwdTol
		if ad == bf16 {
			tol += u
		}
		AssertClose(tt, "Scale", got, want, tol)
	})
}

// testBF16Act: every activation and its backward, bfloat16 in and out.
func testBF16Act(t *testing.T, b nn.MixedBackend) {
	kinds := []nn.Activation{nn.Identity, nn.ReLU, nn.GELU, nn.GELUTanh, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Exp}
	runCases(t, b, "BF16Act", kinds, nn.Activation.String, func(tt *tester, kind nn.Activation) {
		n := 501
		x, xs := tt.exactAs(bf16, tt.randnAway(n, 0.05))
		out := tt.exactOut(bf16, n)
		tt.b.Act(kind, out, x)
		want := make([]float64, n)
		for i, v := range xs {
			want[i] = refAct(kind, v)
		}
		tt.checkExactOut("out", out, want)

		dout, douts := tt.exactAs(bf16, tt.randn(n))
		dx := tt.exactAccumAs(bf16, n)
		tt.b.ActBackward(kind, dx.buf, x, dout)
		for i, v := range xs {
			h := 1e-6 * max(1, math.Abs(v))
			want[i] = douts[i] * (refAct(kind, v+h) - refAct(kind, v-h)) / (2 * h)
		}
		tt.checkAccum("dx", dx, want)
	})
}

type shape2 struct{ rows, cols int }

func shape2Desc(c shape2) string { return fmt.Sprintf("%dx%d", c.rows, c.cols) }

// testBF16Bias: a Linear's bias (float32 master) added to a bfloat16
// activation, and its gradient summed from a bfloat16 dout into float32.
func testBF16Bias(t *testing.T, b nn.MixedBackend) {
	runCases(t, b, "BF16Bias", []shape2{{1, 1}, {7, 13}, {300, 65}}, shape2Desc, func(tt *tester, c shape2) {
		n := c.rows * c.cols
		x, xs := tt.inputAs(bf16, tt.randn(n))
		bias, bs := tt.inputAs(fp32, tt.randn(c.cols))
		out := tt.outputAs(bf16, n)
		tt.b.AddBias(out, x, bias, c.rows, c.cols)
		want := make([]float64, n)
		for i := range want {
			want[i] = xs[i] + bs[i%c.cols]
		}
		tt.checkOut("AddBias", out, n, want)

		db := tt.accumAs(fp32, c.cols)
		tt.b.SumRows(db.buf, x, c.rows, c.cols)
		sums := make([]float64, c.cols)
		for i, v := range xs {
			sums[i%c.cols] += v
		}
		tt.checkAccum("SumRows", db, sums)

		// Host reductions read bfloat16 and sum in float32 or wider: the
		// float32 tolerance times the sum's conditioning Σ|x|/|Σx|.
		xe := tt.allocAs(n, bf16)
		tt.b.Write(xe, xs)
		abs := 0.0
		for _, v := range xs {
			abs += math.Abs(v)
		}
		AssertClose(tt, "Sum", []float64{tt.b.Sum(xe)}, []float64{sumOf(xs)}, tt.fwdTol*max(1, abs/math.Abs(sumOf(xs))))
		AssertClose(tt, "SumSquares", []float64{tt.b.SumSquares(xe)}, []float64{dot(xs, xs)}, tt.fwdTol)
	})
}

func sumOf(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}

type gemmBF16Case struct {
	M, N, K    int
	cd         nn.DType // C's type (A and B are bfloat16)
	accumulate bool
}

func gemmBF16Desc(c gemmBF16Case) string {
	s := fmt.Sprintf("%dx%dx%d_C%s", c.M, c.N, c.K, dtDesc(c.cd))
	if c.accumulate {
		s += "_acc"
	}
	return s
}

// testBF16Gemm: bfloat16 A and B with float32 products and sums, into a
// bfloat16 C (a Linear's output, Beta 0; a dx, Beta 1) or a float32 C (a
// weight's gradient into its master's, Beta 1). The products of bfloat16
// values are exact in float32, so only the float32 sum and the rounding
// of C err.
func testBF16Gemm(t *testing.T, b nn.MixedBackend) {
	cases := []gemmBF16Case{
		{1, 1, 1, bf16, false}, {13, 17, 19, bf16, false}, {64, 48, 200, bf16, false},
		{13, 17, 19, bf16, true}, {33, 20, 150, fp32, true}, {5, 3, 700, fp32, false},
	}
	runCases(t, b, "BF16Gemm", cases, gemmBF16Desc, func(tt *tester, c gemmBF16Case) {
		args := nn.GemmArgs{TransB: true, M: c.M, N: c.N, K: c.K, Alpha: 1, LDA: c.K, LDB: c.K, LDC: c.N, Batch: 1}
		a, as := tt.inputAs(bf16, tt.randn(c.M*c.K))
		bb, bs := tt.inputAs(bf16, tt.randn(c.N*c.K))
		want := refGemm(as, bs, make([]float64, c.M*c.N), args)
		if !c.accumulate {
			out := tt.outputAs(c.cd, c.M*c.N)
			tt.b.Gemm(a, bb, out, args)
			tt.checkOut("C", out, c.M*c.N, want)
			return
		}
		args.Beta = 1
		acc := tt.accumAs(c.cd, c.M*c.N)
		tt.b.Gemm(a, bb, acc.buf, args)
		tt.checkAccum("C", acc, want)
	})
}

// testBF16Norms: RMSNorm and LayerNorm of a bfloat16 x with float32
// weights into a bfloat16 out, statistics in float32; the backward takes a
// bfloat16 dout into a bfloat16 dx and float32 dw, db. LayerNorm's offset
// case puts the mean far from 0: the float32 centring cancels, but the
// inputs are exact and the reference sees the same ones.
func testBF16Norms(t *testing.T, b nn.MixedBackend) {
	cases := []normCase{
		{rows: 1, d: 1, eps: 0.5}, {rows: 3, d: 8, eps: 1e-5}, {rows: 37, d: 64, eps: 1e-5},
		{rows: 4, d: 33, eps: 1e-5, offset: 30},
	}
	runCases(t, b, "BF16Norms", cases, normDesc, func(tt *tester, c normCase) {
		n := c.rows * c.d
		xv := tt.randn(n)
		for i := range xv {
			xv[i] += c.offset
		}
		x, xs := tt.inputAs(bf16, xv)
		w, ws := tt.inputAs(fp32, tt.uniform(c.d, 0.5, 1.5))
		bias, bs := tt.inputAs(fp32, tt.randn(c.d))
		dout, douts := tt.inputAs(bf16, tt.randn(n))

		out, rstd := tt.outputAs(bf16, n), tt.outputAs(fp32, c.rows)
		tt.b.RMSNorm(out, rstd, x, w, c.rows, c.d, c.eps)
		wantOut, wantRstd := refRMSNorm(xs, ws, c.rows, c.d, c.eps)
		tt.checkOut("RMSNorm out", out, n, wantOut)
		tt.checkOut("RMSNorm rstd", rstd, c.rows, wantRstd)
		dx, dw := tt.accumAs(bf16, n), tt.accumAs(fp32, c.d)
		tt.b.RMSNormBackward(dx.buf, dw.buf, x, w, rstd, dout, c.rows, c.d)
		f := func() []float64 { o, _ := refRMSNorm(xs, ws, c.rows, c.d, c.eps); return o }
		tt.checkAccum("RMSNorm dx", dx, vjp(f, xs, douts))
		tt.checkAccum("RMSNorm dw", dw, vjp(f, ws, douts))

		out, mean, rstd := tt.outputAs(bf16, n), tt.outputAs(fp32, c.rows), tt.outputAs(fp32, c.rows)
		tt.b.LayerNorm(out, mean, rstd, x, w, bias, c.rows, c.d, c.eps)
		wantOut, wantMean, wantRstd := refLayerNorm(xs, ws, bs, c.rows, c.d, c.eps)
		tt.checkOut("LayerNorm out", out, n, wantOut)
		tt.checkOut("LayerNorm mean", mean, c.rows, wantMean)
		tt.checkOut("LayerNorm rstd", rstd, c.rows, wantRstd)
		dx, dw, db := tt.accumAs(bf16, n), tt.accumAs(fp32, c.d), tt.accumAs(fp32, c.d)
		tt.b.LayerNormBackward(dx.buf, dw.buf, db.buf, x, w, mean, rstd, dout, c.rows, c.d)
		g := func() []float64 { o, _, _ := refLayerNorm(xs, ws, bs, c.rows, c.d, c.eps); return o }
		tt.checkAccum("LayerNorm dx", dx, vjp(g, xs, douts))
		tt.checkAccum("LayerNorm dw", dw, vjp(g, ws, douts))
		tt.checkAccum("LayerNorm db", db, vjp(g, bs, douts))
	})
}

// testBF16Embedding: a bfloat16 copy of the table gathered into a
// bfloat16 out; the backward scatter-adds a bfloat16 dout into the
// float32 master's gradient.
func testBF16Embedding(t *testing.T, b nn.MixedBackend) {
	runCases(t, b, "BF16Embedding", []shape2{{7, 5}, {50, 16}}, shape2Desc, func(tt *tester, c shape2) {
		V, d := c.rows, c.cols
		ids := tt.ids(3*V, V)
		n := len(ids) * d
		table, ts := tt.inputAs(bf16, tt.randn(V*d))
		out := tt.outputAs(bf16, n)
		tt.b.Embedding(out, table, ids, d)
		tt.checkOut("out", out, n, refEmbedding(ts, ids, d))

		dout, douts := tt.inputAs(bf16, tt.randn(n))
		dtable := tt.accumAs(fp32, V*d)
		tt.b.EmbeddingBackward(dtable.buf, dout, ids, d)
		f := func() []float64 { return refEmbedding(ts, ids, d) }
		tt.checkAccum("dtable", dtable, vjp(f, ts, douts))
	})
}

// testBF16CrossEntropy: bfloat16 logits, float32 loss and lse (the
// log-sum-exp in float32), and the backward's softmax − onehot rounded
// into bfloat16 dlogits.
func testBF16CrossEntropy(t *testing.T, b nn.MixedBackend) {
	runCases(t, b, "BF16CrossEntropy", []shape2{{1, 2}, {9, 31}, {16, 130}}, shape2Desc, func(tt *tester, c shape2) {
		rows, V := c.rows, c.cols
		lv := tt.randn(rows * V)
		for i := range lv {
			lv[i] *= 3
		}
		logits, ls := tt.inputAs(bf16, lv)
		targets := tt.ids(rows, V)
		targets[rows-1] = -100
		loss, lse := tt.outputAs(fp32, rows), tt.outputAs(fp32, rows)
		tt.b.CrossEntropy(loss, lse, logits, targets, rows, V, -100)
		wantLoss, wantLse := refCrossEntropy(ls, targets, rows, V, -100)
		tt.checkOut("loss", loss, rows, wantLoss)
		tt.checkOut("lse", lse, rows, wantLse)

		dloss, dls := tt.inputAs(fp32, tt.randn(rows))
		dlogits := tt.accumAs(bf16, rows*V)
		tt.b.CrossEntropyBackward(dlogits.buf, logits, lse, dloss, targets, rows, V, -100)
		f := func() []float64 { l, _ := refCrossEntropy(ls, targets, rows, V, -100); return l }
		tt.checkAccum("dlogits", dlogits, vjp(f, ls, dls))
	})
}

// testBF16Contracts: statistics and the optimizer's tensors are float32
// under any precision, a carried state float32 or, with bfloat16
// activations, bfloat16; any other is a programming error that must panic,
// naming the buffer.
func testBF16Contracts(t *testing.T, b nn.MixedBackend) {
	type contract struct {
		name string
		call func(tt *tester)
	}
	cases := []contract{
		{"RMSNorm_rstd", func(tt *tester) {
			tt.b.RMSNorm(tt.allocAs(4, bf16), tt.allocAs(2, bf16), tt.allocAs(4, bf16), tt.allocAs(2, fp32), 2, 2, 1e-5)
		}},
		{"LayerNorm_mean", func(tt *tester) {
			tt.b.LayerNorm(tt.allocAs(4, bf16), tt.allocAs(2, bf16), tt.allocAs(2, fp32), tt.allocAs(4, bf16), tt.allocAs(2, fp32), nil, 2, 2, 1e-5)
		}},
		{"CrossEntropy_loss", func(tt *tester) {
			tt.b.CrossEntropy(tt.allocAs(1, bf16), tt.allocAs(1, fp32), tt.allocAs(2, bf16), []int32{0}, 1, 2, -100)
		}},
		{"Attention_lse", func(tt *tester) {
			q := tt.allocAs(2, bf16)
			tt.b.Attention(tt.allocAs(2, bf16), tt.allocAs(1, bf16), q, q, q, 1, 1, 1, 1, 2, 1, true)
		}},
		{"AdamW_p", func(tt *tester) {
			tt.b.AdamW(tt.allocAs(2, bf16), tt.allocAs(2, fp32), tt.allocAs(2, fp32), tt.allocAs(2, fp32),
				nn.AdamWArgs{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1})
		}},
		{"AdamW_g", func(tt *tester) {
			tt.b.AdamW(tt.allocAs(2, fp32), tt.allocAs(2, bf16), tt.allocAs(2, fp32), tt.allocAs(2, fp32),
				nn.AdamWArgs{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1})
		}},
		// A state is float32, or bfloat16 with bfloat16 activations (a
		// decode state), of one type.
		{"Conv1D_state", func(tt *tester) {
			x := tt.allocAs(4, fp32)
			tt.b.Conv1D(tt.allocAs(4, fp32), x, tt.allocAs(2, fp32), nil, tt.allocAs(1, bf16), 1, 1, 4, 2, nn.Identity)
		}},
		{"SelectiveScan_hT_mixed", func(tt *tester) {
			h := func(n int) nn.Buffer { return tt.allocAs(n, bf16) }
			tt.b.SelectiveScan(h(1), h(1), nn.ScanArgs{B: 1, D: 1, L: 1, N: 1, G: 1, U: h(1), Delta: h(1),
				A: tt.allocAs(1, fp32), Bm: h(1), Cm: h(1), H0: tt.allocAs(1, fp32)})
		}},
		{"SelectiveScanBackward_H0", func(tt *tester) {
			h := func(n int) nn.Buffer { return tt.allocAs(n, bf16) }
			tt.b.SelectiveScanBackward(nn.ScanGrads{U: h(1)}, nn.ScanArgs{B: 1, D: 1, L: 1, N: 1, G: 1, U: h(1),
				Delta: h(1), A: tt.allocAs(1, fp32), Bm: h(1), Cm: h(1), H0: h(1)}, h(1))
		}},
		{"AllocAs_float64", func(tt *tester) { tt.mixed().AllocAs(2, nn.Float64) }},
	}
	runCases(t, b, "BF16Contracts", cases, func(c contract) string { return c.name }, func(tt *tester, c contract) {
		defer func() {
			r := recover()
			if r == nil {
				tt.Fatalf("%s: no panic", c.name)
			}
			// The message names the rule (for AllocAs, the types there are).
			want := "must be float32"
			if strings.HasPrefix(c.name, "AllocAs") {
				want = "float32, bfloat16"
			} else if strings.HasSuffix(c.name, "_mixed") {
				want = "must be of one type"
			}
			if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
				tt.Fatalf("%s: the panic %q does not say %q", c.name, msg, want)
			}
		}()
		c.call(tt)
	})
}

// testBF16RoPE: bfloat16 in and out. The rotation angles are float32
// (pos·θ), as in the float32 suite; each output element is then rounded
// once.
func testBF16RoPE(t *testing.T, b nn.MixedBackend) {
	type ropeCase struct{ B, H, L, Dh, pos0 int }
	cases := []ropeCase{{1, 1, 1, 2, 0}, {2, 3, 17, 8, 7}, {1, 2, 9, 16, 100}}
	desc := func(c ropeCase) string { return fmt.Sprintf("B%d_H%d_L%d_Dh%d_pos%d", c.B, c.H, c.L, c.Dh, c.pos0) }
	runCases(t, b, "BF16RoPE", cases, desc, func(tt *tester, c ropeCase) {
		n := c.B * c.H * c.L * c.Dh
		x, xs := tt.inputAs(bf16, tt.randn(n))
		out := tt.outputAs(bf16, n)
		tt.b.RoPE(out, x, c.B, c.H, c.L, c.Dh, c.pos0, 10000)
		f := func() []float64 { return refRoPE(xs, c.B, c.H, c.L, c.Dh, c.pos0, 10000) }
		tt.checkOut("out", out, n, f())

		dout, douts := tt.inputAs(bf16, tt.randn(n))
		dx := tt.accumAs(bf16, n)
		tt.b.RoPEBackward(dx.buf, dout, c.B, c.H, c.L, c.Dh, c.pos0, 10000)
		tt.checkAccum("dx", dx, vjp(f, xs, douts))
	})
}

// testBF16Attention: q, k, v, out and their gradients bfloat16, lse
// float32. The forward's tolerance also admits a kernel that rounds the
// probabilities P to bfloat16 before P·V (FlashAttention does): that adds
// at most u·Σ_j P_ij·|v_j| to each output, u·‖P|V|‖/‖PV‖ norm-wise,
// computed from the case (the reference on |v|). The backwards are
// checked as the other accumulated bfloat16 gradients: a kernel that also
// rounds P or dS in the backward needs that term derived here first.
func testBF16Attention(t *testing.T, b nn.MixedBackend) {
	cases := []attnCase{
		{B: 1, H: 1, Lq: 1, Lk: 1, Dh: 2, causal: true},
		{B: 1, H: 2, Lq: 33, Lk: 33, Dh: 8, causal: true},
		{B: 2, H: 1, Lq: 9, Lk: 9, Dh: 16, causal: false},
		{B: 1, H: 2, Lq: 5, Lk: 7, Dh: 6, causal: true},
		{B: 1, H: 2, Lq: 33, Lk: 33, Dh: 8, causal: false, drop: 0.1},
	}
	desc := func(c attnCase) string {
		return fmt.Sprintf("B%d_H%d_Lq%d_Lk%d_Dh%d_causal%v_drop%g", c.B, c.H, c.Lq, c.Lk, c.Dh, c.causal, c.drop)
	}
	runCases(t, b, "BF16Attention", cases, desc, (*tester).checkBF16Attention)
}

// testBF16Conv1D: Mamba's depthwise convolution with a bfloat16 x and out
// and float32 weight and bias (read as they are, not cast); dx bfloat16,
// dw and dbias into the float32 masters' gradients.
func testBF16Conv1D(t *testing.T, b nn.MixedBackend) {
	cases := []convCase{{B: 1, C: 1, L: 1, W: 1, act: nn.SiLU}, {B: 2, C: 5, L: 33, W: 4, act: nn.SiLU}, {B: 2, C: 3, L: 9, W: 4, act: nn.Identity}}
	desc := func(c convCase) string { return fmt.Sprintf("B%d_C%d_L%d_W%d_%v", c.B, c.C, c.L, c.W, c.act) }
	runCases(t, b, "BF16Conv1D", cases, desc, func(tt *tester, c convCase) {
		n := c.B * c.C * c.L
		x, xs := tt.inputAs(bf16, tt.randn(n))
		w, ws := tt.inputAs(fp32, tt.randn(c.C*c.W))
		bias, bs := tt.inputAs(fp32, tt.randn(c.C))
		out := tt.outputAs(bf16, n)
		tt.b.Conv1D(out, x, w, bias, nil, c.B, c.C, c.L, c.W, c.act)
		f := func() []float64 { o, _ := refConv1D(xs, ws, bs, nil, c.B, c.C, c.L, c.W, c.act); return o }
		tt.checkOut("out", out, n, f())

		dout, douts := tt.inputAs(bf16, tt.randn(n))
		dx, dw, db := tt.accumAs(bf16, n), tt.accumAs(fp32, c.C*c.W), tt.accumAs(fp32, c.C)
		tt.b.Conv1DBackward(dx.buf, dw.buf, db.buf, x, w, bias, dout, c.B, c.C, c.L, c.W, c.act)
		tt.checkAccum("dx", dx, vjp(f, xs, douts))
		tt.checkAccum("dw", dw, vjp(f, ws, douts))
		tt.checkAccum("dbias", db, vjp(f, bs, douts))
	})
}

// testBF16SelectiveScan: Mamba-1's scan with its activations (u, δ, B, C,
// z) and out bfloat16, its parameters (A, D, δ bias) float32, the state
// float32 throughout (hT is a float32 output); gradients of activations
// bfloat16, of parameters float32.
func testBF16SelectiveScan(t *testing.T, b nn.MixedBackend) {
	cases := []scanCase{{B: 1, D: 1, L: 1, N: 1, G: 1, softplus: true}, {B: 2, D: 4, L: 33, N: 5, G: 2, softplus: true}}
	desc := func(c scanCase) string { return fmt.Sprintf("B%d_D%d_L%d_N%d_G%d", c.B, c.D, c.L, c.N, c.G) }
	runCases(t, b, "BF16SelectiveScan", cases, desc, func(tt *tester, c scanCase) {
		B, D, L, N, G := c.B, c.D, c.L, c.N, c.G
		nBDL := B * D * L
		a, in := tt.bf16ScanInputs(B, D, L, N, G, true)
		out, hT := tt.outputAs(bf16, nBDL), tt.outputAs(fp32, B*D*N)
		tt.b.SelectiveScan(out, hT, a)
		wantOut, wantHT := refSelectiveScan(in, B, D, L, N, G, true)
		tt.checkOut("out", out, nBDL, wantOut)
		tt.checkOut("hT", hT, B*D*N, wantHT)

		tt.checkBF16ScanBackward(in, a, B, D, L, N, G, true)
	})
}

// toBF16 re-uploads an input as bfloat16 and returns the buffer and the
// rounded values the reference must then see.
func (tt *tester) toBF16(vals []float64) (nn.Buffer, []float64) { return tt.inputAs(bf16, vals) }

// testBF16SSD: Mamba-2's SSD with x, dt, B, C and out bfloat16, A, D and
// the dt bias float32, the state float32; gradients of activations
// bfloat16, of parameters float32.
func testBF16SSD(t *testing.T, b nn.MixedBackend) {
	cases := []ssdCase{{B: 1, L: 1, H: 1, P: 1, G: 1, N: 1, Chunk: 8, softplus: true}, {B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true}}
	runCases(t, b, "BF16SSD", cases, ssdCase.desc, func(tt *tester, c ssdCase) {
		in := tt.ssdDraw(c) // float32 buffers: the parameters stay
		in.args.X, in.x = tt.toBF16(in.x)
		in.args.Dt, in.dt = tt.toBF16(in.dt)
		in.args.Bm, in.bm = tt.toBF16(in.bm)
		in.args.Cm, in.cm = tt.toBF16(in.cm)
		nx, nd, nbc, nh := c.B*c.L*c.H*c.P, c.B*c.L*c.H, c.B*c.L*c.G*c.N, c.B*c.H*c.P*c.N
		out, hT := tt.outputAs(bf16, nx), tt.outputAs(fp32, nh)
		tt.b.SSD(out, hT, in.args)
		wantOut, wantHT := refSSD(c, in)
		tt.checkOut("out", out, nx, wantOut)
		tt.checkOut("hT", hT, nh, wantHT)

		dout, douts := tt.inputAs(bf16, tt.randn(nx))
		g := nn.SSDGrads{}
		type gradOf struct {
			name string
			x    []float64
			acc  accum
		}
		all := []gradOf{{"X", in.x, tt.accumAs(bf16, nx)}, {"Dt", in.dt, tt.accumAs(bf16, nd)}, {"A", in.A, tt.accumAs(fp32, c.H)},
			{"Bm", in.bm, tt.accumAs(bf16, nbc)}, {"Cm", in.cm, tt.accumAs(bf16, nbc)},
			{"Dskip", in.D, tt.accumAs(fp32, c.H)}, {"DtBias", in.bias, tt.accumAs(fp32, c.H)}}
		g.X, g.Dt, g.A, g.Bm, g.Cm, g.Dskip, g.DtBias = all[0].acc.buf, all[1].acc.buf, all[2].acc.buf, all[3].acc.buf, all[4].acc.buf, all[5].acc.buf, all[6].acc.buf
		tt.b.SSDBackward(g, in.args, dout)
		f := func() []float64 { o, _ := refSSD(c, in); return o }
		for _, gr := range all {
			tt.checkAccum("d"+gr.name, gr.acc, vjp(f, gr.x, douts))
		}
	})
}

// testBF16RNN: an LSTM or GRU with x, out and what the forward saves
// bfloat16, its weights and states float32; dx bfloat16, the weights'
// gradients float32. The backward reads h_t from out, which is bfloat16
// (saved for the backward like every activation): the weights' gradients
// Σ_t dgates_t ⊗ h_{t−1} then carry the rounding of h, up to
// u·‖|dgates|·|h|‖/‖dgates·h‖ relative; that ratio is bounded here by
// √(B·L) (a sum of B·L terms of random signs against the sum of their
// magnitudes), so the weights' tolerance is the float32 one plus
// u·√(B·L). Without that term the B3_L6 cases fail by the rounding of h
// alone (dWhh off by 1.5e-3 and 2.2e-3 relative). The gates and cell
// states the backward reads from saved are rounded too: rnnSavedTol
// (bf16_rnn.go) adds their term to the weights' and to dx's tolerances.
func testBF16RNN(t *testing.T, b nn.MixedBackend, gru bool) {
	cases := []rnnCase{{B: 1, L: 1, I: 3, H: 2, bias: true}, {B: 3, L: 6, I: 5, H: 4, bias: true}}
	G := 4
	if gru {
		G = 3
	}
	desc := func(c rnnCase) string { return fmt.Sprintf("B%d_L%d_I%d_H%d", c.B, c.L, c.I, c.H) }
	runCases(t, b, fmt.Sprintf("BF16RNN%v", gru), cases, desc, func(tt *tester, c rnnCase) {
		B, L, I, H, GH := c.B, c.L, c.I, c.H, G*c.H
		savedLen := nn.LSTMSavedLen(B, L, H)
		if gru {
			savedLen = nn.GRUSavedLen(B, L, H)
		}
		scale := 1 / math.Sqrt(float64(min(I, H)))
		x, xs := tt.inputAs(bf16, tt.randn(B*L*I))
		wih, wihs := tt.inputAs(fp32, tt.uniform(GH*I, -scale, scale))
		whh, whhs := tt.inputAs(fp32, tt.uniform(GH*H, -scale, scale))
		bih, bihs := tt.inputAs(fp32, tt.uniform(GH, -1, 1))
		bhh, bhhs := tt.inputAs(fp32, tt.uniform(GH, -1, 1))
		a := nn.RNNArgs{B: B, L: L, I: I, H: H, X: x, Wih: wih, Whh: whh, Bih: bih, Bhh: bhh}
		out, hT, saved := tt.outputAs(bf16, B*L*H), tt.outputAs(fp32, B*H), tt.allocAs(savedLen, bf16)
		var cT nn.Buffer
		if gru {
			tt.b.GRU(out, hT, saved, a)
		} else {
			cT = tt.outputAs(fp32, B*H)
			tt.b.LSTM(out, hT, cT, saved, a)
		}
		tt.readAs("saved", saved, bf16) // rounded once by the forward
		f := func() []float64 {
			o, _, _ := refRNN(gru, xs, wihs, whhs, bihs, bhhs, nil, nil, B, L, I, H)
			return o
		}
		wantOut, wantH, wantC := refRNN(gru, xs, wihs, whhs, bihs, bhhs, nil, nil, B, L, I, H)
		tt.checkOut("out", out, B*L*H, wantOut)
		tt.checkOut("hT", hT, B*H, wantH)
		if !gru {
			tt.checkOut("cT", cT, B*H, wantC)
		}

		dout, douts := tt.inputAs(bf16, tt.randn(B*L*H))
		dx := tt.accumAs(bf16, B*L*I)
		ws := []struct {
			name string
			x    []float64
			acc  accum
		}{{"Wih", wihs, tt.accumAs(fp32, GH*I)}, {"Whh", whhs, tt.accumAs(fp32, GH*H)},
			{"Bih", bihs, tt.accumAs(fp32, GH)}, {"Bhh", bhhs, tt.accumAs(fp32, GH)}}
		g := nn.RNNGrads{X: dx.buf, Wih: ws[0].acc.buf, Whh: ws[1].acc.buf, Bih: ws[2].acc.buf, Bhh: ws[3].acc.buf}
		if gru {
			tt.b.GRUBackward(g, a, out, saved, dout)
		} else {
			tt.b.LSTMBackward(g, a, out, saved, dout)
		}
		tt.checkAccumPlus("dx", dx, vjp(f, xs, douts), rnnSavedTol(rnnInputCols(gru, H)))
		for _, w := range ws {
			got := tt.delta("d"+w.name, w.acc)
			AssertClose(tt, "d"+w.name, got, vjp(f, w.x, douts), tt.gradTol+u*math.Sqrt(float64(B*L))+rnnSavedTol(B*L))
		}
	})
}

// testBF16FFTConv: S4D's convolution of a bfloat16 u with the float32
// kernel K (computed from float32 parameters) and skip D into a bfloat16
// out; du bfloat16, dK and dD float32. The FFT is float32, whose error the
// float32 tolerances already cover.
func testBF16FFTConv(t *testing.T, b nn.MixedBackend) {
	cases := []s4dCase{{B: 1, H: 1, L: 1, skip: true}, {B: 3, H: 2, L: 17, skip: true}, {B: 2, H: 3, L: 64, skip: true}}
	runCases(t, b, "BF16FFTConv", cases, s4dDesc, func(tt *tester, c s4dCase) {
		B, H, L := c.B, c.H, c.L
		n := B * H * L
		uu, us := tt.inputAs(bf16, tt.randn(n))
		K, ks := tt.inputAs(fp32, tt.randn(H*L))
		D, ds := tt.inputAs(fp32, tt.randn(H))
		out := tt.outputAs(bf16, n)
		tt.b.FFTConv(out, uu, K, D, B, H, L)
		f := func() []float64 { return refCausalConv(us, ks, ds, B, H, L) }
		tt.checkOut("out", out, n, f())

		dout, douts := tt.inputAs(bf16, tt.randn(n))
		du, dK, dD := tt.accumAs(bf16, n), tt.accumAs(fp32, H*L), tt.accumAs(fp32, H)
		tt.b.FFTConvBackward(du.buf, dK.buf, dD.buf, uu, K, D, dout, B, H, L)
		tt.checkAccum("du", du, vjp(f, us, douts))
		tt.checkAccum("dK", dK, vjp(f, ks, douts))
		tt.checkAccum("dD", dD, vjp(f, ds, douts))
	})
}

// testBF16S4DRecurrent: S4D's step mode with a bfloat16 u and out, the
// float32 parameters and skip, and the carried state float32 (in and out).
func testBF16S4DRecurrent(t *testing.T, b nn.MixedBackend) {
	cases := []s4dCase{{B: 1, H: 1, N2: 1, L: 1, skip: true}, {B: 2, H: 3, N2: 4, L: 33, skip: true, h0: true}}
	runCases(t, b, "BF16S4DRecurrent", cases, s4dDesc, func(tt *tester, c s4dCase) {
		B, H, N2, L := c.B, c.H, c.N2, c.L
		n, ns := B*H*L, B*H*N2*2
		p := tt.s4dCaseParams(c) // float32 buffers
		uu, us := tt.inputAs(bf16, tt.randn(n))
		D, ds := tt.inputAs(fp32, tt.randn(H))
		var s0 []float64
		if c.h0 {
			s0 = tt.randn(ns)
		}
		state := tt.allocAs(ns+1, fp32)
		tt.b.Write(state, append(append(make([]float64, 0, ns+1), padTo(s0, ns)...), math.NaN()))
		stored := tt.readAs("state", state, fp32)
		if s0 != nil {
			copy(s0, stored[:ns])
		}
		wantOut, wantS := refS4DRecurrent(p, us, ds, s0, B, H, N2, L)
		out := tt.outputAs(bf16, n)
		tt.b.S4DRecurrent(out, state, uu, D, p.args(H, N2, L), B)
		tt.checkOut("out", out, n, wantOut)
		tt.checkOut("state", state, ns, wantS)
	})
}

// padTo is s, or n zeros when s is nil.
func padTo(s []float64, n int) []float64 {
	if s == nil {
		return make([]float64, n)
	}
	return s
}

// checkBF16ScanBackward runs the selective scan's backward of a (its
// inputs in, bfloat16 activations, float32 parameters) from a bfloat16
// dout into gradients of the same types, and checks each against the
// float64 reference's vector-Jacobian product.
func (tt *tester) checkBF16ScanBackward(in scanInputs, a nn.ScanArgs, B, D, L, N, G int, softplus bool) {
	tt.Helper()
	dout, douts := tt.inputAs(bf16, tt.randn(B*D*L))
	type gradIn struct {
		name string
		x    []float64
		dt   nn.DType
		acc  accum
	}
	grads := []*gradIn{{"U", in.u, bf16, accum{}}, {"Delta", in.delta, bf16, accum{}}, {"A", in.A, fp32, accum{}},
		{"Bm", in.Bm, bf16, accum{}}, {"Cm", in.Cm, bf16, accum{}}, {"Dskip", in.D, fp32, accum{}},
		{"Z", in.z, bf16, accum{}}, {"DeltaBias", in.bias, fp32, accum{}}}
	for _, g := range grads {
		g.acc = tt.accumAs(g.dt, len(g.x))
	}
	tt.b.SelectiveScanBackward(nn.ScanGrads{U: grads[0].acc.buf, Delta: grads[1].acc.buf, A: grads[2].acc.buf,
		Bm: grads[3].acc.buf, Cm: grads[4].acc.buf, Dskip: grads[5].acc.buf, Z: grads[6].acc.buf,
		DeltaBias: grads[7].acc.buf}, a, dout)
	f := func() []float64 { o, _ := refSelectiveScan(in, B, D, L, N, G, softplus); return o }
	for _, g := range grads {
		tt.checkAccum("d"+g.name, g.acc, vjp(f, g.x, douts))
	}
}

// bf16ScanInputs draws a selective scan's inputs in the types of the bf16
// model path (activations bfloat16, A, Dskip and the δ bias float32; A
// negative) and returns them with the values the reference must see.
func (tt *tester) bf16ScanInputs(B, D, L, N, G int, softplus bool) (nn.ScanArgs, scanInputs) {
	nBDL, nBGNL := B*D*L, B*G*N*L
	var in scanInputs
	a := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: softplus}
	a.U, in.u = tt.inputAs(bf16, tt.randn(nBDL))
	a.Delta, in.delta = tt.inputAs(bf16, tt.randn(nBDL))
	Av := make([]float64, D*N)
	for i := range Av {
		Av[i] = -math.Exp(0.5 * tt.rng.NormFloat64())
	}
	a.A, in.A = tt.inputAs(fp32, Av)
	a.Bm, in.Bm = tt.inputAs(bf16, tt.randn(nBGNL))
	a.Cm, in.Cm = tt.inputAs(bf16, tt.randn(nBGNL))
	a.Dskip, in.D = tt.inputAs(fp32, tt.randn(D))
	a.Z, in.z = tt.inputAs(bf16, tt.randn(nBDL))
	a.DeltaBias, in.bias = tt.inputAs(fp32, tt.randn(D))
	return a, in
}
