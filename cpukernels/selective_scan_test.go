package cpukernels

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"seqbench/nn"
)

// The conformance suite (nn/backendtest) checks SelectiveScan against a
// float64 recurrence and finite differences on many shapes. These tests
// cover what is particular to this backend: the golden vectors, results
// that do not depend on the worker count, H0 in place, the backward from a
// given H0, and long decays that must not produce subnormal numbers.

// goldenHeader returns the __metadata__ flags and the tensor shapes of a
// golden vector file (refGolden reads the values).
func goldenHeader(t *testing.T, name string) (flags string, shapes map[string][]int) {
	t.Helper()
	raw, err := os.ReadFile(goldenPath(name))
	if err != nil {
		t.Fatalf("golden vectors: %v", err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	shapes = map[string][]int{}
	for k, msg := range header {
		if k == "__metadata__" {
			var meta struct {
				Flags string `json:"flags"`
			}
			if err := json.Unmarshal(msg, &meta); err != nil {
				t.Fatalf("%s: metadata %s: %v", name, msg, err)
			}
			flags = meta.Flags
			continue
		}
		var info struct {
			Shape []int `json:"shape"`
		}
		if err := json.Unmarshal(msg, &info); err != nil {
			t.Fatalf("%s: %s: %v", name, k, err)
		}
		shapes[k] = info.Shape
	}
	return flags, shapes
}

// goldenBuf returns v[name] as a buffer of T, or nil when the file does not
// hold that tensor.
func goldenBuf[T Float](v map[string][]float64, name string) nn.Buffer {
	x, ok := v[name]
	if !ok {
		return nil
	}
	return refBuf[T](x)
}

func TestSelectiveScanGolden(t *testing.T) {
	for _, file := range []string{"00_selective_scan.safetensors", "01_selective_scan.safetensors"} {
		v := refGolden(t, file)
		flags, shapes := goldenHeader(t, file)
		testScanGolden[float64](t, file+" float64", v, flags, shapes, 1e-10)
		testScanGolden[float32](t, file+" float32", v, flags, shapes, 1e-4)
	}
}

func testScanGolden[T Float](t *testing.T, name string, v map[string][]float64, flags string, shapes map[string][]int, tol float64) {
	us, as, bs := shapes["u"], shapes["A"], shapes["B"]
	a := nn.ScanArgs{B: us[0], D: us[1], L: us[2], N: as[1], G: 1,
		DeltaSoftplus: slices.Contains(strings.Fields(flags), "--delta-softplus"),
		U:             goldenBuf[T](v, "u"), Delta: goldenBuf[T](v, "delta"), A: goldenBuf[T](v, "A"),
		Bm: goldenBuf[T](v, "B"), Cm: goldenBuf[T](v, "C"), Dskip: goldenBuf[T](v, "D"), Z: goldenBuf[T](v, "z"),
		DeltaBias: goldenBuf[T](v, "delta_bias")}
	if len(bs) == 4 {
		a.G = bs[1]
	}
	n := a.B * a.D * a.L
	out := refPoisoned[T](n)
	New[T]().SelectiveScan(out, nil, a)
	refRel(t, name+" out", refF64(out, n), v["out"], tol)
	refCheckGuard(t, name+" out", out, n)

	inputs := []struct {
		file string
		buf  nn.Buffer
	}{{"u", a.U}, {"delta", a.Delta}, {"A", a.A}, {"B", a.Bm}, {"C", a.Cm},
		{"D", a.Dskip}, {"z", a.Z}, {"delta_bias", a.DeltaBias}}
	var g nn.ScanGrads
	targets := []*nn.Buffer{&g.U, &g.Delta, &g.A, &g.Bm, &g.Cm, &g.Dskip, &g.Z, &g.DeltaBias}
	for i, in := range inputs {
		if in.buf != nil {
			*targets[i] = make(Buf[T], in.buf.Len())
		}
	}
	New[T]().SelectiveScanBackward(g, a, refBuf[T](v["dout"]))
	for i, in := range inputs {
		if in.buf == nil {
			continue
		}
		want, ok := v["d"+in.file]
		if !ok {
			t.Errorf("%s: the file has %s but no d%s", name, in.file, in.file)
			continue
		}
		got := (*targets[i]).(Buf[T])
		refRel(t, name+" d"+in.file, refF64(got, len(got)), want, tol)
	}
}

// scanTestArgs draws the inputs of a scan in the ranges the model sees: δ
// through softplus of N(0, 1) plus a bias, A = −exp(N(0, 0.25)).
func scanTestArgs[T Float](rng *rand.Rand, B, D, L, N, G int, h0 bool) nn.ScanArgs {
	A := make([]float64, D*N)
	for i := range A {
		A[i] = -math.Exp(0.5 * rng.NormFloat64())
	}
	a := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: true,
		U: refBuf[T](refRandn(rng, B*D*L, 1)), Delta: refBuf[T](refRandn(rng, B*D*L, 1)), A: refBuf[T](A),
		Bm: refBuf[T](refRandn(rng, B*G*N*L, 1)), Cm: refBuf[T](refRandn(rng, B*G*N*L, 1)),
		Dskip: refBuf[T](refRandn(rng, D, 1)), Z: refBuf[T](refRandn(rng, B*D*L, 1)),
		DeltaBias: refBuf[T](refRandn(rng, D, 0.5))}
	if h0 {
		a.H0 = refBuf[T](refRandn(rng, B*D*N, 1))
	}
	return a
}

// scanGradBufs allocates every gradient of a (zeros), in ScanGrads order.
func scanGradBufs(a nn.ScanArgs) (nn.ScanGrads, []Buf[float64]) {
	bufs := []Buf[float64]{
		make(Buf[float64], a.U.Len()), make(Buf[float64], a.Delta.Len()), make(Buf[float64], a.A.Len()),
		make(Buf[float64], a.Bm.Len()), make(Buf[float64], a.Cm.Len()), make(Buf[float64], a.Dskip.Len()),
		make(Buf[float64], a.Z.Len()), make(Buf[float64], a.DeltaBias.Len()),
	}
	return nn.ScanGrads{U: bufs[0], Delta: bufs[1], A: bufs[2], Bm: bufs[3], Cm: bufs[4], Dskip: bufs[5],
		Z: bufs[6], DeltaBias: bufs[7]}, bufs
}

// The backward splits its work by shape, never by the worker count: the
// gradients must be bitwise equal for any number of workers, on shapes that
// take each split (channel blocks with partials, and whole (b, g) tasks).
func TestSelectiveScanBackwardWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	for _, sh := range [][5]int{{1, 6, 9, 3, 2}, {8, 4, 9, 3, 2}, {2, 5, 1, 1, 1}} {
		B, D, L, N, G := sh[0], sh[1], sh[2], sh[3], sh[4]
		a := scanTestArgs[float64](rng, B, D, L, N, G, false)
		dout := refBuf[float64](refRandn(rng, B*D*L, 1))
		var first []Buf[float64]
		for _, workers := range []int{1, 2, 3, 7, 64} {
			g, bufs := scanGradBufs(a)
			(&Backend[float64]{workers: workers}).SelectiveScanBackward(g, a, dout)
			if first == nil {
				first = bufs
				continue
			}
			for i := range bufs {
				if !slices.Equal(bufs[i], first[i]) {
					t.Errorf("shape %v: gradient %d with %d workers differs from 1 worker", sh, i, workers)
				}
			}
		}
	}
}

