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
// chunkRows (0: as many as fit linearCEChunkElems logits). The forward
// computes each chunk's logits, their cross-entropy and log-sum-exp and,
// when argmax is not nil (rows long), each row's largest logit's index,
// then drops them; the backward computes each chunk's logits again and
// turns them into the chunk's gradients (all rows in one chunk keep their
// logits for the backward instead: the unfused op's memory and work). Each chunk's logits and their
// gradient round exactly as CrossEntropy(Linear(...)) rounds them; dw (and
// db) add the chunks' contributions one after another, so with more than
// one chunk they differ from the one-GEMM sum by the rounding of the sums.
// The price, with several chunks, is the head's GEMM computed twice.
func (tp *Tape) LinearCrossEntropy(x, w, b *Tensor, targets []int32, ignore int32, argmax []int32, chunkRows int) (*Tensor, int) {
	x, w, b = tp.lowp(x), tp.lowp(w), tp.lowp(b)
	d, V := x.Dim(-1), w.Dim(0)
	if len(w.Shape) != 2 || w.Dim(1) != d || b != nil && b.Len() != V {
		panic(fmt.Sprintf("nn.LinearCrossEntropy: x %v does not fit weight %v and bias %v", x.Shape, w.Shape, b))
	}
	rows := x.Len() / d
	if len(targets) != rows || argmax != nil && len(argmax) != rows {
		panic(fmt.Sprintf("nn.LinearCrossEntropy: %d targets and %d argmax for %d rows", len(targets), len(argmax), rows))
	}
	R := chunkRows
	if R <= 0 {
		R = LinearCEChunkRows(V)
	}
	R = min(R, max(rows, 1))
	count := 0
	for _, t := range targets {
		if t != ignore {
			count++
		}
	}
	out := tp.out32([]int{1}, x, w, b)
	tp.readsNot(out, out)
	loss, lse := tp.Alloc(rows), tp.Alloc(rows)
	logitsType := tp.resultType(x, w, b) // Linear's result's
	// One chunk (every row's logits within the bound) keeps its logits for
	// the backward instead of computing them again.
	one := rows <= R
	c := tp.newCEChunk(R, d, V, DTypeOf(tp.B, x.Data), logitsType, one)
	for r0 := 0; r0 < rows; r0 += R {
		n := min(R, rows-r0)
		c.logits(x, w, b, r0, n)
		tp.B.CrossEntropy(c.loss, c.lse, c.l, targets[r0:r0+n], n, V, ignore)
		tp.B.CopyBlock(loss, r0, n, c.loss, 0, n, 1, n, false)
		tp.B.CopyBlock(lse, r0, n, c.lse, 0, n, 1, n, false)
		if argmax != nil {
			copy(argmax[r0:], tp.B.ArgmaxRows(c.l, n, V))
		}
	}
	if !one {
		c.free()
	}
	mean := 0.0
	if count > 0 {
		mean = tp.B.Sum(loss) / float64(count)
	}
	tp.B.Fill(out.Data, mean)
	tp.onBackward(out, func(g Buffer) {
		if count == 0 {
			return
		}
		gx, gw, gb := tp.grad(x), tp.grad(w), tp.grad(b)
		if !one {
			c = tp.newCEChunk(R, d, V, DTypeOf(tp.B, x.Data), logitsType, false)
			defer c.free()
		}
		dl := tp.scratch(R*V, logitsType)
		defer tp.B.Free(dl)
		tp.B.Fill(c.loss, tp.B.Read(g)[0]/float64(count)) // d(mean)/d(loss_r)
		var dx Buffer
		if gx != nil {
			dx = tp.scratch(R*d, DTypeOf(tp.B, gx))
			defer tp.B.Free(dx)
		}
		for r0 := 0; r0 < rows; r0 += R {
			n := min(R, rows-r0)
			if !one {
				c.logits(x, w, b, r0, n)
			}
			tp.B.CopyBlock(c.lse, 0, n, lse, r0, n, 1, n, false)
			tp.B.Fill(dl, 0)
			tp.B.CrossEntropyBackward(dl, c.l, c.lse, c.loss, targets[r0:r0+n], n, V, ignore)
			if gx != nil { // dx = dlogits·W, then added to x's rows
				tp.B.Gemm(dl, w.Data, dx, GemmArgs{M: n, N: d, K: V, Alpha: 1, LDA: V, LDB: d, LDC: d, Batch: 1})
				tp.B.CopyBlock(gx, r0*d, d, dx, 0, d, n, d, true)
			}
			if gw != nil { // dW += dlogitsᵀ·x
				tp.B.Gemm(dl, c.x, gw, GemmArgs{TransA: true, M: V, N: d, K: n, Alpha: 1, Beta: 1, LDA: V, LDB: d, LDC: d, Batch: 1})
			}
			if gb != nil {
				tp.B.SumRows(gb, dl, n, V)
			}
		}
	})
	return out, count
}

// ceChunk is LinearCrossEntropy's per-chunk scratch: a chunk of x's rows,
// their logits, and the losses and log-sum-exps of its rows.
type ceChunk struct {
	tp              *Tape
	x, l, loss, lse Buffer
	d, V            int
}

// newCEChunk allocates a chunk of R rows: the tape's buffers (freed by
// Release) when kept, else scratch that free returns.
func (tp *Tape) newCEChunk(R, d, V int, xType, logitsType DType, kept bool) *ceChunk {
	alloc := tp.scratch
	if kept {
		alloc = tp.AllocAs
	}
	return &ceChunk{tp: tp, x: alloc(R*d, xType), l: alloc(R*V, logitsType), loss: alloc(R, tp.B.DType()),
		lse: alloc(R, tp.B.DType()), d: d, V: V}
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

// scratch is a buffer of n elements of type dt that the caller frees
// (not the tape's: it lives within one op).
func (tp *Tape) scratch(n int, dt DType) Buffer {
	if dt == tp.B.DType() {
		return tp.B.Alloc(n)
	}
	if tp.mixed == nil {
		panic(fmt.Sprintf("nn: %s has only %v buffers, not %v", tp.B.Name(), tp.B.DType(), dt))
	}
	return tp.mixed.AllocAs(n, dt)
}
