package gpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"seqbench/gpukernels/cuda"
	"seqbench/nn"
	"seqbench/nn/backendtest"
)

// chunkedSSD turns the chunked SSD forward on for the rest of t (the
// shared float32 backend also serves cuda-bfloat16).
func chunkedSSD(t *testing.T, be *Backend) {
	was := be.ssdChunked
	be.ssdChunked = true
	t.Cleanup(func() { be.ssdChunked = was })
}

// TestGPUSSDChunkedConformance runs the conformance suite's SSD cases
// (forward on the chunked kernels, backward on the recurrence's) in
// float32 and float64, and RunBF16's SSD cases on cuda-bfloat16.
func TestGPUSSDChunkedConformance(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		t.Run(dt.String(), func(t *testing.T) {
			be := gpu(t, dt)
			chunkedSSD(t, be)
			backendtest.RunSSD(t, be)
		})
	}
	t.Run("bfloat16", func(t *testing.T) {
		m := bf16Backend(t)
		chunkedSSD(t, m.Backend)
		backendtest.RunBF16SSD(t, m)
	})
}

// TestGPUSSDChunked is TestGPUSSD on the chunked forward: several chunks
// with a partial last one, P and N above one 64-wide tile and not
// multiples of it, groups, H0.
func TestGPUSSDChunked(t *testing.T) {
	needGPU(t)
	shapes := seqShapes(t, []ssdShape{
		{B: 1, L: 1, H: 1, P: 1, G: 1, N: 1, Q: 8, softplus: true},
		{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Q: 8, softplus: true, h0: true},
		{B: 1, L: 129, H: 3, P: 5, G: 1, N: 33, Q: 16, noD: true},
	}, []ssdShape{
		{B: 2, L: 200, H: 4, P: 64, G: 1, N: 64, Q: 32, softplus: true, h0: true},
		{B: 1, L: 77, H: 6, P: 70, G: 3, N: 130, Q: 16, softplus: true},
		{B: 2, L: 300, H: 2, P: 7, G: 2, N: 1, Q: 64, softplus: true},
	})
	for _, dt := range dtypes {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%s/B%d_L%d_H%d_P%d_G%d_N%d", dt, s.B, s.L, s.H, s.P, s.G, s.N), func(t *testing.T) {
				chunkedSSD(t, gpu(t, dt))
				ssdCheck(t, dt, s)
			})
		}
	}
}

// TestGPUSSDChunkedMatchesRecurrence runs the same inputs through the
// recurrence kernels and the chunked ones, forward and backward, at the
// anchor shape of issue #16 (B 4, L 4096, H 32, P 64, N 128) and others
// the CPU reference cannot afford: float32 and bfloat16 activations on
// cuda-bfloat16, float64 on a smaller one. Both are the same function up
// to the order of the float sums, so float32 outputs agree to 1e-5
// (norm-wise), gradients to 1e-4 (sums over 4096 steps), float64 to
// 1e-11 and 1e-10, and bfloat16 outputs and activation gradients — each
// the float result rounded once — to within a bfloat16 unit (2⁻⁸) more;
// hT and the parameters' gradients are float32 in every build. It logs
// the wall time of each forward and backward (every launch synchronised:
// an upper bound, not a benchmark).
func TestGPUSSDChunkedMatchesRecurrence(t *testing.T) {
	m := bf16Backend(t)
	type shape struct {
		B, L, H, P, G, N int
		h0               bool
	}
	shapes := []shape{
		{B: 4, L: 4096, H: 32, P: 64, G: 1, N: 128},
		{B: 4, L: 4096, H: 32, P: 64, G: 8, N: 64, h0: true},
		{B: 2, L: 1000, H: 6, P: 100, G: 3, N: 130, h0: true},
	}
	for _, s := range shapes {
		for _, act := range []nn.DType{nn.Float32, nn.BFloat16} {
			t.Run(fmt.Sprintf("%s/B%d_L%d_H%d_P%d_G%d_N%d", act, s.B, s.L, s.H, s.P, s.G, s.N), func(t *testing.T) {
				tolOut := 1e-5
				if act == nn.BFloat16 {
					tolOut = 1.0 / 256
				}
				alloc := func(n int, isAct bool) nn.Buffer {
					dt := nn.Float32
					if isAct {
						dt = act
					}
					b := m.AllocAs(n, dt)
					t.Cleanup(func() { m.Free(b) })
					return b
				}
				ssdVsRecurrence(t, m.Backend, m, alloc, s.B, s.L, s.H, s.P, s.G, s.N, s.h0, tolOut, 1e-5, 1e-4, tolOut+1e-4)
			})
		}
	}
	t.Run("float64/B2_L1000_H6_P100_G3_N130", func(t *testing.T) {
		be := gpu(t, nn.Float64)
		alloc := func(n int, _ bool) nn.Buffer {
			b := be.Alloc(n)
			t.Cleanup(func() { be.Free(b) })
			return b
		}
		ssdVsRecurrence(t, be, be, alloc, 2, 1000, 6, 100, 3, 130, true, 1e-11, 1e-11, 1e-10, 1e-10)
	})
}

