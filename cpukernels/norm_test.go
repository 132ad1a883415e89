package cpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// normEps is large so that a misplaced eps shows, and so that the
// degenerate rows (d = 1, and d = 2 for LayerNorm) have gradients well above
// the noise of finite differences.
const normEps = 0.1

// refRMSNorm is RMSNorm written out in float64.
func refRMSNorm(x, w []float64, rows, d int) (out, rstd []float64) {
	out, rstd = make([]float64, rows*d), make([]float64, rows)
	for r := range rows {
		ss := 0.0
		for c := range d {
			ss += x[r*d+c] * x[r*d+c]
		}
		rstd[r] = 1 / math.Sqrt(ss/float64(d)+normEps)
		for c := range d {
			out[r*d+c] = x[r*d+c] * rstd[r] * w[c]
		}
	}
	return out, rstd
}

// refLayerNorm is LayerNorm written out in float64 (b may be nil).
func refLayerNorm(x, w, b []float64, rows, d int) (out, mean, rstd []float64) {
	out, mean, rstd = make([]float64, rows*d), make([]float64, rows), make([]float64, rows)
	for r := range rows {
		for c := range d {
			mean[r] += x[r*d+c] / float64(d)
		}
		v := 0.0
		for c := range d {
			v += (x[r*d+c] - mean[r]) * (x[r*d+c] - mean[r]) / float64(d)
		}
		rstd[r] = 1 / math.Sqrt(v+normEps)
		for c := range d {
			out[r*d+c] = (x[r*d+c] - mean[r]) * rstd[r] * w[c]
			if b != nil {
				out[r*d+c] += b[c]
			}
		}
	}
	return out, mean, rstd
}

var normCases = []struct{ rows, d int }{{1, 1}, {1, 6}, {5, 2}, {5, 6}, {17, 6}, {3, 33}}

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for i, c := range normCases {
		name := fmt.Sprintf("case %d (rows=%d, d=%d)", i, c.rows, c.d)
		n := c.rows * c.d
		x, w, g := refRandn(rng, n, 1.5), refRandn(rng, c.d, 1), refRandn(rng, n, 1)
		testRMSNormForward[float64](t, name+" float64", x, w, c.rows, c.d, 1e-13)
		testRMSNormForward[float32](t, name+" float32", x, w, c.rows, c.d, 1e-5)

		be := New[float64]()
		xb, wb, gb := refBuf[float64](x), refBuf[float64](w), refBuf[float64](g)
		out, rstd := make(Buf[float64], n), make(Buf[float64], c.rows)
		loss := func() float64 {
			be.RMSNorm(out, rstd, xb, wb, c.rows, c.d, normEps)
			return refDot(out, g)
		}
		wantDx, wantDw := refNumGrad(xb, loss), refNumGrad(wb, loss)
		loss()
		dx0, dw0 := refRandn(rng, n, 1), refRandn(rng, c.d, 1)
		dx, dw := refWithGuard[float64](dx0), refWithGuard[float64](dw0)
		be.RMSNormBackward(dx, dw, xb, wb, rstd, gb, c.rows, c.d)
		refRel(t, name+" dx", refSub(dx, dx0), wantDx, 1e-6)
		refRel(t, name+" dw", refSub(dw, dw0), wantDw, 1e-6)
		refCheckGuard(t, name+" dx", dx, n)
		refCheckGuard(t, name+" dw", dw, c.d)

		// One gradient at a time gives the same values.
		dxOnly, dwOnly := refBuf[float64](dx0), refBuf[float64](dw0)
		be.RMSNormBackward(dxOnly, nil, xb, wb, rstd, gb, c.rows, c.d)
		be.RMSNormBackward(nil, dwOnly, xb, wb, rstd, gb, c.rows, c.d)
		refRel(t, name+" dx alone", dxOnly, dx[:n], 0)
		refRel(t, name+" dw alone", dwOnly, dw[:c.d], 0)
	}
}

func testRMSNormForward[T Float](t *testing.T, name string, x, w []float64, rows, d int, tol float64) {
	t.Helper()
	x, w = refRound[T](x), refRound[T](w)
	wantOut, wantRstd := refRMSNorm(x, w, rows, d)
	out, rstd := refPoisoned[T](rows*d), refPoisoned[T](rows)
	New[T]().RMSNorm(out, rstd, refBuf[T](x), refBuf[T](w), rows, d, normEps)
	refRel(t, name+" out", refF64(out, rows*d), wantOut, tol)
	refRel(t, name+" rstd", refF64(rstd, rows), wantRstd, tol)
	refCheckGuard(t, name+" out", out, rows*d)
	refCheckGuard(t, name+" rstd", rstd, rows)
}

