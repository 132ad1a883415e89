package cpukernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/nn"
)

// ewClose fails naming the worst element unless |got−want| ≤ atol + rtol·|want|
// everywhere; infinities must match exactly.
func ewClose(t *testing.T, name string, got, want []float64, rtol, atol float64) {
	t.Helper()
	worst, at := 0.0, -1
	for i := range want {
		var r float64
		switch {
		case got[i] == want[i]:
		case math.IsInf(want[i], 0) || math.IsNaN(want[i]):
			if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
				r = math.Inf(1)
			}
		default:
			r = math.Abs(got[i]-want[i]) / (atol + rtol*math.Abs(want[i]))
			if math.IsNaN(r) {
				r = math.Inf(1)
			}
		}
		if r > worst {
			worst, at = r, i
		}
	}
	if worst > 1 {
		t.Fatalf("%s: worst element %d = %g, want %g (%.3g× the tolerance)", name, at, got[at], want[at], worst)
	}
}

// ewPoints are inputs where activations saturate, switch branches or would
// underflow, plus ordinary values.
var ewPoints = []float64{-1e4, -1000, -709, -708, -100, -88, -87.5, -87, -30, -20, -14, -13, -5, -1.5, -1, -0.3,
	0, 0.3, 1, 1.5, 5, 13, 19.9, 20, 20.1, 30, 87, 100, 1000}

// ewRef is the textbook definition of each activation and its derivative,
// in float64, as torch defines it.
func ewRef(kind nn.Activation, x float64) (f, df float64) {
	sig := 1 / (1 + math.Exp(-x))
	switch kind {
	case nn.Identity:
		return x, 1
	case nn.ReLU:
		if x > 0 {
			return x, 1
		}
		return 0, 0
	case nn.GELU:
		cdf := 0.5 * math.Erfc(-x/math.Sqrt2)
		return x * cdf, cdf + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
	case nn.GELUTanh:
		c := math.Sqrt(2 / math.Pi)
		u := c * (x + 0.044715*x*x*x)
		t := math.Tanh(u)
		return 0.5 * x * (1 + t), 0.5*(1+t) + 0.5*x*(1-t*t)*c*(1+3*0.044715*x*x)
	case nn.SiLU:
		return x * sig, sig * (1 + x*(1-sig))
	case nn.Sigmoid:
		return sig, sig * (1 - sig)
	case nn.Tanh:
		t := math.Tanh(x)
		return t, 1 - t*t
	case nn.Softplus:
		if x > 20 {
			return x, 1
		}
		return math.Log1p(math.Exp(x)), sig
	case nn.Exp:
		return math.Exp(x), math.Exp(x)
	}
	panic("unknown activation")
}

var ewKinds = []nn.Activation{nn.Identity, nn.ReLU, nn.GELU, nn.GELUTanh, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Exp}

func TestActExtremes(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testActExtremes(t, New[float64](), 1e-13, 1e-15) })
	t.Run("float32", func(t *testing.T) { testActExtremes(t, New[float32](), 1e-6, 1e-15) })
}

// testActExtremes checks Act and ActBackward at ewPoints against ewRef. A
// reference value below T's smallest normal is expected as exactly 0; atol
// covers the cancellation of 1+tanh in the reference and the clamped exp
// (SiLU(−88) is −88·e⁻⁸⁸ in the reference, 0 in float32).
func testActExtremes[T Float](t *testing.T, be *Backend[T], rtol, atol float64) {
	var xs []float64
	for _, x := range ewPoints {
		if v := float64(T(x)); !math.IsInf(v, 0) {
			xs = append(xs, v)
		}
	}
	tiny := minNormal[T]()
	round := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return 0
		}
		return float64(T(v))
	}
	for _, kind := range ewKinds {
		n := len(xs)
		x, out, dx := be.Alloc(n), be.Alloc(n), be.Alloc(n)
		be.Write(x, xs)
		g := make([]float64, n)
		for i := range g {
			g[i] = 0.5
		}
		dout := be.Alloc(n)
		be.Write(dout, g)
		be.Fill(dx, 1)
		be.Act(kind, out, x)
		be.ActBackward(kind, dx, x, dout)
		want, wantD := make([]float64, n), make([]float64, n)
		for i, v := range xs {
			f, df := ewRef(kind, v)
			want[i], wantD[i] = round(f), round(1+0.5*df)
		}
		ewClose(t, kind.String(), be.Read(out), want, rtol, atol)
		ewClose(t, kind.String()+" backward", be.Read(dx), wantD, rtol, atol)
	}
}

