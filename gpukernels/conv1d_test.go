package gpukernels

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

// seqShapes keeps the larger shapes of the sequence-op tests out of -short
// runs (they dominate a CPU emulation of the kernels; on a GPU they take
// milliseconds).
func seqShapes[S any](t *testing.T, small, large []S) []S {
	if testing.Short() {
		return small
	}
	return append(append([]S(nil), small...), large...)
}

func TestGPUConv1D(t *testing.T) {
	needGPU(t)
	type shape struct{ B, C, L, W int }
	shapes := seqShapes(t, []shape{{1, 1, 1, 1}, {2, 3, 37, 4}, {1, 2, 2, 4}, {3, 1, 9, 3}},
		[]shape{{3, 5, 300, 4}, {2, 64, 1000, 4}, {1, 7, 513, 2}})
	for _, dt := range dtypes {
		for _, s := range shapes {
			for _, act := range []nn.Activation{nn.Identity, nn.SiLU} {
				t.Run(fmt.Sprintf("%s/B%d_C%d_L%d_W%d_%v", dt, s.B, s.C, s.L, s.W, act), func(t *testing.T) {
					B, C, L, W := s.B, s.C, s.L, s.W
					n := B * C * L
					ck := newChecker(t, dt, "Conv1D", uint64(n*W+int(act)))
					x, w, bias := ck.in(ck.randn(n, 1)), ck.in(ck.randn(C*W, 0.5)), ck.in(ck.randn(C, 0.5))
					out := ck.out(n, false)
					ck.g.Conv1D(out.g, x.g, w.g, bias.g, nil, B, C, L, W, act)
					ck.c.Conv1D(out.c, x.c, w.c, bias.c, nil, B, C, L, W, act)
					ck.fwd("out", out)

					// From a carried state, which is advanced in place.
					st := ck.in(ck.randn(B*C*(W-1), 1))
					out = ck.out(n, false)
					ck.g.Conv1D(out.g, x.g, w.g, bias.g, st.g, B, C, L, W, act)
					ck.c.Conv1D(out.c, x.c, w.c, bias.c, st.c, B, C, L, W, act)
					ck.fwd("out (state)", out)
					ck.fwd("state", st)

					g := ck.in(ck.randn(n, 1))
					dx, dw, db := ck.acc(n, false), ck.acc(C*W, false), ck.acc(C, false)
					ck.g.Conv1DBackward(dx.g, dw.g, db.g, x.g, w.g, bias.g, g.g, B, C, L, W, act)
					ck.c.Conv1DBackward(dx.c, dw.c, db.c, x.c, w.c, bias.c, g.c, B, C, L, W, act)
					ck.grad("dx", dx)
					ck.grad("dw", dw)
					ck.grad("dbias", db)
				})
			}
		}
	}
}
