package cpukernels

import (
	"fmt"

	"seqbench/nn"
)

// BF16 is the cpu-bfloat16 backend: the reference of bfloat16 mixed
// precision (docs/PRECISION.md). It holds float32 buffers (Alloc: master
// weights, gradients, moments, statistics) and bfloat16 buffers (AllocAs:
// activations and what the backward saves) at once, computes every op in
// float32 with the float32 CPU backend, and rounds each bfloat16 output to
// the nearest bfloat16 (ties to even) when the op ends: load bfloat16,
// compute float32, store bfloat16, the rounding points of the GPU kernels.
//
// A bfloat16 buffer holds float32 values that are always exactly
// bfloat16 values, so results are bit for bit those of 16-bit storage with
// float32 math, while the kernels stay the tested float32 ones; the price
// is that memory is not halved on the CPU.
type BF16 struct {
	f *Backend[float32]
}

// BF16Buf is a bfloat16 buffer of the BF16 backend: float32 storage whose
// every element is a bfloat16 value.
type BF16Buf struct{ s Buf[float32] }

// Len is the number of elements.
func (b BF16Buf) Len() int { return len(b.s) }

// DType is nn.BFloat16.
func (b BF16Buf) DType() nn.DType { return nn.BFloat16 }

// NewBF16 returns the cpu-bfloat16 backend using every core.
func NewBF16() *BF16 { return &BF16{f: New[float32]()} }

// NewBF16WithWorkers is NewBF16 with at most n goroutines per kernel (see
// NewWithWorkers).
func NewBF16WithWorkers(n int) *BF16 { return &BF16{f: NewWithWorkers[float32](n)} }

// Name is "cpu-bfloat16".
func (be *BF16) Name() string { return "cpu-bfloat16" }

// DType is float32, the type of Alloc's buffers (masters and statistics).
func (be *BF16) DType() nn.DType { return nn.Float32 }

// ActDType is bfloat16: tapes store activations in it.
func (be *BF16) ActDType() nn.DType { return nn.BFloat16 }

// Alloc returns a zero-filled float32 buffer.
func (be *BF16) Alloc(n int) nn.Buffer { return be.f.Alloc(n) }

// AllocAs returns a zero-filled buffer of n elements of type dt (float32
// or bfloat16).
func (be *BF16) AllocAs(n int, dt nn.DType) nn.Buffer {
	switch dt {
	case nn.Float32:
		return be.f.Alloc(n)
	case nn.BFloat16:
		return BF16Buf{be.f.Alloc(n).(Buf[float32])}
	}
	panic(fmt.Sprintf("cpukernels.AllocAs: %v buffers are not supported by %s (float32, bfloat16)", dt, be.Name()))
}

// Free does nothing: the garbage collector owns CPU memory.
func (be *BF16) Free(b nn.Buffer) {}

// u unwraps a buffer for the float32 kernels (nil stays nil).
func u(b nn.Buffer) nn.Buffer {
	if h, ok := b.(BF16Buf); ok {
		return h.s
	}
	return b
}

// round rounds the bfloat16 buffers among outs to bfloat16 after an op
// wrote them in float32 (float32 buffers and nil are left alone).
func (be *BF16) round(outs ...nn.Buffer) {
	for _, b := range outs {
		if h, ok := b.(BF16Buf); ok {
			s := h.s
			be.f.parallelFor(len(s), copyGrain, func(lo, hi int) { nn.RoundBF16Slice(s[lo:hi]) })
		}
	}
}

