package gpukernels

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

func TestGPURNN(t *testing.T) {
	type shape struct {
		B, L, I, H int
		state      bool
	}
	// B 11 takes the persistent kernels through two batch chunks; H 301
	// gives their blocks 3 units each on 132 SMs, the last block 1.
	shapes := seqShapes(t, []shape{{1, 1, 1, 1, false}, {3, 17, 5, 7, true}, {2, 9, 4, 3, false}, {11, 6, 3, 9, true}},
		[]shape{{4, 64, 16, 32, true}, {5, 40, 33, 65, false}, {9, 20, 8, 301, true}})
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
						be.rnnPersistent = persistent
						defer func() { be.rnnPersistent = false }()
						rnnCheck(t, dt, gru, s.B, s.L, s.I, s.H, s.state)
					})
				}
			}
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
