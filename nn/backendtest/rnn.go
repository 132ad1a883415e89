package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

func init() {
	registerFused("LSTM", func(t *testing.T, b nn.Backend) { testRNN(t, b, false) })
	registerFused("GRU", func(t *testing.T, b nn.Backend) { testRNN(t, b, true) })
}

// refRNN is torch.nn.LSTM (gru false, gates i, f, g, o) or torch.nn.GRU
// (gates r, z, n) over x (B, L, I), batch first, one layer, written as the
// recurrence; nil biases and initial states are zeros. It returns every h_t
// (B, L, H) and the final h and c (c is nil for the GRU).
func refRNN(gru bool, x, wih, whh, bih, bhh, h0, c0 []float64, B, L, I, H int) (out, hT, cT []float64) {
	G := 4
	if gru {
		G = 3
	}
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	at := func(s []float64, i int) float64 {
		if s == nil {
			return 0
		}
		return s[i]
	}
	out, hT, cT = make([]float64, B*L*H), make([]float64, B*H), make([]float64, B*H)
	gi, gh := make([]float64, G*H), make([]float64, G*H)
	for b := range B {
		h, c := make([]float64, H), make([]float64, H)
		for u := range H {
			h[u], c[u] = at(h0, b*H+u), at(c0, b*H+u)
		}
		for t := range L {
			for j := range G * H { // gi = Wih·x_t + b_ih, gh = Whh·h + b_hh
				gi[j], gh[j] = at(bih, j), at(bhh, j)
				for k := range I {
					gi[j] += wih[j*I+k] * x[(b*L+t)*I+k]
				}
				for k := range H {
					gh[j] += whh[j*H+k] * h[k]
				}
			}
			for u := range H {
				if gru {
					r := sig(gi[u] + gh[u])
					z := sig(gi[H+u] + gh[H+u])
					n := math.Tanh(gi[2*H+u] + r*gh[2*H+u])
					h[u] = (1-z)*n + z*h[u] // h[u] is read by no later unit of this step: gh is done
					continue
				}
				i := sig(gi[u] + gh[u])
				f := sig(gi[H+u] + gh[H+u])
				g := math.Tanh(gi[2*H+u] + gh[2*H+u])
				o := sig(gi[3*H+u] + gh[3*H+u])
				c[u] = f*c[u] + i*g
				h[u] = o * math.Tanh(c[u])
			}
			copy(out[(b*L+t)*H:], h)
		}
		copy(hT[b*H:], h)
		copy(cT[b*H:], c)
	}
	if gru {
		cT = nil
	}
	return out, hT, cT
}

type rnnCase struct {
	B, L, I, H int
	bias       bool
	state      bool // random H0 (and C0): forward and the two-piece check only
	grads      string
}

// Which gradients a backward case asks for (the others are nil).
const (
	gradsAll     = "all"
	gradsX       = "x"       // dX only: no weight gradient wanted
	gradsWeights = "weights" // no dX wanted
)