// stateOf panics unless a forward's carried state (H0 and hT, a conv's
// state) is float32, or bfloat16 where the op's activations (out) are: a
// decode state as a bf16 model keeps it (nn.SeqOps), read exactly and
// rounded once when written. Its buffers must be of one type.
func stateOf(op string, out nn.Buffer, name string, bufs ...nn.Buffer) {
	_, actBF := out.(BF16Buf)
	var bf []bool
	for _, b := range bufs {
		if b == nil {
			continue
		}
		_, h := b.(BF16Buf)
		if h && !actBF {
			panic(fmt.Sprintf("cpukernels.%s: %s is bfloat16, must be float32 where the activations are float32 (docs/PRECISION.md)", op, name))
		}
		bf = append(bf, h)
	}
	if len(bf) == 2 && bf[0] != bf[1] {
		panic(fmt.Sprintf("cpukernels.%s: %s are of two types: a state's buffers must be of one type", op, name))
	}
}

// need32 panics unless b (when given) is a float32 buffer: statistics,
// recurrent states and the optimizer's tensors are float32 under any
// precision (docs/PRECISION.md).
func need32(op, name string, bufs ...nn.Buffer) {
	for _, b := range bufs {
		if _, ok := b.(BF16Buf); ok {
			panic(fmt.Sprintf("cpukernels.%s: %s is a bfloat16 buffer; it must be float32 (docs/PRECISION.md)", op, name))
		}
	}
}

// Write stores src into dst, rounding each value to dst's type in one
// rounding.
func (be *BF16) Write(dst nn.Buffer, src []float64) {
	h, ok := dst.(BF16Buf)
	if !ok {
		be.f.Write(dst, src)
		return
	}
	d := data[float32](h.s, len(src), "Write", "dst")
	for i, v := range src {
		d[i] = float32(nn.RoundBF16From64(v))
	}
}

// Read returns every element of src as float64 (exact).
func (be *BF16) Read(src nn.Buffer) []float64 { return be.f.Read(u(src)) }

// Fill sets every element of dst to v rounded to dst's type.
func (be *BF16) Fill(dst nn.Buffer, v float64) {
	if _, ok := dst.(BF16Buf); ok {
		v = nn.RoundBF16From64(v)
	}
	be.f.Fill(u(dst), v)
}

// Copy copies src into dst, converting between the types (rounding to
// nearest, ties to even, into a bfloat16 dst): it is the cast.
func (be *BF16) Copy(dst, src nn.Buffer) {
	be.f.Copy(u(dst), u(src))
	be.round(dst)
}

func (be *BF16) CopyBlock(dst nn.Buffer, dstOff, dstStride int, src nn.Buffer, srcOff, srcStride, rows, cols int, accumulate bool) {
	be.f.CopyBlock(u(dst), dstOff, dstStride, u(src), srcOff, srcStride, rows, cols, accumulate)
	be.round(dst)
}

func (be *BF16) Permute(out, x nn.Buffer, shape []int, perm []int, accumulate bool) {
	be.f.Permute(u(out), u(x), shape, perm, accumulate)
	be.round(out)
}

func (be *BF16) Add(out, a, b nn.Buffer) {
	be.f.Add(u(out), u(a), u(b))
	be.round(out)
}

func (be *BF16) Mul(out, a, b nn.Buffer) {
	be.f.Mul(u(out), u(a), u(b))
	be.round(out)
}

func (be *BF16) MulBackward(da, db, a, b, dout nn.Buffer) {
	be.f.MulBackward(u(da), u(db), u(a), u(b), u(dout))
	be.round(da, db)
}

func (be *BF16) Axpy(alpha float64, x, y nn.Buffer) {
	be.f.Axpy(alpha, u(x), u(y))
	be.round(y)
}

func (be *BF16) Scale(x nn.Buffer, s float64) {
	be.f.Scale(u(x), s)
	be.round(x)
}

func (be *BF16) Act(kind nn.Activation, out, x nn.Buffer) {
	be.f.Act(kind, u(out), u(x))
	be.round(out)
}

func (be *BF16) ActBackward(kind nn.Activation, dx, x, dout nn.Buffer) {
	be.f.ActBackward(kind, u(dx), u(x), u(dout))
	be.round(dx)
}

func (be *BF16) AddBias(out, x, bias nn.Buffer, rows, cols int) {
	be.f.AddBias(u(out), u(x), u(bias), rows, cols)
	be.round(out)
}

