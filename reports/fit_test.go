package reports

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// A power law sampled exactly is recovered to 1e-6 (in fact to rounding),
// over the ranges scaling curves span: parameters 1e4..1e9, FLOPs to 1e20.
func TestFitPowerLawRecoversSyntheticLaw(t *testing.T) {
	cases := []struct {
		a, b   float64
		x0, x1 float64
		n      int
	}{
		{3.7, -0.42, 1e4, 1e9, 9},
		{1.69e3, -0.076, 1e15, 1e20, 6}, // Kaplan et al.'s compute law, roughly
		{0.5, 1.5, 1, 1e3, 3},
		{2, 0, 10, 1e4, 4}, // flat
	}
	for i, c := range cases {
		var xs, ys []float64
		for k := range c.n {
			x := c.x0 * math.Pow(c.x1/c.x0, float64(k)/float64(c.n-1))
			xs = append(xs, x)
			ys = append(ys, c.a*math.Pow(x, c.b))
		}
		p, err := FitPowerLaw(xs, ys)
		require.NoError(t, err, "case %d", i)
		relA := math.Abs(p.A-c.a) / c.a
		errB := math.Abs(p.B - c.b)
		t.Logf("case %d: a=%.12g (rel err %.2g) b=%.12g (abs err %.2g) R²=%.12f", i, p.A, relA, p.B, errB, p.R2)
		require.Less(t, relA, 1e-6, "case %d: a", i)
		require.Less(t, errB, 1e-6, "case %d: b", i)
		require.InDelta(t, 1, p.R2, 1e-9, "case %d", i)
		require.Equal(t, c.n, p.N)
		require.InDelta(t, 1, p.At(xs[1])/ys[1], 1e-9)
	}
}

// Points that cannot be on a log–log plot are skipped, not fitted: the
// law is still recovered from the rest.
func TestFitPowerLawSkipsInvalidPoints(t *testing.T) {
	xs := []float64{1e3, 0, 1e4, -5, 1e5, math.NaN(), 1e6, 1e7, math.Inf(1)}
	ys := make([]float64, len(xs))
	for i, x := range xs {
		ys[i] = 2.5 * math.Pow(x, -0.3)
	}
	ys[2] = 0           // a zero loss: skipped
	ys[4] = math.NaN()  // a diverged point: skipped
	ys[7] = math.Inf(1) // skipped
	p, err := FitPowerLaw(xs, ys)
	require.NoError(t, err)
	require.Equal(t, 2, p.N) // 1e3 and 1e6 remain
	require.InDelta(t, -0.3, p.B, 1e-9)
	require.InDelta(t, 2.5, p.A, 2.5e-9)
}

func TestFitPowerLawNoise(t *testing.T) {
	// Multiplicative noise that averages out in log space: the slope is
	// exact, the fit is imperfect.
	xs := []float64{1e3, 1e4, 1e5, 1e6}
	noise := []float64{1.1, 1 / 1.1, 1 / 1.1, 1.1}
	ys := make([]float64, len(xs))
	for i := range xs {
		ys[i] = 4 * math.Pow(xs[i], -0.25) * noise[i]
	}
	p, err := FitPowerLaw(xs, ys)
	require.NoError(t, err)
	require.InDelta(t, -0.25, p.B, 1e-12)
	require.Less(t, p.R2, 1.0)
	require.Greater(t, p.R2, 0.9)
}

func TestFitPowerLawErrors(t *testing.T) {
	_, err := FitPowerLaw([]float64{10}, []float64{1})
	require.ErrorContains(t, err, "two points")
	_, err = FitPowerLaw([]float64{10, 10, 10}, []float64{1, 2, 3})
	require.ErrorContains(t, err, "distinct x")
	_, err = FitPowerLaw([]float64{0, -1, math.NaN()}, []float64{1, 2, 3})
	require.Error(t, err)
	_, err = FitPowerLaw(nil, nil)
	require.Error(t, err)
}
