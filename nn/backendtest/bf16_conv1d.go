package backendtest

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

// BF16Conv1DState checks Conv1D's state-carrying forms under bf16 (step
// mode and pieces, docs/PRECISION.md): x and out bfloat16, w and bias
// float32, and the carried state float32 in and out. The starting state
// holds float32 values that are not bfloat16 values, so a kernel that read
// or wrote it as bfloat16 fails. Tolerances as in bf16.go: each bfloat16
// output is rounded once (u + the float32 forward tolerance); the new
// state is a copy of inputs (the float32 tolerance).
func BF16Conv1DState(t *testing.T, b nn.MixedBackend) {
	cases := []convCase{
		{B: 2, C: 3, L: 7, W: 4, act: nn.SiLU, state: true, split: 3},
		{B: 2, C: 3, L: 11, W: 4, act: nn.SiLU, state: true, split: 5},
		{B: 1, C: 2, L: 7, W: 4, act: nn.Identity, state: true, split: 1}, // a one-token step first
		{B: 2, C: 3, L: 2, W: 4, act: nn.SiLU, state: true, split: 1},     // L < W−1: the state shifts
		{B: 1, C: 2, L: 3, W: 1, act: nn.SiLU, state: true, split: 2},     // W = 1: no state at all
	}
	desc := func(c convCase) string {
		return fmt.Sprintf("B%d_C%d_L%d_W%d_%v_split%d", c.B, c.C, c.L, c.W, c.act, c.split)
	}
	runCases(t, b, "BF16Conv1DState", cases, desc, func(tt *tester, c convCase) {
		n, rows, S := c.B*c.C*c.L, c.B*c.C, c.W-1
		x, xs := tt.inputAs(bf16, tt.randn(n))
		w, ws := tt.inputAs(fp32, tt.randn(c.C*c.W))
		bias, bs := tt.inputAs(fp32, tt.randn(c.C))
		state, st0 := tt.inputAs(fp32, tt.randn(rows*S))
		wantOut, wantState := refConv1D(xs, ws, bs, st0, c.B, c.C, c.L, c.W, c.act)
		out := tt.outputAs(bf16, n)
		tt.b.Conv1D(out, x, w, bias, state, c.B, c.C, c.L, c.W, c.act)
		tt.checkOut("out", out, n, wantOut)
		tt.checkOut("state", state, rows*S, wantState)

		// The same run as two pieces [0, split), [split, L) carrying one
		// state buffer.
		state, _ = tt.inputAs(fp32, st0)
		got := make([]float64, n)
		for _, p := range [][2]int{{0, c.split}, {c.split, c.L}} {
			lo, hi := p[0], p[1]
			part, _ := tt.inputAs(bf16, sliceCols(xs, rows, c.L, lo, hi))
			po := tt.outputAs(bf16, rows*(hi-lo))
			tt.b.Conv1D(po, part, w, bias, state, c.B, c.C, hi-lo, c.W, c.act)
			putCols(got, tt.resultAs("piece out", po, rows*(hi-lo)), rows, c.L, lo, hi)
		}
		AssertClose(tt, "pieces out", got, wantOut, tt.fwdTol+u)
		tt.checkOut("pieces state", state, rows*S, wantState)

		// A bfloat16 state (decode): the carried inputs are bfloat16
		// values, so the new state is exact and out as above for the
		// state as rounded.
		bstate, bst0 := tt.inputAs(bf16, st0)
		wantOut, wantState = refConv1D(xs, ws, bs, bst0, c.B, c.C, c.L, c.W, c.act)
		out = tt.outputAs(bf16, n)
		tt.b.Conv1D(out, x, w, bias, bstate, c.B, c.C, c.L, c.W, c.act)
		tt.checkOut("out (bfloat16 state)", out, n, wantOut)
		AssertClose(tt, "state (bfloat16 state)", tt.resultAs("state", bstate, rows*S), wantState, 0)
	})
}
