package gpukernels

import (
	"fmt"
	"testing"

	"seqbench/nn"
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

// TestGPURoPEBFloat16: bfloat16 in and out, each output rounded once; the
// backward rounds dx + the rotated dout once (see TestGPUNormsBFloat16 for
// the tolerances); in place, out = x.
func TestGPURoPEBFloat16(t *testing.T) {
	needGPU(t)
	type rCase struct {
		B, H, L, Dh, pos0 int
		base              float64
	}
	cases := []rCase{
		{2, 3, 17, 8, 7, 10000}, {1, 2, 9, 6, 100, 500000}, {2, 4, 1000, 64, 0, 10000}, {1, 2, 33, 128, 10000, 10000},
		{1, 1, 5, 10, 1 << 20, 10000},
	}
	const h = nn.BFloat16
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			b := newBFChecker(t, "RoPE", uint64(c.L*c.Dh+c.pos0))
			n := c.B * c.H * c.L * c.Dh
			x := b.inAs(h, b.randn(n, 1))
			out := b.outAs(h, n)
			b.g.RoPE(out.g, x.g, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
			b.c.RoPE(out.c, x.c, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
			b.outH("out", out)

			dout := b.inAs(h, b.randn(n, 1))
			dx := b.accAs(h, n, 1)
			b.g.RoPEBackward(dx.g, dout.g, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
			b.c.RoPEBackward(dx.c, dout.c, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
			b.accH("dx", dx)

			y := b.inAs(h, b.randn(n, 1))
			b.g.RoPE(y.g, y.g, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
			b.c.RoPE(y.c, y.c, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
			b.closeBF("in_place", b.g.Read(y.g), b.c.Read(y.c), nn.BF16UnitRoundoff+b.fwdTol)
		})
	}
}

// TestRoPETypes: RoPE's x and out (RoPEBackward's dout and dx) are
// activations, all float32 or all bfloat16; a mix panics naming both
// before the device is touched (see TestNormTypes).
func TestRoPETypes(t *testing.T) {
	be := devicelessBackend()
	h := &Buffer{n: 8, dt: nn.BFloat16, be: be}
	f := &Buffer{n: 8, dt: nn.Float32, be: be}
	dd := &Buffer{n: 8, dt: nn.Float64, be: be}
	expectPanic(t, "RoPE: x is float32 but out is bfloat16", func() { be.RoPE(h, f, 1, 1, 4, 2, 0, 10000) })
	expectPanic(t, "RoPEBackward: dout is bfloat16 but dx is float32", func() { be.RoPEBackward(f, h, 1, 1, 4, 2, 0, 10000) })
	expectPanic(t, "RoPE: out is float64, must be float32 or bfloat16", func() { be.RoPE(dd, dd, 1, 1, 4, 2, 0, 10000) })
	for _, act := range []*Buffer{f, h} {
		be.RoPE(act, act, 0, 1, 4, 2, 0, 10000)
		be.RoPEBackward(act, act, 0, 1, 4, 2, 0, 10000)
	}
}
