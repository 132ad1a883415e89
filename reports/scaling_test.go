package reports

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func logspace(lo, hi float64, n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = lo * math.Pow(hi/lo, float64(i)/float64(n-1))
	}
	return xs
}

// A pure power law is recovered exactly, with no irreducible term.
func TestFitScalingPowerLaw(t *testing.T) {
	xs := logspace(1e12, 1e18, 6)
	var ys []float64
	for _, x := range xs {
		ys = append(ys, 5*math.Pow(x, -0.1))
	}
	f, err := FitScaling(xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	if f.Irreducible || math.Abs(f.Alpha-0.1) > 1e-9 || math.Abs(f.A-5)/5 > 1e-6 {
		t.Fatalf("fit %+v, want a 5, alpha 0.1, no E", f)
	}
	if math.Abs(f.AlphaLo-0.1) > 1e-9 || math.Abs(f.AlphaHi-0.1) > 1e-9 {
		t.Fatalf("exact points give the interval [%v, %v], want [0.1, 0.1]", f.AlphaLo, f.AlphaHi)
	}
}

// With noise of 2% the exponent's bootstrap interval holds the true one,
// is narrow, and is the same on every call.
func TestFitScalingBootstrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	xs := logspace(1e12, 1e18, 10)
	var ys []float64
	for _, x := range xs {
		ys = append(ys, 5*math.Pow(x, -0.1)*math.Exp(0.02*rng.NormFloat64()))
	}
	f, err := FitScaling(xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := FitPowerLaw(xs, ys)
	if f.Irreducible || math.Abs(f.Alpha+plain.B) > 1e-12 {
		t.Fatalf("fit %+v: want the plain law (alpha %v), noise is no irreducible term", f, -plain.B)
	}
	if !(f.AlphaLo < 0.1 && 0.1 < f.AlphaHi) || f.AlphaHi-f.AlphaLo > 0.05 || f.AlphaLo >= f.Alpha || f.AlphaHi <= f.Alpha {
		t.Fatalf("alpha %v, interval [%v, %v]: want it to hold 0.1 and the estimate, narrower than 0.05", f.Alpha, f.AlphaLo, f.AlphaHi)
	}
	again, _ := FitScaling(xs, ys)
	if again != f {
		t.Fatalf("refit differs: %+v vs %+v", again, f)
	}
}

// A law with an irreducible loss is recovered with its E.
func TestFitScalingIrreducible(t *testing.T) {
	xs := logspace(1e12, 1e20, 8)
	var ys []float64
	for _, x := range xs {
		ys = append(ys, 1.7+40*math.Pow(x, -0.15))
	}
	f, err := FitScaling(xs, ys)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Irreducible || math.Abs(f.E-1.7) > 1e-3 || math.Abs(f.Alpha-0.15) > 1e-3 {
		t.Fatalf("fit %+v, want E 1.7, alpha 0.15", f)
	}
	// The same law on four sizes: too few to tell E from noise.
	g, err := FitScaling(xs[:4], ys[:4])
	if err != nil || g.Irreducible {
		t.Fatalf("four points: %+v, %v", g, err)
	}
}

// Two sizes: the line through them, and no interval.
func TestFitScalingTwoPoints(t *testing.T) {
	f, err := FitScaling([]float64{1e10, 1e12}, []float64{4, 2})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(f.Alpha-math.Log10(2)/2) > 1e-12 || !math.IsNaN(f.AlphaLo) || !math.IsNaN(f.AlphaHi) {
		t.Fatalf("fit %+v", f)
	}
	if _, err := FitScaling([]float64{1e10}, []float64{4}); err == nil {
		t.Fatal("one point fitted")
	}
}

func TestFrontier(t *testing.T) {
	cs := []float64{10, 1, 100, 5, 50, math.NaN(), 20}
	ls := []float64{3, 4, 2.5, 4.5, 2.4, 1, 3}
	fc, fl := Frontier(cs, ls)
	if !slices.Equal(fc, []float64{1, 10, 50}) || !slices.Equal(fl, []float64{4, 3, 2.4}) {
		t.Fatalf("frontier %v %v", fc, fl)
	}
}
