package gpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/nn"
	"seqbench/nn/backendtest"
)

// scanShape is one selective-scan case: every optional input present
// unless a flag drops it.
type scanShape struct {
	B, D, L, N, G      int
	noZ, noD, softplus bool
	h0                 bool
}

func TestGPUSelectiveScan(t *testing.T) {
	needGPU(t)
	shapes := seqShapes(t, []scanShape{
		{B: 1, D: 1, L: 1, N: 1, G: 1, softplus: true},
		{B: 2, D: 6, L: 37, N: 5, G: 3, softplus: true, h0: true},
		{B: 1, D: 3, L: 33, N: 1, G: 1, noZ: true, noD: true},
		{B: 3, D: 4, L: 9, N: 16, G: 2, softplus: true},
	}, []scanShape{
		{B: 2, D: 130, L: 70, N: 16, G: 2, softplus: true, h0: true}, // several channel blocks per group
		{B: 1, D: 5, L: 45, N: 70, G: 1, softplus: true},             // 32 lanes a channel
		{B: 2, D: 3, L: 41, N: 200, G: 1, softplus: true, h0: true},  // 16 states a lane
		{B: 1, D: 64, L: 1000, N: 16, G: 1, softplus: true},
		// The chunked kernels: several chunks, an unaligned L, a partial
		// last block, several blocks a group, N up to 256, B·D of 1.
		{B: 1, D: 1, L: 4097, N: 16, G: 1, softplus: true, h0: true},
		{B: 2, D: 36, L: 1030, N: 16, G: 2, softplus: true, h0: true},
		{B: 1, D: 20, L: 515, N: 256, G: 1, softplus: true},
		{B: 3, D: 9, L: 2, N: 3, G: 1, noZ: true, softplus: true, h0: true},
	})
	for _, dt := range dtypes {
		for _, s := range shapes {
			for _, seq := range []bool{false, true} {
				if seq && (s.L > 1000 || s.L < 2) {
					continue // the one-step kernels are checked at the shorter lengths
				}
				path := "chunked"
				if seq || s.L < 2 {
					path = "sequential"
				}
				name := fmt.Sprintf("%s/%s/B%d_D%d_L%d_N%d_G%d", dt, path, s.B, s.D, s.L, s.N, s.G)
				t.Run(name, func(t *testing.T) { scanCheck(t, dt, s, seq) })
			}
		}
	}
}

func scanCheck(t *testing.T, dt nn.DType, s scanShape, sequential bool) {
	B, D, L, N, G := s.B, s.D, s.L, s.N, s.G
	nBDL, nBGNL := B*D*L, B*G*N*L
	ck := newChecker(t, dt, "SelectiveScan", uint64(nBDL*N+G))
	ck.g.scanSequential = sequential
	defer func() { ck.g.scanSequential = false }()
	// ga and ca are the same inputs on the GPU and on the CPU.
	ga := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: s.softplus}
	ca := ga
	set := func(p pair, g, c *nn.Buffer) { *g, *c = p.g, p.c }
	set(ck.in(ck.randn(nBDL, 1)), &ga.U, &ca.U)
	delta := ck.randn(nBDL, 1)
	if !s.softplus {
		for i := range delta {
			delta[i] = 0.05 + 0.5*math.Abs(delta[i])
		}
	}
	set(ck.in(delta), &ga.Delta, &ca.Delta)
	Av := ck.randn(D*N, 0.5)
	for i := range Av {
		Av[i] = -math.Exp(Av[i])
	}
	set(ck.in(Av), &ga.A, &ca.A)
	set(ck.in(ck.randn(nBGNL, 1)), &ga.Bm, &ca.Bm)
	set(ck.in(ck.randn(nBGNL, 1)), &ga.Cm, &ca.Cm)
	if !s.noD {
		set(ck.in(ck.randn(D, 1)), &ga.Dskip, &ca.Dskip)
	}
	if !s.noZ {
		set(ck.in(ck.randn(nBDL, 1)), &ga.Z, &ca.Z)
	}
	set(ck.in(ck.randn(D, 0.5)), &ga.DeltaBias, &ca.DeltaBias)
	if s.h0 {
		set(ck.in(ck.randn(B*D*N, 1)), &ga.H0, &ca.H0)
	}
	out, hT := ck.out(nBDL, false), ck.out(B*D*N, false)
	ck.g.SelectiveScan(out.g, hT.g, ga)
	ck.c.SelectiveScan(out.c, hT.c, ca)
	ck.fwd("out", out)
	ck.fwd("hT", hT)

	dout := ck.in(ck.randn(nBDL, 1))
	grads := map[string]pair{
		"dU": ck.acc(nBDL, false), "dDelta": ck.acc(nBDL, false), "dA": ck.acc(D*N, false),
		"dBm": ck.acc(nBGNL, false), "dCm": ck.acc(nBGNL, false), "dDeltaBias": ck.acc(D, false),
	}
	if !s.noD {
		grads["dDskip"] = ck.acc(D, false)
	}
	if !s.noZ {
		grads["dZ"] = ck.acc(nBDL, false)
	}
	side := func(c bool) nn.ScanGrads {
		get := func(k string) nn.Buffer {
			p, ok := grads[k]
			if !ok {
				return nil
			}
			if c {
				return p.c
			}
			return p.g
		}
		return nn.ScanGrads{U: get("dU"), Delta: get("dDelta"), A: get("dA"), Bm: get("dBm"), Cm: get("dCm"),
			Dskip: get("dDskip"), Z: get("dZ"), DeltaBias: get("dDeltaBias")}
	}
	ck.g.SelectiveScanBackward(side(false), ga, dout.g)
	ck.c.SelectiveScanBackward(side(true), ca, dout.c)
	for _, k := range []string{"dU", "dDelta", "dA", "dBm", "dCm", "dDskip", "dZ", "dDeltaBias"} {
		if p, ok := grads[k]; ok {
			ck.grad(k, p)
		}
	}
}

