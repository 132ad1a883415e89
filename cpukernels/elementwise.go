package cpukernels

import (
	"fmt"
	"math"

	"seqbench/nn"
)

// Arguments of exp below these give exactly 0: exp(−87) ≈ 1.6e−38 and
// exp(−708) ≈ 3.3e−308 are the last values above the smallest normal number
// of float32 and float64. Subnormals make x86 arithmetic 10–100× slower
// (docs/DESIGN.md, "Subnormal floats").
const (
	expMin32 = -87.0
	expMin64 = -708.0
)

// softplusThreshold is torch's: softplus(x) = x for x > 20.
const softplusThreshold = 20

// expLimit is the argument below which exp flushes to 0 for T.
func expLimit[T Float]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return expMin32
	}
	return expMin64
}

// minNormal is the smallest positive normal number of T.
func minNormal[T Float]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 0x1p-126
	}
	return 0x1p-1022
}

// flush rounds v to T, giving 0 where the result would be subnormal.
func flush[T Float](v, tiny float64) T {
	if math.Abs(v) < tiny {
		return 0
	}
	return T(v)
}

// expClamped is exp(x), exactly 0 for x < lim.
func expClamped(x, lim float64) float64 {
	if x < lim {
		return 0
	}
	return math.Exp(x)
}

// sigmoid is 1/(1+exp(−x)) without overflow for large |x|; exp never
// produces a subnormal on the way.
func sigmoid(x, lim float64) float64 {
	if x >= 0 {
		return 1 / (1 + expClamped(-x, lim))
	}
	e := expClamped(x, lim)
	return e / (1 + e)
}

// elemwise runs body over [0, n) in chunks large enough to pay for a
// goroutine. Bodies index every slice at the same i, so out may alias inputs.
func (be *Backend[T]) elemwise(n int, body func(lo, hi int)) {
	be.parallelFor(n, copyGrain, body)
}

// Add is
//
//	for i := range out {
//		out[i] = a[i] + b[i]
//	}
func (be *Backend[T]) Add(out, a, b nn.Buffer) {
	o := data[T](out, -1, "Add", "out")
	x := data[T](a, len(o), "Add", "a")
	y := data[T](b, len(o), "Add", "b")
	be.elemwise(len(o), func(lo, hi int) {
		o, x, y := o[lo:hi], x[lo:hi], y[lo:hi]
		for i := range o {
			o[i] = x[i] + y[i]
		}
	})
}

// Mul is
//
//	for i := range out {
//		out[i] = a[i] * b[i]
//	}
func (be *Backend[T]) Mul(out, a, b nn.Buffer) {
	o := data[T](out, -1, "Mul", "out")
	x := data[T](a, len(o), "Mul", "a")
	y := data[T](b, len(o), "Mul", "b")
	be.elemwise(len(o), func(lo, hi int) {
		o, x, y := o[lo:hi], x[lo:hi], y[lo:hi]
		for i := range o {
			o[i] = x[i] * y[i]
		}
	})
}

// MulBackward is, over n = dout.Len() elements,
//
//	for i := range dout {
//		da[i] += dout[i] * b[i] // if da != nil
//		db[i] += dout[i] * a[i] // if db != nil
//	}
func (be *Backend[T]) MulBackward(da, db, a, b, dout nn.Buffer) {
	g := data[T](dout, -1, "MulBackward", "dout")
	n := len(g)
	if da != nil {
		d := data[T](da, n, "MulBackward", "da")
		y := data[T](b, n, "MulBackward", "b")
		be.elemwise(n, func(lo, hi int) {
			d, y, g := d[lo:hi], y[lo:hi], g[lo:hi]
			for i := range d {
				d[i] += g[i] * y[i]
			}
		})
	}
	if db != nil {
		d := data[T](db, n, "MulBackward", "db")
		x := data[T](a, n, "MulBackward", "a")
		be.elemwise(n, func(lo, hi int) {
			d, x, g := d[lo:hi], x[lo:hi], g[lo:hi]
			for i := range d {
				d[i] += g[i] * x[i]
			}
		})
	}
}

// Axpy is
//
//	for i := range y {
//		y[i] += alpha * x[i]
//	}
func (be *Backend[T]) Axpy(alpha float64, x, y nn.Buffer) {
	yd := data[T](y, -1, "Axpy", "y")
	xd := data[T](x, len(yd), "Axpy", "x")
	a := T(alpha)
	be.elemwise(len(yd), func(lo, hi int) {
		y, x := yd[lo:hi], xd[lo:hi]
		for i := range y {
			y[i] += a * x[i]
		}
	})
}

