// Package nn holds the tensor, the autodiff tape, the Backend interface that
// kernels implement, and the layers, losses and optimizer shared by every
// architecture.
package nn

// DType is the element type of a buffer: what a Backend stores and
// computes in, or (on a MixedBackend) what one of its buffers stores.
type DType int

const (
	Float32 DType = iota
	Float64
	// BFloat16 stores the top 16 bits of a float32 (8 exponent bits, 8
	// significant bits); values are rounded to it to nearest, ties to even
	// (see bf16.go). Ops compute in float32 whatever the storage.
	BFloat16
)

func (d DType) String() string {
	switch d {
	case Float64:
		return "float64"
	case BFloat16:
		return "bfloat16"
	}
	return "float32"
}

// Size is the number of bytes one element takes on a device that stores
// the type natively.
func (d DType) Size() int64 {
	switch d {
	case Float64:
		return 8
	case BFloat16:
		return 2
	}
	return 4
}

// Buffer is storage of Len() elements owned by one Backend. Only that backend
// reads or writes it; the host sees its values through Backend.Read/Write.
type Buffer interface {
	Len() int
}

// TypedBuffer is a Buffer that knows its element type. The buffers of a
// MixedBackend implement it; a buffer that does not has its backend's
// DType (see DTypeOf).
type TypedBuffer interface {
	Buffer
	DType() DType
}

// DTypeOf is the element type of buf, a buffer of b.
func DTypeOf(b Backend, buf Buffer) DType {
	if t, ok := buf.(TypedBuffer); ok {
		return t.DType()
	}
	return b.DType()
}

// MixedBackend is a Backend whose buffers have several element types at
// once, as mixed-precision training needs (docs/PRECISION.md). Its DType
// is the type of Alloc's buffers (parameters, gradients, optimizer
// moments: float32); AllocAs allocates any other type it supports, and
// ActDType is the type in which tapes on it store activations and
// everything saved for the backward. Every op accepts its buffers in the
// combinations docs/PRECISION.md lists and panics on any other; Copy
// between types converts (rounding to nearest, ties to even).
type MixedBackend interface {
	Backend
	AllocAs(n int, dt DType) Buffer
	ActDType() DType
}

// UninitAllocator is a Backend that can allocate without zero-filling:
// for a buffer an op overwrites whole, an op's result, the fill is wasted
// work (on a GPU a memset launch each, about half the operations of a
// decoded token). dt is the backend's DType, or another type a
// MixedBackend's AllocAs offers. Its contents are unspecified.
type UninitAllocator interface {
	AllocUninit(n int, dt DType) Buffer
}

// ManySumSquarer is a Backend that reduces many buffers with one round trip
// to the host: SumSquaresEach(xs)[i] equals SumSquares(xs[i]) bit for bit,
// but the host waits once for all of them instead of once per buffer (the
// grad-norm clip reduces every parameter's gradient each step).
type ManySumSquarer interface {
	SumSquaresEach(xs []Buffer) []float64
}

// AdamWTensor is one tensor of a multi-tensor AdamW step (AdamWEach): its
// buffers, its copy (AdamWArgs.Copy, or nil) and its own learning rate and
// weight decay.
type AdamWTensor struct {
	P, G, M, V, Copy Buffer
	LR, WeightDecay  float64
}

// ManyAdamW is a Backend that updates many tensors in one pass:
// AdamWEach(ts, a) equals AdamW on each tensor of ts bit for bit, with a's
// Beta1, Beta2, Eps, Step and GradScale and the tensor's LR, WeightDecay
// and Copy, in one launch instead of one a tensor (a model has hundreds).
type ManyAdamW interface {
	AdamWEach(ts []AdamWTensor, a AdamWArgs)
}

// AdamWEach is one AdamW step on every tensor of ts (a's LR, WeightDecay
// and Copy unused: each tensor's own), in one pass where b supports it
// (ManyAdamW), one AdamW a tensor otherwise.
func AdamWEach(b Backend, ts []AdamWTensor, a AdamWArgs) {
	if m, ok := b.(ManyAdamW); ok {
		m.AdamWEach(ts, a)
		return
	}
	for _, t := range ts {
		a.LR, a.WeightDecay, a.Copy = t.LR, t.WeightDecay, t.Copy
		b.AdamW(t.P, t.G, t.M, t.V, a)
	}
}

// SumSquaresEach is Σ x² of each buffer in xs, in one round trip where b
// supports it (ManySumSquarer), one SumSquares per buffer otherwise.
func SumSquaresEach(b Backend, xs []Buffer) []float64 {
	if m, ok := b.(ManySumSquarer); ok {
		return m.SumSquaresEach(xs)
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = b.SumSquares(x)
	}
	return out
}

// Activation names an elementwise nonlinearity.
type Activation int