func (be *BF16) SumRows(out, x nn.Buffer, rows, cols int) {
	be.f.SumRows(u(out), u(x), rows, cols)
	be.round(out)
}

func (be *BF16) Sum(x nn.Buffer) float64        { return be.f.Sum(u(x)) }
func (be *BF16) SumSquares(x nn.Buffer) float64 { return be.f.SumSquares(u(x)) }

// Gemm multiplies in float32 whatever the types of a and b (bfloat16
// products are exact in float32) and rounds c once at the end when it is
// bfloat16: cublasGemmEx with a 32F compute type.
func (be *BF16) Gemm(a, b, c nn.Buffer, args nn.GemmArgs) {
	be.f.Gemm(u(a), u(b), u(c), args)
	be.round(c)
}

func (be *BF16) RMSNorm(out, rstd, x, w nn.Buffer, rows, d int, eps float64) {
	need32("RMSNorm", "rstd", rstd)
	be.f.RMSNorm(u(out), rstd, u(x), u(w), rows, d, eps)
	be.round(out)
}

func (be *BF16) RMSNormBackward(dx, dw, x, w, rstd, dout nn.Buffer, rows, d int) {
	need32("RMSNormBackward", "rstd", rstd)
	be.f.RMSNormBackward(u(dx), u(dw), u(x), u(w), rstd, u(dout), rows, d)
	be.round(dx, dw)
}

func (be *BF16) LayerNorm(out, mean, rstd, x, w, b nn.Buffer, rows, d int, eps float64) {
	need32("LayerNorm", "mean and rstd", mean, rstd)
	be.f.LayerNorm(u(out), mean, rstd, u(x), u(w), u(b), rows, d, eps)
	be.round(out)
}

func (be *BF16) LayerNormBackward(dx, dw, db, x, w, mean, rstd, dout nn.Buffer, rows, d int) {
	need32("LayerNormBackward", "mean and rstd", mean, rstd)
	be.f.LayerNormBackward(u(dx), u(dw), u(db), u(x), u(w), mean, rstd, u(dout), rows, d)
	be.round(dx, dw, db)
}

func (be *BF16) Embedding(out, table nn.Buffer, ids []int32, d int) {
	be.f.Embedding(u(out), u(table), ids, d)
	be.round(out)
}

func (be *BF16) EmbeddingBackward(dtable, dout nn.Buffer, ids []int32, d int) {
	be.f.EmbeddingBackward(u(dtable), u(dout), ids, d)
	be.round(dtable)
}

func (be *BF16) CrossEntropy(loss, lse, logits nn.Buffer, targets []int32, rows, V int, ignore int32) {
	need32("CrossEntropy", "loss and lse", loss, lse)
	be.f.CrossEntropy(loss, lse, u(logits), targets, rows, V, ignore)
}

func (be *BF16) CrossEntropyBackward(dlogits, logits, lse, dloss nn.Buffer, targets []int32, rows, V int, ignore int32) {
	need32("CrossEntropyBackward", "lse and dloss", lse, dloss)
	be.f.CrossEntropyBackward(u(dlogits), u(logits), lse, dloss, targets, rows, V, ignore)
	be.round(dlogits)
}

func (be *BF16) ArgmaxRows(x nn.Buffer, rows, cols int) []int32 {
	return be.f.ArgmaxRows(u(x), rows, cols)
}

func (be *BF16) RoPE(out, x nn.Buffer, B, H, L, Dh, pos0 int, base float64) {
	be.f.RoPE(u(out), u(x), B, H, L, Dh, pos0, base)
	be.round(out)
}

func (be *BF16) RoPEBackward(dx, dout nn.Buffer, B, H, L, Dh, pos0 int, base float64) {
	be.f.RoPEBackward(u(dx), u(dout), B, H, L, Dh, pos0, base)
	be.round(dx)
}

