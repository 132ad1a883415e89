package cpukernels

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"seqbench/nn"
)

// The conformance suite (nn/backendtest, "SSD", "SSDChunkInvariance",
// "SSDPieces") checks SSD against the recurrence and finite differences;
// these tests add the PyTorch golden vector, the subnormal guard and the
// timings.

// The golden vector 02_ssd (mamba_chunk_scan_combined semantics, float64
// autograd through the recurrence): out and every gradient, with the chunk
// size and softplus its flags give.
func TestSSDGolden(t *testing.T) {
	const file = "02_ssd.safetensors"
	v := refGolden(t, file)
	flags, shapes := goldenHeader(t, file)
	chunk, softplus := 0, false
	fs := strings.Fields(flags)
	for i := 0; i < len(fs); i++ {
		switch {
		case fs[i] == "--chunk-size" && i+1 < len(fs):
			i++
			chunk, _ = strconv.Atoi(fs[i])
		case fs[i] == "--dt-softplus":
			softplus = true
		default:
			t.Fatalf("%s: unknown flag %q in %q", file, fs[i], flags)
		}
	}
	x, bm := shapes["x"], shapes["B"] // (B, L, H, P), (B, L, G, N)
	if len(x) != 4 || len(bm) != 4 || chunk < 1 {
		t.Fatalf("%s: x %v, B %v, flags %q", file, x, bm, flags)
	}
	t.Logf("x %v, B %v, %s", x, bm, flags)
	run := func(t *testing.T, f func(*testing.T, map[string][]float64, int, int, int, int, int, int, int, bool, float64), tol float64) {
		f(t, v, x[0], x[1], x[2], x[3], bm[2], bm[3], chunk, softplus, tol)
	}
	t.Run("float64", func(t *testing.T) { run(t, testSSDGolden[float64], 1e-10) })
	t.Run("float32", func(t *testing.T) { run(t, testSSDGolden[float32], 1e-4) })
}

func testSSDGolden[T Float](t *testing.T, v map[string][]float64, B, L, H, P, G, N, chunk int, softplus bool, tol float64) {
	be := New[T]()
	a := nn.SSDArgs{B: B, L: L, H: H, P: P, G: G, N: N, Chunk: chunk, DtSoftplus: softplus,
		X: refWithGuard[T](v["x"]), Dt: refWithGuard[T](v["dt"]), A: refWithGuard[T](v["A"]),
		Bm: refWithGuard[T](v["B"]), Cm: refWithGuard[T](v["C"]), Dskip: refWithGuard[T](v["D"]),
		DtBias: refWithGuard[T](v["dt_bias"])}
	nx := len(v["x"])
	out := refPoisoned[T](nx)
	be.SSD(out, nil, a)
	refCheckGuard(t, "out", out, nx)
	check := func(name string, got []float64, want []float64) {
		t.Helper()
		e := relNorm(got, want)
		t.Logf("%s: norm-wise rel err %.2g", name, e)
		if !(e <= tol) {
			t.Errorf("%s: rel err %.3g > %g", name, e, tol)
		}
	}
	check("out", refF64(out, nx), v["out"])

	grads := map[string]Buf[T]{}
	for _, k := range []string{"x", "dt", "A", "B", "C", "D", "dt_bias"} {
		grads[k] = make(Buf[T], len(v[k]))
	}
	be.SSDBackward(nn.SSDGrads{X: grads["x"], Dt: grads["dt"], A: grads["A"], Bm: grads["B"], Cm: grads["C"],
		Dskip: grads["D"], DtBias: grads["dt_bias"]}, a, refWithGuard[T](v["dout"]))
	for k, g := range grads {
		check("d"+k, refF64(g, len(g)), v["d"+k])
	}
}

// relNorm is ‖got − want‖ / ‖want‖.
func relNorm(got, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		d := got[i] - w
		num += d * d
		den += w * w
	}
	return math.Sqrt(num / den)
}

func isSubnormal(v float64, tiny float64) bool { return v != 0 && math.Abs(v) < tiny }

