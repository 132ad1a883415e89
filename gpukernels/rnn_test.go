package gpukernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"seqbench/gpukernels/cuda"
	"seqbench/nn"
	"seqbench/nn/backendtest"
)

func TestGPURNN(t *testing.T) {
	needGPU(t)
	type shape struct {
		B, L, I, H int
		state      bool
	}
	// B 11 takes the persistent kernels through two batch chunks; H 301
	// gives their blocks 3 units each on 132 SMs, the last block 1; H 1024
	// (the bench's) fills every warp of a block with weights; H 999 is
	// odd (h rows staged a value at a time, 125 blocks, the last with 7).
	shapes := seqShapes(t, []shape{{1, 1, 1, 1, false}, {3, 17, 5, 7, true}, {2, 9, 4, 3, false}, {11, 6, 3, 9, true}},
		[]shape{{4, 64, 16, 32, true}, {5, 40, 33, 65, false}, {9, 20, 8, 301, true}, {8, 12, 16, 1024, true},
			{3, 7, 5, 999, false}})
	for _, dt := range dtypes {
		for _, gru := range []bool{false, true} {
			for _, persistent := range []bool{false, true} {
				way := "steps"
				if persistent {
					way = "persistent"
				}
				for _, s := range shapes {
					kind := "LSTM"
					if gru {
						kind = "GRU"
					}
					t.Run(fmt.Sprintf("%s/%s/%s/B%d_L%d_I%d_H%d_state%v", dt, kind, way, s.B, s.L, s.I, s.H, s.state), func(t *testing.T) {
						be := gpu(t, dt)
						defer func(was bool) { be.rnnPersistent = was }(be.rnnPersistent)
						be.rnnPersistent = persistent
						before := be.rnnPersisted
						rnnCheck(t, dt, gru, s.B, s.L, s.I, s.H, s.state)
						// The persistent way must have been taken wherever it fits.
						G := 4
						if gru {
							G = 3
						}
						want := 0
						if persistent && rnnFits(be, s.H, s.L, s.H, func(U int) int { return G * U }) {
							want += 1 + (s.L+2)/3 // saving, then in chunks of 3 steps (rnnUnsaved)
						}
						if persistent && rnnFits(be, s.H, s.L, G*s.H, func(U int) int { return U }) {
							want++
						}
						if got := be.rnnPersisted - before; got != want {
							t.Fatalf("%d recurrences (forward, forward in chunks, backward) ran as a persistent kernel, want %d", got, want)
						}
						if want > 0 {
							logPersistRegs(t, be, kind)
						}
					})
				}
			}
		}
	}
}

// logPersistRegs logs the registers and spill bytes of the persistent
// kernels of kind, once: their weights must stay in registers.
func logPersistRegs(t *testing.T, be *Backend, kind string) {
	name := strings.ToLower(kind) + "_persist"
	for _, n := range []string{name, name + "_bwd"} {
		if persistRegsLogged[n] {
			continue
		}
		persistRegsLogged[n] = true
		k := be.fn("test", "rnn", n)
		regs, err1 := be.drv.FuncGetAttribute(k.f, cuda.FuncAttrNumRegs)
		local, err2 := be.drv.FuncGetAttribute(k.f, cuda.FuncAttrLocalSizeBytes)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		fmt.Printf("%s: %d registers a thread, %d bytes of local memory (spills)\n", n, regs, local)
	}
}

var persistRegsLogged = map[string]bool{}

func rnnFits(be *Backend, H, L, cols int, rows func(U int) int) bool {
	_, ok := planPersist(H, L, cols, be.esize(), be.dev.SMs, be.dev.MaxSharedOptin, rows)
	return ok
}

// TestPlanPersist pins where the persistent RNN kernels run on an H200
// (132 SMs, 227 KiB of shared memory a block).
func TestPlanPersist(t *testing.T) {
	const sms, smem = 132, 232448
	for _, c := range []struct {
		H, G, esize     int
		fwd, bwd        bool
		U, blocks, fmem int
	}{
		{1024, 4, 4, true, true, 8, 128, (8*1024 + 512) * 4}, // the bench's LSTM: 8 items of 8 both ways
		{1024, 3, 4, true, true, 8, 128, (8*1024 + 512) * 4},
		{64, 4, 4, true, true, 1, 64, (8*512 + 512) * 4},
		{1024, 4, 8, false, false, 0, 0, 0},    // float64: twice the registers
		{2048, 4, 4, false, false, 16, 128, 0}, // 64 rows × 2048 columns a block
		{1100, 4, 4, false, false, 9, 123, 0},  // 5 row groups × 3 spans
	} {
		f, fok := planPersist(c.H, 100, c.H, c.esize, sms, smem, func(U int) int { return c.G * U })
		_, bok := planPersist(c.H, 100, c.G*c.H, c.esize, sms, smem, func(U int) int { return U })
		if fok != c.fwd || bok != c.bwd {
			t.Errorf("H %d G %d esize %d: fits forward %v backward %v, want %v %v", c.H, c.G, c.esize, fok, bok, c.fwd, c.bwd)
		}
		if c.fwd && (f.U != c.U || f.blocks != c.blocks || f.smem != c.fmem) {
			t.Errorf("H %d G %d: forward plan %+v, want U %d blocks %d smem %d", c.H, c.G, f, c.U, c.blocks, c.fmem)
		}
	}
}

