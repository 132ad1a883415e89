package gpukernels

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

func TestGPUFFTConv(t *testing.T) {
	needGPU(t)
	type shape struct {
		B, H, L int
		skip    bool
	}
	// L = 2100 and 4097 pass fftMaxN in float64 and float32: the direct
	// kernels.
	shapes := seqShapes(t, []shape{{1, 1, 1, true}, {3, 2, 17, true}, {2, 3, 64, false}, {1, 1, 3, true}},
		[]shape{{5, 3, 1000, true}, {8, 16, 2048, true}, {2, 2, 2100, true}, {1, 1, 4097, false}})
	for _, dt := range dtypes {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%s/B%d_H%d_L%d_skip%v", dt, s.B, s.H, s.L, s.skip), func(t *testing.T) {
				B, H, L := s.B, s.H, s.L
				n := B * H * L
				ck := newChecker(t, dt, "FFTConv", uint64(n))
				u, K := ck.in(ck.randn(n, 1)), ck.in(ck.randn(H*L, 1))
				var D pair
				if s.skip {
					D = ck.in(ck.randn(H, 1))
				}
				out := ck.out(n, false)
				ck.g.FFTConv(out.g, u.g, K.g, D.g, B, H, L)
				ck.c.FFTConv(out.c, u.c, K.c, D.c, B, H, L)
				ck.fwd("out", out)

				g := ck.in(ck.randn(n, 1))
				du, dK := ck.acc(n, false), ck.acc(H*L, false)
				var dD pair
				if s.skip {
					dD = ck.acc(H, false)
				}
				ck.g.FFTConvBackward(du.g, dK.g, dD.g, u.g, K.g, D.g, g.g, B, H, L)
				ck.c.FFTConvBackward(du.c, dK.c, dD.c, u.c, K.c, D.c, g.c, B, H, L)
				ck.grad("du", du)
				ck.grad("dK", dK)
				if s.skip {
					ck.grad("dDskip", dD)
				}
			})
		}
	}
}

// devicelessBackend is a closed float32 Backend without a device. An op
// checks its arguments and their types before it touches the device, so
// those checks can be tested on it without a GPU: an op whose arguments
// pass them panics with "backend is closed" where it would start work.
func devicelessBackend() *Backend { return &Backend{dtype: nn.Float32, closed: true} }

// devicelessBuf is a buffer of n elements of type dt on be, with no memory.
func devicelessBuf(be *Backend, n int, dt nn.DType) *Buffer { return &Buffer{n: n, dt: dt, be: be} }

// FFTConv's types (docs/PRECISION.md): u, out, dout and du are
// activations, all float32 or all bfloat16; K, Dskip and their gradients
// are float32. Any other combination panics naming the buffer, before the
// device is touched; the allowed ones pass the checks.
func TestFFTConvTypes(t *testing.T) {
	be := devicelessBackend()
	h := func(n int) *Buffer { return devicelessBuf(be, n, nn.BFloat16) }
	f := func(n int) *Buffer { return devicelessBuf(be, n, nn.Float32) }
	d := func(n int) *Buffer { return devicelessBuf(be, n, nn.Float64) }
	const B, H, L = 2, 3, 4
	n := B * H * L
	fwd := []struct {
		want          string
		out, u, K, Ds *Buffer
	}{
		{"FFTConv: K is bfloat16, must be float32", h(n), h(n), h(H * L), f(H)},
		{"FFTConv: Dskip is bfloat16, must be float32", h(n), h(n), f(H * L), h(H)},
		{"FFTConv: u is float32 but out is bfloat16", h(n), f(n), f(H * L), f(H)},
		{"FFTConv: u is float64, must be float32 or bfloat16", f(n), d(n), f(H * L), f(H)},
		{"FFTConv: K is float64, must be float32", f(n), f(n), d(H * L), nil},
	}
	for _, c := range fwd {
		expectPanic(t, c.want, func() { be.FFTConv(c.out, c.u, c.K, c.Ds, B, H, L) })
	}
	bwd := []struct {
		want                       string
		du, dK, dD, u, K, Ds, dout *Buffer
	}{
		{"FFTConvBackward: dK is bfloat16, must be float32", h(n), h(H * L), f(H), h(n), f(H * L), f(H), h(n)},
		{"FFTConvBackward: dDskip is bfloat16, must be float32", h(n), f(H * L), h(H), h(n), f(H * L), f(H), h(n)},
		{"FFTConvBackward: K is bfloat16, must be float32", h(n), nil, nil, h(n), h(H * L), nil, h(n)},
		{"FFTConvBackward: Dskip is bfloat16, must be float32", nil, f(H * L), nil, h(n), f(H * L), h(H), h(n)},
		{"FFTConvBackward: du is float32 but u is bfloat16", f(n), nil, nil, h(n), f(H * L), f(H), h(n)},
		{"FFTConvBackward: dout is float32 but u is bfloat16", nil, f(H * L), nil, h(n), f(H * L), f(H), f(n)},
	}
	for _, c := range bwd {
		expectPanic(t, c.want, func() { be.FFTConvBackward(c.du, c.dK, c.dD, c.u, c.K, c.Ds, c.dout, B, H, L) })
	}
	for _, act := range []func(int) *Buffer{f, h} {
		expectPanic(t, "FFTConv: backend is closed", func() { be.FFTConv(act(n), act(n), f(H*L), f(H), B, H, L) })
		expectPanic(t, "FFTConvBackward: backend is closed", func() {
			be.FFTConvBackward(act(n), f(H*L), f(H), act(n), f(H*L), f(H), act(n), B, H, L)
		})
	}
}
