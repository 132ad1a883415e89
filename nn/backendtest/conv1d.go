package backendtest

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

func init() { registerFused("Conv1D", testConv1D) }

// refConv1D is the causal depthwise convolution written out: the row of
// (b, c) is prefixed by its W−1 carried inputs (state, or zeros when state
// is nil), and
//
//	out[b,c,t] = act(bias[c] + Σ_k w[c,k]·xp[t+k]),  xp = [state[b,c,:], x[b,c,:]]
//
// newState holds the last W−1 entries of each xp.
func refConv1D(x, w, bias, state []float64, B, C, L, W int, act nn.Activation) (out, newState []float64) {
	S := W - 1
	out, newState = make([]float64, B*C*L), make([]float64, B*C*S)
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			r := b*C + c
			xp := make([]float64, S+L)
			if state != nil {
				copy(xp, state[r*S:(r+1)*S])
			}
			copy(xp[S:], x[r*L:(r+1)*L])
			for t := 0; t < L; t++ {
				p := 0.0
				if bias != nil {
					p = bias[c]
				}
				for k := 0; k < W; k++ {
					p += w[c*W+k] * xp[t+k]
				}
				out[r*L+t] = refAct(act, p)
			}
			copy(newState[r*S:(r+1)*S], xp[L:])
		}
	}
	return out, newState
}

type convCase struct {
	B, C, L, W       int
	noBias           bool
	act              nn.Activation
	state            bool // forward only: start from a random carried state
	split            int  // > 0: also run as pieces [0, split), [split, L) carrying the state
	noDX, noDW, noDB bool
}

func testConv1D(t *testing.T, b nn.Backend) {
	var cases []convCase
	for _, act := range []nn.Activation{nn.Identity, nn.SiLU} {
		cases = append(cases,
			convCase{B: 1, C: 1, L: 1, W: 1, act: act},
			convCase{B: 1, C: 3, L: 7, W: 4, act: act},
			convCase{B: 2, C: 5, L: 33, W: 4, act: act},
			convCase{B: 2, C: 3, L: 2, W: 4, act: act}, // L < W−1
			convCase{B: 1, C: 2, L: 9, W: 2, act: act, noBias: true},
			convCase{B: 3, C: 1, L: 6, W: 5, act: act},
			convCase{B: 2, C: 3, L: 7, W: 4, act: act, state: true},
			convCase{B: 3, C: 5, L: 1, W: 4, act: act, state: true}, // a decoded token
			convCase{B: 3, C: 5, L: 1, W: 2, act: act, state: true, noBias: true},
			convCase{B: 2, C: 3, L: 11, W: 4, act: act, split: 5},
			convCase{B: 1, C: 2, L: 7, W: 4, act: act, state: true, split: 1}, // a one-token step first
			convCase{B: 1, C: 2, L: 3, W: 1, act: act, state: true, split: 2}, // W = 1: no state at all
		)
	}
	cases = append(cases,
		convCase{B: 2, C: 3, L: 8, W: 4, act: nn.SiLU, noDX: true},
		convCase{B: 2, C: 3, L: 8, W: 4, act: nn.SiLU, noDW: true, noDB: true},
		convCase{B: 2, C: 3, L: 8, W: 3, act: nn.Identity, noDX: true, noDW: true},
	)
	desc := func(c convCase) string {
		s := fmt.Sprintf("B%d_C%d_L%d_W%d_%v", c.B, c.C, c.L, c.W, c.act)
		for _, f := range []struct {
			on   bool
			name string
		}{{c.noBias, "_noBias"}, {c.state, "_state"}, {c.noDX, "_noDX"}, {c.noDW, "_noDW"}, {c.noDB, "_noDB"}} {
			if f.on {
				s += f.name
			}
		}
		if c.split > 0 {
			s += fmt.Sprintf("_split%d", c.split)
		}
		return s
	}
	runCases(t, b, "Conv1D", cases, desc, func(tt *tester, c convCase) {
		n, S := c.B*c.C*c.L, c.W-1
		x, xs := tt.input(tt.randn(n))
		w, ws := tt.input(tt.randn(c.C * c.W))
		var bias nn.Buffer
		var bs []float64
		if !c.noBias {
			bias, bs = tt.input(tt.randn(c.C))
		}
		var state nn.Buffer
		var st0 []float64 // nil: zeros
		if c.state {
			state, st0 = tt.input(tt.randn(c.B * c.C * S))
		}
		wantOut, wantState := refConv1D(xs, ws, bs, st0, c.B, c.C, c.L, c.W, c.act)
		out := tt.output(n)
		tt.b.Conv1D(out, x, w, bias, state, c.B, c.C, c.L, c.W, c.act)
		tt.fwd("out", tt.result("out", out, n), wantOut)
		if state != nil {
			// The state is advanced in place; its NaN guard must survive.
			tt.fwd("state", tt.result("state", state, c.B*c.C*S), wantState)
		}

		if c.split > 0 {
			tt.convPieces(c, xs, ws, bias, st0, wantOut, wantState, w)
		}
		if c.state {
			return // backwards start from a zero state
		}

		dout, douts := tt.input(tt.randn(n))
		dx, dxBuf := tt.optAccum(n, c.noDX)
		dw, dwBuf := tt.optAccum(c.C*c.W, c.noDW)
		noDB := c.noDB || c.noBias
		db, dbBuf := tt.optAccum(c.C, noDB)
		tt.b.Conv1DBackward(dxBuf, dwBuf, dbBuf, x, w, bias, dout, c.B, c.C, c.L, c.W, c.act)
		f := func() []float64 { o, _ := refConv1D(xs, ws, bs, nil, c.B, c.C, c.L, c.W, c.act); return o }
		if !c.noDX {
			tt.grad("dx", tt.delta("dx", dx), vjp(f, xs, douts))
		}
		if !c.noDW {
			tt.grad("dw", tt.delta("dw", dw), vjp(f, ws, douts))
		}
		if !noDB {
			tt.grad("dbias", tt.delta("dbias", db), vjp(f, bs, douts))
		}
	})
}

