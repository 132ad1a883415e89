package cpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

const ceIgnore = -100

// refCrossEntropy is CrossEntropy written out in float64.
func refCrossEntropy(x []float64, targets []int32, rows, V int) (loss, lse []float64) {
	loss, lse = make([]float64, rows), make([]float64, rows)
	for r := range rows {
		m := math.Inf(-1)
		for c := range V {
			m = max(m, x[r*V+c])
		}
		s := 0.0
		for c := range V {
			s += math.Exp(x[r*V+c] - m)
		}
		lse[r] = m + math.Log(s)
		if t := targets[r]; t != ceIgnore {
			loss[r] = lse[r] - x[r*V+int(t)]
		}
	}
	return loss, lse
}

func TestCrossEntropy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	for i, c := range []struct{ rows, V int }{{1, 1}, {1, 2}, {5, 7}, {17, 2}, {3, 33}} {
		name := fmt.Sprintf("case %d (rows=%d, V=%d)", i, c.rows, c.V)
		n := c.rows * c.V
		x := refRandn(rng, n, 3)
		targets := make([]int32, c.rows)
		for r := range targets {
			targets[r] = int32(rng.IntN(c.V))
			if r%3 == 1 {
				targets[r] = ceIgnore
			}
		}
		// exp(x) overflows unless shifted by the row's max.
		big := append([]float64(nil), x...)
		for k := n - c.V; k < n; k++ {
			big[k] += 800
		}
		for _, x := range [][]float64{x, big} {
			testCrossEntropyForward[float64](t, name+" float64", x, targets, c.rows, c.V, 1e-13)
			testCrossEntropyForward[float32](t, name+" float32", x, targets, c.rows, c.V, 1e-5)
		}

		be := New[float64]()
		xb := refBuf[float64](x)
		dloss := refRandn(rng, c.rows, 1)
		loss, lse := make(Buf[float64], c.rows), make(Buf[float64], c.rows)
		lossFn := func() float64 {
			be.CrossEntropy(loss, lse, xb, targets, c.rows, c.V, ceIgnore)
			return refDot(loss, dloss)
		}
		want := refNumGrad(xb, lossFn)
		lossFn()
		dx0 := refRandn(rng, n, 1)
		dx := refWithGuard[float64](dx0)
		be.CrossEntropyBackward(dx, xb, lse, refBuf[float64](dloss), targets, c.rows, c.V, ceIgnore)
		refRel(t, name+" dlogits", refSub(dx, dx0), want, 1e-6)
		refCheckGuard(t, name+" dlogits", dx, n)

		// Softmax does not change when a row is shifted.
		bigB := refBuf[float64](big)
		be.CrossEntropy(loss, lse, bigB, targets, c.rows, c.V, ceIgnore)
		dxBig := refBuf[float64](dx0)
		be.CrossEntropyBackward(dxBig, bigB, lse, refBuf[float64](dloss), targets, c.rows, c.V, ceIgnore)
		refRel(t, name+" dlogits, last row shifted by 800", refSub(dxBig, dx0), refSub(dx, dx0), 1e-9)
		for r, tg := range targets {
			if tg != ceIgnore {
				continue
			}
			for k := r * c.V; k < (r+1)*c.V; k++ {
				if dx[k] != dx0[k] {
					t.Errorf("%s: ignored row %d: dlogits[%d] changed from %v to %v", name, r, k, dx0[k], dx[k])
				}
			}
		}
	}
}

func testCrossEntropyForward[T Float](t *testing.T, name string, x []float64, targets []int32, rows, V int, tol float64) {
	t.Helper()
	x = refRound[T](x)
	wantLoss, wantLse := refCrossEntropy(x, targets, rows, V)
	loss, lse := refPoisoned[T](rows), refPoisoned[T](rows)
	New[T]().CrossEntropy(loss, lse, refBuf[T](x), targets, rows, V, ceIgnore)
	refRel(t, name+" loss", refF64(loss, rows), wantLoss, tol)
	refRel(t, name+" lse", refF64(lse, rows), wantLse, tol)
	refCheckGuard(t, name+" loss", loss, rows)
	refCheckGuard(t, name+" lse", lse, rows)
}

func TestCrossEntropyBadTarget(t *testing.T) {
	be := New[float64]()
	x, loss, lse := make(Buf[float64], 2*3), make(Buf[float64], 2), make(Buf[float64], 2)
	for _, tg := range []int32{-1, 3} {
		targets := []int32{0, tg}
		refPanics(t, fmt.Sprintf("CrossEntropy target %d", tg), fmt.Sprintf("targets[1] = %d", tg), func() {
			be.CrossEntropy(loss, lse, x, targets, 2, 3, ceIgnore)
		})
		refPanics(t, fmt.Sprintf("CrossEntropyBackward target %d", tg), "outside [0, 3)", func() {
			be.CrossEntropyBackward(x, x, lse, loss, targets, 2, 3, ceIgnore)
		})
	}
	refPanics(t, "too few targets", "1 targets for 2 rows", func() {
		be.CrossEntropy(loss, lse, x, []int32{0}, 2, 3, ceIgnore)
	})
}

func TestArgmaxRows(t *testing.T) {
	nan := math.NaN()
	x := []float64{
		-3, -1, -2, // 1
		5, 2, 5, // 0: first of a tie
		1, nan, 7, // 1: NaN is largest
		-1, 0, 0, // 1
		0, 0, 0, // 0
	}
	want := []int32{1, 0, 1, 1, 0}
	for _, got := range [][]int32{
		New[float64]().ArgmaxRows(refBuf[float64](x), 5, 3),
		New[float32]().ArgmaxRows(refBuf[float32](x), 5, 3),
	} {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ArgmaxRows = %v, want %v", got, want)
		}
	}
	if got := New[float32]().ArgmaxRows(refBuf[float32](x), 15, 1); len(got) != 15 || got[7] != 0 {
		t.Errorf("ArgmaxRows with one column = %v", got)
	}
}
