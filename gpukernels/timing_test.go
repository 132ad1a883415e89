package gpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

// TestGPUTimings measures the device's two ceilings (a large device-to-device
// copy, counting bytes read and written; large GEMMs through cuBLAS) and
// every kernel at one realistic shape, against its floor: bytes over the
// measured copy bandwidth, or FLOPs over the measured SGEMM rate. It runs
// only with SEQBENCH_GPU_TIMINGS=1 (it takes tens of seconds and several
// GiB of device memory), and prints a table.
func TestGPUTimings(t *testing.T) {
	if os.Getenv("SEQBENCH_GPU_TIMINGS") != "1" {
		t.Skip("set SEQBENCH_GPU_TIMINGS=1 to time the kernels")
	}
	gpu(t, nn.Float32) // skips without a GPU
	be, err := NewWithOptions(nn.Float32, Options{CacheDir: testCacheDir})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var bufs []nn.Buffer
	defer func() {
		for _, b := range bufs {
			be.Free(b)
		}
	}()
	// randBuf is n random values (never zeros: they can run faster).
	randBuf := func(n int, scale float64) nn.Buffer {
		b := be.Alloc(n)
		bufs = append(bufs, b)
		vals := make([]float64, min(n, 1<<22))
		for i := range vals {
			vals[i] = scale * rng.NormFloat64()
		}
		for off := 0; off < n; off += len(vals) {
			m := min(len(vals), n-off)
			tmp := be.Alloc(m)
			be.Write(tmp, vals[:m])
			be.CopyBlock(b, off, 0, tmp, 0, 0, 1, m, false)
			be.Free(tmp)
		}
		return b
	}
	timeIt := func(f func()) float64 { return medianTime(t, be, f) }

	var table strings.Builder
	row := func(name, shape string, ms, floorMs float64, rate string) {
		fmt.Fprintf(&table, "| %-28s | %-34s | %9.4f | %9.4f | %5.1f%% | %s |\n", name, shape, ms, floorMs, 100*floorMs/ms, rate)
	}
	fmt.Fprintf(&table, "| %-28s | %-34s | %9s | %9s | %6s | %s |\n", "op (float32)", "shape", "ms", "floor ms", "floor/t", "achieved")
	fmt.Fprintf(&table, "|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 30), strings.Repeat("-", 36), strings.Repeat("-", 11), strings.Repeat("-", 11), strings.Repeat("-", 8), strings.Repeat("-", 20))

	// Ceiling 1: a 1 GiB device-to-device copy.
	const nCopy = 1 << 28
	src, dst := randBuf(nCopy, 1), randBuf(nCopy, 1)
	ms := timeIt(func() { be.Copy(dst, src) })
	bw := 2 * 4 * nCopy / (ms * 1e-3) // bytes/s, read + write
	row("copy (cuMemcpyDtoD)", "1 GiB", ms, ms, fmt.Sprintf("%.0f GB/s", bw/1e9))
	be.Free(src)
	be.Free(dst)
	bufs = bufs[:0]

	// Ceiling 2: SGEMM 8192³, full float32 and TF32; DGEMM 4096³.
	gemmRate := func(name string, dt nn.DType, n int, tf32 bool) float64 {
		b := be
		if dt == nn.Float64 {
			b64, err := NewWithOptions(nn.Float64, Options{CacheDir: testCacheDir})
			if err != nil {
				t.Fatal(err)
			}
			defer b64.Close()
			b = b64
		}
		if err := b.SetTF32(tf32); err != nil {
			t.Fatal(err)
		}
		defer b.SetTF32(false)
		x, y, z := b.Alloc(n*n), b.Alloc(n*n), b.Alloc(n*n)
		defer func() { b.Free(x); b.Free(y); b.Free(z) }()
		vals := make([]float64, n*n)
		for i := range vals {
			vals[i] = rng.NormFloat64()
		}
		b.Write(x, vals)
		b.Write(y, vals)
		g := nn.GemmArgs{M: n, N: n, K: n, Alpha: 1, LDA: n, LDB: n, LDC: n, Batch: 1}
		run := func() { b.Gemm(x, y, z, g) }
		run()
		ms, err := b.Time(3, run)
		if err != nil {
			t.Fatal(err)
		}
		ts := []float64{ms}
		for range 2 {
			ms, _ = b.Time(3, run)
			ts = append(ts, ms)
		}
		slices.Sort(ts)
		ms = ts[1]
		rate := 2 * math.Pow(float64(n), 3) / (ms * 1e-3)
		row(name, fmt.Sprintf("%d³", n), ms, ms, fmt.Sprintf("%.1f TFLOP/s", rate/1e12))
		return rate
	}
	sgemm := gemmRate("SGEMM (cuBLAS, fp32)", nn.Float32, 8192, false)
	gemmRate("SGEMM (cuBLAS, TF32)", nn.Float32, 8192, true)
	gemmRate("DGEMM (cuBLAS)", nn.Float64, 4096, false)

	memRow := func(name, shape string, bytes float64, f func()) {
		ms := timeIt(f)
		row(name, shape, ms, bytes/bw*1e3, fmt.Sprintf("%.0f GB/s", bytes/(ms*1e-3)/1e9))
	}
	flopRow := func(name, shape string, flops float64, f func()) {
		ms := timeIt(f)
		row(name, shape, ms, flops/sgemm*1e3, fmt.Sprintf("%.2f TFLOP/s", flops/(ms*1e-3)/1e12))
	}

	// Elementwise and reductions over 64M elements (256 MiB a buffer).
	const n = 1 << 26
	const fn = float64(n) * 4
	a, b, c, d := randBuf(n, 1), randBuf(n, 1), randBuf(n, 1), randBuf(n, 0.01)
	memRow("Add", "64M", 3*fn, func() { be.Add(c, a, b) })
	memRow("Axpy", "64M", 3*fn, func() { be.Axpy(0.5, a, c) })
	memRow("Act GELU", "64M", 2*fn, func() { be.Act(nn.GELU, c, a) })
	memRow("ActBackward GELU", "64M", 4*fn, func() { be.ActBackward(nn.GELU, c, a, b) })
	memRow("Act SiLU", "64M", 2*fn, func() { be.Act(nn.SiLU, c, a) })
	memRow("Fill", "64M", fn, func() { be.Fill(c, 1.5) })
	memRow("Sum", "64M", fn, func() { be.Sum(a) })
	memRow("SumSquares", "64M", fn, func() { be.SumSquares(a) })
	m, v := randBuf(n, 0.01), randBuf(n, 0.01)
	be.Act(nn.Exp, v, v) // v > 0
	memRow("AdamW", "64M params", 7*fn, func() {
		be.AdamW(c, d, m, v, nn.AdamWArgs{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: 10})
	})
	rows, cols := 65536, 1024
	memRow("AddBias", "65536×1024", 2*fn, func() { be.AddBias(c, a, b, rows, cols) })
	memRow("SumRows", "65536×1024", fn, func() { be.SumRows(d, a, rows, cols) })
	for _, block := range []bool{false, true} {
		be.normBlock = block
		form := " (warp/row)"
		if block {
			form = " (block/row)"
		}
		memRow("RMSNorm"+form, "65536×1024", 2*fn, func() { be.RMSNorm(c, d, a, b, rows, cols, 1e-5) })
		memRow("RMSNormBackward dx+dw"+form, "65536×1024", 4*fn, func() { be.RMSNormBackward(c, m, a, b, d, v, rows, cols) })
		memRow("LayerNorm"+form, "65536×1024", 2*fn, func() { be.LayerNorm(c, m, d, a, b, nil, rows, cols, 1e-5) })
		be.LayerNorm(c, m, d, a, b, nil, rows, cols, 1e-5)
		memRow("LayerNormBackward dx+dw+db"+form, "65536×1024", 4*fn, func() { be.LayerNormBackward(c, v, v, a, b, m, d, b, rows, cols) })
	}
	be.normBlock = false
	memRow("Permute (B,L,H,D)->(B,H,L,D)", "8×2048×16×256", 2*fn, func() { be.Permute(c, a, []int{8, 2048, 16, 256}, []int{0, 2, 1, 3}, false) })
	memRow("Permute 2-D transpose", "8192×8192", 2*fn, func() { be.Permute(c, a, []int{8192, 8192}, []int{1, 0}, false) })
	memRow("CopyBlock (half of each row)", "65536×512 of ×1024", fn, func() { be.CopyBlock(c, 0, 1024, a, 512, 1024, rows, 512, false) })
	memRow("RoPE", "8×16×2048×256", 2*fn, func() { be.RoPE(c, a, 8, 16, 2048, 256, 0, 10000) })

	// Embedding and cross-entropy at a GPT-2-like vocabulary.
	const V, dm, ntok = 50257, 1024, 16384
	ids := make([]int32, ntok)
	for i := range ids {
		ids[i] = int32(rng.IntN(V))
	}
	emb := randBuf(V*dm, 1)
	memRow("Embedding", fmt.Sprintf("%d ids, d %d", ntok, dm), 2*4*ntok*dm, func() { be.Embedding(c, emb, ids, dm) })
	memRow("EmbeddingBackward", fmt.Sprintf("%d ids, d %d", ntok, dm), 3*4*ntok*dm, func() { be.EmbeddingBackward(emb, a, ids, dm) })
	const ceRows = 8192
	logits := randBuf(ceRows*V, 2)
	dlogits := randBuf(ceRows*V, 1)
	memRow("CrossEntropy", fmt.Sprintf("%d×%d", ceRows, V), 4*ceRows*V, func() { be.CrossEntropy(c, d, logits, ids[:ceRows], ceRows, V, -100) })
	memRow("CrossEntropyBackward", fmt.Sprintf("%d×%d", ceRows, V), 3*4*ceRows*V, func() {
		be.CrossEntropyBackward(dlogits, logits, d, b, ids[:ceRows], ceRows, V, -100)
	})
	memRow("ArgmaxRows", fmt.Sprintf("%d×%d", ceRows, V), 4*ceRows*V, func() { be.ArgmaxRows(logits, ceRows, V) })

	// A Linear layer's GEMM and attention at a training shape.
	flopRow("Gemm (Linear 8192×1024→4096)", "M8192 N4096 K1024, Bᵀ", 2*8192*4096*1024, func() {
		be.Gemm(a, b, c, nn.GemmArgs{TransB: true, M: 8192, N: 4096, K: 1024, Alpha: 1, LDA: 1024, LDB: 1024, LDC: 4096, Batch: 1})
	})
	const B, H, L, Dh = 8, 16, 2048, 64
	nq := B * H * L * Dh
	q, k, vv, o, do := randBuf(nq, 1), randBuf(nq, 1), randBuf(nq, 1), randBuf(nq, 1), randBuf(nq, 1)
	dq, dk, dv := randBuf(nq, 1), randBuf(nq, 1), randBuf(nq, 1)
	lse := randBuf(B*H*L, 1)
	for _, generic := range []bool{false, true} {
		be.attnGeneric = generic
		path := "fast"
		if generic {
			path = "generic"
		}
		for _, hd := range []int{64, 128} {
			h := H * 64 / hd // the same model width
			shape := fmt.Sprintf("B%d H%d L%d Dh%d causal", B, h, L, hd)
			flops := 4.0 * B * float64(h) * L * L * float64(hd) / 2 // causal: half the pairs; QKᵀ and PV
			flopRow("Attention "+path, shape, flops, func() { be.Attention(o, lse, q, k, vv, B, h, L, L, hd, 0.125, true) })
			be.Attention(o, lse, q, k, vv, B, h, L, L, hd, 0.125, true)
			flopRow("AttentionBackward "+path, shape+" (2.5× fwd)", 2.5*flops, func() {
				be.AttentionBackward(dq, dk, dv, q, k, vv, o, lse, do, B, h, L, L, hd, 0.125, true)
			})
		}
	}
	be.attnGeneric = false

	var res strings.Builder
	res.WriteString("kernel resources (registers, local memory bytes):")
	for _, kn := range [][2]string{{"attention", "attn_fwd_fast64"}, {"attention", "attn_fwd_fast128"},
		{"attention", "attn_bwd_dkdv_fast64"}, {"attention", "attn_bwd_dkdv_fast128"}, {"attention", "attn_bwd_dq_fast128"},
		{"attention", "attn_fwd"}, {"attention", "attn_bwd_dkdv"}, {"attention", "attn_bwd_dq"},
		{"norm", "rmsnorm_fwd"}, {"norm", "rmsnorm_fwd_warp"}, {"norm", "layernorm_bwd_dx_warp"}, {"cross_entropy", "ce_fwd"}, {"elementwise", "act"}, {"memory", "permute"}} {
		regs, local := be.kernelResources(kn[0], kn[1])
		fmt.Fprintf(&res, " %s %d/%d;", kn[1], regs, local)
	}
	st := be.MemStats()
	fmt.Printf("\nTIMINGS on %s (median of 5 trials; floor = bytes / %.0f GB/s measured copy, or FLOPs / %.1f TFLOP/s measured SGEMM)\n%s%s\nallocator: peak %.2f GiB, %d cuMemAlloc, %d reuses\n\n",
		be.Device().Name, bw/1e9, sgemm/1e12, table.String(), res.String(), float64(st.Peak)/(1<<30), st.Allocs, st.Reuses)
}

// kernelResources returns a kernel's registers per thread and local memory
// (spill) bytes per thread.
func (be *Backend) kernelResources(family, name string) (regs, local int) {
	be.enter("kernelResources")
	defer be.exit()
	k := be.fn("kernelResources", family, name)
	regs, _ = be.drv.FuncGetAttribute(k.f, cuda.FuncAttrNumRegs)
	local, _ = be.drv.FuncGetAttribute(k.f, cuda.FuncAttrLocalSizeBytes)
	return regs, local
}

// medianTime is the median over 5 trials of the mean time of one run of f
// in milliseconds, with reps per trial chosen so a trial lasts about 20 ms.
func medianTime(t *testing.T, be *Backend, f func()) float64 {
	t.Helper()
	f()
	est, err := be.Time(1, f)
	if err != nil {
		t.Fatal(err)
	}
	reps := max(1, min(200, int(20/math.Max(est, 1e-3))))
	var ts []float64
	for range 5 {
		ms, err := be.Time(reps, f)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, ms)
	}
	slices.Sort(ts)
	return ts[2]
}
