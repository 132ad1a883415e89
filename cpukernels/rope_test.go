package cpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refRoPE is RoPE written out in float64, the HF Llama rotate_half layout.
func refRoPE(x []float64, B, H, L, Dh, pos0 int, base float64) []float64 {
	out := make([]float64, len(x))
	h := Dh / 2
	for bh := range B * H {
		for l := range L {
			row := x[(bh*L+l)*Dh : (bh*L+l+1)*Dh]
			o := out[(bh*L+l)*Dh : (bh*L+l+1)*Dh]
			for i := range h {
				theta := float64(pos0+l) / math.Pow(base, float64(2*i)/float64(Dh))
				c, s := math.Cos(theta), math.Sin(theta)
				o[i] = row[i]*c - row[i+h]*s
				o[i+h] = row[i+h]*c + row[i]*s
			}
		}
	}
	return out
}

func TestRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 1))
	for i, c := range []struct {
		B, H, L, Dh, pos0 int
		base              float64
	}{
		{1, 1, 1, 2, 0, 10000},
		{1, 1, 1, 2, 3, 10000},
		{2, 3, 5, 6, 0, 10000},
		{1, 3, 17, 6, 7, 500},
		{2, 1, 5, 2, 100000, 10000}, // large positions: angles in float64
	} {
		name := fmt.Sprintf("case %d (B=%d, H=%d, L=%d, Dh=%d, pos0=%d)", i, c.B, c.H, c.L, c.Dh, c.pos0)
		n := c.B * c.H * c.L * c.Dh
		x := refRandn(rng, n, 1)
		testRoPEForward[float64](t, name+" float64", x, c.B, c.H, c.L, c.Dh, c.pos0, c.base, 1e-12)
		testRoPEForward[float32](t, name+" float32", x, c.B, c.H, c.L, c.Dh, c.pos0, c.base, 1e-6)

		be := New[float64]()
		g, xb := refRandn(rng, n, 1), refBuf[float64](x)
		out := make(Buf[float64], n)
		want := refNumGrad(xb, func() float64 {
			be.RoPE(out, xb, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
			return refDot(out, g)
		})
		dx0 := refRandn(rng, n, 1)
		dx := refWithGuard[float64](dx0)
		be.RoPEBackward(dx, refBuf[float64](g), c.B, c.H, c.L, c.Dh, c.pos0, c.base)
		refRel(t, name+" dx", refSub(dx, dx0), want, 1e-6)
		refCheckGuard(t, name+" dx", dx, n)

		// In place.
		inPlace := refBuf[float64](x)
		be.RoPE(inPlace, inPlace, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
		be.RoPE(out, xb, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
		refRel(t, name+" in place", inPlace, out, 0)
	}
}

func testRoPEForward[T Float](t *testing.T, name string, x []float64, B, H, L, Dh, pos0 int, base, tol float64) {
	t.Helper()
	x = refRound[T](x)
	n := len(x)
	out := refPoisoned[T](n)
	New[T]().RoPE(out, refBuf[T](x), B, H, L, Dh, pos0, base)
	refRel(t, name+" out", refF64(out, n), refRoPE(x, B, H, L, Dh, pos0, base), tol)
	refCheckGuard(t, name+" out", out, n)
}

func TestRoPEOddDh(t *testing.T) {
	x := make(Buf[float32], 2*3)
	refPanics(t, "RoPE Dh=3", "Dh = 3", func() { New[float32]().RoPE(x, x, 1, 1, 2, 3, 0, 10000) })
	refPanics(t, "RoPEBackward Dh=3", "Dh = 3", func() { New[float32]().RoPEBackward(x, x, 1, 1, 2, 3, 0, 10000) })
}
