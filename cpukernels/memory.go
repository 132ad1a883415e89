package cpukernels

import (
	"fmt"

	"seqbench/nn"
)

// copyGrain is the number of elements below which a copy or elementwise loop
// is not worth a goroutine.
const copyGrain = 1 << 15

// Alloc returns a zero-filled buffer of n elements.
func (be *Backend[T]) Alloc(n int) nn.Buffer {
	if n < 0 {
		panic(fmt.Sprintf("cpukernels.Alloc: negative length %d", n))
	}
	return make(Buf[T], n)
}

// Free does nothing: the garbage collector owns CPU memory.
func (be *Backend[T]) Free(b nn.Buffer) {}

// Write stores src into the first len(src) elements of dst, rounding to T.
func (be *Backend[T]) Write(dst nn.Buffer, src []float64) {
	d := data[T](dst, len(src), "Write", "dst")
	for i, v := range src {
		d[i] = T(v)
	}
}

// Read returns every element of src as float64.
func (be *Backend[T]) Read(src nn.Buffer) []float64 {
	s := data[T](src, -1, "Read", "src")
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// Fill sets every element of dst to v.
func (be *Backend[T]) Fill(dst nn.Buffer, v float64) {
	d := data[T](dst, -1, "Fill", "dst")
	x := T(v)
	be.parallelFor(len(d), copyGrain, func(lo, hi int) {
		s := d[lo:hi]
		for i := range s {
			s[i] = x
		}
	})
}

// Copy copies the first dst.Len() elements of src into dst.
func (be *Backend[T]) Copy(dst, src nn.Buffer) {
	d := data[T](dst, -1, "Copy", "dst")
	s := data[T](src, len(d), "Copy", "src")
	copy(d, s)
}

// AppendRows writes src (rows×cols) into each row of dst at column
// pos[0]·unit, nothing where that passes the row's end (nn.Backend).
func (be *Backend[T]) AppendRows(dst nn.Buffer, dstStride int, src nn.Buffer, rows, cols int, pos nn.Buffer, unit int) {
	const op = "AppendRows"
	check(op, nn.CheckAppendRows(dstStride, rows, cols, unit))
	off := be.position(op, "pos", pos) * unit
	if off+cols > dstStride {
		return
	}
	be.CopyBlock(dst, off, dstStride, src, 0, cols, rows, cols, false)
}

// CopyBlock copies (or with accumulate, adds) a rows×cols block between
// row-major matrices:
//
//	for r := 0; r < rows; r++ {
//		for c := 0; c < cols; c++ {
//			dst[dstOff+r*dstStride+c] (+)= src[srcOff+r*srcStride+c]
//		}
//	}
//
// Rows of dst must not overlap (dstStride ≥ cols); src rows may (a stride 0
// broadcasts one row). Rows are copied in parallel, so the block in dst must
// not overlap the block in src.
func (be *Backend[T]) CopyBlock(dst nn.Buffer, dstOff, dstStride int, src nn.Buffer, srcOff, srcStride, rows, cols int, accumulate bool) {
	check("CopyBlock", nn.CheckCopyBlock(dstOff, dstStride, srcOff, srcStride, rows, cols))
	if rows == 0 || cols == 0 {
		return
	}
	d := data[T](dst, dstOff+(rows-1)*dstStride+cols, "CopyBlock", "dst")
	s := data[T](src, srcOff+(rows-1)*srcStride+cols, "CopyBlock", "src")
	be.parallelFor(rows, max(1, copyGrain/cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dr := d[dstOff+r*dstStride:][:cols]
			sr := s[srcOff+r*srcStride:][:cols]
			if accumulate {
				for c, v := range sr {
					dr[c] += v
				}
			} else {
				copy(dr, sr)
			}
		}
	})
}
