package cpukernels

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"
	"time"
)

// The FFT against the DFT written as a double loop, both directions, and
// inverse(forward(x)) = n·x.
func TestFFTMatchesDFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 4, 8, 16, 64, 256} {
		p := newFFTPlan(n)
		x := make([]complex128, n)
		for i := range x {
			x[i] = complex(rng.NormFloat64(), rng.NormFloat64())
		}
		for _, inverse := range []bool{false, true} {
			sign := -1.0
			if inverse {
				sign = 1
			}
			want := make([]complex128, n)
			for j := range n {
				for k, v := range x {
					want[j] += v * cmplx.Exp(complex(0, sign*2*math.Pi*float64(j*k%n)/float64(n)))
				}
			}
			got := append([]complex128(nil), x...)
			p.transform(got, inverse)
			worst := 0.0
			for j := range got {
				worst = max(worst, cmplx.Abs(got[j]-want[j]))
			}
			if worst > 1e-12*float64(n) {
				t.Errorf("n=%d inverse=%v: max |FFT − DFT| = %.3g", n, inverse, worst)
			}
		}
		y := append([]complex128(nil), x...)
		p.transform(y, false)
		p.transform(y, true)
		for i := range y {
			if cmplx.Abs(y[i]/complex(float64(n), 0)-x[i]) > 1e-14 {
				t.Fatalf("n=%d: inverse(forward(x))/n differs from x at %d: %v vs %v", n, i, y[i], x[i])
			}
		}
	}
	refPanics(t, "size 6", "power of two", func() { newFFTPlan(6) })
}

func TestFFTSize(t *testing.T) {
	for _, c := range [][2]int{{1, 2}, {2, 4}, {3, 8}, {4, 8}, {5, 16}, {33, 128}, {64, 128}, {100, 256}} {
		if got := fftSize(c[0]); got != c[1] {
			t.Errorf("fftSize(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

// The batch split, and so every bit of the backward's sums, depends on B
// and H only: a backend with one worker and one with many agree exactly.
func TestFFTConvBackwardDeterministic(t *testing.T) {
	const B, H, L = 9, 2, 50
	rng := rand.New(rand.NewPCG(3, 4))
	u, K, D := refRandn(rng, B*H*L, 1), refRandn(rng, H*L, 1), refRandn(rng, H, 1)
	dout := refRandn(rng, B*H*L, 1)
	run := func(workers int) (du, dK, dD []float64) {
		be := &Backend[float64]{workers: workers}
		dub, dKb, dDb := refBuf[float64](make([]float64, B*H*L)), refBuf[float64](make([]float64, H*L)), refBuf[float64](make([]float64, H))
		be.FFTConvBackward(dub, dKb, dDb, refBuf[float64](u), refBuf[float64](K), refBuf[float64](D), refBuf[float64](dout), B, H, L)
		return dub, dKb, dDb
	}
	du1, dK1, dD1 := run(1)
	du8, dK8, dD8 := run(8)
	for name, pair := range map[string][2][]float64{"du": {du1, du8}, "dK": {dK1, dK8}, "dD": {dD1, dD8}} {
		for i := range pair[0] {
			if pair[0][i] != pair[1][i] {
				t.Fatalf("%s[%d]: %v with 1 worker, %v with 8", name, i, pair[0][i], pair[1][i])
			}
		}
	}
}

// Speed of the conv at a model-sized shape (logged, not asserted).
func TestFFTConvTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	const B, H, L = 4, 64, 1024
	be := New[float32]()
	rng := rand.New(rand.NewPCG(5, 6))
	u, K, D := refBuf[float32](refRandn(rng, B*H*L, 1)), refBuf[float32](refRandn(rng, H*L, 1)), refBuf[float32](refRandn(rng, H, 1))
	out, du, dK, dD := make(Buf[float32], B*H*L), make(Buf[float32], B*H*L), make(Buf[float32], H*L), make(Buf[float32], H)
	t0 := time.Now()
	be.FFTConv(out, u, K, D, B, H, L)
	t1 := time.Now()
	be.FFTConvBackward(du, dK, dD, u, K, D, out, B, H, L)
	t2 := time.Now()
	t.Logf("B=%d H=%d L=%d float32, %d workers: FFTConv %v, FFTConvBackward %v", B, H, L, be.workers, t1.Sub(t0), t2.Sub(t1))
}