// ssdVsRecurrence compares the chunked SSD and SSDBackward with the
// recurrence kernels on one set of random inputs: out within tolOut, hT
// within tolHT, the parameters' gradients within tolGrad, the
// activations' within tolGradAct.
func ssdVsRecurrence(t *testing.T, be *Backend, b nn.Backend, alloc func(n int, act bool) nn.Buffer,
	B, L, H, P, G, N int, h0 bool, tolOut, tolHT, tolGrad, tolGradAct float64) {
	rng := rand.New(rand.NewPCG(uint64(B*L*H*P*G*N), 16))
	randn := func(n int, scale, shift float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = scale*rng.NormFloat64() + shift
		}
		return v
	}
	in := func(vals []float64, act bool) nn.Buffer {
		buf := alloc(len(vals), act)
		b.Write(buf, vals)
		return buf
	}
	nx, nd, nbc, nh := B*L*H*P, B*L*H, B*L*G*N, B*H*P*N
	a := nn.SSDArgs{B: B, L: L, H: H, P: P, G: G, N: N, Chunk: 256, DtSoftplus: true,
		X: in(randn(nx, 1, 0), true), Dt: in(randn(nd, 0.5, -1), true), Bm: in(randn(nbc, 1, 0), true),
		Cm: in(randn(nbc, 1, 0), true), Dskip: in(randn(H, 1, 0), false), DtBias: in(randn(H, 0.3, 0), false)}
	A := randn(H, 0.5, 0)
	for i := range A {
		A[i] = -math.Exp(A[i])
	}
	a.A = in(A, false)
	if h0 {
		a.H0 = in(randn(nh, 1, 0), false)
	}
	was := be.ssdChunked
	defer func() { be.ssdChunked = was }()
	run := func(chunked bool) (out, hT []float64) {
		be.ssdChunked = chunked
		o, h := alloc(nx+1, true), alloc(nh+1, false)
		b.Fill(o, math.NaN())
		b.Fill(h, math.NaN())
		best := time.Duration(math.MaxInt64)
		for range 3 {
			start := time.Now()
			b.SSD(o, h, a)
			if err := be.Synchronize(); err != nil {
				t.Fatal(err)
			}
			best = min(best, time.Since(start))
		}
		t.Logf("chunked=%v: %.3f ms", chunked, best.Seconds()*1e3)
		out, hT = b.Read(o), b.Read(h)
		if !math.IsNaN(out[nx]) || !math.IsNaN(hT[nh]) {
			t.Errorf("chunked=%v wrote past the end of out or hT", chunked)
		}
		return out[:nx], hT[:nh]
	}
	wantOut, wantHT := run(false)
	gotOut, gotHT := run(true)
	check := func(name string, got, want []float64, tol float64) {
		t.Helper()
		e, worst := backendtest.RelErr(got, want)
		t.Logf("%s: chunked vs recurrence rel err %.3g", name, e)
		if !(e <= tol) {
			t.Errorf("%s: chunked vs recurrence rel err %.3g > %.3g (worst [%d]: %g, want %g)", name, e, tol, worst,
				got[worst], want[worst])
		}
	}
	check("out", gotOut, wantOut, tolOut)
	check("hT", gotHT, wantHT, tolHT)

	// The backward from zero gradients (H0 given: the backward honours it).
	dout := in(randn(nx, 1, 0), true)
	grads := func(chunked bool) map[string][]float64 {
		be.ssdChunked = chunked
		bufs := map[string]nn.Buffer{}
		sizes := map[string]int{"dX": nx, "dDt": nd, "dBm": nbc, "dCm": nbc, "dA": H, "dDskip": H, "dDtBias": H}
		for k, n := range sizes {
			bufs[k] = alloc(n+1, k == "dX" || k == "dDt" || k == "dBm" || k == "dCm")
			b.Fill(bufs[k], 0)
		}
		start := time.Now()
		b.SSDBackward(nn.SSDGrads{X: bufs["dX"], Dt: bufs["dDt"], A: bufs["dA"], Bm: bufs["dBm"], Cm: bufs["dCm"],
			Dskip: bufs["dDskip"], DtBias: bufs["dDtBias"]}, a, dout)
		if err := be.Synchronize(); err != nil {
			t.Fatal(err)
		}
		t.Logf("chunked=%v: backward %.3f ms", chunked, time.Since(start).Seconds()*1e3)
		out := map[string][]float64{}
		for k, n := range sizes {
			v := b.Read(bufs[k])
			if v[n] != 0 {
				t.Errorf("chunked=%v: %s written past its end", chunked, k)
			}
			out[k] = v[:n]
		}
		return out
	}
	want, got := grads(false), grads(true)
	for _, k := range []string{"dX", "dDt", "dBm", "dCm"} {
		check(k, got[k], want[k], tolGradAct)
	}
	// The parameters' gradients are sums over B·L of terms of both signs
	// (dDtBias is Σ dDt): at L 4096 the sum cancels to ~1/100 of Σ|terms|,
	// so both paths' float32 rounding shows there magnified, and neither
	// is the reference. Both are measured against the recurrence in
	// float64 on the same inputs: the chunked form must be within tolGrad
	// of it or no worse than twice the recurrence.
	truth := ssdTruthGrads(t, b, a, dout)
	for _, k := range []string{"dA", "dDskip", "dDtBias"} {
		eRec, _ := backendtest.RelErr(want[k], truth[k])
		eCh, worst := backendtest.RelErr(got[k], truth[k])
		t.Logf("%s against float64: chunked %.3g, recurrence %.3g", k, eCh, eRec)
		if !(eCh <= max(2*eRec, tolGrad)) {
			t.Errorf("%s: chunked rel err %.3g against float64, recurrence %.3g, tolerance %.3g (worst [%d]: %g, want %g)",
				k, eCh, eRec, tolGrad, worst, got[k][worst], truth[k][worst])
		}
	}
}

