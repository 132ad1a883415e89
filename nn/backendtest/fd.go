package backendtest

import "math"

// vjp is the vector-Jacobian product dout·∂f/∂x by central differences in
// float64:
//
//	for i := range x {
//		g[i] = (⟨dout, f(x + h·e_i)⟩ − ⟨dout, f(x − h·e_i)⟩) / 2h
//	}
//
// with h = 1e-6·max(1, |x[i]|). f reads x (and whatever else it closes
// over) each call; x is restored on return.
func vjp(f func() []float64, x, dout []float64) []float64 {
	g := make([]float64, len(x))
	for i, xi := range x {
		h := 1e-6 * max(1, math.Abs(xi))
		hi, lo := xi+h, xi-h
		x[i] = hi
		fp := dot(dout, f())
		x[i] = lo
		fm := dot(dout, f())
		x[i] = xi
		g[i] = (fp - fm) / (hi - lo)
	}
	return g
}