const (
	Identity Activation = iota
	ReLU
	GELU     // exact: x·Φ(x), as torch.nn.GELU()
	GELUTanh // tanh approximation, as GPT-2 and torch GELU(approximate="tanh")
	SiLU     // x·sigmoid(x)
	Sigmoid
	Tanh
	Softplus // log(1+exp(x)), as torch.nn.functional.softplus (threshold 20)
	Exp
)

var activationNames = map[Activation]string{
	Identity: "identity", ReLU: "relu", GELU: "gelu", GELUTanh: "gelu_tanh",
	SiLU: "silu", Sigmoid: "sigmoid", Tanh: "tanh", Softplus: "softplus", Exp: "exp",
}

func (a Activation) String() string { return activationNames[a] }

// GemmArgs describes a batched, strided matrix product in row-major storage:
//
//	for p := 0; p < Batch; p++ {
//		C_p = Alpha·op(A_p)·op(B_p) + Beta·C_p
//	}
//
// where op(A_p) is M×K (A_p is K×M when TransA), op(B_p) is K×N (N×K when
// TransB), C_p is M×N, and X_p starts at element OffX + p·StrideX of its
// buffer (an offset picks a block of rows or columns of a larger matrix:
// a weight's rows, an activation's columns). Leading dimensions are the
// row lengths of the stored matrices. Beta = 0 overwrites C (NaNs in C do
// not survive), Beta = 1 accumulates.
type GemmArgs struct {
	TransA, TransB            bool
	M, N, K                   int
	Alpha, Beta               float64
	LDA, LDB, LDC             int
	StrideA, StrideB, StrideC int
	OffA, OffB, OffC          int
	Batch                     int
}

// AdamWArgs are the hyperparameters of one decoupled-weight-decay Adam step
// (Loshchilov & Hutter): p -= LR·(m̂/(sqrt(v̂)+Eps) + WeightDecay·p), where m̂ and
// v̂ are bias-corrected with Step (counted from 1).
type AdamWArgs struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Step                               int
	// Copy, when not nil, receives the updated parameters in its own type,
	// each rounded once as Backend.Copy would round it: the activation-type
	// copy that the next mixed-precision forward reads, written in the
	// update's own pass (AdamW.KeepCopies) instead of a cast per weight
	// per step. It is of p's type or of a mixed backend's activation type.
	Copy Buffer
	// GradScale multiplies every gradient element before the step reads
	// it, in the gradient's type, as Scale(g, GradScale) would store it,
	// leaving g itself unchanged: ClipGradNorm's clip factor applied in
	// the update's pass (AdamW.StepScaled). 0, unset, is 1.
	GradScale float64
}

