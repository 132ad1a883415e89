package gpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"

	"seqbench/nn"
	"seqbench/nn/backendtest"
)

// flashTo sets be's flashAttn for the test, restoring it after.
func flashTo(t *testing.T, be *Backend, on bool) {
	was := be.flashAttn
	be.flashAttn = on
	t.Cleanup(func() { be.flashAttn = was })
}

// TestFlashConfigsMatchSource: flashConfigs and flashBwdConfigs (blocks,
// shared memory) and the FLASH_FWD and FLASH_BWD lines that instantiate the
// kernels agree, and every kernel's shared memory fits an H100/H200 block
// (227 KiB opted in).
func TestFlashConfigsMatchSource(t *testing.T) {
	src, err := sources.ReadFile("flash_attn.cu")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^FLASH_FWD\((\d+), (\d+), (\d+)\)$`).FindAllStringSubmatch(string(src), -1)
	if len(lines) != len(flashConfigs) {
		t.Fatalf("%d FLASH_FWD lines in flash_attn.cu, %d flashConfigs", len(lines), len(flashConfigs))
	}
	for _, l := range lines {
		D, _ := strconv.Atoi(l[1])
		mt, _ := strconv.Atoi(l[2])
		bc, _ := strconv.Atoi(l[3])
		if got, want := flashConfigs[D], (flashConfig{mt: mt, bc: bc}); got != want {
			t.Errorf("Dh %d: flashConfigs has %+v, flash_attn.cu %+v", D, got, want)
		}
		if cfg := flashConfigs[D]; cfg.smem(D) > 232448 || faBR%(16*cfg.mt) != 0 || cfg.bc%16 != 0 {
			t.Errorf("Dh %d: %+v: %d B of shared memory, rows %d a warp, key tile %d", D, cfg, cfg.smem(D), 16*cfg.mt, cfg.bc)
		}
	}
	lines = regexp.MustCompile(`(?m)^FLASH_BWD\((\d+), (\d+), (\d+), (\d+)\)$`).FindAllStringSubmatch(string(src), -1)
	if len(lines) != len(flashBwdConfigs) {
		t.Fatalf("%d FLASH_BWD lines in flash_attn.cu, %d flashBwdConfigs", len(lines), len(flashBwdConfigs))
	}
	for _, l := range lines {
		var n [4]int
		for i := range n {
			n[i], _ = strconv.Atoi(l[i+1])
		}
		D := n[0]
		if got, want := flashBwdConfigs[D], (flashBwdConfig{bkv: n[1], bq: n[2], bc: n[3]}); got != want {
			t.Errorf("Dh %d: flashBwdConfigs has %+v, flash_attn.cu %+v", D, got, want)
		}
		// Warps of 16 rows, at most 1024 threads; tiles of whole mma k-steps.
		cfg := flashBwdConfigs[D]
		if cfg.dkdvSmem(D) > 232448 || cfg.dqSmem(D) > 232448 || cfg.bkv%16 != 0 || cfg.dkdvThreads() > 1024 ||
			cfg.bq%16 != 0 || cfg.bc%16 != 0 {
			t.Errorf("Dh %d: %+v: %d and %d B of shared memory", D, cfg, cfg.dkdvSmem(D), cfg.dqSmem(D))
		}
	}
}

// TestGPUFlashAttnBF16 runs RunBF16 (its attention cases have head dims
// the tensor-core kernels do not serve: they check the fallback) and
// RunBF16AttentionTiles (Dh 64 and 128: the kernels' forward, then their
// backward reading its out and lse) with the switch on.
func TestGPUFlashAttnBF16(t *testing.T) {
	needGPU(t)
	m := bf16Backend(t)
	flashTo(t, m.Backend, true)
	t.Run("RunBF16", func(t *testing.T) { backendtest.RunBF16(t, m) })
	before, beforeBwd := m.flashRuns, m.flashBwdRuns
	t.Run("AttentionTiles", func(t *testing.T) { backendtest.RunBF16AttentionTiles(t, m) })
	if m.flashRuns == before {
		t.Error("no forward ran on flash_attn.cu")
	}
	if m.flashBwdRuns == beforeBwd {
		t.Error("no backward ran on flash_attn.cu")
	}
}

// flashShape is one attention call of the comparison.
type flashShape struct {
	B, H, Lq, Lk, Dh int
	causal           bool
}

func (s flashShape) String() string {
	return fmt.Sprintf("B%d_H%d_Lq%d_Lk%d_Dh%d_causal%v", s.B, s.H, s.Lq, s.Lk, s.Dh, s.causal)
}

// flashInputs uploads bfloat16 q, k, v (normal, k and q scaled by big)
// and |v|.
func flashInputs(t *testing.T, m *BF16Backend, s flashShape, big float64, seed uint64) (q, k, v, absV nn.Buffer) {
	rng := rand.New(rand.NewPCG(seed, 15))
	up := func(n int, scale float64, abs bool) nn.Buffer {
		x := make([]float64, n)
		for i := range x {
			x[i] = scale * rng.NormFloat64()
			if abs {
				x[i] = math.Abs(x[i])
			}
		}
		b := m.AllocAs(n, nn.BFloat16)
		t.Cleanup(func() { m.Free(b) })
		m.Write(b, x)
		return b
	}
	nq, nk := s.B*s.H*s.Lq*s.Dh, s.B*s.H*s.Lk*s.Dh
	q, k = up(nq, big, false), up(nk, big, false)
	vals := make([]float64, nk)
	for i := range vals {
		vals[i] = rng.NormFloat64()
	}
	v = m.AllocAs(nk, nn.BFloat16)
	absV = m.AllocAs(nk, nn.BFloat16)
	t.Cleanup(func() { m.Free(v); m.Free(absV) })
	m.Write(v, vals)
	for i := range vals {
		vals[i] = math.Abs(vals[i])
	}
	m.Write(absV, vals)
	return q, k, v, absV
}

// flashRun runs Attention with the switch set to flash and returns out and
// lse (poisoned with NaN before, so a row never written fails).
func flashRun(t *testing.T, m *BF16Backend, s flashShape, flash bool, q, k, v nn.Buffer) (out, lse []float64) {
	was := m.flashAttn
	m.flashAttn = flash
	defer func() { m.flashAttn = was }()
	o, l := m.AllocAs(s.B*s.H*s.Lq*s.Dh, nn.BFloat16), m.AllocAs(s.B*s.H*s.Lq, nn.Float32)
	defer m.Free(o)
	defer m.Free(l)
	m.Fill(o, math.NaN())
	m.Fill(l, math.NaN())
	runs := m.flashRuns
	m.Attention(o, l, q, k, v, s.B, s.H, s.Lq, s.Lk, s.Dh, 1/math.Sqrt(float64(s.Dh)), s.causal)
	if ran := m.flashRuns != runs; ran != flash {
		t.Fatalf("flash switch %v but the forward ran on flash_attn.cu: %v", flash, ran)
	}
	return m.Read(o), m.Read(l)
}

// TestGPUFlashAttnMatchesKernels compares the tensor-core forward with
// today's bfloat16 kernels (attention.cu) on the same inputs at L 1024 to
// 4096, causal and not, Lq ≠ Lk both ways and one decode step: out within
// bfloat16 rounding (each side rounds once, 2u norm-wise, plus the
// rounding of P to bfloat16, at most u·‖P|V|‖/‖PV‖, the same bound as
// backendtest's testBF16Attention), lse within the float32 forward
// tolerance (both compute it in float32).
func TestGPUFlashAttnMatchesKernels(t *testing.T) {
	needGPU(t)
	m := bf16Backend(t)
	const u = 1.0 / 256
	shapes := []flashShape{
		{B: 1, H: 4, Lq: 1024, Lk: 1024, Dh: 64, causal: true},
		{B: 2, H: 2, Lq: 1024, Lk: 1024, Dh: 64, causal: false},
		{B: 1, H: 2, Lq: 2048, Lk: 2048, Dh: 128, causal: true},
		{B: 1, H: 2, Lq: 1000, Lk: 3000, Dh: 64, causal: true},   // a block continuing a KV cache
		{B: 1, H: 2, Lq: 3000, Lk: 1030, Dh: 128, causal: false}, // more queries than keys
		{B: 1, H: 2, Lq: 4096, Lk: 4096, Dh: 64, causal: true},
		{B: 1, H: 1, Lq: 1500, Lk: 4096, Dh: 128, causal: false},
		{B: 2, H: 3, Lq: 1, Lk: 4096, Dh: 128, causal: true}, // one decode step
	}
	for i, s := range shapes {
		for _, big := range []float64{1, 3} {
			t.Run(fmt.Sprintf("%v_big%g", s, big), func(t *testing.T) {
				q, k, v, absV := flashInputs(t, m, s, big, uint64(i))
				want, wantLse := flashRun(t, m, s, false, q, k, v)
				pAbsV, _ := flashRun(t, m, s, false, q, k, absV)
				got, gotLse := flashRun(t, m, s, true, q, k, v)
				tol := 1e-5 + u*(2+l2(pAbsV)/l2(want))
				backendtest.AssertClose(t, "out", got, want, tol)
				backendtest.AssertClose(t, "lse", gotLse, wantLse, 1e-5)
				e, _ := backendtest.RelErr(got, want)
				el, _ := backendtest.RelErr(gotLse, wantLse)
				t.Logf("out rel err %.3g (tol %.3g), lse %.3g", e, tol, el)
			})
		}
	}
}

// TestGPUFlashAttnBwdTiming logs AttentionBackward's time (attn_bwd_pre
// included) on both paths at the forward timing's shapes and its fraction
// of the floor (FLOPs 2.5 times the forward's: five products of its size
// to the forward's two, 10·B·H·Dh·L(L+1)/2 at 990 TFLOP/s): a measurement
// for NOTES.md, not a check.
func TestGPUFlashAttnBwdTiming(t *testing.T) {
	needGPU(t)
	if testing.Short() {
		t.Skip("timing")
	}
	m := bf16Backend(t)
	for _, B := range []int{4, 8} {
		s := flashShape{B: B, H: 16, Lq: 8192, Lk: 8192, Dh: 64, causal: true}
		q, k, v, _ := flashInputs(t, m, s, 1, 98)
		n := B * 16 * 8192 * 64
		o, l := m.AllocAs(n, nn.BFloat16), m.AllocAs(B*16*8192, nn.Float32)
		dq, dk, dv := m.AllocAs(n, nn.BFloat16), m.AllocAs(n, nn.BFloat16), m.AllocAs(n, nn.BFloat16)
		m.Attention(o, l, q, k, v, B, 16, 8192, 8192, 64, 0.125, true)
		flops := 10 * float64(B*16*64) * 8192 * 8193 / 2
		// dout = q: any bf16 values do for a timing.
		timeFlashPaths(t, m, fmt.Sprintf("%v backward", s), flops, func() {
			m.AttentionBackward(dq, dk, dv, q, k, v, o, l, q, B, 16, 8192, 8192, 64, 0.125, true)
		})
		for _, b := range []nn.Buffer{o, l, dq, dk, dv} {
			m.Free(b)
		}
	}
}

// timeFlashPaths times run with the tensor-core kernels off, then on, and
// logs each time, its rate and its fraction of the floor (flops at 990
// TFLOP/s dense bf16).
func timeFlashPaths(t *testing.T, m *BF16Backend, what string, flops float64, run func()) {
	t.Helper()
	was := m.flashAttn
	defer func() { m.flashAttn = was }()
	for _, flash := range []bool{false, true} {
		m.flashAttn = flash
		run() // compiles and loads the kernels outside the timing
		ms, err := m.Time(3, run)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s flash %v: %.3f ms, %.0f TFLOP/s, %.0f%% of the floor %.3f ms", what, flash, ms, flops/ms/1e9,
			100*flops/990e12/(ms/1e3), flops/990e12*1e3)
	}
}

// TestGPUFlashAttnTiming logs the forward's time on both paths at issue
// #15's anchor (B 4 and 8, H 16, L 8192, Dh 64, causal) and its fraction
// of the floor (FLOPs 4·B·H·Dh·L(L+1)/2 at 990 TFLOP/s dense bf16): a
// measurement for NOTES.md, not a check.
func TestGPUFlashAttnTiming(t *testing.T) {
	needGPU(t)
	if testing.Short() {
		t.Skip("timing")
	}
	m := bf16Backend(t)
	for _, B := range []int{4, 8} {
		s := flashShape{B: B, H: 16, Lq: 8192, Lk: 8192, Dh: 64, causal: true}
		q, k, v, _ := flashInputs(t, m, s, 1, 99)
		o, l := m.AllocAs(B*16*8192*64, nn.BFloat16), m.AllocAs(B*16*8192, nn.Float32)
		flops := 4 * float64(B*16*64) * 8192 * 8193 / 2
		timeFlashPaths(t, m, s.String(), flops, func() { m.Attention(o, l, q, k, v, B, 16, 8192, 8192, 64, 0.125, true) })
		m.Free(o)
		m.Free(l)
	}
}

// flashBwdShape is one backward call of TestGPUFlashAttnBackward; noDQ,
// noDK, noDV pass nil for that gradient.
type flashBwdShape struct {
	flashShape
	noDQ, noDK, noDV bool
}

func (s flashBwdShape) String() string {
	r := s.flashShape.String()
	for _, x := range []struct {
		nil  bool
		name string
	}{{s.noDQ, "_nodq"}, {s.noDK, "_nodk"}, {s.noDV, "_nodv"}} {
		if x.nil {
			r += x.name
		}
	}
	return r
}

// TestGPUFlashAttnBackward compares AttentionBackward on the tensor-core
// kernels (flash_attn.cu) and on attention.cu's with the float64 gradients
// of the same bf16 inputs, on shapes that cross every tile edge: Lq ≠ Lk
// both ways, L below a tile, causal diagonals 1 and 14 past a warp's 16
// rows (Lk − Lq ≡ 1, 14 mod 16), several (b, h), more (b, h) than grid y
// holds (the kernels' grid-stride loop), nil gradients, and nonzero
// gradients before the call (the ops accumulate). Tolerance, relative to
// ‖want‖ and element by element: the result's bf16 rounding (u·|before +
// want|), the bf16 rounding of P and dS as mma operands (u·Σ|p·dout| for
// dv, u·scale·Σ|ds·k| or |ds·q| for dq, dk) and 1e-3 for float32 sums
// (times max|want| element by element). The reference's D_i uses the out
// the GPU wrote, as attn_bwd_pre does, so that out's rounding is no error.
func TestGPUFlashAttnBackward(t *testing.T) {
	needGPU(t)
	m := bf16Backend(t)
	shapes := []flashBwdShape{
		{flashShape: flashShape{B: 1, H: 2, Lq: 65, Lk: 65, Dh: 64, causal: true}},
		{flashShape: flashShape{B: 2, H: 1, Lq: 70, Lk: 40, Dh: 64}},
		{flashShape: flashShape{B: 1, H: 1, Lq: 31, Lk: 130, Dh: 128, causal: true}},
		{flashShape: flashShape{B: 1, H: 1, Lq: 1, Lk: 129, Dh: 128, causal: true}},
		{flashShape: flashShape{B: 2, H: 1, Lq: 10, Lk: 10, Dh: 64, causal: true}},
		{flashShape: flashShape{B: 1, H: 3, Lq: 200, Lk: 333, Dh: 64, causal: true}, noDQ: true},
		{flashShape: flashShape{B: 1, H: 1, Lq: 300, Lk: 300, Dh: 128, causal: true}},
		{flashShape: flashShape{B: 1, H: 3, Lq: 257, Lk: 190, Dh: 128}, noDK: true, noDV: true},
		{flashShape: flashShape{B: 1, H: 1, Lq: 100, Lk: 114, Dh: 64, causal: true}, noDK: true},
		{flashShape: flashShape{B: 1, H: 1, Lq: 100, Lk: 101, Dh: 128, causal: true}, noDV: true},
		{flashShape: flashShape{B: 1, H: 65537, Lq: 1, Lk: 3, Dh: 64}},
	}
	const u = 1.0 / 256
	for i, s := range shapes {
		t.Run(s.String(), func(t *testing.T) {
			q, k, v, _ := flashInputs(t, m, s.flashShape, 1, uint64(100+i))
			rng := rand.New(rand.NewPCG(uint64(i), 16))
			nq, nk := s.B*s.H*s.Lq*s.Dh, s.B*s.H*s.Lk*s.Dh
			up := func(n int, scale float64) (nn.Buffer, []float64) {
				x := make([]float64, n)
				for j := range x {
					x[j] = scale * rng.NormFloat64()
				}
				b := m.AllocAs(n, nn.BFloat16)
				t.Cleanup(func() { m.Free(b) })
				m.Write(b, x)
				return b, m.Read(b)
			}
			dout, douts := up(nq, 1)
			out, lse := m.AllocAs(nq, nn.BFloat16), m.AllocAs(s.B*s.H*s.Lq, nn.Float32)
			t.Cleanup(func() { m.Free(out); m.Free(lse) })
			scale := 1 / math.Sqrt(float64(s.Dh))
			m.Attention(out, lse, q, k, v, s.B, s.H, s.Lq, s.Lk, s.Dh, scale, s.causal)
			want := flashRefGrads(s.flashShape, m.Read(q), m.Read(k), m.Read(v), douts, m.Read(out), scale)
			_, befQ := up(nq, 0.1)
			_, befK := up(nk, 0.1)
			_, befV := up(nk, 0.1)
			before := [3][]float64{befQ, befK, befV}
			for _, flash := range []bool{true, false} {
				was := m.flashAttn
				m.flashAttn = flash
				var bufs [3]nn.Buffer
				for g, skip := range []bool{s.noDQ, s.noDK, s.noDV} {
					if !skip {
						bufs[g] = m.AllocAs(len(before[g]), nn.BFloat16)
						defer m.Free(bufs[g])
						m.Write(bufs[g], before[g])
					}
				}
				runs := m.flashBwdRuns
				m.AttentionBackward(bufs[0], bufs[1], bufs[2], q, k, v, out, lse, dout, s.B, s.H, s.Lq, s.Lk, s.Dh, scale, s.causal)
				m.flashAttn = was
				if ran := m.flashBwdRuns != runs; ran != flash {
					t.Fatalf("flash switch %v but the backward ran on flash_attn.cu: %v", flash, ran)
				}
				for g, name := range []string{"dq", "dk", "dv"} {
					if bufs[g] == nil {
						continue
					}
					got := m.Read(bufs[g])
					rel, ratio, tol := flashGradErr(got, before[g], want.grad[g], want.abs[g], u)
					t.Logf("flash %v %s: rel err %.3g (tol %.3g), element err/bound %.2f", flash, name, rel, tol, ratio)
					if flash && (!(rel <= tol) || !(ratio <= 1)) {
						t.Errorf("%s: rel err %.3g (tol %.3g), element err/bound %.2f (≤ 1)", name, rel, tol, ratio)
					}
				}
			}
		})
	}
}

// flashGrads are the float64 gradients dq, dk, dv of attention and, for
// each element, the sum of |terms| whose bf16 rounding bounds the error of
// the mma operands P and dS.
type flashGrads struct{ grad, abs [3][]float64 }

// flashRefGrads is the float64 backward (as backendtest's
// refAttentionGrads) with D_i = dout_i·out_i from the given out.
func flashRefGrads(s flashShape, q, k, v, dout, out []float64, scale float64) flashGrads {
	var r flashGrads
	for g, n := range []int{len(q), len(k), len(v)} {
		r.grad[g], r.abs[g] = make([]float64, n), make([]float64, n)
	}
	D := s.Dh
	dot := func(a, b []float64) float64 {
		x := 0.0
		for i := range a {
			x += a[i] * b[i]
		}
		return x
	}
	for bh := 0; bh < s.B*s.H; bh++ {
		for i := 0; i < s.Lq; i++ {
			row := (bh*s.Lq + i) * D
			qi, gi := q[row:row+D], dout[row:row+D]
			n := s.Lk
			if s.causal {
				n = i + s.Lk - s.Lq + 1
			}
			sc := make([]float64, n)
			mx := math.Inf(-1)
			for j := range n {
				sc[j] = scale * dot(qi, k[(bh*s.Lk+j)*D:(bh*s.Lk+j+1)*D])
				mx = max(mx, sc[j])
			}
			l := 0.0
			for j := range n {
				l += math.Exp(sc[j] - mx)
			}
			lse := mx + math.Log(l)
			di := dot(gi, out[row:row+D])
			for j := range n {
				col := (bh*s.Lk + j) * D
				kj, vj := k[col:col+D], v[col:col+D]
				p := math.Exp(sc[j] - lse)
				ds := p * (dot(gi, vj) - di)
				for d := range D {
					r.grad[0][row+d] += scale * ds * kj[d]
					r.grad[1][col+d] += scale * ds * qi[d]
					r.grad[2][col+d] += p * gi[d]
					r.abs[0][row+d] += scale * math.Abs(ds*kj[d])
					r.abs[1][col+d] += scale * math.Abs(ds*qi[d])
					r.abs[2][col+d] += math.Abs(p * gi[d])
				}
			}
		}
	}
	return r
}

// flashGradErr returns got − before's error against want norm-wise (and
// its tolerance) and the largest ratio of an element's error to its bound
// (see TestGPUFlashAttnBackward).
func flashGradErr(got, before, want, abs []float64, u float64) (rel, ratio, tol float64) {
	var d2, w2, s2, a2, wmax float64
	for i := range want {
		d := got[i] - before[i] - want[i]
		sum := before[i] + want[i]
		d2 += d * d
		w2 += want[i] * want[i]
		s2 += sum * sum
		a2 += abs[i] * abs[i]
		wmax = max(wmax, math.Abs(want[i]))
	}
	for i := range want {
		d := math.Abs(got[i] - before[i] - want[i])
		ratio = max(ratio, d/(u*(math.Abs(before[i]+want[i])+abs[i])+1e-3*wmax))
	}
	return math.Sqrt(d2 / w2), ratio, 1e-3 + u*(math.Sqrt(s2)+math.Sqrt(a2))/math.Sqrt(w2)
}