func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i, c := range normCases {
		for _, bias := range []bool{true, false} {
			name := fmt.Sprintf("case %d (rows=%d, d=%d, bias=%v)", i, c.rows, c.d, bias)
			n := c.rows * c.d
			x, w, g := refRandn(rng, n, 1.5), refRandn(rng, c.d, 1), refRandn(rng, n, 1)
			for r := range c.rows { // an offset that the mean must remove
				x[r*c.d] += 3
			}
			var b []float64
			if bias {
				b = refRandn(rng, c.d, 1)
			}
			testLayerNormForward[float64](t, name+" float64", x, w, b, c.rows, c.d, 1e-13)
			testLayerNormForward[float32](t, name+" float32", x, w, b, c.rows, c.d, 1e-5)

			be := New[float64]()
			xb, wb, gb := refBuf[float64](x), refBuf[float64](w), refBuf[float64](g)
			var bb Buf[float64]
			if bias {
				bb = refBuf[float64](b)
			}
			out, mean, rstd := make(Buf[float64], n), make(Buf[float64], c.rows), make(Buf[float64], c.rows)
			loss := func() float64 {
				if bias {
					be.LayerNorm(out, mean, rstd, xb, wb, bb, c.rows, c.d, normEps)
				} else {
					be.LayerNorm(out, mean, rstd, xb, wb, nil, c.rows, c.d, normEps)
				}
				return refDot(out, g)
			}
			wantDx, wantDw := refNumGrad(xb, loss), refNumGrad(wb, loss)
			loss()
			dx0, dw0, db0 := refRandn(rng, n, 1), refRandn(rng, c.d, 1), refRandn(rng, c.d, 1)
			dx, dw, db := refWithGuard[float64](dx0), refWithGuard[float64](dw0), refWithGuard[float64](db0)
			be.LayerNormBackward(dx, dw, db, xb, wb, mean, rstd, gb, c.rows, c.d)
			refRel(t, name+" dx", refSub(dx, dx0), wantDx, 1e-6)
			refRel(t, name+" dw", refSub(dw, dw0), wantDw, 1e-6)
			if bias {
				refRel(t, name+" db", refSub(db, db0), refNumGrad(bb, loss), 1e-6)
			}
			for _, z := range []struct {
				name string
				buf  Buf[float64]
				n    int
			}{{"dx", dx, n}, {"dw", dw, c.d}, {"db", db, c.d}} {
				refCheckGuard(t, name+" "+z.name, z.buf, z.n)
			}

			dxOnly, dwOnly, dbOnly := refBuf[float64](dx0), refBuf[float64](dw0), refBuf[float64](db0)
			be.LayerNormBackward(dxOnly, nil, nil, xb, wb, mean, rstd, gb, c.rows, c.d)
			be.LayerNormBackward(nil, dwOnly, nil, xb, wb, mean, rstd, gb, c.rows, c.d)
			be.LayerNormBackward(nil, nil, dbOnly, xb, wb, mean, rstd, gb, c.rows, c.d)
			refRel(t, name+" dx alone", dxOnly, dx[:n], 0)
			refRel(t, name+" dw alone", dwOnly, dw[:c.d], 0)
			refRel(t, name+" db alone", dbOnly, db[:c.d], 0)
		}
	}
}

func testLayerNormForward[T Float](t *testing.T, name string, x, w, b []float64, rows, d int, tol float64) {
	t.Helper()
	x, w = refRound[T](x), refRound[T](w)
	if b != nil {
		b = refRound[T](b)
	}
	wantOut, wantMean, wantRstd := refLayerNorm(x, w, b, rows, d)
	out, mean, rstd := refPoisoned[T](rows*d), refPoisoned[T](rows), refPoisoned[T](rows)
	if b != nil {
		New[T]().LayerNorm(out, mean, rstd, refBuf[T](x), refBuf[T](w), refBuf[T](b), rows, d, normEps)
	} else {
		New[T]().LayerNorm(out, mean, rstd, refBuf[T](x), refBuf[T](w), nil, rows, d, normEps)
	}
	refRel(t, name+" out", refF64(out, rows*d), wantOut, tol)
	refRel(t, name+" mean", refF64(mean, rows), wantMean, tol)
	refRel(t, name+" rstd", refF64(rstd, rows), wantRstd, tol)
	refCheckGuard(t, name+" out", out, rows*d)
	refCheckGuard(t, name+" mean", mean, rows)
	refCheckGuard(t, name+" rstd", rstd, rows)
}