// TestGPUSelectiveScanBF16 runs the bfloat16 scan cases that carry a state
// (backendtest.BF16SelectiveScanState: H0, hT, pieces, several chunks and
// channel blocks) on cuda-bfloat16, on the chunked kernels and on the
// one-step kernels at every length (scanSequential): both paths serve
// bf16 runs.
func TestGPUSelectiveScanBF16(t *testing.T) {
	m := bf16Backend(t)
	for _, seq := range []bool{false, true} {
		t.Run(fmt.Sprintf("sequential=%v", seq), func(t *testing.T) {
			m.scanSequential = seq
			defer func() { m.scanSequential = false }()
			backendtest.BF16SelectiveScanState(t, m)
		})
	}
}

// TestGPUSelectiveScanBF16MatchesFloat32 checks the bfloat16 build against
// the float32 build on the same inputs (bfloat16 values) at lengths and
// widths the CPU reference cannot afford: several forward chunks, N up to
// 256, L a multiple of 8 (16-byte bfloat16 loads) and not. The two builds
// do the same float32 math on the same values, so a bfloat16 output is the
// float32 one rounded once (within u), a float32 output (hT, the
// parameters' gradients) the same up to float32 rounding, and a bfloat16
// gradient the float32 one up to the rounding of the accumulated sum
// (u·‖after‖/‖added‖). An activation read in the wrong type is garbage.
func TestGPUSelectiveScanBF16MatchesFloat32(t *testing.T) {
	m := bf16Backend(t)
	shapes := seqShapes(t, []scanShape{
		{B: 2, D: 6, L: 37, N: 5, G: 3, softplus: true, h0: true},
		{B: 1, D: 20, L: 1032, N: 16, G: 1, softplus: true, h0: true},
	}, []scanShape{
		{B: 2, D: 36, L: 1030, N: 16, G: 2, softplus: true, h0: true},
		{B: 1, D: 1, L: 4096, N: 16, G: 1, softplus: true},
		{B: 1, D: 20, L: 515, N: 256, G: 1, softplus: true},
		{B: 1, D: 130, L: 72, N: 16, G: 1, noZ: true, noD: true, softplus: true},
	})
	for _, s := range shapes {
		for _, seq := range []bool{false, true} {
			if seq && s.L > 1100 {
				continue
			}
			name := fmt.Sprintf("sequential=%v/B%d_D%d_L%d_N%d_G%d", seq, s.B, s.D, s.L, s.N, s.G)
			t.Run(name, func(t *testing.T) {
				m.scanSequential = seq
				defer func() { m.scanSequential = false }()
				scanBF16VsFloat32(t, m, s)
			})
		}
	}
}

