package gpukernels

import (
	"fmt"
	"testing"
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
