package nn

import "fmt"

// linearCEChunkElems bounds the logits LinearCrossEntropy holds at once:
// rows of V logits within 2²⁶ elements (128 MB in bfloat16; 1,280 rows of
// a 50,280-token vocabulary).
const linearCEChunkElems = 1 << 26

// LinearCEChunkRows is the rows of V logits LinearCrossEntropy holds at
// once by default: as many as fit linearCEChunkElems, a multiple of 128
// where that leaves at least 256 (whole tiles of the GEMMs' M).
func LinearCEChunkRows(V int) int {
	r := max(1, linearCEChunkElems/max(V, 1))
	if r >= 256 {
		r -= r % 128
	}
	return r
}

// LinearCrossEntropy is CrossEntropy(Linear(x, w, b), targets, ignore),
// the head of a language model and its loss, without the (rows, V) logits
// or their gradient ever held whole: rows go through in chunks of
// chunkRows (0: LinearCEChunkRows(V)). For each chunk the forward computes
// the logits, their cross-entropy and log-sum-exp, when argmax is not nil
// each row's largest logit's index (Argmax), and, when the tape
// records a gradient, the chunk's gradients for an upstream gradient of 1
// (the loss is the step's last op): dlogits, dx = dlogits·W, dW +=
// dlogitsᵀ·x, db += Σ dlogits, into buffers of x's, w's and b's sizes.
// The logits are then dropped; the backward only adds those gradients,
// times the upstream gradient, to x's, w's and b's. The head's GEMMs run
// once each, as unfused; the price is a gradient-sized buffer for w and x
// held from the forward to the backward (154 MB for a float32 768×50,280
// head). Each chunk's logits and their gradient round as
// CrossEntropy(Linear(...)) rounds them, so with one chunk and an upstream
// gradient of 1 the results are the unfused op's bit for bit; with several
// chunks dW and db add the chunks' contributions one after another and
// differ from the one-GEMM sum by the rounding of those sums.
//
// The mean and the upstream 1/n are formed by MeanLoss and MeanLossGrad
// (on the device where the backend can), and the backward of the loss the
// tape was seeded from (Backward's root, whose gradient is exactly 1)
// reads nothing back, so a training step through it can be captured as a
// graph. With no target counted, the gradients are 0.
func (tp *Tape) LinearCrossEntropy(x, w, b *Tensor, targets []int32, ignore int32, argmax *Argmax, chunkRows int) (*Tensor, int) {
	x, w, b = tp.lowp(x), tp.lowp(w), tp.lowp(b)
	d, V := x.Dim(-1), w.Dim(0)
	if len(w.Shape) != 2 || w.Dim(1) != d || b != nil && b.Len() != V {
		panic(fmt.Sprintf("nn.LinearCrossEntropy: x %v does not fit weight %v and bias %v", x.Shape, w.Shape, b))
	}
	rows := x.Len() / d
	if len(targets) != rows || argmax != nil && argmax.rows() != rows {
		panic(fmt.Sprintf("nn.LinearCrossEntropy: %d targets and %d argmax for %d rows", len(targets), argmax.rows(), rows))
	}
	R := chunkRows
	if R <= 0 {
		R = LinearCEChunkRows(V)
	}
	R = min(R, max(rows, 1))
	count := countTargets(targets, ignore)
	out := tp.out32([]int{1}, x, w, b)
	tp.readsNot(out, x, w, b, out) // the backward reads the gradients made here
	loss := tp.AllocOut(rows)
	logitsType := tp.resultType(x, w, b) // Linear's result's
	// The gradients for an upstream gradient of 1, where wanted.
	grads := out.grad != nil
	var gx, gw, gb Buffer
	if grads {
		gx, gw, gb = tp.gradLike(x), tp.gradLike(w), tp.gradLike(b)
	}
	c := tp.newCEChunk(R, d, V, DTypeOf(tp.B, x.Data), logitsType)
	defer c.free()
	var dl, dx, dloss Buffer
	if grads {
		dl, dloss = tp.scratch(R*V, logitsType), tp.B.Alloc(R)
		defer tp.B.Free(dl)
		defer tp.B.Free(dloss)
		MeanLossGrad(tp.B, dloss, nil, targets, ignore) // d(mean)/d(loss_r)
		if gx != nil {
			dx = tp.scratch(R*d, DTypeOf(tp.B, gx))
			defer tp.B.Free(dx)
		}
	}
	for r0 := 0; r0 < rows; r0 += R {
		n := min(R, rows-r0)
		tgt := targets[r0 : r0+n]
		c.logits(x, w, b, r0, n)
		tp.B.CrossEntropy(c.loss, c.lse, c.l, tgt, n, V, ignore)
		tp.B.CopyBlock(loss, r0, n, c.loss, 0, n, 1, n, false)
		if argmax != nil {
			argmax.Set(tp, c.l, r0, n, V)
		}
		if !grads {
			continue
		}
		tp.B.Fill(dl, 0)
		tp.B.CrossEntropyBackward(dl, c.l, c.lse, dloss, tgt, n, V, ignore)
		if gx != nil { // dx = dlogits·W, into x's rows
			tp.B.Gemm(dl, w.Data, dx, GemmArgs{M: n, N: d, K: V, Alpha: 1, LDA: V, LDB: d, LDC: d, Batch: 1})
			tp.B.CopyBlock(gx, r0*d, d, dx, 0, d, n, d, false)
		}
		if gw != nil { // dW += dlogitsᵀ·x
			tp.B.Gemm(dl, c.x, gw, GemmArgs{TransA: true, M: V, N: d, K: n, Alpha: 1, Beta: 1, LDA: V, LDB: d, LDC: d, Batch: 1})
		}
		if gb != nil {
			tp.B.SumRows(gb, dl, n, V)
		}
	}
	MeanLoss(tp.B, out.Data, loss, targets, ignore)
	tp.onBackward(out, func(g Buffer) {
		if !grads {
			return
		}
		s := 1.0
		if !tp.isRoot(out) {
			s = tp.B.Read(g)[0]
		}
		for _, p := range []struct {
			t    *Tensor
			made Buffer
		}{{x, gx}, {w, gw}, {b, gb}} {
			if dst := tp.grad(p.t); dst != nil {
				tp.B.Axpy(s, p.made, dst)
			}
		}
	})
	return out, count
}

