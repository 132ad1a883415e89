package nn

import (
	"fmt"
	"slices"
)

// This file holds the differentiable ops: each runs its forward on the
// backend and records its adjoint on the tape.

func sameShape(op string, a, b *Tensor) {
	if !slices.Equal(a.Shape, b.Shape) {
		panic(fmt.Sprintf("nn.%s: shapes %v and %v differ", op, a.Shape, b.Shape))
	}
}

// Reshape returns a view of x with a new shape of the same size; it shares
// x's storage and gradient.
func (tp *Tape) Reshape(x *Tensor, shape ...int) *Tensor {
	if NumElems(shape) != x.Len() {
		panic(fmt.Sprintf("nn.Reshape: %v to %v changes the size", x.Shape, shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: x.Data, grad: x.grad, st: x.st}
}

// Add returns a + b (same shapes).
func (tp *Tape) Add(a, b *Tensor) *Tensor {
	sameShape("Add", a, b)
	out := tp.out(a.Shape, a, b)
	tp.B.Add(out.Data, a.Data, b.Data)
	tp.readsNot(out, a, b, out)
	tp.onBackward(out, func(d Buffer) {
		if g := tp.grad(a); g != nil {
			tp.B.Axpy(1, d, g)
		}
		if g := tp.grad(b); g != nil {
			tp.B.Axpy(1, d, g)
		}
	})
	return out
}

// Mul returns a ⊙ b (same shapes).
func (tp *Tape) Mul(a, b *Tensor) *Tensor {
	sameShape("Mul", a, b)
	out := tp.out(a.Shape, a, b)
	tp.B.Mul(out.Data, a.Data, b.Data)
	tp.readsNot(out, out)
	tp.onBackward(out, func(d Buffer) {
		tp.B.MulBackward(tp.grad(a), tp.grad(b), a.Data, b.Data, d)
	})
	return out
}

// Act applies an elementwise nonlinearity.
func (tp *Tape) Act(kind Activation, x *Tensor) *Tensor {
	out := tp.out(x.Shape, x)
	tp.B.Act(kind, out.Data, x.Data)
	tp.readsNot(out, out)
	tp.onBackward(out, func(d Buffer) {
		if g := tp.grad(x); g != nil {
			tp.B.ActBackward(kind, g, x.Data, d)
		}
	})
	return out
}

// Linear returns x·Wᵀ + b for x (..., in), W (out, in) as torch.nn.Linear,
// and b (out) or nil.
func (tp *Tape) Linear(x, w, b *Tensor) *Tensor {
	x, w, b = tp.lowp(x), tp.lowp(w), tp.lowp(b)
	in, outDim := x.Dim(-1), w.Dim(0)
	if len(w.Shape) != 2 || w.Dim(1) != in {
		panic(fmt.Sprintf("nn.Linear: x %v does not fit weight %v", x.Shape, w.Shape))
	}
	rows := x.Len() / in
	shape := append(slices.Clone(x.Shape[:len(x.Shape)-1]), outDim)
	out := tp.out(shape, x, w, b)
	tp.B.Gemm(x.Data, w.Data, out.Data, GemmArgs{TransB: true, M: rows, N: outDim, K: in,
		Alpha: 1, LDA: in, LDB: in, LDC: outDim, Batch: 1})
	if b != nil {
		tp.B.AddBias(out.Data, out.Data, b.Data, rows, outDim)
	}
	tp.readsNot(out, out)
	tp.onBackward(out, func(d Buffer) {
		if g := tp.grad(x); g != nil { // dx += dy·W
			tp.B.Gemm(d, w.Data, g, GemmArgs{M: rows, N: in, K: outDim,
				Alpha: 1, Beta: 1, LDA: outDim, LDB: in, LDC: in, Batch: 1})
		}
		if g := tp.grad(w); g != nil { // dW += dyᵀ·x
			tp.B.Gemm(d, x.Data, g, GemmArgs{TransA: true, M: outDim, N: in, K: rows,
				Alpha: 1, Beta: 1, LDA: outDim, LDB: in, LDC: in, Batch: 1})
		}
		if g := tp.grad(b); g != nil {
			tp.B.SumRows(g, d, rows, outDim)
		}
	})
	return out
}

// LinearBlock is Linear between blocks: for x (..., cols) it reads columns
// [col0, col0+k) as the input, and with W (O, k) it returns (..., rows) =
// that input times rows [row0, row0+rows) of W, transposed: out[i, o] =
// Σ_j W[row0+o, j]·x[i, col0+j]. It is Slice, Linear and Slice as one GEMM
// that reads both blocks in place (a fused projection's parts: Mamba-2's
// in_proj z and dt). No bias.
func (tp *Tape) LinearBlock(x *Tensor, col0, k int, w *Tensor, row0, rows int) *Tensor {
	x, w = tp.lowp(x), tp.lowp(w)
	cols := x.Dim(-1)
	if !blocksFit(x, col0, k, w, row0, rows) {
		panic(fmt.Sprintf("nn.LinearBlock: x %v columns [%d:%d], weight %v rows [%d:%d]",
			x.Shape, col0, col0+k, w.Shape, row0, row0+rows))
	}
	n := x.Len() / max(cols, 1)
	shape := append(slices.Clone(x.Shape[:len(x.Shape)-1]), rows)
	out := tp.out(shape, x, w)
	tp.B.Gemm(x.Data, w.Data, out.Data, GemmArgs{TransB: true, M: n, N: rows, K: k, Alpha: 1,
		LDA: cols, LDB: k, LDC: rows, OffA: col0, OffB: row0 * k, Batch: 1})
	tp.readsNot(out, out)
	tp.onBackward(out, func(d Buffer) {
		if g := tp.grad(x); g != nil { // dx[:, block] += d·W_block
			tp.B.Gemm(d, w.Data, g, GemmArgs{M: n, N: k, K: rows, Alpha: 1, Beta: 1,
				LDA: rows, LDB: k, LDC: cols, OffB: row0 * k, OffC: col0, Batch: 1})
		}
		if g := tp.grad(w); g != nil { // dW_block += dᵀ·x[:, block]
			tp.B.Gemm(d, x.Data, g, GemmArgs{TransA: true, M: rows, N: k, K: n, Alpha: 1, Beta: 1,
				LDA: rows, LDB: cols, LDC: k, OffB: col0, OffC: row0 * k, Batch: 1})
		}
	})
	return out
}

// blocksFit reports whether columns [col0, col0+k) of x's last dim and
// rows [row0, row0+rows) of a 2-D w of k columns exist.
func blocksFit(x *Tensor, col0, k int, w *Tensor, row0, rows int) bool {
	return len(w.Shape) == 2 && w.Dim(1) == k && col0 >= 0 && k >= 0 && col0+k <= x.Dim(-1) &&
		row0 >= 0 && rows >= 0 && row0+rows <= w.Dim(0)
}

// LinearToChannels is a linear map whose result is channels-first: for x
// (B·L, cols) it reads columns [col0, col0+k) as the input, and with W
// (O, k) it returns (B, rows, L) = rows [row0, row0+rows) of W times each
// batch's inputs, transposed: out[b, o, t] = Σ_j W[row0+o, j]·x[b·L+t,
// col0+j]. It is Linear followed by a column slice and a permute to
// (B, C, L) (Mamba's in_proj split into x and z, dt_proj from a slice of
// x_proj) as batched GEMMs reading the blocks in place: no slice or
// layout copy in either pass. No bias (Mamba adds dt_proj's in the scan).
func (tp *Tape) LinearToChannels(x *Tensor, col0, k int, w *Tensor, row0, rows, B, L int) *Tensor {
	x, w = tp.lowp(x), tp.lowp(w)
	cols := x.Dim(-1)
	if !blocksFit(x, col0, k, w, row0, rows) || B < 0 || L < 0 || x.Len() != B*L*cols {
		panic(fmt.Sprintf("nn.LinearToChannels: x %v columns [%d:%d], weight %v rows [%d:%d], B %d, L %d",
			x.Shape, col0, col0+k, w.Shape, row0, row0+rows, B, L))
	}
	out := tp.out([]int{B, rows, L}, x, w)
	if B == 0 {
		return out
	}
	tp.B.Gemm(w.Data, x.Data, out.Data, GemmArgs{TransB: true, M: rows, N: L, K: k, Alpha: 1,
		LDA: k, LDB: cols, LDC: L, OffA: row0 * k, OffB: col0, StrideB: L * cols, StrideC: rows * L, Batch: B})
	tp.readsNot(out, out)
	tp.onBackward(out, func(d Buffer) {
		if g := tp.grad(x); g != nil { // dx_b[:, block] += d_bᵀ·W_block
			tp.B.Gemm(d, w.Data, g, GemmArgs{TransA: true, M: L, N: k, K: rows, Alpha: 1, Beta: 1,
				LDA: L, LDB: k, LDC: cols, StrideA: rows * L, OffB: row0 * k, OffC: col0, StrideC: L * cols, Batch: B})
		}
		if g := tp.grad(w); g != nil { // dW_block += Σ_b d_b·x_b[:, block] (StrideC 0: the batch sums in order)
			tp.B.Gemm(d, x.Data, g, GemmArgs{M: rows, N: k, K: L, Alpha: 1, Beta: 1,
				LDA: L, LDB: cols, LDC: k, StrideA: rows * L, OffB: col0, StrideB: L * cols, OffC: row0 * k, Batch: B})
		}
	})
	return out
}

// LinearFromChannels is Linear on a channels-first input: for x (B, C, L)
// and W (O, C) it returns (B·L, O), out[b·L+t, o] = Σ_c W[o, c]·x[b, c, t]:
// a permute to (B·L, C) followed by Linear (Mamba's x_proj and out_proj
// after the scan), as batched GEMMs reading x in place. No bias.
func (tp *Tape) LinearFromChannels(x, w *Tensor, B, L int) *Tensor {
	x, w = tp.lowp(x), tp.lowp(w)
	if len(w.Shape) != 2 || B < 0 || L < 0 || x.Len() != B*w.Dim(1)*L {
		panic(fmt.Sprintf("nn.LinearFromChannels: x %v does not fit weight %v with B %d, L %d", x.Shape, w.Shape, B, L))
	}
	O, C := w.Dim(0), w.Dim(1)
	out := tp.out([]int{B * L, O}, x, w)
	if B == 0 {
		return out
	}
	tp.B.Gemm(x.Data, w.Data, out.Data, GemmArgs{TransA: true, TransB: true, M: L, N: O, K: C, Alpha: 1,
		LDA: L, LDB: C, LDC: O, StrideA: C * L, StrideC: L * O, Batch: B})
	tp.readsNot(out, out)
	tp.onBackward(out, func(d Buffer) {
		if g := tp.grad(x); g != nil { // dx_b += Wᵀ·d_bᵀ
			tp.B.Gemm(w.Data, d, g, GemmArgs{TransA: true, TransB: true, M: C, N: L, K: O, Alpha: 1, Beta: 1,
				LDA: C, LDB: O, LDC: L, StrideB: L * O, StrideC: C * L, Batch: B})
		}
		if g := tp.grad(w); g != nil { // dW += Σ_b d_bᵀ·x_bᵀ (StrideC 0: the batch sums in order)
			tp.B.Gemm(d, x.Data, g, GemmArgs{TransA: true, TransB: true, M: O, N: C, K: L, Alpha: 1, Beta: 1,
				LDA: O, LDB: L, LDC: C, StrideA: L * O, StrideB: C * L, Batch: B})
		}
	})
	return out
}

// MatMul returns the batched product op(a)·op(b) for a (..., M, K) and
// b (..., K, N) with equal leading dims (transposes swap the last two).
func (tp *Tape) MatMul(a, b *Tensor, transA, transB bool) *Tensor {
	a, b = tp.lowp(a), tp.lowp(b)
	if len(a.Shape) < 2 || len(a.Shape) != len(b.Shape) || !slices.Equal(a.Shape[:len(a.Shape)-2], b.Shape[:len(b.Shape)-2]) {
		panic(fmt.Sprintf("nn.MatMul: shapes %v and %v", a.Shape, b.Shape))
	}
	ar, ac, br, bc := a.Dim(-2), a.Dim(-1), b.Dim(-2), b.Dim(-1)
	m, k := ar, ac
	if transA {
		m, k = ac, ar
	}
	k2, n := br, bc
	if transB {
		k2, n = bc, br
	}
	if k != k2 {
		panic(fmt.Sprintf("nn.MatMul: inner dims of %v and %v differ", a.Shape, b.Shape))
	}
	batch := a.Len() / (ar * ac)
	shape := append(slices.Clone(a.Shape[:len(a.Shape)-2]), m, n)
	out := tp.out(shape, a, b)
	tp.B.Gemm(a.Data, b.Data, out.Data, GemmArgs{TransA: transA, TransB: transB, M: m, N: n, K: k,
		Alpha: 1, LDA: ac, LDB: bc, LDC: n, StrideA: ar * ac, StrideB: br * bc, StrideC: m * n, Batch: batch})
	tp.readsNot(out, out)
	tp.onBackward(out, func(d Buffer) {
		if g := tp.grad(a); g != nil {
			// dop(A) = dC·op(B)ᵀ; stored A (ar×ac) gets it or its transpose.
			if !transA { // dA (m×k) = dC (m×n) · op(B)ᵀ
				tp.B.Gemm(d, b.Data, g, GemmArgs{TransB: !transB, M: m, N: k, K: n, Alpha: 1, Beta: 1,
					LDA: n, LDB: bc, LDC: ac, StrideA: m * n, StrideB: br * bc, StrideC: ar * ac, Batch: batch})
			} else { // dA (k×m) = op(B) · dCᵀ
				tp.B.Gemm(b.Data, d, g, GemmArgs{TransA: transB, TransB: true, M: k, N: m, K: n, Alpha: 1, Beta: 1,
					LDA: bc, LDB: n, LDC: ac, StrideA: br * bc, StrideB: m * n, StrideC: ar * ac, Batch: batch})
			}
		}
		if g := tp.grad(b); g != nil {
			if !transB { // dB (k×n) = op(A)ᵀ · dC
				tp.B.Gemm(a.Data, d, g, GemmArgs{TransA: !transA, M: k, N: n, K: m, Alpha: 1, Beta: 1,
					LDA: ac, LDB: n, LDC: bc, StrideA: ar * ac, StrideB: m * n, StrideC: br * bc, Batch: batch})
			} else { // dB (n×k) = dCᵀ · op(A)
				tp.B.Gemm(d, a.Data, g, GemmArgs{TransA: true, TransB: transA, M: n, N: k, K: m, Alpha: 1, Beta: 1,
					LDA: n, LDB: ac, LDC: bc, StrideA: m * n, StrideB: ar * ac, StrideC: br * bc, Batch: batch})
			}
		}
	})
	return out
}

// RMSNorm normalises the last dim: x / rms(x) · w.
func (tp *Tape) RMSNorm(x, w *Tensor, eps float64) *Tensor {
	d := x.Dim(-1)
	rows := x.Len() / d
	out := tp.out(x.Shape, x, w)
	rstd := tp.AllocOut(rows)
	tp.B.RMSNorm(out.Data, rstd, x.Data, w.Data, rows, d, eps)
	tp.readsNot(out, out)
	tp.onBackward(out, func(g Buffer) {
		tp.B.RMSNormBackward(tp.grad(x), tp.grad(w), x.Data, w.Data, rstd, g, rows, d)
	})
	return out
}

// LayerNorm normalises the last dim: (x − mean)/std · w + b (b may be nil).
func (tp *Tape) LayerNorm(x, w, b *Tensor, eps float64) *Tensor {
	d := x.Dim(-1)
	rows := x.Len() / d
	out := tp.out(x.Shape, x, w, b)
	mean, rstd := tp.AllocOut(rows), tp.AllocOut(rows)
	var bd Buffer
	if b != nil {
		bd = b.Data
	}
	tp.B.LayerNorm(out.Data, mean, rstd, x.Data, w.Data, bd, rows, d, eps)
	tp.readsNot(out, out)
	tp.onBackward(out, func(g Buffer) {
		tp.B.LayerNormBackward(tp.grad(x), tp.grad(w), tp.grad(b), x.Data, w.Data, mean, rstd, g, rows, d)
	})
	return out
}

// Embedding gathers rows of table (V, d) for ids: the result is (len(ids), d).
func (tp *Tape) Embedding(table *Tensor, ids []int32) *Tensor {
	table = tp.lowp(table)
	d := table.Dim(-1)
	out := tp.out([]int{len(ids), d}, table)
	tp.B.Embedding(out.Data, table.Data, ids, d)
	tp.readsNot(out, out)
	tp.onBackward(out, func(g Buffer) {
		tp.B.EmbeddingBackward(tp.grad(table), g, ids, d)
	})
	return out
}

// CrossEntropy returns the mean softmax cross-entropy of logits (rows, V)
// over the rows whose target is not ignore, as a one-element tensor, and the
// number of rows counted. With no row counted the loss and the gradient
// are 0. The mean and its gradient are formed by MeanLoss and
// MeanLossGrad: on the device where the backend can (nothing is read
// back), with the same values as the host's way.
func (tp *Tape) CrossEntropy(logits *Tensor, targets []int32, ignore int32) (*Tensor, int) {
	V := logits.Dim(-1)
	rows := logits.Len() / V
	if len(targets) != rows {
		panic(fmt.Sprintf("nn.CrossEntropy: %d targets for %d rows", len(targets), rows))
	}
	loss, lse := tp.AllocOut(rows), tp.AllocOut(rows)
	tp.B.CrossEntropy(loss, lse, logits.Data, targets, rows, V, ignore)
	out := tp.out32([]int{1}, logits)
	MeanLoss(tp.B, out.Data, loss, targets, ignore)
	tp.onBackward(out, func(g Buffer) {
		dloss := tp.AllocOut(rows)
		MeanLossGrad(tp.B, dloss, g, targets, ignore)
		tp.B.CrossEntropyBackward(tp.grad(logits), logits.Data, lse, dloss, targets, rows, V, ignore)
	})
	return out, countTargets(targets, ignore)
}

// countTargets is the number of targets that are not ignore.
func countTargets(targets []int32, ignore int32) int {
	n := 0
	for _, t := range targets {
		if t != ignore {
			n++
		}
	}
	return n
}

// Permute transposes x so that output dim i is input dim perm[i].
func (tp *Tape) Permute(x *Tensor, perm ...int) *Tensor {
	if len(perm) != len(x.Shape) {
		panic(fmt.Sprintf("nn.Permute: perm %v for shape %v", perm, x.Shape))
	}
	shape := make([]int, len(perm))
	inv := make([]int, len(perm))
	for i, p := range perm {
		shape[i] = x.Shape[p]
		inv[p] = i
	}
	out := tp.out(shape, x)
	tp.B.Permute(out.Data, x.Data, x.Shape, perm, false)
	tp.readsNot(out, x, out)
	tp.onBackward(out, func(g Buffer) {
		if dx := tp.grad(x); dx != nil {
			tp.B.Permute(dx, g, shape, inv, true)
		}
	})
	return out
}

// Slice returns x[..., start:start+width] along the last dim.
func (tp *Tape) Slice(x *Tensor, start, width int) *Tensor {
	cols := x.Dim(-1)
	if start < 0 || width < 0 || start+width > cols {
		panic(fmt.Sprintf("nn.Slice: [%d:%d] of last dim %d", start, start+width, cols))
	}
	rows := x.Len() / cols
	shape := append(slices.Clone(x.Shape[:len(x.Shape)-1]), width)
	out := tp.out(shape, x)
	tp.B.CopyBlock(out.Data, 0, width, x.Data, start, cols, rows, width, false)
	tp.readsNot(out, x, out)
	tp.onBackward(out, func(g Buffer) {
		if dx := tp.grad(x); dx != nil {
			tp.B.CopyBlock(dx, start, cols, g, 0, width, rows, width, true)
		}
	})
	return out
}

// Concat joins tensors along the last dim (leading dims equal).
func (tp *Tape) Concat(xs ...*Tensor) *Tensor {
	lead := xs[0].Shape[:len(xs[0].Shape)-1]
	rows, total := NumElems(lead), 0
	for _, x := range xs {
		if !slices.Equal(x.Shape[:len(x.Shape)-1], lead) {
			panic(fmt.Sprintf("nn.Concat: %v and %v", xs[0].Shape, x.Shape))
		}
		total += x.Dim(-1)
	}
	out := tp.out(append(slices.Clone(lead), total), xs...)
	off := 0
	offs := make([]int, len(xs))
	for i, x := range xs {
		offs[i] = off
		tp.B.CopyBlock(out.Data, off, total, x.Data, 0, x.Dim(-1), rows, x.Dim(-1), false)
		off += x.Dim(-1)
	}
	tp.readsNot(out, xs...)
	tp.readsNot(out, out)
	tp.onBackward(out, func(g Buffer) {
		for i, x := range xs {
			if dx := tp.grad(x); dx != nil {
				tp.B.CopyBlock(dx, 0, x.Dim(-1), g, offs[i], total, rows, x.Dim(-1), true)
			}
		}
	})
	return out
}

// RoPE rotates q or k (B, H, L, Dh) by positions pos0 .. pos0+L−1.
func (tp *Tape) RoPE(x *Tensor, pos0 int, base float64) *Tensor {
	B, H, L, Dh := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	out := tp.out(x.Shape, x)
	tp.B.RoPE(out.Data, x.Data, B, H, L, Dh, pos0, base)
	tp.readsNot(out, x, out)
	tp.onBackward(out, func(g Buffer) {
		if dx := tp.grad(x); dx != nil {
			tp.B.RoPEBackward(dx, g, B, H, L, Dh, pos0, base)
		}
	})
	return out
}

// AttentionCached is causal Attention of q (B, H, Lq, Dh) over the first
// filled[0] rows of each (b, h) block of a key/value cache k, v (B, H,
// kvRows, Dh) (Backend.AttentionCached). It is inference-only: the cache
// lives outside the tape, and a recording tape is refused.
func (tp *Tape) AttentionCached(q, k, v *Tensor, filled Buffer, scale float64) *Tensor {
	if tp.record {
		panic("nn.AttentionCached: inference only (a recording tape)")
	}
	B, H, Lq, Dh := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	sameShape("AttentionCached", k, v)
	out := tp.out(q.Shape, q, k, v)
	lse := tp.AllocOut(B * H * Lq)
	tp.B.AttentionCached(out.Data, lse, q.Data, k.Data, v.Data, B, H, Lq, filled, k.Dim(2), Dh, scale)
	return out
}

// RoPEAt rotates x (B, H, L, Dh) by positions pos[0] .. pos[0]+L−1, pos a
// position on the device (Backend.RoPEAt). Inference only, as
// AttentionCached.
func (tp *Tape) RoPEAt(x *Tensor, pos Buffer, base float64) *Tensor {
	if tp.record {
		panic("nn.RoPEAt: inference only (a recording tape)")
	}
	out := tp.out(x.Shape, x)
	tp.B.RoPEAt(out.Data, x.Data, x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), pos, base)
	return out
}

// Attention is scaled dot-product attention for q (B, H, Lq, Dh) and k, v
// (B, H, Lk, Dh), causal aligned to the end (see Backend.Attention).
func (tp *Tape) Attention(q, k, v *Tensor, scale float64, causal bool) *Tensor {
	return tp.AttentionDropout(q, k, v, scale, causal, AttnDrop{})
}

// AttentionDropout is Attention with dropout on its probabilities
// (Backend.AttentionDropout); a zero drop is Attention, on the backend's
// Attention and AttentionBackward.
func (tp *Tape) AttentionDropout(q, k, v *Tensor, scale float64, causal bool, drop AttnDrop) *Tensor {
	B, H, Lq, Dh := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	Lk := k.Dim(2)
	op := "Attention"
	if drop.On() {
		op = "AttentionDropout"
	}
	sameShape(op, k, v)
	out := tp.out(q.Shape, q, k, v)
	lse := tp.AllocOut(B * H * Lq)
	if drop.On() {
		tp.B.AttentionDropout(out.Data, lse, q.Data, k.Data, v.Data, B, H, Lq, Lk, Dh, scale, causal, drop)
	} else {
		tp.B.Attention(out.Data, lse, q.Data, k.Data, v.Data, B, H, Lq, Lk, Dh, scale, causal)
	}
	tp.onBackward(out, func(g Buffer) {
		dq, dk, dv := tp.grad(q), tp.grad(k), tp.grad(v)
		if drop.On() {
			tp.B.AttentionDropoutBackward(dq, dk, dv, q.Data, k.Data, v.Data, out.Data, lse, g, B, H, Lq, Lk, Dh, scale, causal, drop)
		} else {
			tp.B.AttentionBackward(dq, dk, dv, q.Data, k.Data, v.Data, out.Data, lse, g, B, H, Lq, Lk, Dh, scale, causal)
		}
	})
	return out
}
