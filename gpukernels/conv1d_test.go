package gpukernels

import (
	"fmt"
	"math"
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

// TestGPUConv1DBF16 checks the bfloat16 build against the float32 build on the same inputs at larger
// shapes (twin: the bfloat16 outputs are the float32 ones rounded once,
// the float32 outputs the same).
func TestGPUConv1DBF16(t *testing.T) {
	m := bf16Backend(t)
	type shape struct{ B, C, L, W int }
	shapes := seqShapes(t, []shape{{2, 3, 37, 4}, {1, 2, 2, 4}},
		[]shape{{2, 64, 1000, 4}, {1, 7, 513, 2}})
	for _, s := range shapes {
		for _, act := range []nn.Activation{nn.Identity, nn.SiLU} {
			t.Run(fmt.Sprintf("vs-float32/B%d_C%d_L%d_W%d_%v", s.B, s.C, s.L, s.W, act), func(t *testing.T) {
				conv1dBF16VsFloat32(t, m, s.B, s.C, s.L, s.W, act)
			})
		}
	}
}

func conv1dBF16VsFloat32(t *testing.T, m nn.MixedBackend, B, C, L, W int, act nn.Activation) {
	n, S := B*C*L, W-1
	tw := newTwin(t, m, uint64(n*W+int(act)))
	var x twinBuf
	tw.act(tw.randn(n, 1), &x.h, &x.f)
	w, bias := tw.param(tw.randn(C*W, 0.5)), tw.param(tw.randn(C, 0.5))
	out := tw.outAct(n)
	m.Conv1D(out.h, x.h, w, bias, nil, B, C, L, W, act)
	m.Conv1D(out.f, x.f, w, bias, nil, B, C, L, W, act)
	tw.checkOut("out", out)

	// From a carried state (float32 in both runs), advanced in place.
	st := tw.randn(B*C*S, 1)
	st16, st32 := tw.param(append(st, math.NaN())), tw.param(append(st, math.NaN()))
	out = tw.outAct(n)
	m.Conv1D(out.h, x.h, w, bias, st16, B, C, L, W, act)
	m.Conv1D(out.f, x.f, w, bias, st32, B, C, L, W, act)
	tw.checkOut("out (state)", out)
	tw.checkSame("state", st16, st32)

	var dout twinBuf
	tw.act(tw.randn(n, 1), &dout.h, &dout.f)
	dx, dw, db := tw.accAct(n), tw.accParam(C*W), tw.accParam(C)
	m.Conv1DBackward(dx.h, dw.h, db.h, x.h, w, bias, dout.h, B, C, L, W, act)
	m.Conv1DBackward(dx.f, dw.f, db.f, x.f, w, bias, dout.f, B, C, L, W, act)
	tw.checkAcc("dx", dx)
	tw.checkAcc("dw", dw)
	tw.checkAcc("dbias", db)
}
