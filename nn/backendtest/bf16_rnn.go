package backendtest

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"seqbench/nn"
)

// RunBF16RNN runs the bfloat16 LSTM and GRU cases: RunBF16's, and the
// state-carrying ones below. A backend with more than one way to run the
// recurrence (CUDA's persistent kernel and its per-step launches) runs it
// once per way.
func RunBF16RNN(t *testing.T, b nn.MixedBackend) {
	t.Run("LSTM", func(t *testing.T) { testBF16RNN(t, b, false) })
	t.Run("GRU", func(t *testing.T) { testBF16RNN(t, b, true) })
	t.Run("LSTMState", func(t *testing.T) { testBF16RNNState(t, b, false) })
	t.Run("GRUState", func(t *testing.T) { testBF16RNNState(t, b, true) })
	t.Run("Contracts", func(t *testing.T) { testBF16RNNContracts(t, b) })
}

// testBF16RNNContracts: a bfloat16 state (H0, C0, hT, cT) panics,
// saying it must be float32, and so does a float32 saved beside a
// bfloat16 out (saved holds activations, in out's type), forward and
// backward.
func testBF16RNNContracts(t *testing.T, b nn.MixedBackend) {
	const B, L, I, H = 1, 2, 2, 2
	type contract struct {
		name string
		call func(tt *tester, a nn.RNNArgs)
	}
	h := func(tt *tester, n int) nn.Buffer { return tt.allocAs(n, bf16) }
	f := func(tt *tester, n int) nn.Buffer { return tt.allocAs(n, fp32) }
	lstmSaved, gruSaved := nn.LSTMSavedLen(B, L, H), nn.GRUSavedLen(B, L, H)
	cases := []contract{
		{"LSTM_hT", func(tt *tester, a nn.RNNArgs) { tt.b.LSTM(h(tt, B*L*H), h(tt, B*H), f(tt, B*H), h(tt, lstmSaved), a) }},
		{"LSTM_cT", func(tt *tester, a nn.RNNArgs) { tt.b.LSTM(h(tt, B*L*H), f(tt, B*H), h(tt, B*H), h(tt, lstmSaved), a) }},
		{"LSTM_saved", func(tt *tester, a nn.RNNArgs) { tt.b.LSTM(h(tt, B*L*H), nil, nil, f(tt, lstmSaved), a) }},
		{"LSTM_C0", func(tt *tester, a nn.RNNArgs) {
			a.C0 = h(tt, B*H)
			tt.b.LSTM(h(tt, B*L*H), nil, nil, nil, a)
		}},
		{"GRU_H0", func(tt *tester, a nn.RNNArgs) {
			a.H0 = h(tt, B*H)
			tt.b.GRU(h(tt, B*L*H), nil, nil, a)
		}},
		{"GRU_saved", func(tt *tester, a nn.RNNArgs) { tt.b.GRU(h(tt, B*L*H), nil, f(tt, gruSaved), a) }},
		{"LSTMBackward_saved", func(tt *tester, a nn.RNNArgs) {
			tt.b.LSTMBackward(nn.RNNGrads{X: h(tt, B*L*I)}, a, h(tt, B*L*H), f(tt, lstmSaved), h(tt, B*L*H))
		}},
		{"GRUBackward_saved", func(tt *tester, a nn.RNNArgs) {
			tt.b.GRUBackward(nn.RNNGrads{X: h(tt, B*L*I)}, a, h(tt, B*L*H), f(tt, gruSaved), h(tt, B*L*H))
		}},
		{"GRUBackward_H0", func(tt *tester, a nn.RNNArgs) {
			a.H0 = h(tt, B*H)
			tt.b.GRUBackward(nn.RNNGrads{X: h(tt, B*L*I)}, a, h(tt, B*L*H), h(tt, gruSaved), h(tt, B*L*H))
		}},
	}
	runCases(t, b, "BF16RNNContracts", cases, func(c contract) string { return c.name }, func(tt *tester, c contract) {
		G := 4
		if strings.HasPrefix(c.name, "GRU") {
			G = 3
		}
		a := nn.RNNArgs{B: B, L: L, I: I, H: H, X: h(tt, B*L*I), Wih: f(tt, G*H*I), Whh: f(tt, G*H*H)}
		defer func() {
			r := recover()
			if r == nil {
				tt.Fatalf("%s: no panic", c.name)
			}
			// A state names the rule; a saved of the wrong type names
			// itself, its type and the activation it must match.
			want := "must be float32"
			if strings.HasSuffix(c.name, "_saved") {
				want = "saved is float32 but"
			}
			if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
				tt.Fatalf("%s: the panic %q does not say %q", c.name, msg, want)
			}
		}()
		c.call(tt, a)
	})
}