// ssdDecayArgs is a long decay: a random initial state, inputs only in the
// first steps, then per-step decays dt·A of 0.05 .. 1 by head, so every
// head's state falls through float32's (and the fast ones through
// float64's) subnormal range inside the run. fast = false keeps A = 0: the
// same work with states that stay normal.
func ssdDecayArgs[T Float](B, L, H, P, N, chunk int, decaying bool) nn.SSDArgs {
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, B*L*H*P)
	for i := range B * 4 * H * P { // the first 4 steps of batch 0, and into batch 1
		x[i] = rng.NormFloat64()
	}
	dt := make([]float64, B*L*H)
	for i := range dt {
		dt[i] = 1
	}
	A := make([]float64, H)
	rates := []float64{0.05, 0.2, 0.5, 1}
	if decaying {
		for h := range A {
			A[h] = -rates[h%len(rates)]
		}
	}
	return nn.SSDArgs{B: B, L: L, H: H, P: P, G: 1, N: N, Chunk: chunk,
		X: refBuf[T](x), Dt: refBuf[T](dt), A: refBuf[T](A),
		Bm: refBuf[T](refRandn(rng, B*L*N, 1)), Cm: refBuf[T](refRandn(rng, B*L*N, 1)),
		Dskip: refBuf[T](refRandn(rng, H, 1)), H0: refBuf[T](refRandn(rng, B*H*P*N, 1))}
}

// No output, final state or gradient of a long decay is subnormal, and the
// decaying run is not slower than the same work with normal states
// (docs/DESIGN.md, "Subnormal floats").
func TestSSDLongDecayNoSubnormals(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testSSDLongDecay[float64](t) })
	t.Run("float32", func(t *testing.T) { testSSDLongDecay[float32](t) })
}

func testSSDLongDecay[T Float](t *testing.T) {
	be := New[T]()
	tiny := minNormal[T]()
	const B, L, H, P, N, chunk = 2, 4096, 4, 8, 8, 64
	a := ssdDecayArgs[T](B, L, H, P, N, chunk, true)
	out, hT := make(Buf[T], B*L*H*P), make(Buf[T], B*H*P*N)
	// Alternate the two runs and keep each one's best, so that load from
	// other processes on a shared machine hits both alike.
	steadyArgs := ssdDecayArgs[T](B, L, H, P, N, chunk, false)
	decay, steady := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 4 {
		start := time.Now()
		be.SSD(out, hT, steadyArgs)
		steady = min(steady, time.Since(start))
		start = time.Now()
		be.SSD(out, hT, a)
		decay = min(decay, time.Since(start))
	}
	zeros := 0
	for i, v := range out {
		if isSubnormal(float64(v), tiny) {
			t.Fatalf("out[%d] = %g is subnormal", i, v)
		}
		if v == 0 {
			zeros++
		}
	}
	for i, v := range hT {
		if isSubnormal(float64(v), tiny) {
			t.Fatalf("hT[%d] = %g is subnormal", i, v)
		}
	}
	if zeros == 0 {
		t.Errorf("no output decayed to 0: the test does not reach the subnormal range")
	}
	// Times are logged, never asserted (a loaded machine makes them noise);
	// the exact zeros above are what proves the flush.
	t.Logf("decaying run %v, steady run %v (%d of %d outputs decayed to 0)", decay, steady, zeros, len(out))

	dout := refBuf[T](refRandn(rand.New(rand.NewPCG(5, 6)), B*L*H*P, 1))
	g := nn.SSDGrads{X: make(Buf[T], B*L*H*P), Dt: make(Buf[T], B*L*H), A: make(Buf[T], H),
		Bm: make(Buf[T], B*L*N), Cm: make(Buf[T], B*L*N), Dskip: make(Buf[T], H)}
	a.H0 = nil // backwards start from zeros; the decay is then of the adjoint
	be.SSDBackward(g, a, dout)
	for name, buf := range map[string]nn.Buffer{"dX": g.X, "dDt": g.Dt, "dA": g.A, "dBm": g.Bm, "dCm": g.Cm, "dD": g.Dskip} {
		for i, v := range buf.(Buf[T]) {
			if isSubnormal(float64(v), tiny) || math.IsNaN(float64(v)) {
				t.Fatalf("%s[%d] = %g", name, i, v)
			}
		}
	}
}