// ssdTruthGrads runs SSDBackward on the float64 recurrence with the
// values a's buffers and dout hold on b (bfloat16 inputs as rounded) and
// returns the parameters' gradients.
func ssdTruthGrads(t *testing.T, b nn.Backend, a nn.SSDArgs, dout nn.Buffer) map[string][]float64 {
	t.Helper()
	be := gpu(t, nn.Float64)
	was := be.ssdChunked
	be.ssdChunked = false
	defer func() { be.ssdChunked = was }()
	alloc := func(n int) nn.Buffer {
		buf := be.Alloc(n)
		t.Cleanup(func() { be.Free(buf) })
		return buf
	}
	up := func(buf nn.Buffer) nn.Buffer {
		if buf == nil {
			return nil
		}
		v := b.Read(buf)
		g := alloc(len(v))
		be.Write(g, v)
		return g
	}
	c := a
	c.X, c.Dt, c.A, c.Bm, c.Cm = up(a.X), up(a.Dt), up(a.A), up(a.Bm), up(a.Cm)
	c.Dskip, c.DtBias, c.H0 = up(a.Dskip), up(a.DtBias), up(a.H0)
	H := a.H
	g := nn.SSDGrads{X: alloc(a.B * a.L * H * a.P), Dt: alloc(a.B * a.L * H), A: alloc(H), Bm: alloc(a.B * a.L * a.G * a.N),
		Cm: alloc(a.B * a.L * a.G * a.N), Dskip: alloc(H), DtBias: alloc(H)}
	be.SSDBackward(g, c, up(dout))
	return map[string][]float64{"dA": be.Read(g.A), "dDskip": be.Read(g.Dskip), "dDtBias": be.Read(g.DtBias)}
}