func (be *BF16) Attention(out, lse, q, k, v nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool) {
	need32("Attention", "lse", lse)
	be.f.Attention(u(out), lse, u(q), u(k), u(v), B, H, Lq, Lk, Dh, scale, causal)
	be.round(out)
}

func (be *BF16) AttentionDropout(out, lse, q, k, v nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	need32("AttentionDropout", "lse", lse)
	be.f.AttentionDropout(u(out), lse, u(q), u(k), u(v), B, H, Lq, Lk, Dh, scale, causal, drop)
	be.round(out)
}

func (be *BF16) AttentionCached(out, lse, q, k, v nn.Buffer, B, H, Lq int, filled nn.Buffer, kvRows, Dh int, scale float64) {
	need32("AttentionCached", "lse", lse)
	need32("AttentionCached", "filled", filled)
	be.f.AttentionCached(u(out), lse, u(q), u(k), u(v), B, H, Lq, filled, kvRows, Dh, scale)
	be.round(out)
}

func (be *BF16) RoPEAt(out, x nn.Buffer, B, H, L, Dh int, pos nn.Buffer, base float64) {
	need32("RoPEAt", "pos", pos)
	be.f.RoPEAt(u(out), u(x), B, H, L, Dh, pos, base)
	be.round(out)
}

func (be *BF16) AppendRows(dst nn.Buffer, dstStride int, src nn.Buffer, rows, cols int, pos nn.Buffer, unit int) {
	need32("AppendRows", "pos", pos)
	be.f.AppendRows(u(dst), dstStride, u(src), rows, cols, pos, unit)
	be.round(dst)
}

func (be *BF16) AttentionBackward(dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool) {
	need32("AttentionBackward", "lse", lse)
	be.f.AttentionBackward(u(dq), u(dk), u(dv), u(q), u(k), u(v), u(out), lse, u(dout), B, H, Lq, Lk, Dh, scale, causal)
	be.round(dq, dk, dv)
}

func (be *BF16) AttentionDropoutBackward(dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	need32("AttentionDropoutBackward", "lse", lse)
	be.f.AttentionDropoutBackward(u(dq), u(dk), u(dv), u(q), u(k), u(v), u(out), lse, u(dout), B, H, Lq, Lk, Dh, scale, causal, drop)
	be.round(dq, dk, dv)
}

// AdamW updates float32 masters from float32 gradients and moments; a
// bfloat16 a.Copy gets each updated master rounded once, as Copy rounds.
func (be *BF16) AdamW(p, g, m, v nn.Buffer, a nn.AdamWArgs) {
	need32("AdamW", "p, g, m or v", p, g, m, v)
	cp := a.Copy
	if cp != nil {
		a.Copy = u(cp)
	}
	be.f.AdamW(p, g, m, v, a)
	if cp != nil {
		be.round(cp)
	}
}

func (be *BF16) Conv1D(out, x, w, bias, state nn.Buffer, B, C, L, W int, act nn.Activation) {
	stateOf("Conv1D", out, "state", state)
	be.f.Conv1D(u(out), u(x), u(w), u(bias), u(state), B, C, L, W, act)
	be.round(out, state)
}

func (be *BF16) Conv1DBackward(dx, dw, dbias, x, w, bias, dout nn.Buffer, B, C, L, W int, act nn.Activation) {
	be.f.Conv1DBackward(u(dx), u(dw), u(dbias), u(x), u(w), u(bias), u(dout), B, C, L, W, act)
	be.round(dx, dw, dbias)
}

func unwrapScan(a nn.ScanArgs) nn.ScanArgs {
	a.U, a.Delta, a.A, a.Bm, a.Cm = u(a.U), u(a.Delta), u(a.A), u(a.Bm), u(a.Cm)
	a.Dskip, a.Z, a.DeltaBias = u(a.Dskip), u(a.Z), u(a.DeltaBias)
	return a
}