func scanBF16VsFloat32(t *testing.T, m nn.MixedBackend, s scanShape) {
	B, D, L, N, G := s.B, s.D, s.L, s.N, s.G
	nBDL, nBGNL := B*D*L, B*G*N*L
	tw := newTwin(t, m, uint64(nBDL*N+G))
	a16 := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: s.softplus}
	a32 := a16
	tw.act(tw.randn(nBDL, 1), &a16.U, &a32.U)
	tw.act(tw.randn(nBDL, 1), &a16.Delta, &a32.Delta)
	tw.act(tw.randn(nBGNL, 1), &a16.Bm, &a32.Bm)
	tw.act(tw.randn(nBGNL, 1), &a16.Cm, &a32.Cm)
	if !s.noZ {
		tw.act(tw.randn(nBDL, 1), &a16.Z, &a32.Z)
	}
	Av := tw.randn(D*N, 0.5)
	for i := range Av {
		Av[i] = -math.Exp(Av[i])
	}
	a16.A = tw.param(Av)
	a16.DeltaBias = tw.param(tw.randn(D, 0.5))
	if !s.noD {
		a16.Dskip = tw.param(tw.randn(D, 1))
	}
	if s.h0 {
		a16.H0 = tw.param(tw.randn(B*D*N, 1))
	}
	a32.A, a32.DeltaBias, a32.Dskip, a32.H0 = a16.A, a16.DeltaBias, a16.Dskip, a16.H0

	out := tw.outAct(nBDL)
	hT16, hT32 := tw.outParam(B*D*N), tw.outParam(B*D*N)
	m.SelectiveScan(out.h, hT16, a16)
	m.SelectiveScan(out.f, hT32, a32)
	tw.checkOut("out", out)
	tw.checkSame("hT", hT16, hT32)

	var dout twinBuf
	tw.act(tw.randn(nBDL, 1), &dout.h, &dout.f)
	dU, dDelta, dBm, dCm := tw.accAct(nBDL), tw.accAct(nBDL), tw.accAct(nBGNL), tw.accAct(nBGNL)
	dA, dBias := tw.accParam(D*N), tw.accParam(D)
	g16 := nn.ScanGrads{U: dU.h, Delta: dDelta.h, Bm: dBm.h, Cm: dCm.h, A: dA.h, DeltaBias: dBias.h}
	g32 := nn.ScanGrads{U: dU.f, Delta: dDelta.f, Bm: dBm.f, Cm: dCm.f, A: dA.f, DeltaBias: dBias.f}
	var dZ, dD twinBuf
	if !s.noZ {
		dZ = tw.accAct(nBDL)
		g16.Z, g32.Z = dZ.h, dZ.f
	}
	if !s.noD {
		dD = tw.accParam(D)
		g16.Dskip, g32.Dskip = dD.h, dD.f
	}
	m.SelectiveScanBackward(g16, a16, dout.h)
	m.SelectiveScanBackward(g32, a32, dout.f)
	for _, g := range []struct {
		name string
		b    twinBuf
	}{{"dU", dU}, {"dDelta", dDelta}, {"dBm", dBm}, {"dCm", dCm}, {"dZ", dZ}, {"dA", dA}, {"dDeltaBias", dBias},
		{"dDskip", dD}} {
		if g.b.h != nil {
			tw.checkAcc(g.name, g.b)
		}
	}
}

// twin runs an op twice on cuda-bfloat16: with bfloat16 activations (the
// bfloat16 build of its kernels) and with float32 ones holding the same
// values (the float32 build), parameters and states float32 in both.
type twin struct {
	t   *testing.T
	m   nn.MixedBackend
	rng *rand.Rand
}

// twinBuf is one tensor of both runs: h for the bfloat16 run, f for the
// float32 one (both float32 for parameters, states and their gradients).
// n elements are the op's, a guard follows; before holds an accumulated
// buffer's values before the op.
type twinBuf struct {
	h, f   nn.Buffer
	n      int
	before []float64
	act    bool
}

// twinGuard follows every accumulated buffer: a bfloat16 value, so both
// types hold it exactly.
const twinGuard = 1280

func bf16Backend(t *testing.T) *BF16Backend {
	m, err := newBF16(gpu(t, nn.Float32))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newTwin(t *testing.T, m nn.MixedBackend, seed uint64) *twin {
	return &twin{t: t, m: m, rng: rand.New(rand.NewPCG(seed, 16))}
}

func (tw *twin) randn(n int, scale float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = scale * tw.rng.NormFloat64()
	}
	return s
}

func (tw *twin) alloc(n int, dt nn.DType) nn.Buffer {
	b := tw.m.AllocAs(n, dt)
	tw.t.Cleanup(func() { tw.m.Free(b) })
	return b
}