// The arguments SSD rejects: a programming error inside seqbench, so a
// panic that says what is wrong.
func TestSSDPanics(t *testing.T) {
	be := New[float64]()
	a := nn.SSDArgs{B: 1, L: 4, H: 3, P: 2, G: 2, N: 2, Chunk: 2,
		X: make(Buf[float64], 24), Dt: make(Buf[float64], 12), A: make(Buf[float64], 3),
		Bm: make(Buf[float64], 16), Cm: make(Buf[float64], 16)}
	refPanics(t, "G not dividing H", "G dividing H", func() { be.SSD(make(Buf[float64], 24), nil, a) })
	a.G, a.Chunk = 1, 0
	refPanics(t, "chunk 0", "Chunk", func() { be.SSD(make(Buf[float64], 24), nil, a) })
	a.Chunk = 2
	refPanics(t, "short out", "out holds 23", func() { be.SSD(make(Buf[float64], 23), nil, a) })
	refPanics(t, "dD without D", "without Dskip", func() {
		be.SSDBackward(nn.SSDGrads{Dskip: make(Buf[float64], 3)}, a, make(Buf[float64], 24))
	})
}

// Gradients must not depend on the number of workers (dB and dC sum the
// heads of a group, dA, dD and dDtBias the batch): bitwise equal.
func TestSSDBackwardDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const B, L, H, P, G, N = 3, 29, 4, 3, 2, 5
	a := nn.SSDArgs{B: B, L: L, H: H, P: P, G: G, N: N, Chunk: 8, DtSoftplus: true,
		X: refBuf[float64](refRandn(rng, B*L*H*P, 1)), Dt: refBuf[float64](refRandn(rng, B*L*H, 1)),
		A: refBuf[float64](refRandn(rng, H, 1)), Bm: refBuf[float64](refRandn(rng, B*L*G*N, 1)),
		Cm: refBuf[float64](refRandn(rng, B*L*G*N, 1)), Dskip: refBuf[float64](refRandn(rng, H, 1)),
		DtBias: refBuf[float64](refRandn(rng, H, 1))}
	dout := refBuf[float64](refRandn(rng, B*L*H*P, 1))
	grads := func(workers int) []float64 {
		be := &Backend[float64]{workers: workers}
		g := nn.SSDGrads{X: make(Buf[float64], B*L*H*P), Dt: make(Buf[float64], B*L*H), A: make(Buf[float64], H),
			Bm: make(Buf[float64], B*L*G*N), Cm: make(Buf[float64], B*L*G*N), Dskip: make(Buf[float64], H),
			DtBias: make(Buf[float64], H)}
		be.SSDBackward(g, a, dout)
		var all []float64
		for _, b := range []nn.Buffer{g.X, g.Dt, g.A, g.Bm, g.Cm, g.Dskip, g.DtBias} {
			all = append(all, b.(Buf[float64])...)
		}
		return all
	}
	one := grads(1)
	for _, w := range []int{2, 3, 7} {
		for i, v := range grads(w) {
			if v != one[i] {
				t.Fatalf("%d workers: element %d is %.17g, with 1 worker %.17g", w, i, v, one[i])
			}
		}
	}
}

// A Mamba-2 layer's SSD at a small training size: d_model 128 (E·D = 256,
// headdim 32: H = 8), N = 32, chunk 64.
func BenchmarkSSD(b *testing.B) {
	benchSSD(b, benchSSDArgs(), New[float32]().SSD, New[float32]().SSDBackward)
}