func (be *BF16) SelectiveScan(out, hT nn.Buffer, a nn.ScanArgs) {
	stateOf("SelectiveScan", out, "H0 and hT", a.H0, hT)
	a = unwrapScan(a)
	a.H0 = u(a.H0)
	be.f.SelectiveScan(u(out), u(hT), a)
	be.round(out, hT)
}

func (be *BF16) SelectiveScanBackward(g nn.ScanGrads, a nn.ScanArgs, dout nn.Buffer) {
	need32("SelectiveScanBackward", "H0", a.H0)
	gs := []nn.Buffer{g.U, g.Delta, g.A, g.Bm, g.Cm, g.Dskip, g.Z, g.DeltaBias}
	g = nn.ScanGrads{U: u(g.U), Delta: u(g.Delta), A: u(g.A), Bm: u(g.Bm), Cm: u(g.Cm),
		Dskip: u(g.Dskip), Z: u(g.Z), DeltaBias: u(g.DeltaBias)}
	be.f.SelectiveScanBackward(g, unwrapScan(a), u(dout))
	be.round(gs...)
}

func unwrapSSD(a nn.SSDArgs) nn.SSDArgs {
	a.X, a.Dt, a.A, a.Bm, a.Cm = u(a.X), u(a.Dt), u(a.A), u(a.Bm), u(a.Cm)
	a.Dskip, a.DtBias = u(a.Dskip), u(a.DtBias)
	return a
}

func (be *BF16) SSD(out, hT nn.Buffer, a nn.SSDArgs) {
	stateOf("SSD", out, "H0 and hT", a.H0, hT)
	a = unwrapSSD(a)
	a.H0 = u(a.H0)
	be.f.SSD(u(out), u(hT), a)
	be.round(out, hT)
}

func (be *BF16) SSDBackward(g nn.SSDGrads, a nn.SSDArgs, dout nn.Buffer) {
	need32("SSDBackward", "H0", a.H0)
	gs := []nn.Buffer{g.X, g.Dt, g.A, g.Bm, g.Cm, g.Dskip, g.DtBias}
	g = nn.SSDGrads{X: u(g.X), Dt: u(g.Dt), A: u(g.A), Bm: u(g.Bm), Cm: u(g.Cm), Dskip: u(g.Dskip), DtBias: u(g.DtBias)}
	be.f.SSDBackward(g, unwrapSSD(a), u(dout))
	be.round(gs...)
}

func unwrapRNN(a nn.RNNArgs) nn.RNNArgs {
	a.X, a.Wih, a.Whh, a.Bih, a.Bhh = u(a.X), u(a.Wih), u(a.Whh), u(a.Bih), u(a.Bhh)
	return a
}

func unwrapRNNGrads(g nn.RNNGrads) nn.RNNGrads {
	return nn.RNNGrads{X: u(g.X), Wih: u(g.Wih), Whh: u(g.Whh), Bih: u(g.Bih), Bhh: u(g.Bhh)}
}

// sameAs panics unless saved (when given) is of out's type: the LSTM's
// and GRU's saved gates are activations (docs/PRECISION.md), stored, like
// out, in bfloat16 under bf16 and rounded once when the forward writes
// them.
func sameAs(op string, saved, out nn.Buffer) {
	if saved == nil {
		return
	}
	_, sh := saved.(BF16Buf)
	_, oh := out.(BF16Buf)
	if sh != oh {
		st, ot := nn.Float32, nn.Float32
		if sh {
			st = nn.BFloat16
		}
		if oh {
			ot = nn.BFloat16
		}
		panic(fmt.Sprintf("cpukernels.%s: saved is %v but out is %v: saved must be of out's type (docs/PRECISION.md)", op, st, ot))
	}
}

