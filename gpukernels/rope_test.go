package gpukernels

import (
	"fmt"
	"testing"
)

func TestGPURoPE(t *testing.T) {
	needGPU(t)
	type rCase struct {
		B, H, L, Dh, pos0 int
		base              float64
	}
	cases := []rCase{
		{1, 1, 1, 2, 0, 10000}, {2, 3, 17, 8, 7, 10000}, {1, 2, 9, 6, 100, 500000},
		{2, 4, 1000, 64, 0, 10000}, {1, 2, 33, 128, 10000, 10000}, {1, 1, 5, 10, 1 << 20, 10000},
	}
	for _, dt := range dtypes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%+v", dt, c), func(t *testing.T) {
				ck := newChecker(t, dt, "RoPE", uint64(c.L*c.Dh+c.pos0))
				n := c.B * c.H * c.L * c.Dh
				x := ck.in(ck.randn(n, 1))
				out := ck.out(n, false)
				ck.g.RoPE(out.g, x.g, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
				ck.c.RoPE(out.c, x.c, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
				ck.fwd("out", out)

				dout := ck.in(ck.randn(n, 1))
				dx := ck.acc(n, false)
				ck.g.RoPEBackward(dx.g, dout.g, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
				ck.c.RoPEBackward(dx.c, dout.c, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
				ck.grad("dx", dx)

				// In place: out = x.
				y := ck.in(ck.randn(n, 1))
				ck.g.RoPE(y.g, y.g, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
				ck.c.RoPE(y.c, y.c, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
				y.before = nil
				got, want := ck.g.Read(y.g), ck.c.Read(y.c)
				ck.close("in_place", got, want, ck.fwdTol)
			})
		}
	}
}