// act uploads vals rounded to bfloat16 into *h and the same values into a
// float32 *f.
func (tw *twin) act(vals []float64, h, f *nn.Buffer) {
	*h = tw.alloc(len(vals), nn.BFloat16)
	tw.m.Write(*h, vals)
	*f = tw.alloc(len(vals), nn.Float32)
	tw.m.Write(*f, tw.m.Read(*h))
}

// param uploads vals into one float32 buffer both runs read.
func (tw *twin) param(vals []float64) nn.Buffer {
	b := tw.alloc(len(vals), nn.Float32)
	tw.m.Write(b, vals)
	return b
}

// outAct and outParam are NaN-poisoned outputs of n elements and a guard.
func (tw *twin) outAct(n int) twinBuf {
	b := twinBuf{h: tw.alloc(n+1, nn.BFloat16), f: tw.alloc(n+1, nn.Float32), n: n, act: true}
	tw.m.Fill(b.h, math.NaN())
	tw.m.Fill(b.f, math.NaN())
	return b
}

func (tw *twin) outParam(n int) nn.Buffer {
	b := tw.alloc(n+1, nn.Float32)
	tw.m.Fill(b, math.NaN())
	return b
}

// accAct and accParam are accumulated gradients holding the same random
// bfloat16 values in both runs, then the guard.
func (tw *twin) accAct(n int) twinBuf { return tw.acc(n, nn.BFloat16) }

func (tw *twin) accParam(n int) twinBuf { return tw.acc(n, nn.Float32) }

func (tw *twin) acc(n int, dt nn.DType) twinBuf {
	b := twinBuf{n: n, act: dt == nn.BFloat16}
	tw.act(append(tw.randn(n, 1), twinGuard), &b.h, &b.f)
	b.before = tw.m.Read(b.f)
	if dt != nn.BFloat16 {
		h := b.h
		b.h = tw.alloc(n+1, nn.Float32)
		tw.m.Copy(b.h, h)
	}
	return b
}

// read returns buf's n elements, checking that the guard after them is
// still want.
func (tw *twin) read(name string, buf nn.Buffer, n int, want float64) []float64 {
	tw.t.Helper()
	v := tw.m.Read(buf)
	if g := v[n]; !same(g, want) {
		tw.t.Errorf("%s: the guard past the %d elements changed from %v to %v", name, n, want, g)
	}
	return v[:n]
}

// checkOut compares an activation output written once: the bfloat16 run's
// is the float32 run's rounded.
func (tw *twin) checkOut(name string, b twinBuf) {
	tw.t.Helper()
	got, want := tw.read(name, b.h, b.n, math.NaN()), tw.read(name+" (float32)", b.f, b.n, math.NaN())
	record(name+"/bf16-vs-fp32", relErr(got, want))
	backendtest.AssertClose(tw.t, name, got, want, nn.BF16UnitRoundoff+1e-5)
}

// checkSame compares two float32 outputs of n elements (and a NaN guard)
// that the two runs computed with the same math.
func (tw *twin) checkSame(name string, h, f nn.Buffer) {
	tw.t.Helper()
	n := h.Len() - 1
	got, want := tw.read(name, h, n, math.NaN()), tw.read(name+" (float32)", f, n, math.NaN())
	record(name+"/bf16-vs-fp32", relErr(got, want))
	backendtest.AssertClose(tw.t, name, got, want, 1e-5)
}

// checkAcc compares what the two runs added to an accumulated gradient:
// into bfloat16, up to the rounding of the sum, u·‖after‖/‖added‖.
func (tw *twin) checkAcc(name string, b twinBuf) {
	tw.t.Helper()
	after16, after32 := tw.read(name, b.h, b.n, twinGuard), tw.read(name+" (float32)", b.f, b.n, twinGuard)
	got, want := make([]float64, b.n), make([]float64, b.n)
	for i := range got {
		got[i], want[i] = after16[i]-b.before[i], after32[i]-b.before[i]
	}
	tol := 1e-5
	if b.act {
		tol += nn.BF16UnitRoundoff * l2(after32) / l2(want)
	}
	record(name+"/bf16-vs-fp32", relErr(got, want))
	backendtest.AssertClose(tw.t, name, got, want, tol)
}

func l2(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s)
}

func relErr(got, want []float64) float64 {
	e, _ := backendtest.RelErr(got, want)
	return e
}