// The LSTM and GRU run the float32 kernels on the bfloat16 values of x
// and round out and saved once when they return; the forward's cell state
// and h_{t−1} stay float32 between steps (the kernel keeps them apart from
// saved), so out, hT and cT do not depend on saved's type. The backward
// reads the rounded gates and cell states.
func (be *BF16) LSTM(out, hT, cT, saved nn.Buffer, a nn.RNNArgs) {
	need32("LSTM", "hT, cT, H0 and C0", hT, cT, a.H0, a.C0)
	sameAs("LSTM", saved, out)
	be.f.LSTM(u(out), hT, cT, u(saved), unwrapRNN(a))
	be.round(out, saved)
}

func (be *BF16) LSTMBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	need32("LSTMBackward", "H0 and C0", a.H0, a.C0)
	sameAs("LSTMBackward", saved, out)
	be.f.LSTMBackward(unwrapRNNGrads(g), unwrapRNN(a), u(out), u(saved), u(dout))
	be.round(g.X, g.Wih, g.Whh, g.Bih, g.Bhh)
}

func (be *BF16) GRU(out, hT, saved nn.Buffer, a nn.RNNArgs) {
	need32("GRU", "hT and H0", hT, a.H0)
	sameAs("GRU", saved, out)
	be.f.GRU(u(out), hT, u(saved), unwrapRNN(a))
	be.round(out, saved)
}

func (be *BF16) GRUBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	need32("GRUBackward", "H0", a.H0)
	sameAs("GRUBackward", saved, out)
	be.f.GRUBackward(unwrapRNNGrads(g), unwrapRNN(a), u(out), u(saved), u(dout))
	be.round(g.X, g.Wih, g.Whh, g.Bih, g.Bhh)
}

func unwrapS4D(a nn.S4DArgs) nn.S4DArgs {
	a.LogDt, a.ARe, a.AIm, a.CRe, a.CIm = u(a.LogDt), u(a.ARe), u(a.AIm), u(a.CRe), u(a.CIm)
	return a
}

func (be *BF16) S4DKernel(K nn.Buffer, a nn.S4DArgs) {
	be.f.S4DKernel(u(K), unwrapS4D(a))
	be.round(K)
}

func (be *BF16) S4DKernelBackward(g nn.S4DGrads, a nn.S4DArgs, dK nn.Buffer) {
	gs := []nn.Buffer{g.LogDt, g.ARe, g.AIm, g.CRe, g.CIm}
	g = nn.S4DGrads{LogDt: u(g.LogDt), ARe: u(g.ARe), AIm: u(g.AIm), CRe: u(g.CRe), CIm: u(g.CIm)}
	be.f.S4DKernelBackward(g, unwrapS4D(a), u(dK))
	be.round(gs...)
}

func (be *BF16) FFTConv(out, uu, K, Dskip nn.Buffer, B, H, L int) {
	be.f.FFTConv(u(out), u(uu), u(K), u(Dskip), B, H, L)
	be.round(out)
}

func (be *BF16) FFTConvBackward(du, dK, dDskip, uu, K, Dskip, dout nn.Buffer, B, H, L int) {
	be.f.FFTConvBackward(u(du), u(dK), u(dDskip), u(uu), u(K), u(Dskip), u(dout), B, H, L)
	be.round(du, dK, dDskip)
}

func (be *BF16) S4DRecurrent(out, state, uu, Dskip nn.Buffer, a nn.S4DArgs, B int) {
	need32("S4DRecurrent", "state", state)
	be.f.S4DRecurrent(u(out), state, u(uu), u(Dskip), unwrapS4D(a), B)
	be.round(out)
}

var _ nn.MixedBackend = (*BF16)(nil)

// BF16 returns the cpu-bfloat16 backend on this backend's cores: what a
// run with train.precision bf16 computes on. Only the float32 backend has
// one.
func (be *Backend[T]) BF16() (nn.MixedBackend, error) {
	f, ok := any(be).(*Backend[float32])
	if !ok {
		return nil, fmt.Errorf("bf16 needs the float32 CPU backend, not %s", be.Name())
	}
	return &BF16{f: f}, nil
}