// No activation or derivative returns a subnormal: they slow x86 down by
// 10–100× (docs/DESIGN.md, "Subnormal floats").
func TestActNoSubnormals(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testActNoSubnormals(t, New[float64](), -1000) })
	t.Run("float32", func(t *testing.T) { testActNoSubnormals(t, New[float32](), -200) })
}

func testActNoSubnormals[T Float](t *testing.T, be *Backend[T], lo float64) {
	var xs []float64
	for x := lo; x <= 0; x += 0.125 {
		xs = append(xs, x)
	}
	n := len(xs)
	x, out, dx, dout := be.Alloc(n), be.Alloc(n), be.Alloc(n), be.Alloc(n)
	be.Write(x, xs)
	be.Fill(dout, 1)
	tiny := minNormal[T]()
	for _, kind := range ewKinds {
		be.Act(kind, out, x)
		be.Fill(dx, 0)
		be.ActBackward(kind, dx, x, dout)
		for name, b := range map[string]nn.Buffer{"": out, " backward": dx} {
			for i, v := range be.Read(b) {
				if v != 0 && math.Abs(v) < tiny {
					t.Fatalf("%s%s(%g) = %g is subnormal", kind, name, xs[i], v)
				}
			}
		}
	}
}

// Outputs may alias inputs, and the parallel split (workers > 1, n over one
// grain) gives the same bits as one worker.
func TestElementwiseAliasAndParallel(t *testing.T) {
	const n = 3*copyGrain + 17
	rng := rand.New(rand.NewPCG(3, 4))
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range xs {
		xs[i], ys[i] = 3*rng.NormFloat64(), rng.NormFloat64()
	}
	one, par := &Backend[float32]{workers: 1}, &Backend[float32]{workers: 3}
	run := func(be *Backend[float32]) [][]float64 {
		x, y := be.Alloc(n), be.Alloc(n)
		be.Write(x, xs)
		be.Write(y, ys)
		var res [][]float64
		be.Add(x, x, y) // in place
		res = append(res, be.Read(x))
		be.Mul(y, x, y)
		res = append(res, be.Read(y))
		be.MulBackward(x, nil, y, y, y)
		be.MulBackward(nil, y, x, x, x)
		res = append(res, be.Read(x), be.Read(y))
		be.Axpy(-0.5, x, y)
		be.Scale(x, 0.25)
		res = append(res, be.Read(x), be.Read(y))
		for _, kind := range ewKinds[:len(ewKinds)-1] {
			be.Act(kind, y, x)
			be.ActBackward(kind, x, y, y)
			res = append(res, be.Read(y), be.Read(x))
		}
		const rows, cols = 1001, n / 1001
		be.AddBias(x, x, y, rows, cols) // in place
		res = append(res, be.Read(x))
		sums := be.Alloc(cols)
		be.Fill(sums, 1)
		be.SumRows(sums, x, rows, cols)
		res = append(res, be.Read(sums), []float64{be.Sum(x), be.SumSquares(x)})
		return res
	}
	a, b := run(one), run(par)
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] && !(math.IsNaN(a[i][j]) && math.IsNaN(b[i][j])) {
				t.Fatalf("result %d element %d: %g with 1 worker, %g with 3", i, j, a[i][j], b[i][j])
			}
		}
	}
	// The first results against plain loops.
	want := make([]float64, n)
	for i := range want {
		want[i] = float64(float32(xs[i]) + float32(ys[i]))
	}
	ewClose(t, "Add in place", a[0], want, 0, 0)
}

func TestSumRowsAccumulates(t *testing.T) {
	be := New[float32]()
	x := Buf[float32]{1, 2, 3, 4, 5, 6}
	out := Buf[float32]{10, 20, 30, 99}
	be.SumRows(out, x, 2, 3)
	ewClose(t, "SumRows", be.Read(out), []float64{15, 27, 39, 99}, 0, 0)
}

func TestSumSquaresNonFinite(t *testing.T) {
	be := New[float32]()
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		x := be.Alloc(5 * reduceBlock)
		be.Fill(x, 1)
		be.Write(x, []float64{2, bad})
		if s := be.SumSquares(x); !math.IsNaN(s) && !math.IsInf(s, 0) {
			t.Errorf("SumSquares with %g = %g, want non-finite", bad, s)
		}
	}
	x := be.Alloc(5*reduceBlock + 3)
	be.Fill(x, 0.5)
	if s, want := be.SumSquares(x), 0.25*float64(5*reduceBlock+3); s != want {
		t.Errorf("SumSquares = %g, want %g", s, want)
	}
}