// TestSSDChunkKernelActivationParams pins which parameters of the chunked
// SSD's kernels are activations (act_t) as TestSSDKernelActivationParams
// does for ssd.cu: x, dt, Bm, Cm, out, dout and the gradients of x, Bm,
// Cm; the scratch, A, Dskip, DtBias, H0 and hT are real (r, e and the
// dDskip partials double).
func TestSSDChunkKernelActivationParams(t *testing.T) {
	src, err := kernelSource("ssd_chunk", nn.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := kernelParams(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"ssdc_state":  {"x", "dt", "Bm"},
		"ssdc_pass":   nil,
		"ssdc_out":    {"out", "x", "dt", "Bm", "Cm"},
		"ssdc_bstate": {"dout", "dt", "Cm"},
		"ssdc_bwd":    {"dX", "dBm", "dCm", "dout", "x", "dt", "Bm", "Cm"},
	}
	if len(sigs) != len(want) {
		t.Errorf("ssd_chunk.cu has %d kernels, the test knows %d: %v", len(sigs), len(want), sigs)
	}
	for k, acts := range want {
		ps, ok := sigs[k]
		if !ok {
			t.Errorf("ssd_chunk.cu has no kernel %s", k)
			continue
		}
		var got []string
		for _, p := range ps {
			words := strings.Fields(strings.ReplaceAll(p, "*", " * "))
			name := words[len(words)-1]
			switch {
			case slices.Contains(words, "act_t"):
				got = append(got, name)
			case slices.Contains(words, "*") && !slices.Contains(words, "real") && !slices.Contains(words, "double"):
				t.Errorf("%s: pointer parameter %q is neither act_t, real nor double", k, p)
			}
		}
		if !slices.Equal(got, acts) {
			t.Errorf("%s: act_t parameters %v, want %v", k, got, acts)
		}
	}
}

// TestSSDChunkSharedMemoryFits checks that every chunked kernel's shared
// memory, float64 included, fits the 227 KiB a block may opt into on the
// H100 and H200 (the kernels' tiles do not depend on the shape).
func TestSSDChunkSharedMemoryFits(t *testing.T) {
	const optin = 227 << 10
	for _, es := range []int{4, 8} {
		for name, n := range map[string]int{"state": ssdcStateSmem(es), "out": ssdcOutSmem(es), "bwd": ssdcBwdSmem(es)} {
			if n > optin {
				t.Errorf("ssdc_%s with %d-byte reals needs %d bytes of shared memory, more than %d", name, es, n, optin)
			}
		}
	}
}

// ssdTile keeps to its occupancy limit where a tile fits it and otherwise
// takes the device's limit (the recurrence's backward at P 100, N 130 in
// float64 needs 212,160 bytes a step: more than 160 KiB, less than an
// H100's 227 KiB).
func TestSSDTileFallsBackToTheDeviceLimit(t *testing.T) {
	be := &Backend{dev: &cuda.Device{MaxSharedOptin: 232448}}
	perStep := func(bytes int) func(int) int { return func(T int) int { return T * bytes } }
	if T := be.ssdTile("SSD", 4096, 160<<10, perStep(4096)); T != 32 {
		t.Errorf("4 KiB a step: tile %d, want 32", T)
	}
	for _, c := range []struct{ L, want int }{{1, 1}, {2, 2}, {5, 8}, {32, 32}, {33, 32}} {
		if T := be.ssdTile("SSD", c.L, 160<<10, perStep(4096)); T != c.want {
			t.Errorf("L = %d: tile %d, want %d (no tile longer than the sequence needs)", c.L, T, c.want)
		}
	}
	if T := be.ssdTile("SSD", 4096, 160<<10, perStep(6000)); T != 16 {
		t.Errorf("6000 bytes a step: tile %d, want 16 (within 160 KiB)", T)
	}
	if T := be.ssdTile("SSD", 4096, 160<<10, perStep(212160)); T != 1 {
		t.Errorf("212160 bytes a step: tile %d, want 1 (within the device's 232448)", T)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "needs 240000 bytes") {
			t.Errorf("240000 bytes a step: panic %v, want one naming the bytes", p)
		}
	}()
	be.ssdTile("SSD", 4096, 160<<10, perStep(240000))
}
