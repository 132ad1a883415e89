package gpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/nn"
)

// With scanCkpt on, the chunked forward saves the states entering the
// backward's chunks (nn.ScanArgs.Ckpt) and the backward reads them instead
// of running scan_chunk_states. The forward's output is the same bits; the
// gradients are the recomputing backward's up to the rounding of the
// saved states (composed over the forward's longer chunks), at lengths
// that end inside a backward chunk, inside a forward chunk and on their
// boundaries, with and without H0, in every precision.
func TestGPUSelectiveScanSavedCheckpoints(t *testing.T) {
	type backend struct {
		be  *Backend
		run nn.Backend // be, or its bfloat16 build
		act nn.DType
		tol float64 // on ‖Δgrad‖/‖grad‖
	}
	bf := bf16Backend(t)
	backends := []backend{
		{gpu(t, nn.Float64), gpu(t, nn.Float64), nn.Float64, 1e-12},
		{gpu(t, nn.Float32), gpu(t, nn.Float32), nn.Float32, 1e-5},
		{bf.Backend, bf, nn.BFloat16, 2e-3},
	}
	shapes := chunkedScanShapes(t, 64)
	for _, bk := range backends {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%v/B%d_D%d_L%d_N%d_G%d", bk.act, s.B, s.D, s.L, s.N, s.G), func(t *testing.T) {
				scanPassesCheck(t, bk.run, bk.act, s, bk.tol, "saved checkpoints", func(on bool) { bk.be.scanCkpt = on })
			})
		}
	}
}

// scanPassesCheck runs a chunked scan forward and backward with a code
// path off and on (set) and checks that the forward gives the same bits
// and the gradients agree within tol (‖Δ‖/‖g‖).
// chunkedScanShapes are the lengths that end inside a backward chunk,
// inside a forward chunk and on their boundaries, with and without H0,
// groups and odd sizes; one long-state shape has N states.
func chunkedScanShapes(t *testing.T, N int) []scanShape {
	return seqShapes(t, []scanShape{
		{B: 2, D: 6, L: 300, N: 5, G: 3, softplus: true, h0: true},
		{B: 1, D: 3, L: 128, N: 16, G: 1, softplus: true},
	}, []scanShape{
		{B: 2, D: 36, L: 1030, N: 16, G: 2, softplus: true, h0: true},
		{B: 1, D: 20, L: 4096, N: 16, G: 1, softplus: true},
		{B: 1, D: 9, L: 257, N: N, G: 1, noZ: true, noD: true, softplus: true},
		{B: 3, D: 8, L: 2, N: 3, G: 1, softplus: true, h0: true},
	})
}