// benchSSDArgs are BenchmarkSSD's inputs (float32).
func benchSSDArgs() nn.SSDArgs {
	const B, L, H, P, G, N = 4, 1024, 8, 32, 1, 32
	rng := rand.New(rand.NewPCG(1, 2))
	dt := refRandn(rng, B*L*H, 0.5)
	for i := range dt {
		dt[i] -= 2
	}
	a := nn.SSDArgs{B: B, L: L, H: H, P: P, G: G, N: N, Chunk: 64, DtSoftplus: true,
		X: refBuf[float32](refRandn(rng, B*L*H*P, 1)), Dt: refBuf[float32](dt),
		A: refBuf[float32](refRandn(rng, H, 1)), Bm: refBuf[float32](refRandn(rng, B*L*G*N, 1)),
		Cm: refBuf[float32](refRandn(rng, B*L*G*N, 1)), Dskip: refBuf[float32](refRandn(rng, H, 1))}
	for i, v := range a.A.(Buf[float32]) {
		a.A.(Buf[float32])[i] = -float32(math.Abs(float64(v)) + 0.5)
	}
	return a
}

// benchSSD times fwd and bwd (SSD and SSDBackward or the chunked pair) on a.
func benchSSD(b *testing.B, a nn.SSDArgs, fwd func(out, hT nn.Buffer, a nn.SSDArgs), bwd func(nn.SSDGrads, nn.SSDArgs, nn.Buffer)) {
	B, L, H, P, G, N := a.B, a.L, a.H, a.P, a.G, a.N
	out := make(Buf[float32], B*L*H*P)
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			fwd(out, nil, a)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(B*L), "ns/token")
	})
	g := nn.SSDGrads{X: make(Buf[float32], B*L*H*P), Dt: make(Buf[float32], B*L*H), A: make(Buf[float32], H),
		Bm: make(Buf[float32], B*L*G*N), Cm: make(Buf[float32], B*L*G*N), Dskip: make(Buf[float32], H)}
	b.Run("backward", func(b *testing.B) {
		for b.Loop() {
			bwd(g, a, out)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(B*L), "ns/token")
	})
}

// The contract's backwards start from zeros, but SSDBackward honours a
// given H0 (the gradients are of the run that starts from it): checked
// against central differences of SSD itself.
func TestSSDBackwardFromH0(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const B, L, H, P, G, N = 1, 11, 2, 2, 1, 3
	in := map[string][]float64{
		"X": refRandn(rng, B*L*H*P, 1), "Dt": refRandn(rng, B*L*H, 0.5), "A": {-0.7, -1.9},
		"Bm": refRandn(rng, B*L*G*N, 1), "Cm": refRandn(rng, B*L*G*N, 1), "Dskip": refRandn(rng, H, 1),
		"DtBias": refRandn(rng, H, 0.5),
	}
	h0 := refBuf[float64](refRandn(rng, B*H*P*N, 1))
	dout := refRandn(rng, B*L*H*P, 1)
	be := New[float64]()
	args := func() nn.SSDArgs {
		return nn.SSDArgs{B: B, L: L, H: H, P: P, G: G, N: N, Chunk: 4, DtSoftplus: true, H0: h0,
			X: refBuf[float64](in["X"]), Dt: refBuf[float64](in["Dt"]), A: refBuf[float64](in["A"]),
			Bm: refBuf[float64](in["Bm"]), Cm: refBuf[float64](in["Cm"]), Dskip: refBuf[float64](in["Dskip"]),
			DtBias: refBuf[float64](in["DtBias"])}
	}
	loss := func() float64 {
		out := make(Buf[float64], B*L*H*P)
		be.SSD(out, nil, args())
		return refDot(out, dout)
	}
	g := map[string]Buf[float64]{}
	for k, v := range in {
		g[k] = make(Buf[float64], len(v))
	}
	be.SSDBackward(nn.SSDGrads{X: g["X"], Dt: g["Dt"], A: g["A"], Bm: g["Bm"], Cm: g["Cm"], Dskip: g["Dskip"],
		DtBias: g["DtBias"]}, args(), refBuf[float64](dout))
	for k, v := range in {
		refRel(t, "d"+k, refF64(g[k], len(v)), refNumGrad(v, loss), 1e-7)
	}
}