// convPieces runs the conv over [0, split) then [split, L), carrying one
// state buffer (zeros or st0 to start), and checks that the pieces give the
// whole run's output and final state.
func (tt *tester) convPieces(c convCase, xs, ws []float64, bias nn.Buffer, st0, wantOut, wantState []float64, w nn.Buffer) {
	tt.Helper()
	S, rows := c.W-1, c.B*c.C
	init := st0
	if init == nil {
		init = make([]float64, rows*S)
	}
	state, _ := tt.input(init)
	got := make([]float64, rows*c.L)
	for _, p := range [][2]int{{0, c.split}, {c.split, c.L}} {
		lo, hi := p[0], p[1]
		part, _ := tt.input(sliceCols(xs, rows, c.L, lo, hi))
		out := tt.output(rows * (hi - lo))
		tt.b.Conv1D(out, part, w, bias, state, c.B, c.C, hi-lo, c.W, c.act)
		putCols(got, tt.result("piece out", out, rows*(hi-lo)), rows, c.L, lo, hi)
	}
	tt.fwd("pieces out", got, wantOut)
	tt.fwd("pieces state", tt.result("pieces state", state, rows*S), wantState)
}

// sliceCols returns columns [lo, hi) of a rows×cols row-major matrix.
func sliceCols(x []float64, rows, cols, lo, hi int) []float64 {
	out := make([]float64, 0, rows*(hi-lo))
	for r := 0; r < rows; r++ {
		out = append(out, x[r*cols+lo:r*cols+hi]...)
	}
	return out
}

// putCols writes part (rows×(hi−lo)) into columns [lo, hi) of dst (rows×cols).
func putCols(dst, part []float64, rows, cols, lo, hi int) {
	w := hi - lo
	for r := 0; r < rows; r++ {
		copy(dst[r*cols+lo:r*cols+hi], part[r*w:(r+1)*w])
	}
}
