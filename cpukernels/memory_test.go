package cpukernels

import (
	"testing"
)

func TestMemory(t *testing.T) {
	be := New[float32]()
	b := be.Alloc(4)
	ewClose(t, "Alloc", be.Read(b), []float64{0, 0, 0, 0}, 0, 0)
	be.Write(b, []float64{1.5, 0.1})
	ewClose(t, "Write prefix", be.Read(b), []float64{1.5, float64(float32(0.1)), 0, 0}, 0, 0)
	be.Fill(b, -2)
	ewClose(t, "Fill", be.Read(b), []float64{-2, -2, -2, -2}, 0, 0)
	c := be.Alloc(3)
	be.Copy(c, Buf[float32]{7, 8, 9, 10})
	ewClose(t, "Copy", be.Read(c), []float64{7, 8, 9}, 0, 0)
	refPanics(t, "Write too long", "dst holds 4 elements, needs 5", func() { be.Write(b, make([]float64, 5)) })
	refPanics(t, "Copy short src", "src holds 3 elements, needs 4", func() { be.Copy(b, c) })
	refPanics(t, "foreign buffer", "not a buffer of this backend", func() { be.Fill(New[float64]().Alloc(1), 0) })
}

func TestCopyBlock(t *testing.T) {
	be := New[float64]()
	// src is 3×4; copy its 3×2 middle columns into columns 1..2 of a 3×3 dst.
	src := Buf[float64]{0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}
	dst := be.Alloc(9)
	be.Fill(dst, -1)
	be.CopyBlock(dst, 1, 3, src, 1, 4, 3, 2, false)
	ewClose(t, "copy", be.Read(dst), []float64{-1, 1, 2, -1, 11, 12, -1, 21, 22}, 0, 0)
	be.CopyBlock(dst, 1, 3, src, 1, 4, 3, 2, true)
	ewClose(t, "accumulate", be.Read(dst), []float64{-1, 2, 4, -1, 22, 24, -1, 42, 44}, 0, 0)
	// Stride 0 broadcasts one source row.
	be.CopyBlock(dst, 0, 3, src, 0, 0, 3, 3, false)
	ewClose(t, "broadcast", be.Read(dst), []float64{0, 1, 2, 0, 1, 2, 0, 1, 2}, 0, 0)
	refPanics(t, "dst too short", "dst holds 9 elements, needs 10", func() { be.CopyBlock(dst, 1, 3, src, 0, 4, 3, 3, false) })
	refPanics(t, "overlapping dst rows", "bad block", func() { be.CopyBlock(dst, 0, 2, src, 0, 4, 2, 3, false) })
}