func scanPassesCheck(t *testing.T, run nn.Backend, act nn.DType, s scanShape, tol float64, what string, set func(on bool)) {
	B, D, L, N, G := s.B, s.D, s.L, s.N, s.G
	nBDL, nBGNL := B*D*L, B*G*N*L
	rng := rand.New(rand.NewPCG(uint64(nBDL), 7))
	var bufs []nn.Buffer
	defer func() {
		for _, b := range bufs {
			run.Free(b)
		}
	}()
	alloc := func(n int, dt nn.DType) nn.Buffer {
		var b nn.Buffer
		if m, ok := run.(nn.MixedBackend); ok && dt != run.DType() {
			b = m.AllocAs(n, dt)
		} else {
			b = run.Alloc(n)
		}
		bufs = append(bufs, b)
		return b
	}
	randBuf := func(n int, dt nn.DType, f func(float64) float64) nn.Buffer {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(rng.NormFloat64())
		}
		b := alloc(n, dt)
		run.Write(b, v)
		return b
	}
	id := func(x float64) float64 { return x }
	a := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: s.softplus,
		U: randBuf(nBDL, act, id), Delta: randBuf(nBDL, act, id), Bm: randBuf(nBGNL, act, id), Cm: randBuf(nBGNL, act, id),
		A: randBuf(D*N, run.DType(), func(x float64) float64 { return -math.Exp(0.5 * x) }), DeltaBias: randBuf(D, run.DType(), id)}
	if !s.noZ {
		a.Z = randBuf(nBDL, act, id)
	}
	if !s.noD {
		a.Dskip = randBuf(D, run.DType(), id)
	}
	if s.h0 {
		a.H0 = randBuf(B*D*N, run.DType(), id)
	}
	dout := randBuf(nBDL, act, id)
	type result struct{ out, hT, grads []float64 }
	pass := func(on bool) result {
		set(on)
		defer set(false)
		b := a
		if n := nn.ScanCheckpointLen(run, b); n > 0 {
			b.Ckpt = alloc(n, run.DType())
		}
		out, hT := alloc(nBDL, act), alloc(B*D*N, run.DType())
		run.SelectiveScan(out, hT, b)
		g := nn.ScanGrads{U: alloc(nBDL, act), Delta: alloc(nBDL, act), A: alloc(D*N, run.DType()), Bm: alloc(nBGNL, act),
			Cm: alloc(nBGNL, act), DeltaBias: alloc(D, run.DType())}
		if !s.noZ {
			g.Z = alloc(nBDL, act)
		}
		if !s.noD {
			g.Dskip = alloc(D, run.DType())
		}
		run.SelectiveScanBackward(g, b, dout)
		r := result{out: run.Read(out), hT: run.Read(hT)}
		for _, x := range []nn.Buffer{g.U, g.Delta, g.A, g.Bm, g.Cm, g.DeltaBias, g.Z, g.Dskip} {
			if x != nil {
				r.grads = append(r.grads, run.Read(x)...)
			}
		}
		return r
	}
	want, got := pass(false), pass(true)
	if L >= 2 && what == "saved checkpoints" && len(got.grads) > 0 {
		set(true)
		n := nn.ScanCheckpointLen(run, a)
		set(false)
		if n == 0 {
			t.Fatalf("ScanCheckpointLen is 0 for a chunked scan with scanCkpt on")
		}
	}
	for i := range want.out {
		if math.Float64bits(want.out[i]) != math.Float64bits(got.out[i]) {
			t.Fatalf("out[%d] is %g with %s, %g without: the forward changed", i, got.out[i], what, want.out[i])
		}
	}
	if e := relErr(got.hT, want.hT); e != 0 {
		t.Errorf("hT differs by %g with %s", e, what)
	}
	if e := relErr(got.grads, want.grads); !(e <= tol) {
		t.Errorf("gradients with %s differ from those without by %.3g (‖Δ‖/‖g‖), tolerance %g", what, e, tol)
	}
}

// scan_chunk_bwd_v2 (SEQBENCH_SCAN_BWD_V2=1) gives the first version's
// gradients: every one bit for bit but dA, whose lane-first double sums
// round differently (its float result by an ulp at most, about), at the
// checkpoint test's shapes, in every precision, where its shared memory
// fits two blocks an SM (N ≤ 32 here; N 64 runs the first version).
func TestGPUSelectiveScanBwdV2(t *testing.T) {
	bf := bf16Backend(t)
	for _, bk := range []struct {
		be  *Backend
		run nn.Backend
		act nn.DType
		tol float64
	}{
		{gpu(t, nn.Float64), gpu(t, nn.Float64), nn.Float64, 1e-13},
		{gpu(t, nn.Float32), gpu(t, nn.Float32), nn.Float32, 1e-6},
		{bf.Backend, bf, nn.BFloat16, 1e-6},
	} {
		for _, s := range chunkedScanShapes(t, 32) {
			t.Run(fmt.Sprintf("%v/B%d_D%d_L%d_N%d_G%d", bk.act, s.B, s.D, s.L, s.N, s.G), func(t *testing.T) {
				scanPassesCheck(t, bk.run, bk.act, s, bk.tol, "scan_chunk_bwd_v2", func(on bool) { bk.be.scanBwdV2 = on })
			})
		}
	}
}