// hT may be the H0 buffer: each (b, d, n) state is read before it is
// written, by one worker.
func TestSelectiveScanInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 2))
	const B, D, L, N, G = 2, 6, 5, 3, 3
	a := scanTestArgs[float32](rng, B, D, L, N, G, true)
	be := New[float32]()
	want, wantHT := make(Buf[float32], B*D*L), make(Buf[float32], B*D*N)
	be.SelectiveScan(want, wantHT, a)
	h := slices.Clone(a.H0.(Buf[float32]))
	a.H0 = h
	got := make(Buf[float32], B*D*L)
	be.SelectiveScan(got, h, a)
	if !slices.Equal(got, want) || !slices.Equal(h, wantHT) {
		t.Errorf("in place: out or hT differ from separate buffers")
	}
}

// Given H0, the backward differentiates the scan started from it (the
// contract only requires zero initial states; this backend honours H0).
func TestSelectiveScanBackwardFromH0(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 3))
	const B, D, L, N, G = 2, 4, 6, 3, 2
	a := scanTestArgs[float64](rng, B, D, L, N, G, true)
	dout := refRandn(rng, B*D*L, 1)
	be := New[float64]()
	out := make(Buf[float64], B*D*L)
	loss := func() float64 {
		be.SelectiveScan(out, nil, a)
		return refDot(out, dout)
	}
	g, bufs := scanGradBufs(a)
	be.SelectiveScanBackward(g, a, refBuf[float64](dout))
	for i, in := range []nn.Buffer{a.U, a.Delta, a.A, a.Bm, a.Cm, a.Dskip, a.Z, a.DeltaBias} {
		refRel(t, fmt.Sprintf("gradient %d", i), bufs[i], refNumGrad(in.(Buf[float64]), loss), 1e-6)
	}
}

