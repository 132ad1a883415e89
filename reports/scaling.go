package reports

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
)

// ScalingFit is a loss law fitted over the sizes of one arch:
// L(x) = E + A·x^(−Alpha), with E = 0 for the plain power law.
type ScalingFit struct {
	A, Alpha, E float64
	// Irreducible reports whether E was fitted (else E is 0).
	Irreducible bool
	// AlphaLo and AlphaHi are the bootstrap 95% interval of Alpha (NaN
	// with fewer than three points, where resampling cannot vary it).
	AlphaLo, AlphaHi float64
	N                int     // points
	SSE              float64 // squared error in ln L
}

// At evaluates the law.
func (f ScalingFit) At(x float64) float64 { return f.E + f.A*math.Pow(x, -f.Alpha) }

// Bootstrap settings: resamples and the seed that makes the interval the
// same on every rerun.
const (
	bootstrapResamples = 2000
	bootstrapSeed      = 22
)

// FitScaling fits L(x) = a·x^(−α) by least squares on (ln x, ln L) (see
// FitPowerLaw), then tries L(x) = E + a·x^(−α): for each E in [0, min L)
// it fits ln(L − E) = ln a − α·ln x by least squares and keeps the E whose
// law has the least squared error in ln L. E is kept only when the best E
// is strictly inside the range and the small-sample Akaike criterion
// (AICc, defined from five points for three parameters) prefers the
// three-parameter law: a third parameter always lowers the error a little,
// and only curvature beyond the noise identifies E. Otherwise the plain
// law stands. The interval of α is a bootstrap
// over the points with a fixed seed, of the plain law's α, or of the
// irreducible law's when E is kept.
func FitScaling(xs, ys []float64) (ScalingFit, error) {
	var x, y []float64
	for i := range min(len(xs), len(ys)) {
		if valid(xs[i], log10) && valid(ys[i], log10) {
			x, y = append(x, xs[i]), append(y, ys[i])
		}
	}
	fit, err := fitWithE(x, y, 0)
	if err != nil {
		return ScalingFit{}, err
	}
	irreducible := false
	if len(x) >= 5 && fit.SSE > 0 {
		if e, ok := bestE(x, y); ok {
			if f, err := fitWithE(x, y, e); err == nil && aicc(f.SSE, len(x), 3) < aicc(fit.SSE, len(x), 2) {
				fit, irreducible = f, true
			}
		}
	}
	fit.Irreducible = irreducible
	fit.AlphaLo, fit.AlphaHi = math.NaN(), math.NaN()
	if len(x) >= 3 {
		fit.AlphaLo, fit.AlphaHi = bootstrapAlpha(x, y, fit.E)
	}
	return fit, nil
}

// fitWithE fits ln(L − e) = ln a − α·ln x by least squares and scores the
// law by its squared error in ln L.
func fitWithE(x, y []float64, e float64) (ScalingFit, error) {
	shifted := make([]float64, len(y))
	for i := range y {
		shifted[i] = y[i] - e
	}
	p, err := FitPowerLaw(x, shifted)
	if err != nil {
		return ScalingFit{}, err
	}
	if p.N != len(x) {
		return ScalingFit{}, errors.New("irreducible term at or above a loss")
	}
	f := ScalingFit{A: p.A, Alpha: -p.B, E: e, N: len(x)}
	for i := range x {
		r := math.Log(y[i]) - math.Log(f.At(x[i]))
		f.SSE += r * r
	}
	return f, nil
}

// aicc is the corrected Akaike information criterion of a least-squares
// fit with k parameters to n points (Gaussian errors).
func aicc(sse float64, n, k int) float64 {
	return float64(n)*math.Log(sse/float64(n)) + 2*float64(k) + 2*float64(k*(k+1))/float64(n-k-1)
}

// bestE scans E over [0, min L) on a grid, refines the best cell by golden
// section, and reports whether the optimum is inside the range.
func bestE(x, y []float64) (float64, bool) {
	top := slices.Min(y)
	sse := func(e float64) float64 {
		f, err := fitWithE(x, y, e)
		if err != nil {
			return math.Inf(1)
		}
		return f.SSE
	}
	const grid = 200
	best, bestSSE := 0, math.Inf(1)
	for k := range grid {
		if s := sse(top * float64(k) / grid); s < bestSSE {
			best, bestSSE = k, s
		}
	}
	if best == 0 || best == grid-1 {
		return 0, false
	}
	lo, hi := top*float64(best-1)/grid, top*float64(best+1)/grid
	const phi = 0.6180339887498949
	for range 60 {
		a, b := hi-phi*(hi-lo), lo+phi*(hi-lo)
		if sse(a) < sse(b) {
			hi = b
		} else {
			lo = a
		}
	}
	return (lo + hi) / 2, true
}

// bootstrapAlpha resamples the points with replacement and refits α with
// E held at e; resamples with a single distinct x are skipped. It returns
// the 2.5 and 97.5 percentiles.
func bootstrapAlpha(x, y []float64, e float64) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(bootstrapSeed, uint64(len(x))))
	var alphas []float64
	bx, by := make([]float64, len(x)), make([]float64, len(x))
	for range bootstrapResamples {
		for i := range x {
			j := rng.IntN(len(x))
			bx[i], by[i] = x[j], y[j]
		}
		if f, err := fitWithE(bx, by, e); err == nil {
			alphas = append(alphas, f.Alpha)
		}
	}
	if len(alphas) == 0 {
		return math.NaN(), math.NaN()
	}
	slices.Sort(alphas)
	return quantile(alphas, 0.025), quantile(alphas, 0.975)
}

// quantile of sorted values, linear between order statistics.
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

// Frontier is the compute-optimal frontier of (compute, loss) points: the
// lower envelope, i.e. the points whose loss is below that of every point
// with less or equal compute, in increasing compute.
func Frontier(cs, ls []float64) (fc, fl []float64) {
	idx := make([]int, 0, len(cs))
	for i := range min(len(cs), len(ls)) {
		if valid(cs[i], log10) && valid(ls[i], log10) {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if cs[a] != cs[b] {
			return cmpFloat(cs[a], cs[b])
		}
		return cmpFloat(ls[a], ls[b])
	})
	best := math.Inf(1)
	for _, i := range idx {
		if ls[i] < best {
			best = ls[i]
			fc, fl = append(fc, cs[i]), append(fl, ls[i])
		}
	}
	return fc, fl
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