// Scale is
//
//	for i := range x {
//		x[i] *= s
//	}
func (be *Backend[T]) Scale(x nn.Buffer, s float64) {
	xd := data[T](x, -1, "Scale", "x")
	a := T(s)
	be.elemwise(len(xd), func(lo, hi int) {
		x := xd[lo:hi]
		for i := range x {
			x[i] *= a
		}
	})
}

// unaryFuncs returns f and its derivative f' for kind, computed in float64.
// Results that would be subnormal in T are flushed to 0 by the callers.
func unaryFuncs(kind nn.Activation, lim float64) (f, df func(x float64) float64) {
	const (
		invSqrt2   = 1 / math.Sqrt2
		invSqrt2Pi = 0.3989422804014327 // 1/sqrt(2π)
		c          = 0.7978845608028654 // sqrt(2/π)
		k          = 0.044715
	)
	switch kind {
	case nn.GELU:
		// Φ(x) as erfc: 1+erf(x/√2) loses all digits for x ≪ 0.
		f = func(x float64) float64 { return 0.5 * x * math.Erfc(-x*invSqrt2) }
		df = func(x float64) float64 {
			return 0.5*math.Erfc(-x*invSqrt2) + x*invSqrt2Pi*expClamped(-0.5*x*x, lim)
		}
	case nn.GELUTanh:
		// 0.5·(1+tanh(u)) = sigmoid(2u), which does not cancel for x ≪ 0.
		f = func(x float64) float64 { return x * sigmoid(2*c*(x+k*x*x*x), lim) }
		df = func(x float64) float64 {
			s := sigmoid(2*c*(x+k*x*x*x), lim)
			return s + 2*x*s*(1-s)*c*(1+3*k*x*x)
		}
	case nn.SiLU:
		f = func(x float64) float64 { return x * sigmoid(x, lim) }
		df = func(x float64) float64 {
			s := sigmoid(x, lim)
			return s * (1 + x*(1-s))
		}
	case nn.Sigmoid:
		f = func(x float64) float64 { return sigmoid(x, lim) }
		df = func(x float64) float64 {
			s := sigmoid(x, lim)
			return s * (1 - s)
		}
	case nn.Tanh:
		f = math.Tanh
		df = func(x float64) float64 {
			t := math.Tanh(x)
			return 1 - t*t
		}
	case nn.Softplus:
		f = func(x float64) float64 {
			if x > softplusThreshold {
				return x
			}
			return math.Log1p(expClamped(x, lim))
		}
		df = func(x float64) float64 {
			if x > softplusThreshold {
				return 1
			}
			return sigmoid(x, lim)
		}
	case nn.Exp:
		f = func(x float64) float64 { return expClamped(x, lim) }
		df = f
	default:
		panic(fmt.Sprintf("cpukernels: unknown activation %d", int(kind)))
	}
	return f, df
}

// Act is
//
//	for i := range out {
//		out[i] = f(x[i])
//	}
//
// for the activation f named by kind. Transcendental ones are evaluated in
// float64 and rounded once; results below T's smallest normal become 0.
func (be *Backend[T]) Act(kind nn.Activation, out, x nn.Buffer) {
	check("Act", kind.Check())
	o := data[T](out, -1, "Act", "out")
	xd := data[T](x, len(o), "Act", "x")
	switch kind {
	case nn.Identity:
		copy(o, xd)
		return
	case nn.ReLU:
		be.elemwise(len(o), func(lo, hi int) {
			o, x := o[lo:hi], xd[lo:hi]
			for i := range o {
				o[i] = max(x[i], 0)
			}
		})
		return
	}
	f, _ := unaryFuncs(kind, expLimit[T]())
	tiny := minNormal[T]()
	be.elemwise(len(o), func(lo, hi int) {
		o, x := o[lo:hi], xd[lo:hi]
		for i := range o {
			o[i] = flush[T](f(float64(x[i])), tiny)
		}
	})
}