// rnnUnsaved runs the forward again without saving, which projects the
// inputs a chunk of steps at a time (here 3): the same numbers up to the
// rounding of the differently cut projection GEMMs.
func rnnUnsaved(t *testing.T, ck *checker, gru bool, a nn.RNNArgs, out, hT, cT nn.Buffer) {
	G := 4
	if gru {
		G = 3
	}
	defer func(n int) { rnnScratchElems = n }(rnnScratchElems)
	rnnScratchElems = 3 * a.B * G * a.H
	o, h, c := ck.alloc(a.B*a.L*a.H), ck.alloc(a.B*a.H), ck.alloc(a.B*a.H)
	if gru {
		ck.g.GRU(o, h, nil, a)
	} else {
		ck.g.LSTM(o, h, c, nil, a)
	}
	pairs := [][2]nn.Buffer{{out, o}, {hT, h}, {cT, c}}
	if gru {
		pairs = pairs[:2]
	}
	for i, p := range pairs {
		got := ck.g.Read(p[1])
		want := ck.g.Read(p[0])[:len(got)] // past a guard
		if err, _ := backendtest.RelErr(got, want); !(err <= ck.fwdTol) {
			t.Errorf("forward without saving, output %d (out, hT, cT): rel err %.3g from the saving forward's, above %g", i, err, ck.fwdTol)
		}
	}
}

func rnnCheck(t *testing.T, dt nn.DType, gru bool, B, L, I, H int, state bool) {
	G, kind := 4, "LSTM"
	if gru {
		G, kind = 3, "GRU"
	}
	GH := G * H
	ck := newChecker(t, dt, kind, uint64(B*L*I*H+G))
	scale := 1 / math.Sqrt(float64(H))
	ga := nn.RNNArgs{B: B, L: L, I: I, H: H}
	ca := ga
	set := func(p pair, g, c *nn.Buffer) { *g, *c = p.g, p.c }
	set(ck.in(ck.randn(B*L*I, 1)), &ga.X, &ca.X)
	set(ck.in(ck.randn(GH*I, scale)), &ga.Wih, &ca.Wih)
	set(ck.in(ck.randn(GH*H, scale)), &ga.Whh, &ca.Whh)
	set(ck.in(ck.randn(GH, 0.5)), &ga.Bih, &ca.Bih)
	set(ck.in(ck.randn(GH, 0.5)), &ga.Bhh, &ca.Bhh)
	if state {
		set(ck.in(ck.randn(B*H, 0.5)), &ga.H0, &ca.H0)
		if !gru {
			set(ck.in(ck.randn(B*H, 1)), &ga.C0, &ca.C0)
		}
	}
	savedLen := nn.LSTMSavedLen(B, L, H)
	if gru {
		savedLen = nn.GRUSavedLen(B, L, H)
	}
	out, hT, cT := ck.out(B*L*H, false), ck.out(B*H, false), ck.out(B*H, false)
	saved := ck.out(savedLen, false)
	if gru {
		ck.g.GRU(out.g, hT.g, saved.g, ga)
		ck.c.GRU(out.c, hT.c, saved.c, ca)
	} else {
		ck.g.LSTM(out.g, hT.g, cT.g, saved.g, ga)
		ck.c.LSTM(out.c, hT.c, cT.c, saved.c, ca)
		ck.fwd("cT", cT)
	}
	ck.fwd("out", out)
	ck.fwd("hT", hT)
	rnnUnsaved(t, ck, gru, ga, out.g, hT.g, cT.g)
	// The saved layout is the backend's own: the backward reads each side's.

	dout := ck.in(ck.randn(B*L*H, 1))
	dx, dwih, dwhh := ck.acc(B*L*I, false), ck.acc(GH*I, false), ck.acc(GH*H, false)
	dbih, dbhh := ck.acc(GH, false), ck.acc(GH, false)
	gg := nn.RNNGrads{X: dx.g, Wih: dwih.g, Whh: dwhh.g, Bih: dbih.g, Bhh: dbhh.g}
	cg := nn.RNNGrads{X: dx.c, Wih: dwih.c, Whh: dwhh.c, Bih: dbih.c, Bhh: dbhh.c}
	if gru {
		ck.g.GRUBackward(gg, ga, out.g, saved.g, dout.g)
		ck.c.GRUBackward(cg, ca, out.c, saved.c, dout.c)
	} else {
		ck.g.LSTMBackward(gg, ga, out.g, saved.g, dout.g)
		ck.c.LSTMBackward(cg, ca, out.c, saved.c, dout.c)
	}
	ck.grad("dX", dx)
	ck.grad("dWih", dwih)
	ck.grad("dWhh", dwhh)
	ck.grad("dBih", dbih)
	ck.grad("dBhh", dbhh)
}

// TestGPURNNBFloat16 runs the bfloat16 LSTM and GRU cases both ways: per
// step and as the persistent kernels (which the cases' small H fit, so
// some recurrence must have run as one).
func TestGPURNNBFloat16(t *testing.T) {
	needGPU(t)
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent%v", persistent), func(t *testing.T) {
			be := gpu(t, nn.Float32)
			defer func(was bool) { be.rnnPersistent = was }(be.rnnPersistent)
			be.rnnPersistent = persistent
			m, err := newBF16(be)
			if err != nil {
				t.Fatal(err)
			}
			before := be.rnnPersisted
			backendtest.RunBF16RNN(t, m)
			if ran := be.rnnPersisted - before; (ran > 0) != persistent {
				t.Errorf("%d recurrences ran as a persistent kernel with rnnPersistent %v", ran, persistent)
			}
		})
	}
}