// rnnSavedReads is how many values of saved one element of dgates reads
// in the backward cells, the most of any gate: the LSTM's dg_i reads
// i, g, o and c (dg_f: f, o, c and the previous step's c), the GRU's dg_r
// reads r, z, n and hn.
const rnnSavedReads = 4

// rnnSavedTol is the tolerance term for the rounding of saved in a
// gradient that sums n terms of dgates (n = B·L for the weights and
// biases, the input-side gate columns for dX). saved is bfloat16, so each
// of the values an element of dgates reads is off by up to u relative to
// itself: that element is then off by up to rnnSavedReads·u relative
// (first order; the carried dc and dh bring later steps' roundings,
// damped by the forget gate or z), and a sum of n such terms by
// rnnSavedReads·u·Σ|terms|/|Σ terms|, whose ratio is bounded, as for the
// rounding of h (testBF16RNN), by √n for terms of random signs. The
// measured errors are far below: 0.2–1.2u norm-wise for every gradient
// of the LSTM and the GRU, here and at B 2, L 2048, I = H = 64, where
// rounding the LSTM's cell states as well as its gates adds under 0.03u.
func rnnSavedTol(n int) float64 { return rnnSavedReads * u * math.Sqrt(float64(n)) }

// rnnInputCols is how many columns of dgates meet Wih, so many terms in
// each element of dX: every gate of the LSTM (4H), r, z and n of the GRU
// (3H).
func rnnInputCols(gru bool, H int) int {
	if gru {
		return 3 * H
	}
	return 4 * H
}

