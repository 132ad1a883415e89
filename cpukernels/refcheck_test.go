package cpukernels

// Helpers of the op tests in this package: random inputs, poisoned and
// guarded outputs, central finite differences, a relative-error check that
// names the worst element, and a reader for the golden vectors.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seqbench/safetensors"
)

// refGuard is how many NaN sentinels follow an output buffer.
const refGuard = 3

// refRandn returns n standard normal values times s.
func refRandn(rng *rand.Rand, n int, s float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = s * rng.NormFloat64()
	}
	return x
}

// refBuf converts xs to a buffer of T.
func refBuf[T Float](xs []float64) Buf[T] {
	b := make(Buf[T], len(xs))
	for i, x := range xs {
		b[i] = T(x)
	}
	return b
}

// refF64 converts a buffer to float64 (its first n elements).
func refF64[T Float](b Buf[T], n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = float64(b[i])
	}
	return x
}

// refRound rounds xs to T and back, so a float64 reference sees exactly the
// inputs a float32 kernel sees.
func refRound[T Float](xs []float64) []float64 { return refF64(refBuf[T](xs), len(xs)) }

// refPoisoned returns a buffer of n NaNs (a forward op must overwrite every
// one) followed by refGuard NaN sentinels.
func refPoisoned[T Float](n int) Buf[T] {
	b := make(Buf[T], n+refGuard)
	for i := range b {
		b[i] = T(math.NaN())
	}
	return b
}

// refWithGuard returns a copy of xs followed by refGuard NaN sentinels.
func refWithGuard[T Float](xs []float64) Buf[T] {
	b := refPoisoned[T](len(xs))
	copy(b, refBuf[T](xs))
	return b
}

// refCheckGuard fails unless the sentinels after the first n elements of b
// are untouched.
func refCheckGuard[T Float](t *testing.T, name string, b Buf[T], n int) {
	t.Helper()
	for i := n; i < len(b); i++ {
		if v := float64(b[i]); !math.IsNaN(v) {
			t.Errorf("%s: guard element %d after the %d elements was overwritten with %v", name, i-n, n, v)
		}
	}
}

// refRel fails when some element of got differs from want by more than tol
// relative to max(|want[i]|, 1e-3·max|want|), and reports the worst one.
func refRel(t *testing.T, name string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", name, len(got), len(want))
	}
	scale := 0.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	floor := max(1e-3*scale, 1e-300)
	worst, at := 0.0, -1
	for i := range want {
		e := math.Abs(got[i]-want[i]) / max(math.Abs(want[i]), floor)
		if math.IsNaN(e) || math.IsInf(got[i], 0) {
			e = math.Inf(1)
		}
		if at < 0 || e > worst {
			worst, at = e, i
		}
	}
	if worst > tol {
		t.Errorf("%s: max rel err %.3g > %.0e at [%d]: got %.17g, want %.17g",
			name, worst, tol, at, got[at], want[at])
	}
}

// refNumGrad returns the gradient of loss with respect to x by central
// differences, perturbing x in place (and restoring it).
func refNumGrad(x []float64, loss func() float64) []float64 {
	const h = 1e-5
	g := make([]float64, len(x))
	for i, xi := range x {
		x[i] = xi + h
		lp := loss()
		x[i] = xi - h
		lm := loss()
		x[i] = xi
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

// refDot is Σ a[i]·b[i] over the first len(b) elements of a.
func refDot(a, b []float64) float64 {
	s := 0.0
	for i, y := range b {
		s += a[i] * y
	}
	return s
}

// refSub returns a − b.
func refSub(a, b []float64) []float64 {
	d := make([]float64, len(b))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return d
}

// readGolden reads a golden vector file of ../testdata/testvectors (its
// README.md says how they were made; docs/DESIGN.md, "Testing"): PyTorch
// float64 references, so every tensor must be F64. A missing file fails the
// test: the vectors are part of the repository.
func readGolden(t *testing.T, name string) (map[string]safetensors.Tensor, map[string]string) {
	t.Helper()
	path := filepath.Join("..", "testdata", "testvectors", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("golden vectors: %v", err)
	}
	ts, meta, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ts {
		if v.DType != "F64" {
			t.Fatalf("%s: tensor %s is %s, not F64", path, k, v.DType)
		}
	}
	return ts, meta
}

// refGolden returns the values of a golden vector file's tensors.
func refGolden(t *testing.T, name string) map[string][]float64 {
	t.Helper()
	ts, _ := readGolden(t, name)
	out := make(map[string][]float64, len(ts))
	for k, v := range ts {
		out[k] = v.Data
	}
	return out
}

// goldenHeader returns a golden vector file's __metadata__ flags and the
// shapes of its tensors.
func goldenHeader(t *testing.T, name string) (flags string, shapes map[string][]int) {
	t.Helper()
	ts, meta := readGolden(t, name)
	shapes = make(map[string][]int, len(ts))
	for k, v := range ts {
		shapes[k] = v.Shape
	}
	return meta["flags"], shapes
}

// refPanics fails unless f panics with a message containing want.
func refPanics(t *testing.T, name, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", name)
		} else if !strings.Contains(fmt.Sprint(r), want) {
			t.Errorf("%s: panic %q does not say %q", name, r, want)
		}
	}()
	f()
}