// TestNormWeightGradBlocks sums dw and db over several row blocks: the
// float32 result must match a float64 sum and not depend on the workers.
func TestNormWeightGradBlocks(t *testing.T) {
	const rows, d = 3000, 24
	if _, nb := normRowBlocks(rows, d); nb < 3 {
		t.Fatalf("%d row blocks, the test needs several", nb)
	}
	rng := rand.New(rand.NewPCG(1, 3))
	x := refRound[float32](refRandn(rng, rows*d, 1))
	w, g := refRound[float32](refRandn(rng, d, 1)), refRound[float32](refRandn(rng, rows*d, 1))
	xb, wb, gb := refBuf[float32](x), refBuf[float32](w), refBuf[float32](g)
	var firstW, firstLW, firstLB []float64
	for _, workers := range []int{1, 2, 5} {
		be := &Backend[float32]{workers: workers}
		out, mean, rstd := make(Buf[float32], rows*d), make(Buf[float32], rows), make(Buf[float32], rows)
		be.RMSNorm(out, rstd, xb, wb, rows, d, normEps)
		dw := make(Buf[float32], d)
		be.RMSNormBackward(nil, dw, xb, wb, rstd, gb, rows, d)
		want := make([]float64, d)
		for i := range rows * d {
			want[i%d] += g[i] * x[i] * float64(rstd[i/d])
		}
		refRel(t, fmt.Sprintf("RMSNorm dw, %d workers", workers), refF64(dw, d), want, 1e-6)

		be.LayerNorm(out, mean, rstd, xb, wb, nil, rows, d, normEps)
		lw, lb := make(Buf[float32], d), make(Buf[float32], d)
		be.LayerNormBackward(nil, lw, lb, xb, wb, mean, rstd, gb, rows, d)
		wantW, wantB := make([]float64, d), make([]float64, d)
		for i := range rows * d {
			r := i / d
			wantW[i%d] += g[i] * (x[i] - float64(mean[r])) * float64(rstd[r])
			wantB[i%d] += g[i]
		}
		refRel(t, fmt.Sprintf("LayerNorm dw, %d workers", workers), refF64(lw, d), wantW, 1e-6)
		refRel(t, fmt.Sprintf("LayerNorm db, %d workers", workers), refF64(lb, d), wantB, 1e-6)

		if firstW == nil {
			firstW, firstLW, firstLB = refF64(dw, d), refF64(lw, d), refF64(lb, d)
			continue
		}
		refRel(t, fmt.Sprintf("RMSNorm dw, %d workers vs 1", workers), refF64(dw, d), firstW, 0)
		refRel(t, fmt.Sprintf("LayerNorm dw, %d workers vs 1", workers), refF64(lw, d), firstLW, 0)
		refRel(t, fmt.Sprintf("LayerNorm db, %d workers vs 1", workers), refF64(lb, d), firstLB, 0)
	}
}

// TestRMSNormGolden checks the PyTorch float64 reference of testdata/testvectors.
func TestRMSNormGolden(t *testing.T) {
	v := refGolden(t, "08_rmsnorm.safetensors")
	d := len(v["weight"])
	rows := len(v["x"]) / d
	be := New[float64]()
	x, w := refBuf[float64](v["x"]), refBuf[float64](v["weight"])
	out, rstd := refPoisoned[float64](rows*d), make(Buf[float64], rows)
	be.RMSNorm(out, rstd, x, w, rows, d, 1e-5) // seqbench op's default --eps
	refRel(t, "out", out[:rows*d], v["out"], 1e-10)
	dx, dw := make(Buf[float64], rows*d), make(Buf[float64], d)
	be.RMSNormBackward(dx, dw, x, w, rstd, refBuf[float64](v["dout"]), rows, d)
	refRel(t, "dx", dx, v["dx"], 1e-10)
	refRel(t, "dweight", dw, v["dweight"], 1e-10)
}