// testBF16RNNState: the LSTM or GRU of testBF16RNN with a given initial
// state (H0, and C0 for the LSTM, float32 like hT and cT), in the ways the
// model path calls it:
//
//   - with saved, hT and cT (training), then its backward, whose gradients
//     are those of the function of the given state;
//   - without them (inference), the same out;
//   - in place (hT = H0, cT = C0: the step mode), the same out and final
//     states;
//   - backwards asking for dX alone and for the weights' gradients alone
//     (a backend may skip the work, or the float32 copies, that the others
//     need).
//
// The tolerances are testBF16RNN's: out is rounded once (u), the states
// are float32 (the float32 tolerance: the recurrence carries h_t in
// float32, as the float32 kernel does), dX is accumulated into bfloat16,
// the weights' gradients carry the rounding of the h_t read from the
// bfloat16 out (u·√(B·L) more), and both carry the rounding of the
// bfloat16 saved (rnnSavedTol). The t = 0 terms of dWhh meet H0, and the
// LSTM's first step reads C0 as c_{t−1}, both float32 and exact, so those
// bounds still hold.
func testBF16RNNState(t *testing.T, b nn.MixedBackend, gru bool) {
	cases := []rnnCase{{B: 3, L: 6, I: 5, H: 4, bias: true, state: true}, {B: 2, L: 1, I: 3, H: 5, state: true}}
	G := 4
	if gru {
		G = 3
	}
	desc := func(c rnnCase) string { return fmt.Sprintf("B%d_L%d_I%d_H%d_bias%v", c.B, c.L, c.I, c.H, c.bias) }
	runCases(t, b, fmt.Sprintf("BF16RNNState%v", gru), cases, desc, func(tt *tester, c rnnCase) {
		B, L, I, H, GH := c.B, c.L, c.I, c.H, G*c.H
		savedLen := nn.LSTMSavedLen(B, L, H)
		if gru {
			savedLen = nn.GRUSavedLen(B, L, H)
		}
		scale := 1 / math.Sqrt(float64(min(I, H)))
		x, xs := tt.inputAs(bf16, tt.randn(B*L*I))
		wih, wihs := tt.inputAs(fp32, tt.uniform(GH*I, -scale, scale))
		whh, whhs := tt.inputAs(fp32, tt.uniform(GH*H, -scale, scale))
		var bih, bhh nn.Buffer
		var bihs, bhhs []float64
		if c.bias {
			bih, bihs = tt.inputAs(fp32, tt.uniform(GH, -1, 1))
			bhh, bhhs = tt.inputAs(fp32, tt.uniform(GH, -1, 1))
		}
		h0, h0s := tt.inputAs(fp32, tt.uniform(B*H, -1, 1))
		var c0 nn.Buffer
		var c0s []float64
		if !gru {
			c0, c0s = tt.inputAs(fp32, tt.randn(B*H))
		}
		a := nn.RNNArgs{B: B, L: L, I: I, H: H, X: x, Wih: wih, Whh: whh, Bih: bih, Bhh: bhh, H0: h0, C0: c0}
		forward := func(out, hT, cT, saved nn.Buffer, a nn.RNNArgs) {
			if gru {
				tt.b.GRU(out, hT, saved, a)
			} else {
				tt.b.LSTM(out, hT, cT, saved, a)
			}
		}
		wantOut, wantH, wantC := refRNN(gru, xs, wihs, whhs, bihs, bhhs, h0s, c0s, B, L, I, H)

		out, hT, saved := tt.outputAs(bf16, B*L*H), tt.outputAs(fp32, B*H), tt.allocAs(savedLen, bf16)
		var cT nn.Buffer
		if !gru {
			cT = tt.outputAs(fp32, B*H)
		}
		forward(out, hT, cT, saved, a)
		tt.readAs("saved", saved, bf16) // rounded once by the forward
		tt.checkOut("out", out, B*L*H, wantOut)
		tt.checkOut("hT", hT, B*H, wantH)
		if !gru {
			tt.checkOut("cT", cT, B*H, wantC)
		}

		out2 := tt.outputAs(bf16, B*L*H)
		forward(out2, nil, nil, nil, a)
		tt.checkOut("out (nothing saved)", out2, B*L*H, wantOut)

		// In place: the states start as copies of H0 and C0 (plus a guard).
		hs, _ := tt.inputAs(fp32, h0s)
		var cs nn.Buffer
		if !gru {
			cs, _ = tt.inputAs(fp32, c0s)
		}
		ip := a
		ip.H0, ip.C0 = hs, cs
		out3 := tt.outputAs(bf16, B*L*H)
		forward(out3, hs, cs, nil, ip)
		tt.checkOut("out (in place)", out3, B*L*H, wantOut)
		tt.checkOut("hT (in place)", hs, B*H, wantH)
		if !gru {
			tt.checkOut("cT (in place)", cs, B*H, wantC)
		}

		f := func() []float64 {
			o, _, _ := refRNN(gru, xs, wihs, whhs, bihs, bhhs, h0s, c0s, B, L, I, H)
			return o
		}
		dout, douts := tt.inputAs(bf16, tt.randn(B*L*H))
		backward := func(g nn.RNNGrads) {
			if gru {
				tt.b.GRUBackward(g, a, out, saved, dout)
			} else {
				tt.b.LSTMBackward(g, a, out, saved, dout)
			}
		}
		type weight struct {
			name string
			x    []float64
			acc  accum
		}
		weights := func() []weight {
			ws := []weight{{"Wih", wihs, tt.accumAs(fp32, GH*I)}, {"Whh", whhs, tt.accumAs(fp32, GH*H)}}
			if c.bias {
				ws = append(ws, weight{"Bih", bihs, tt.accumAs(fp32, GH)}, weight{"Bhh", bhhs, tt.accumAs(fp32, GH)})
			}
			return ws
		}
		grads := func(dx *accum, ws []weight) nn.RNNGrads {
			var g nn.RNNGrads
			if dx != nil {
				g.X = dx.buf
			}
			for _, w := range ws {
				switch w.name {
				case "Wih":
					g.Wih = w.acc.buf
				case "Whh":
					g.Whh = w.acc.buf
				case "Bih":
					g.Bih = w.acc.buf
				case "Bhh":
					g.Bhh = w.acc.buf
				}
			}
			return g
		}
		checkWeights := func(what string, ws []weight) {
			for _, w := range ws {
				got := tt.delta("d"+w.name+what, w.acc)
				AssertClose(tt, "d"+w.name+what, got, vjp(f, w.x, douts), tt.gradTol+u*math.Sqrt(float64(B*L))+rnnSavedTol(B*L))
			}
		}

		dx, ws := tt.accumAs(bf16, B*L*I), weights()
		backward(grads(&dx, ws))
		tt.checkAccumPlus("dX", dx, vjp(f, xs, douts), rnnSavedTol(rnnInputCols(gru, H)))
		checkWeights("", ws)

		dxOnly := tt.accumAs(bf16, B*L*I)
		backward(grads(&dxOnly, nil))
		tt.checkAccumPlus("dX (alone)", dxOnly, vjp(f, xs, douts), rnnSavedTol(rnnInputCols(gru, H)))

		wsOnly := weights()
		backward(grads(nil, wsOnly))
		checkWeights(" (without dX)", wsOnly)
	})
}
