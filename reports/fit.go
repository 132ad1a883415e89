package reports

import (
	"errors"
	"math"
)

// PowerLaw is y = A·x^B.
type PowerLaw struct {
	A, B float64
	R2   float64 // coefficient of determination of the fit in log–log space
	N    int     // points used
}

// At evaluates the law.
func (p PowerLaw) At(x float64) float64 { return p.A * math.Pow(x, p.B) }

// FitPowerLaw fits y = a·x^b by ordinary least squares on (ln x, ln y):
//
//	ln y = ln a + b·ln x
//	b = Σ (u-ū)(v-v̄) / Σ (u-ū)²,  ln a = v̄ - b·ū   (u = ln x, v = ln y)
//
// so every point weighs the same in relative error, which is what a straight
// line on a log–log plot shows. Points with x or y not finite and > 0 are
// skipped; at least two distinct x values must remain.
func FitPowerLaw(xs, ys []float64) (PowerLaw, error) {
	var u, v []float64
	for i := range min(len(xs), len(ys)) {
		if valid(xs[i], log10) && valid(ys[i], log10) {
			u = append(u, math.Log(xs[i]))
			v = append(v, math.Log(ys[i]))
		}
	}
	n := len(u)
	if n < 2 {
		return PowerLaw{}, errors.New("power-law fit needs at least two points with x, y > 0")
	}
	var mu, mv float64
	for i := range u {
		mu += u[i]
		mv += v[i]
	}
	mu /= float64(n)
	mv /= float64(n)
	var suu, suv, svv float64
	for i := range u {
		du, dv := u[i]-mu, v[i]-mv
		suu += du * du
		suv += du * dv
		svv += dv * dv
	}
	if suu == 0 {
		return PowerLaw{}, errors.New("power-law fit needs at least two distinct x values")
	}
	b := suv / suu
	lnA := mv - b*mu
	r2 := 1.0
	if svv > 0 {
		var sse float64
		for i := range u {
			e := v[i] - (lnA + b*u[i])
			sse += e * e
		}
		r2 = 1 - sse/svv
	}
	return PowerLaw{A: math.Exp(lnA), B: b, R2: r2, N: n}, nil
}