func testRNN(t *testing.T, b nn.Backend, gru bool) {
	var cases []rnnCase
	for _, bias := range []bool{true, false} {
		cases = append(cases,
			rnnCase{B: 1, L: 1, I: 3, H: 2, bias: bias, grads: gradsAll},
			rnnCase{B: 3, L: 6, I: 5, H: 4, bias: bias, grads: gradsAll},
			rnnCase{B: 1, L: 6, I: 2, H: 5, bias: bias, grads: gradsAll},
			rnnCase{B: 3, L: 1, I: 1, H: 3, bias: bias, grads: gradsAll},
			rnnCase{B: 2, L: 7, I: 4, H: 1, bias: bias, grads: gradsAll},
			rnnCase{B: 3, L: 6, I: 5, H: 4, bias: bias, state: true},
			rnnCase{B: 1, L: 9, I: 3, H: 7, bias: bias, state: true},
		)
	}
	cases = append(cases,
		rnnCase{B: 3, L: 5, I: 3, H: 4, bias: true, grads: gradsX},
		rnnCase{B: 3, L: 5, I: 3, H: 4, bias: true, grads: gradsWeights},
		rnnCase{B: 4, L: 11, I: 5, H: 7, bias: true, grads: gradsAll},
	)
	op := "LSTM"
	G := 4
	if gru {
		op, G = "GRU", 3
	}
	desc := func(c rnnCase) string {
		s := fmt.Sprintf("B%d_L%d_I%d_H%d_bias%v", c.B, c.L, c.I, c.H, c.bias)
		if c.state {
			s += "_state"
		}
		if c.grads != "" {
			s += "_grads_" + c.grads
		}
		return s
	}
	runCases(t, b, op, cases, desc, func(tt *tester, c rnnCase) {
		B, L, I, H, GH := c.B, c.L, c.I, c.H, G*c.H
		savedLen := nn.LSTMSavedLen(B, L, H)
		if gru {
			savedLen = nn.GRUSavedLen(B, L, H)
		}
		// Weights of O(1) pre-activations: both saturated and linear gates.
		scale := 1 / math.Sqrt(float64(min(I, H)))
		x, xs := tt.input(tt.randn(B * L * I))
		wih, wihs := tt.input(tt.uniform(GH*I, -scale, scale))
		whh, whhs := tt.input(tt.uniform(GH*H, -scale, scale))
		var bih, bhh nn.Buffer
		var bihs, bhhs []float64
		if c.bias {
			bih, bihs = tt.input(tt.uniform(GH, -1, 1))
			bhh, bhhs = tt.input(tt.uniform(GH, -1, 1))
		}
		var h0, c0 nn.Buffer
		var h0s, c0s []float64
		if c.state {
			h0, h0s = tt.input(tt.uniform(B*H, -1, 1))
			if !gru {
				c0, c0s = tt.input(tt.randn(B * H))
			}
		}
		args := nn.RNNArgs{B: B, L: L, I: I, H: H, X: x, Wih: wih, Whh: whh, Bih: bih, Bhh: bhh, H0: h0, C0: c0}
		forward := func(out, hT, cT, saved nn.Buffer, a nn.RNNArgs) {
			if gru {
				tt.b.GRU(out, hT, saved, a)
			} else {
				tt.b.LSTM(out, hT, cT, saved, a)
			}
		}
		wantOut, wantH, wantC := refRNN(gru, xs, wihs, whhs, bihs, bhhs, h0s, c0s, B, L, I, H)

		out, hT, saved := tt.output(B*L*H), tt.output(B*H), tt.output(savedLen)
		var cT nn.Buffer
		if !gru {
			cT = tt.output(B * H)
		}
		forward(out, hT, cT, saved, args)
		tt.fwd("out", tt.result("out", out, B*L*H), wantOut)
		tt.fwd("hT", tt.result("hT", hT, B*H), wantH)
		if !gru {
			tt.fwd("cT", tt.result("cT", cT, B*H), wantC)
		}
		tt.result("saved", saved, savedLen) // its guard only: the layout is the backend's

		// Without saved and final states (inference) the output is the same.
		out2 := tt.output(B * L * H)
		forward(out2, nil, nil, nil, args)
		tt.fwd("out (nothing saved)", tt.result("out (nothing saved)", out2, B*L*H), wantOut)

		if c.state {
			// Two pieces carrying the state equal one run.
			for _, L1 := range []int{1, L / 2, L - 1} {
				if L1 < 1 || L1 >= L {
					continue
				}
				testRNNPieces(tt, gru, c, L1, xs, args, wantOut, wantH, wantC)
			}
			return
		}
		if c.grads == "" {
			return
		}

		dout, douts := tt.input(tt.randn(B * L * H))
		wantX, wantW := c.grads != gradsWeights, c.grads != gradsX
		opt := func(n int, want bool) (accum, nn.Buffer) {
			if !want {
				return accum{}, nil
			}
			a := tt.accum(n, true)
			return a, a.buf
		}
		dx, dxBuf := opt(B*L*I, wantX)
		dwih, dwihBuf := opt(GH*I, wantW)
		dwhh, dwhhBuf := opt(GH*H, wantW)
		dbih, dbihBuf := opt(GH, wantW && c.bias)
		dbhh, dbhhBuf := opt(GH, wantW && c.bias)
		g := nn.RNNGrads{X: dxBuf, Wih: dwihBuf, Whh: dwhhBuf, Bih: dbihBuf, Bhh: dbhhBuf}
		if gru {
			tt.b.GRUBackward(g, args, out, saved, dout)
		} else {
			tt.b.LSTMBackward(g, args, out, saved, dout)
		}
		f := func() []float64 {
			o, _, _ := refRNN(gru, xs, wihs, whhs, bihs, bhhs, nil, nil, B, L, I, H)
			return o
		}
		if wantX {
			tt.grad("dX", tt.delta("dX", dx), vjp(f, xs, douts))
		}
		if wantW {
			tt.grad("dWih", tt.delta("dWih", dwih), vjp(f, wihs, douts))
			tt.grad("dWhh", tt.delta("dWhh", dwhh), vjp(f, whhs, douts))
			if c.bias {
				tt.grad("dBih", tt.delta("dBih", dbih), vjp(f, bihs, douts))
				tt.grad("dBhh", tt.delta("dBhh", dbhh), vjp(f, bhhs, douts))
			}
		}
	})
}

// testRNNPieces runs steps [0, L1) from the case's initial state, then
// steps [L1, L) from the final state of the first piece (the step mode of
// the op), and checks the outputs and final states against one run.
func testRNNPieces(tt *tester, gru bool, c rnnCase, L1 int, xs []float64, args nn.RNNArgs, wantOut, wantH, wantC []float64) {
	tt.Helper()
	B, I, H := c.B, c.I, c.H
	name := fmt.Sprintf("pieces %d+%d", L1, c.L-L1)
	h, cs := args.H0, args.C0
	got := make([]float64, B*c.L*H)
	var hs, css []float64
	for _, p := range [][2]int{{0, L1}, {L1, c.L}} {
		n := p[1] - p[0]
		xp := make([]float64, 0, B*n*I)
		for b := range B {
			xp = append(xp, xs[(b*c.L+p[0])*I:(b*c.L+p[1])*I]...)
		}
		a := args
		a.L, a.H0, a.C0 = n, h, cs
		a.X, _ = tt.input(xp)
		out, hT := tt.output(B*n*H), tt.output(B*H)
		var cT nn.Buffer
		if gru {
			tt.b.GRU(out, hT, nil, a)
		} else {
			cT = tt.output(B * H)
			tt.b.LSTM(out, hT, cT, nil, a)
		}
		o := tt.result(name+" out", out, B*n*H)
		for b := range B {
			copy(got[(b*c.L+p[0])*H:(b*c.L+p[1])*H], o[b*n*H:(b+1)*n*H])
		}
		hs = tt.result(name+" hT", hT, B*H)
		h, cs = hT, cT
		if !gru {
			css = tt.result(name+" cT", cT, B*H)
		}
	}
	tt.fwd(name+" out", got, wantOut)
	tt.fwd(name+" hT", hs, wantH)
	if !gru {
		tt.fwd(name+" cT", css, wantC)
	}
}