// ActBackward is
//
//	for i := range dx {
//		dx[i] += f'(x[i]) * dout[i]
//	}
//
// with ReLU'(0) = 0 and Softplus' = 1 above the threshold, as in torch.
func (be *Backend[T]) ActBackward(kind nn.Activation, dx, x, dout nn.Buffer) {
	check("ActBackward", kind.Check())
	d := data[T](dx, -1, "ActBackward", "dx")
	xd := data[T](x, len(d), "ActBackward", "x")
	g := data[T](dout, len(d), "ActBackward", "dout")
	switch kind {
	case nn.Identity:
		be.elemwise(len(d), func(lo, hi int) {
			d, g := d[lo:hi], g[lo:hi]
			for i := range d {
				d[i] += g[i]
			}
		})
		return
	case nn.ReLU:
		be.elemwise(len(d), func(lo, hi int) {
			d, x, g := d[lo:hi], xd[lo:hi], g[lo:hi]
			for i := range d {
				if x[i] > 0 {
					d[i] += g[i]
				}
			}
		})
		return
	}
	_, df := unaryFuncs(kind, expLimit[T]())
	tiny := minNormal[T]()
	be.elemwise(len(d), func(lo, hi int) {
		d, x, g := d[lo:hi], xd[lo:hi], g[lo:hi]
		for i := range d {
			d[i] = flush[T](float64(d[i])+df(float64(x[i]))*float64(g[i]), tiny)
		}
	})
}

// AddBias is
//
//	for r := 0; r < rows; r++ {
//		for c := 0; c < cols; c++ {
//			out[r*cols+c] = x[r*cols+c] + bias[c]
//		}
//	}
//
// out may be x.
func (be *Backend[T]) AddBias(out, x, bias nn.Buffer, rows, cols int) {
	check("AddBias", nn.CheckMatrix(rows, cols))
	n := rows * cols
	o := data[T](out, n, "AddBias", "out")
	xd := data[T](x, n, "AddBias", "x")
	bd := data[T](bias, cols, "AddBias", "bias")[:cols]
	be.parallelFor(rows, max(1, copyGrain/max(cols, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o, x := o[r*cols:(r+1)*cols], xd[r*cols:(r+1)*cols]
			for c, b := range bd {
				o[c] = x[c] + b
			}
		}
	})
}

// SumRows is
//
//	for r := 0; r < rows; r++ {
//		for c := 0; c < cols; c++ {
//			out[c] += x[r*cols+c]
//		}
//	}
//
// summed in float64 (a bias gradient adds up to batch×length rows). Workers
// split the columns, so the result does not depend on their number.
func (be *Backend[T]) SumRows(out, x nn.Buffer, rows, cols int) {
	check("SumRows", nn.CheckMatrix(rows, cols))
	o := data[T](out, cols, "SumRows", "out")
	xd := data[T](x, rows*cols, "SumRows", "x")
	be.parallelFor(cols, max(1, copyGrain/max(rows, 1)), func(lo, hi int) {
		acc := make([]float64, hi-lo)
		for r := 0; r < rows; r++ {
			for i, v := range xd[r*cols+lo : r*cols+hi] {
				acc[i] += float64(v)
			}
		}
		for i, s := range acc {
			o[lo+i] = T(float64(o[lo+i]) + s)
		}
	})
}

// reduceBlock is the fixed block of a parallel reduction: partial sums are
// per block, not per worker, so results do not depend on the core count.
const reduceBlock = 1 << 15

// reduce sums part(x[lo:hi]) over fixed blocks, adding the partials in order.
func (be *Backend[T]) reduce(x []T, part func(x []T) float64) float64 {
	nb := (len(x) + reduceBlock - 1) / reduceBlock
	if nb <= 1 {
		return part(x)
	}
	partial := make([]float64, nb)
	be.parallelFor(nb, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			partial[b] = part(x[b*reduceBlock : min((b+1)*reduceBlock, len(x))])
		}
	})
	s := 0.0
	for _, p := range partial {
		s += p
	}
	return s
}

// Sum is Σ x[i], accumulated in float64.
func (be *Backend[T]) Sum(x nn.Buffer) float64 {
	return be.reduce(data[T](x, -1, "Sum", "x"), func(x []T) float64 {
		s := 0.0
		for _, v := range x {
			s += float64(v)
		}
		return s
	})
}

// SumSquares is Σ x[i]², accumulated in float64; NaN or Inf in x make it
// non-finite.
func (be *Backend[T]) SumSquares(x nn.Buffer) float64 {
	return be.reduce(data[T](x, -1, "SumSquares", "x"), func(x []T) float64 {
		s := 0.0
		for _, v := range x {
			f := float64(v)
			s += f * f
		}
		return s
	})
}
