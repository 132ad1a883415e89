package gpukernels

import (
	"fmt"
	"testing"
)

// normShapes avoid d ≤ 2: there the true dx cancels to ~eps/var (RMSNorm at
// d = 1: s·w·g·(1 − x²/(x²+eps)); LayerNorm at d = 2, where x̂ = ±1), which
// float32 cannot resolve; the conformance suite covers those at its own
// tolerances. d = 64 and 768 take the warp-per-row kernels in float32, the
// others the block-per-row ones.
var normShapes = [][2]int{{1, 3}, {5, 7}, {300, 64}, {4096, 768}, {3, 5000}, {70000, 33}}

func TestGPURMSNorm(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, s := range normShapes {
			rows, d := s[0], s[1]
			t.Run(fmt.Sprintf("%s/%dx%d", dt, rows, d), func(t *testing.T) {
				ck := newChecker(t, dt, "RMSNorm", uint64(rows*d))
				x, w := ck.in(ck.randn(rows*d, 2)), ck.in(ck.randn(d, 1))
				out, rstd := ck.out(rows*d, false), ck.out(rows, false)
				ck.g.RMSNorm(out.g, rstd.g, x.g, w.g, rows, d, 1e-5)
				ck.c.RMSNorm(out.c, rstd.c, x.c, w.c, rows, d, 1e-5)
				ck.fwd("out", out)
				ck.fwd("rstd", rstd)

				// The backward reads the rstd each backend saved.
				g := ck.in(ck.randn(rows*d, 1))
				dx, dw := ck.acc(rows*d, false), ck.acc(d, false)
				ck.g.RMSNormBackward(dx.g, dw.g, x.g, w.g, rstd.g, g.g, rows, d)
				ck.c.RMSNormBackward(dx.c, dw.c, x.c, w.c, rstd.c, g.c, rows, d)
				ck.grad("dx", dx)
				ck.grad("dw", dw)
				dw = ck.acc(d, false)
				ck.g.RMSNormBackward(nil, dw.g, x.g, w.g, rstd.g, g.g, rows, d)
				ck.c.RMSNormBackward(nil, dw.c, x.c, w.c, rstd.c, g.c, rows, d)
				ck.grad("dw_only", dw)
			})
		}
	}
}

func TestGPULayerNorm(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, s := range normShapes {
			for _, bias := range []bool{true, false} {
				rows, d := s[0], s[1]
				t.Run(fmt.Sprintf("%s/%dx%d/bias%v", dt, rows, d, bias), func(t *testing.T) {
					ck := newChecker(t, dt, "LayerNorm", uint64(rows*d))
					xs := ck.randn(rows*d, 2)
					for i := range xs {
						xs[i] += 3 // a mean far from 0
					}
					x, w := ck.in(xs), ck.in(ck.randn(d, 1))
					var b pair
					if bias {
						b = ck.in(ck.randn(d, 1))
					}
					out, mean, rstd := ck.out(rows*d, false), ck.out(rows, false), ck.out(rows, false)
					ck.g.LayerNorm(out.g, mean.g, rstd.g, x.g, w.g, b.g, rows, d, 1e-5)
					ck.c.LayerNorm(out.c, mean.c, rstd.c, x.c, w.c, b.c, rows, d, 1e-5)
					ck.fwd("out", out)
					ck.fwd("mean", mean)
					ck.fwd("rstd", rstd)

					g := ck.in(ck.randn(rows*d, 1))
					dx, dw := ck.acc(rows*d, false), ck.acc(d, false)
					var db pair
					if bias {
						db = ck.acc(d, false)
					}
					ck.g.LayerNormBackward(dx.g, dw.g, db.g, x.g, w.g, mean.g, rstd.g, g.g, rows, d)
					ck.c.LayerNormBackward(dx.c, dw.c, db.c, x.c, w.c, mean.c, rstd.c, g.c, rows, d)
					ck.grad("dx", dx)
					ck.grad("dw", dw)
					if bias {
						ck.grad("db", db)
					}
				})
			}
		}
	}
}