// gradLike is a zeroed tape buffer shaped and typed as t's gradient, or
// nil when t takes none.
func (tp *Tape) gradLike(t *Tensor) Buffer {
	if t == nil || t.grad == nil {
		return nil
	}
	dt := DTypeOf(tp.B, t.Data)
	if t.grad.buf != nil { // a parameter's (or its cast's) gradient
		dt = DTypeOf(tp.B, t.grad.buf)
	}
	return tp.AllocAs(t.Len(), dt)
}

// ceChunk is LinearCrossEntropy's per-chunk scratch: a chunk of x's rows,
// their logits, and the losses and log-sum-exps of its rows.
type ceChunk struct {
	tp              *Tape
	x, l, loss, lse Buffer
	d, V            int
}

// newCEChunk allocates the scratch of a chunk of R rows (free returns it).
func (tp *Tape) newCEChunk(R, d, V int, xType, logitsType DType) *ceChunk {
	return &ceChunk{tp: tp, x: tp.scratch(R*d, xType), l: tp.scratch(R*V, logitsType), loss: tp.B.Alloc(R),
		lse: tp.B.Alloc(R), d: d, V: V}
}

// logits computes the logits of rows r0 .. r0+n of x into c.l, with the
// rows themselves in c.x.
func (c *ceChunk) logits(x, w, b *Tensor, r0, n int) {
	B, d, V := c.tp.B, c.d, c.V
	B.CopyBlock(c.x, 0, d, x.Data, r0*d, d, n, d, false)
	B.Gemm(c.x, w.Data, c.l, GemmArgs{TransB: true, M: n, N: V, K: d, Alpha: 1, LDA: d, LDB: d, LDC: V, Batch: 1})
	if b != nil {
		B.AddBias(c.l, c.l, b.Data, n, V)
	}
}

func (c *ceChunk) free() {
	for _, b := range []Buffer{c.x, c.l, c.loss, c.lse} {
		c.tp.B.Free(b)
	}
}