// A long decay in float32: the states fall through float32's normal range
// (and, without a flush, would sit in float64's subnormals after ~14000
// steps). Decays below exp's limit must give exact zeros, states must be
// flushed to exact zeros, and no output or gradient may be subnormal. The
// time is logged beside a scan that does not decay; it is not asserted
// (timings on a shared machine are noise).
func TestSelectiveScanLongDecay(t *testing.T) {
	const B, D, L, N = 1, 4, 20000, 4
	// Channel 0 decays by e^−0.05 per step: the state reaches 1e−38 near
	// t = 1750. Channel 1 has δ·A = −200: every decay is below exp's limit.
	// Channel 2 decays by e^−1. Channel 3 does not decay (A = 0).
	Avals := []float64{-0.05, -200, -1, 0}
	build := func(decay bool) (nn.ScanArgs, Buf[float32]) {
		A := make([]float64, D*N)
		for d := range D {
			for n := range N {
				if decay {
					A[d*N+n] = Avals[d] * float64(n+1)
				}
			}
		}
		u, delta := make([]float64, B*D*L), make([]float64, B*D*L)
		for d := range D {
			u[d*L] = 1 // one input, then silence
			for t := range L {
				delta[d*L+t] = 1
			}
		}
		ones := make([]float64, B*N*L)
		for i := range ones {
			ones[i] = 1
		}
		a := nn.ScanArgs{B: B, D: D, L: L, N: N, G: 1, U: refBuf[float32](u), Delta: refBuf[float32](delta),
			A: refBuf[float32](A), Bm: refBuf[float32](ones), Cm: refBuf[float32](ones)}
		return a, make(Buf[float32], B*D*N)
	}
	be := New[float32]()
	timeIt := func(decay bool) (time.Duration, time.Duration, nn.ScanArgs, Buf[float32], Buf[float32], nn.ScanGrads) {
		a, hT := build(decay)
		out := make(Buf[float32], B*D*L)
		start := time.Now()
		be.SelectiveScan(out, hT, a)
		fwd := time.Since(start)
		dout := make(Buf[float32], B*D*L)
		for d := range D {
			dout[d*L+L-1] = 1 // the adjoint decays backwards from the end
		}
		g := nn.ScanGrads{U: make(Buf[float32], B*D*L), Delta: make(Buf[float32], B*D*L), A: make(Buf[float32], D*N),
			Bm: make(Buf[float32], B*N*L), Cm: make(Buf[float32], B*N*L)}
		start = time.Now()
		be.SelectiveScanBackward(g, a, dout)
		return fwd, time.Since(start), a, out, hT, g
	}
	timeIt(true) // warm up: first-call costs are not the scan's
	flatF, flatB, _, _, _, _ := timeIt(false)
	fwd, bwd, _, out, hT, g := timeIt(true)
	t.Logf("L=%d float32: decaying scan forward %v, backward %v; non-decaying %v, %v", L, fwd, bwd, flatF, flatB)

	tiny := float32(0x1p-126)
	noSubnormals := func(name string, x Buf[float32]) {
		for i, v := range x {
			if v != 0 && math.Abs(float64(v)) < float64(tiny) {
				t.Errorf("%s[%d] = %g is subnormal", name, i, v)
				return
			}
		}
	}
	noSubnormals("out", out)
	noSubnormals("hT", hT)
	for _, x := range []struct {
		name string
		buf  nn.Buffer
	}{{"dU", g.U}, {"dDelta", g.Delta}, {"dA", g.A}, {"dBm", g.Bm}, {"dCm", g.Cm}} {
		noSubnormals(x.name, x.buf.(Buf[float32]))
	}
	for d := range 3 {
		for n := range N {
			if v := hT[d*N+n]; v != 0 {
				t.Errorf("channel %d state %d: final state %g, want exactly 0", d, n, v)
			}
		}
		// Channel 0's slowest state is below 1e−38 by t = 1800.
		for tt := 2000; tt < L; tt++ {
			if v := out[d*L+tt]; v != 0 {
				t.Errorf("channel %d: out[%d] = %g, want exactly 0", d, tt, v)
				break
			}
		}
		// The adjoint started at L−1 has vanished 2000 steps earlier.
		du := g.U.(Buf[float32])
		for tt := 0; tt < L-2000; tt++ {
			if v := du[d*L+tt]; v != 0 {
				t.Errorf("channel %d: du[%d] = %g, want exactly 0", d, tt, v)
				break
			}
		}
	}
	if out[1*L] != 4 { // t = 0 of channel 1: Σ_n δ·B·u·C before any decay
		t.Errorf("channel 1 out[0] = %g, want 4", out[1*L])
	}
	if v := hT[3*N]; v != 1 {
		t.Errorf("channel 3 (no decay): final state %g, want 1", v)
	}
}

