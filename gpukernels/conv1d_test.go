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

// conv1dTiledTo sets be's conv1dTiled for the test, restoring it after.
func conv1dTiledTo(t *testing.T, be *Backend, on bool) {
	was := be.conv1dTiled
	be.conv1dTiled = on
	t.Cleanup(func() { be.conv1dTiled = was })
}

// TestGPUConv1D checks both kernel sets (the per-element and the tiled
// ones) against the CPU; the shapes cross the tiled kernels' segments
// (2048 positions a block), leave runs short, unaligned (odd L) or whole,
// and W 5 falls back to the per-element kernels with the switch on.
func TestGPUConv1D(t *testing.T) {
	needGPU(t)
	type shape struct{ B, C, L, W int }
	shapes := seqShapes(t, []shape{{1, 1, 1, 1}, {2, 3, 37, 4}, {1, 2, 2, 4}, {3, 1, 9, 3}, {1, 2, 50, 5}},
		[]shape{{3, 5, 300, 4}, {2, 64, 1000, 4}, {1, 7, 513, 2}, {1, 3, 2049, 4}, {2, 4, 4103, 3}})
	for _, tiled := range []bool{false, true} {
		for _, dt := range dtypes {
			for _, s := range shapes {
				for _, act := range []nn.Activation{nn.Identity, nn.SiLU} {
					t.Run(fmt.Sprintf("tiled%v/%s/B%d_C%d_L%d_W%d_%v", tiled, dt, s.B, s.C, s.L, s.W, act), func(t *testing.T) {
						B, C, L, W := s.B, s.C, s.L, s.W
						n := B * C * L
						ck := newChecker(t, dt, "Conv1D", uint64(n*W+int(act)))
						conv1dTiledTo(t, ck.g, tiled)
						tiles := ck.g.conv1dTiles
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

						// dx alone, then dw and dbias alone.
						dx = ck.acc(n, false)
						ck.g.Conv1DBackward(dx.g, nil, nil, x.g, w.g, bias.g, g.g, B, C, L, W, act)
						ck.c.Conv1DBackward(dx.c, nil, nil, x.c, w.c, bias.c, g.c, B, C, L, W, act)
						ck.grad("dx alone", dx)
						dw, db = ck.acc(C*W, false), ck.acc(C, false)
						ck.g.Conv1DBackward(nil, dw.g, db.g, x.g, w.g, bias.g, g.g, B, C, L, W, act)
						ck.c.Conv1DBackward(nil, dw.c, db.c, x.c, w.c, bias.c, g.c, B, C, L, W, act)
						ck.grad("dw without dx", dw)
						ck.grad("dbias without dx", db)

						want := 0
						if tiled && W <= convTiledMaxW {
							want = 5 // every call above
						}
						if ran := ck.g.conv1dTiles - tiles; ran != want {
							t.Errorf("%d calls ran on the tiled kernels, want %d", ran, want)
						}
					})
				}
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
			for _, tiled := range []bool{false, true} {
				t.Run(fmt.Sprintf("vs-float32/tiled%v/B%d_C%d_L%d_W%d_%v", tiled, s.B, s.C, s.L, s.W, act), func(t *testing.T) {
					conv1dTiledTo(t, m.Backend, tiled)
					conv1dBF16VsFloat32(t, m, s.B, s.C, s.L, s.W, act)
				})
			}
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

// The tiled kernels' launch covers every position of a row once: segments
// of threads·convCT, threads a multiple of 32 (block_sum), at most
// convTiledThreads, rows on y up to the grid's limit.
func TestConv1DTiledGrid(t *testing.T) {
	be := &Backend{}
	for _, c := range []struct{ rows, L, gx, gy, threads int }{
		{1, 1, 1, 1, 32},
		{3, 256, 1, 3, 32},
		{3, 257, 1, 3, 64},
		{12288, 2048, 1, 12288, 256},
		{100000, 2049, 2, 65535, 256},
		{2, 16384, 8, 2, 256},
	} {
		gx, gy, threads := be.tiledGrid(c.rows, c.L)
		if gx != c.gx || gy != c.gy || threads != c.threads {
			t.Errorf("tiledGrid(%d, %d) = %d, %d, %d; want %d, %d, %d", c.rows, c.L, gx, gy, threads, c.gx, c.gy, c.threads)
		}
		if gx*threads*convCT < c.L || (gx-1)*threads*convCT >= c.L || threads%32 != 0 {
			t.Errorf("tiledGrid(%d, %d): %d blocks of %d threads do not tile L once", c.rows, c.L, gx, threads)
		}
	}
}