// Backend computes every op the architectures need. Forward ops overwrite
// their outputs. Backward ops ACCUMULATE into the gradients they produce
// (dx += ...), so a tensor used twice simply receives both contributions;
// callers zero gradient buffers before a backward pass.
//
// Shapes are passed as ints; buffers must hold at least the elements the
// shapes imply. Implementations check each op's arguments with the checks
// of check.go (the same for every backend) and the lengths of their own
// buffers, and panic with a clear message on a mismatch: that is a
// programming error inside seqbench, never user input (user input is
// validated before any op runs).
type Backend interface {
	Name() string // e.g. "cpu-float32", "cuda-float32"
	DType() DType

	// Memory.
	Alloc(n int) Buffer // zero-filled
	Free(b Buffer)      // return to the allocator; b must not be used again
	Write(dst Buffer, src []float64)
	Read(src Buffer) []float64
	Fill(dst Buffer, v float64)
	Copy(dst, src Buffer)
	// CopyBlock copies a rows×cols block between row-major matrices:
	// dst[dstOff + r·dstStride + c] (+)= src[srcOff + r·srcStride + c].
	// It slices, concatenates and is its own adjoint with accumulate.
	CopyBlock(dst Buffer, dstOff, dstStride int, src Buffer, srcOff, srcStride, rows, cols int, accumulate bool)
	// Permute writes out = x transposed by perm (out dim i is x dim perm[i]),
	// x having the given shape (rank ≤ 6); accumulate adds into out.
	Permute(out, x Buffer, shape []int, perm []int, accumulate bool)

	// Elementwise over n = out.Len() elements.
	Add(out, a, b Buffer)                  // out = a + b
	Mul(out, a, b Buffer)                  // out = a ⊙ b
	MulBackward(da, db, a, b, dout Buffer) // da += dout⊙b; db += dout⊙a (either may be nil)
	Axpy(alpha float64, x, y Buffer)       // y += alpha·x
	Scale(x Buffer, s float64)             // x *= s
	Act(kind Activation, out, x Buffer)
	ActBackward(kind Activation, dx, x, dout Buffer) // dx += f'(x)⊙dout

	// Row-wise ops over a rows×cols matrix.
	AddBias(out, x, bias Buffer, rows, cols int) // out[r,c] = x[r,c] + bias[c]
	SumRows(out, x Buffer, rows, cols int)       // out[c] += Σ_r x[r,c]

	// Host-visible reductions.
	Sum(x Buffer) float64
	SumSquares(x Buffer) float64 // non-finite if any element is

	Gemm(a, b, c Buffer, args GemmArgs)

	// RMSNorm: out = x / sqrt(mean(x²) + eps) · w over the last dim d;
	// rstd (rows) is saved for the backward.
	RMSNorm(out, rstd, x, w Buffer, rows, d int, eps float64)
	RMSNormBackward(dx, dw, x, w, rstd, dout Buffer, rows, d int)
	// LayerNorm: out = (x − mean)·rstd·w + b; mean and rstd (rows) saved.
	// b may be nil (no bias); db may then be nil too.
	LayerNorm(out, mean, rstd, x, w, b Buffer, rows, d int, eps float64)
	LayerNormBackward(dx, dw, db, x, w, mean, rstd, dout Buffer, rows, d int)

	// Embedding: out[i, :] = table[ids[i], :]; the backward scatter-adds.
	Embedding(out, table Buffer, ids []int32, d int)
	EmbeddingBackward(dtable, dout Buffer, ids []int32, d int)

	// CrossEntropy over logits (rows×V): loss[r] = lse_r − logits[r, t_r] and
	// lse[r] = log Σ exp(logits[r,:]); rows whose target equals ignore get
	// loss 0. The backward adds dloss[r]·(softmax(logits[r]) − onehot(t_r)).
	CrossEntropy(loss, lse, logits Buffer, targets []int32, rows, V int, ignore int32)
	CrossEntropyBackward(dlogits, logits, lse, dloss Buffer, targets []int32, rows, V int, ignore int32)
	// ArgmaxRows returns the index of the largest value of each row.
	ArgmaxRows(x Buffer, rows, cols int) []int32

	// RoPE rotates x (B, H, L, Dh) by position pos0+l, pairing element i with
	// i+Dh/2 (the GPT-NeoX / Llama layout), frequencies base^(−2i/Dh). Its
	// backward is the rotation by the negative angle (accumulated into dx).
	RoPE(out, x Buffer, B, H, L, Dh, pos0 int, base float64)
	RoPEBackward(dx, dout Buffer, B, H, L, Dh, pos0 int, base float64)

	// Attention: out = softmax(scale·q kᵀ + mask) v for q (B, H, Lq, Dh),
	// k, v (B, H, Lk, Dh); causal masks key j > i + (Lk − Lq), so a query
	// block that continues a KV cache sees every earlier key. lse
	// (B, H, Lq) saves the log-sum-exp of each row for the backward.
	Attention(out, lse, q, k, v Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool)
	AttentionBackward(dq, dk, dv, q, k, v, out, lse, dout Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool)
	// AttentionDropout is Attention with dropout on the probabilities
	// (AttnDrop: out_i = Σ_j p_ij·f_ij·v_j, f_ij 0 or 1/(1−P) from a hash of
	// the pair; lse is the undropped one), and its backward with the same
	// mask: dv_j += Σ_i p_ij·f_ij·dout_i, ds_ij = p_ij·(f_ij·dout_i·v_j − D_i)
	// with D_i = dout_i·out_i as without dropout. A zero drop is Attention.
	AttentionDropout(out, lse, q, k, v Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop AttnDrop)
	AttentionDropoutBackward(dq, dk, dv, q, k, v, out, lse, dout Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop AttnDrop)
	// AttentionCached is Attention's causal forward over a key/value cache:
	// k, v (B, H, kvRows, Dh) hold room for kvRows rows per (b, h), of
	// which the first Lk = filled[0] are the keys, so that step mode appends
	// a token's keys in place instead of copying the whole cache into a
	// larger one. filled is a position (see RoPEAt); Lk is clamped to
	// [Lq, kvRows].
	AttentionCached(out, lse, q, k, v Buffer, B, H, Lq int, filled Buffer, kvRows, Dh int, scale float64)
	// Step mode keeps its position on the device, so that a decoded
	// token's work is the same at every position (a graph replays it): a
	// position is a one-element buffer of the backend's type holding a
	// whole number ≥ 0. RoPEAt is RoPE from position pos[0]. AppendRows
	// writes src (rows×cols) into each row r of dst (stride dstStride) at
	// column pos[0]·unit: dst[r·dstStride + pos[0]·unit + c] = src[r·cols + c];
	// nothing is written when that passes the row's end (dstStride).
	RoPEAt(out, x Buffer, B, H, L, Dh int, pos Buffer, base float64)
	AppendRows(dst Buffer, dstStride int, src Buffer, rows, cols int, pos Buffer, unit int)

	// AdamW updates p in place from its gradient g and moments m, v.
	AdamW(p, g, m, v Buffer, a AdamWArgs)

	SeqOps
}