func TestSelectiveScanShapeErrors(t *testing.T) {
	x := make(Buf[float32], 64)
	a := nn.ScanArgs{B: 1, D: 3, L: 2, N: 2, G: 2, U: x, Delta: x, A: x, Bm: x, Cm: x}
	refPanics(t, "G does not divide D", "G must divide D", func() { New[float32]().SelectiveScan(x, nil, a) })
	a.G, a.L = 1, 40
	refPanics(t, "short U", "U holds 64 elements, needs 120", func() { New[float32]().SelectiveScan(x, nil, a) })
}

func BenchmarkSelectiveScan(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 4))
	const B, D, L, N = 8, 128, 256, 16
	a := scanTestArgs[float32](rng, B, D, L, N, 1, false)
	out := make(Buf[float32], B*D*L)
	be := New[float32]()
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			be.SelectiveScan(out, nil, a)
		}
	})
	g := nn.ScanGrads{U: make(Buf[float32], B*D*L), Delta: make(Buf[float32], B*D*L), A: make(Buf[float32], D*N),
		Bm: make(Buf[float32], B*N*L), Cm: make(Buf[float32], B*N*L), Dskip: make(Buf[float32], D),
		Z: make(Buf[float32], B*D*L), DeltaBias: make(Buf[float32], D)}
	b.Run("backward", func(b *testing.B) {
		for b.Loop() {
			be.SelectiveScanBackward(g, a, out)
		}
	})
}

// scanExp replaces math.Exp in the scans' inner loops: within 3 ulp over
// the whole range the scans call it on (x ≥ −708), exact at 0, and
// math.Exp's answer for overflow and NaN.
func TestScanExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 5))
	worst, at := 0.0, 0.0
	for i := range 300000 {
		var x float64
		switch i % 3 {
		case 0:
			x = -708 + 1417*rng.Float64()
		case 1:
			x = -10 * rng.Float64()
		default:
			x = 1e-3 * rng.NormFloat64()
		}
		want := math.Exp(x)
		ulp := math.Nextafter(want, math.Inf(1)) - want
		if e := math.Abs(scanExp(x)-want) / ulp; e > worst {
			worst, at = e, x
		}
	}
	t.Logf("scanExp: worst error %.2f ulp at x = %.17g", worst, at)
	if worst > 3 {
		t.Errorf("scanExp: error %.2f ulp at x = %.17g", worst, at)
	}
	if scanExp(0) != 1 || math.Abs(scanExp(-708)/math.Exp(-708)-1) > 7e-16 {
		t.Errorf("scanExp(0) = %v, scanExp(-708) = %v", scanExp(0), scanExp(-708))
	}
	if !math.IsInf(scanExp(710), 1) || !math.IsNaN(scanExp(math.NaN())) {
		t.Errorf("scanExp(710) = %v, scanExp(NaN) = %v", scanExp(710), scanExp(math.NaN()))
	}
}
