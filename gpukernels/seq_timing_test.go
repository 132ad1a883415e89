package gpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"seqbench/nn"
)

// TestGPUSeqTimings times the fused sequence ops at one realistic shape
// each, float32, against a floor: bytes over the copy bandwidth measured
// here (a 1 GiB device-to-device copy, read + write), or FLOPs over
// sgemmRate, the SGEMM ceiling measured by TestGPUTimings (NOTES.md). It
// runs only with SEQBENCH_GPU_SEQTIMINGS=1 and prints a table.
func TestGPUSeqTimings(t *testing.T) {
	if os.Getenv("SEQBENCH_GPU_SEQTIMINGS") != "1" {
		t.Skip("set SEQBENCH_GPU_SEQTIMINGS=1 to time the sequence kernels")
	}
	const sgemmRate = 51.0e12 // FLOP/s, NOTES.md (cuBLAS SGEMM 8192³, fp32 FFMA)
	gpu(t, nn.Float32)        // skips without a GPU
	be, err := NewWithOptions(nn.Float32, Options{CacheDir: testCacheDir})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	var bufs []nn.Buffer
	freeAll := func() {
		for _, b := range bufs {
			be.Free(b)
		}
		bufs = bufs[:0]
	}
	defer freeAll()
	chunk := make([]float64, 1<<20)
	// randBuf is n values of scale·N(0,1) + shift (a random 1M-element
	// block repeated; never zeros).
	randBuf := func(n int, scale, shift float64) nn.Buffer {
		for i := range chunk {
			chunk[i] = shift + scale*rng.NormFloat64()
		}
		b := be.Alloc(n)
		bufs = append(bufs, b)
		tmp := be.Alloc(len(chunk))
		be.Write(tmp, chunk)
		for off := 0; off < n; off += len(chunk) {
			be.CopyBlock(b, off, 0, tmp, 0, 0, 1, min(len(chunk), n-off), false)
		}
		be.Free(tmp)
		return b
	}
	negExp := func(n int) nn.Buffer { // −exp(N(0, 0.5²)): decaying A
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = -math.Exp(0.5 * rng.NormFloat64())
		}
		b := be.Alloc(n)
		bufs = append(bufs, b)
		be.Write(b, vals)
		return b
	}
	timeIt := func(f func()) float64 { return medianTime(t, be, f) }
	var table strings.Builder
	row := func(name, shape string, ms, floorMs float64, rate string) {
		fmt.Fprintf(&table, "| %-26s | %-30s | %9.4f | %9.4f | %5.1f%% | %s |\n", name, shape, ms, floorMs, 100*floorMs/ms, rate)
	}
	fmt.Fprintf(&table, "| %-26s | %-30s | %9s | %9s | %6s | %s |\n", "op (float32)", "shape", "ms", "floor ms", "floor/t", "achieved")

	const nCopy = 1 << 28
	src, dst := randBuf(nCopy, 1, 0), randBuf(nCopy, 1, 0)
	ms := timeIt(func() { be.Copy(dst, src) })
	bw := 2 * 4 * nCopy / (ms * 1e-3)
	row("copy (cuMemcpyDtoD)", "1 GiB", ms, ms, fmt.Sprintf("%.0f GB/s", bw/1e9))
	freeAll()
	memRow := func(name, shape string, bytes float64, f func()) {
		ms := timeIt(f)
		row(name, shape, ms, bytes/bw*1e3, fmt.Sprintf("%.0f GB/s", bytes/(ms*1e-3)/1e9))
	}
	flopRow := func(name, shape string, flops float64, f func()) {
		ms := timeIt(f)
		row(name, shape, ms, flops/sgemmRate*1e3, fmt.Sprintf("%.2f TFLOP/s", flops/(ms*1e-3)/1e12))
	}

	{ // Conv1D: Mamba's short conv.
		const B, C, L, W = 8, 2048, 2048, 4
		n := B * C * L
		shape := fmt.Sprintf("B%d C%d L%d W%d silu", B, C, L, W)
		x, w, bias, out := randBuf(n, 1, 0), randBuf(C*W, 0.5, 0), randBuf(C, 0.5, 0), randBuf(n, 1, 0)
		dout, dx, dw, db := randBuf(n, 1, 0), randBuf(n, 1, 0), randBuf(C*W, 1, 0), randBuf(C, 1, 0)
		memRow("Conv1D", shape, 2*4*float64(n), func() { be.Conv1D(out, x, w, bias, nil, B, C, L, W, nn.SiLU) })
		memRow("Conv1DBackward dx+dw+db", shape, 4*4*float64(n), func() {
			be.Conv1DBackward(dx, dw, db, x, w, bias, dout, B, C, L, W, nn.SiLU)
		})
		freeAll()
	}
	{ // Mamba-1's selective scan.
		const B, D, L, N, G = 8, 1024, 2048, 16, 1
		nBDL, nBGNL := B*D*L, B*G*N*L
		shape := fmt.Sprintf("B%d D%d L%d N%d (z, D, bias)", B, D, L, N)
		a := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: true,
			U: randBuf(nBDL, 1, 0), Delta: randBuf(nBDL, 1, -1), A: negExp(D * N), Bm: randBuf(nBGNL, 1, 0),
			Cm: randBuf(nBGNL, 1, 0), Dskip: randBuf(D, 1, 0), Z: randBuf(nBDL, 1, 0), DeltaBias: randBuf(D, 0.5, 0)}
		out, hT, dout := randBuf(nBDL, 1, 0), randBuf(B*D*N, 1, 0), randBuf(nBDL, 1, 0)
		g := nn.ScanGrads{U: randBuf(nBDL, 1, 0), Delta: randBuf(nBDL, 1, 0), A: randBuf(D*N, 1, 0),
			Bm: randBuf(nBGNL, 1, 0), Cm: randBuf(nBGNL, 1, 0), Dskip: randBuf(D, 1, 0), Z: randBuf(nBDL, 1, 0),
			DeltaBias: randBuf(D, 1, 0)}
		memRow("SelectiveScan", shape, 4*(4*float64(nBDL)+2*float64(nBGNL)), func() { be.SelectiveScan(out, hT, a) })
		memRow("SelectiveScanBackward", shape, 4*(10*float64(nBDL)+6*float64(nBGNL)), func() {
			be.SelectiveScanBackward(g, a, dout)
		})
		freeAll()
	}
	{ // Mamba-2's SSD.
		const B, L, H, P, G, N = 4, 2048, 32, 64, 1, 64
		nx, nd, nbc := B*L*H*P, B*L*H, B*L*G*N
		shape := fmt.Sprintf("B%d L%d H%d P%d N%d G%d", B, L, H, P, N, G)
		a := nn.SSDArgs{B: B, L: L, H: H, P: P, G: G, N: N, Chunk: 256, DtSoftplus: true,
			X: randBuf(nx, 1, 0), Dt: randBuf(nd, 0.5, -1), A: negExp(H), Bm: randBuf(nbc, 1, 0), Cm: randBuf(nbc, 1, 0),
			Dskip: randBuf(H, 1, 0), DtBias: randBuf(H, 0.3, 0)}
		out, hT, dout := randBuf(nx, 1, 0), randBuf(B*H*P*N, 1, 0), randBuf(nx, 1, 0)
		g := nn.SSDGrads{X: randBuf(nx, 1, 0), Dt: randBuf(nd, 1, 0), A: randBuf(H, 1, 0), Bm: randBuf(nbc, 1, 0),
			Cm: randBuf(nbc, 1, 0), Dskip: randBuf(H, 1, 0), DtBias: randBuf(H, 1, 0)}
		memRow("SSD", shape, 4*(2*float64(nx)+2*float64(nbc)+float64(nd)), func() { be.SSD(out, hT, a) })
		memRow("SSDBackward", shape, 4*(4*float64(nx)+6*float64(nbc)+3*float64(nd)), func() { be.SSDBackward(g, a, dout) })
		freeAll()
	}
	for _, gru := range []bool{false, true} { // LSTM and GRU
		const B, L, I, H = 16, 256, 512, 512
		G, kind, savedLen := 4, "LSTM", nn.LSTMSavedLen(B, L, H)
		if gru {
			G, kind, savedLen = 3, "GRU", nn.GRUSavedLen(B, L, H)
		}
		GH := G * H
		shape := fmt.Sprintf("B%d L%d I%d H%d", B, L, I, H)
		a := nn.RNNArgs{B: B, L: L, I: I, H: H, X: randBuf(B*L*I, 1, 0), Wih: randBuf(GH*I, 0.04, 0),
			Whh: randBuf(GH*H, 0.04, 0), Bih: randBuf(GH, 0.1, 0), Bhh: randBuf(GH, 0.1, 0)}
		out, saved, dout := randBuf(B*L*H, 1, 0), randBuf(savedLen, 1, 0), randBuf(B*L*H, 1, 0)
		g := nn.RNNGrads{X: randBuf(B*L*I, 1, 0), Wih: randBuf(GH*I, 1, 0), Whh: randBuf(GH*H, 1, 0),
			Bih: randBuf(GH, 1, 0), Bhh: randBuf(GH, 1, 0)}
		flops := 2 * float64(B*L*GH) * float64(I+H)
		if gru {
			flopRow(kind, shape, flops, func() { be.GRU(out, nil, saved, a) })
			flopRow(kind+"Backward", shape+" (2× fwd)", 2*flops, func() { be.GRUBackward(g, a, out, saved, dout) })
		} else {
			flopRow(kind, shape, flops, func() { be.LSTM(out, nil, nil, saved, a) })
			flopRow(kind+"Backward", shape+" (2× fwd)", 2*flops, func() { be.LSTMBackward(g, a, out, saved, dout) })
		}
		freeAll()
	}
	{ // S4D: the kernel, its backward, the FFT convolution, the step.
		const B, H, N2, L = 8, 1024, 32, 2048
		a := nn.S4DArgs{H: H, N2: N2, L: L, LogDt: randBuf(H, 0.5, -4), ARe: negExp(H * N2), AIm: randBuf(H*N2, 30, 0),
			CRe: randBuf(H*N2, 1, 0), CIm: randBuf(H*N2, 1, 0)}
		K, dK := randBuf(H*L, 1, 0), randBuf(H*L, 1, 0)
		g := nn.S4DGrads{LogDt: randBuf(H, 1, 0), ARe: randBuf(H*N2, 1, 0), AIm: randBuf(H*N2, 1, 0),
			CRe: randBuf(H*N2, 1, 0), CIm: randBuf(H*N2, 1, 0)}
		kflops := 8 * float64(H*N2*L) // per (h, n, k): a complex product and a real multiply-add, in double
		shape := fmt.Sprintf("H%d N2%d L%d", H, N2, L)
		flopRow("S4DKernel (fp64 math)", shape, kflops, func() { be.S4DKernel(K, a) })
		flopRow("S4DKernelBackward (fp64)", shape, 2*kflops, func() { be.S4DKernelBackward(g, a, dK) })
		n := B * H * L
		u, out, dout, du, D, dD := randBuf(n, 1, 0), randBuf(n, 1, 0), randBuf(n, 1, 0), randBuf(n, 1, 0), randBuf(H, 1, 0), randBuf(H, 1, 0)
		cshape := fmt.Sprintf("B%d H%d L%d", B, H, L)
		memRow("FFTConv", cshape, 4*(2*float64(n)+float64(H*L)), func() { be.FFTConv(out, u, K, D, B, H, L) })
		memRow("FFTConvBackward du+dK+dD", cshape, 4*(4*float64(n)+3*float64(H*L)), func() {
			be.FFTConvBackward(du, dK, dD, u, K, D, dout, B, H, L)
		})
		st := randBuf(B*H*N2*2, 0.1, 0)
		for _, Ls := range []int{1, 64} {
			as := a
			as.L = Ls
			memRow("S4DRecurrent", fmt.Sprintf("B%d H%d N2%d L%d", B, H, N2, Ls), 4*(2*float64(B*H*Ls)+4*float64(B*H*N2)),
				func() { be.S4DRecurrent(out, st, u, D, as, B) })
		}
		freeAll()
	}

	var res strings.Builder
	res.WriteString("kernel resources (registers, local memory bytes):")
	for _, kn := range [][2]string{{"selective_scan", "scan_fwd_4"}, {"selective_scan", "scan_bwd_4"}, {"ssd", "ssd_fwd_16"},
		{"ssd", "ssd_bwd_f_16"}, {"ssd", "ssd_bwd_r_16"}, {"conv1d", "conv1d_fwd"}, {"rnn", "lstm_cell"},
		{"s4d", "s4d_kernel"}, {"s4d", "s4d_kernel_bwd"}, {"fftconv", "fft_conv"}, {"fftconv", "fft_dk"}} {
		regs, local := be.kernelResources(kn[0], kn[1])
		fmt.Fprintf(&res, " %s %d/%d;", kn[1], regs, local)
	}
	fmt.Printf("\nSEQ TIMINGS on %s (median of 5 trials; floor = bytes / %.0f GB/s measured copy, or FLOPs / %.0f TFLOP/s SGEMM from NOTES.md)\n%s%s\n\n",
		be.Device().Name, bw/1e9, sgemmRate/1e12, table.String(), res.String())
}
