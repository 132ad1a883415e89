package backendtest

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

// BF16SelectiveScanState checks the selective scan's state-carrying forms
// under bf16 (docs/PRECISION.md), beyond testBF16SelectiveScan: a given H0
// (float32) in the forward and the backward, hT (float32), the run cut in
// two pieces carrying the state (the first piece's hT is the second's H0;
// a one-step piece runs the one-step kernels), and lengths and widths that
// take a chunked GPU kernel through several chunks and several channel
// blocks a group (partial sums of dBm and dCm), with L a multiple of 8 and
// not (a GPU's 16-byte bfloat16 loads and its scalar ones). H0 holds
// float32 values that are not bfloat16 values, so a kernel that read it as
// bfloat16 fails. Tolerances as in bf16.go: bfloat16 outputs u plus the
// float32 forward tolerance, float32 outputs (hT, the parameters'
// gradients) the float32 ones, accumulated bfloat16 gradients u times the
// conditioning of the sum plus the float32 gradient tolerance.
func BF16SelectiveScanState(t *testing.T, b nn.MixedBackend) {
	cases := []scanCase{
		{B: 1, D: 1, L: 1, N: 1, G: 1, softplus: true, h0: true},   // one step (generation)
		{B: 1, D: 130, L: 1, N: 2, G: 1, softplus: true, h0: true}, // one step, two blocks a group
		{B: 2, D: 4, L: 9, N: 3, G: 2, softplus: true, h0: true, split: 1},
		{B: 1, D: 2, L: 264, N: 2, G: 1, softplus: true, h0: true, split: 100}, // L % 8 = 0, several chunks
		{B: 1, D: 1, L: 261, N: 2, G: 1, softplus: true},                       // L % 8 ≠ 0, several chunks
		{B: 2, D: 9, L: 16, N: 2, G: 1, softplus: true},                        // two blocks a group, one partial
		{B: 1, D: 18, L: 13, N: 2, G: 2, softplus: true, h0: true},
	}
	desc := func(c scanCase) string {
		s := fmt.Sprintf("B%d_D%d_L%d_N%d_G%d", c.B, c.D, c.L, c.N, c.G)
		if c.h0 {
			s += "_h0"
		}
		if c.split > 0 {
			s += fmt.Sprintf("_split%d", c.split)
		}
		return s
	}
	runCases(t, b, "BF16SelectiveScanState", cases, desc, func(tt *tester, c scanCase) {
		B, D, L, N, G := c.B, c.D, c.L, c.N, c.G
		nBDL := B * D * L
		a, in := tt.bf16ScanInputs(B, D, L, N, G, c.softplus)
		if c.h0 {
			a.H0, in.h0 = tt.inputAs(fp32, tt.randn(B*D*N))
		}
		wantOut, wantHT := refSelectiveScan(in, B, D, L, N, G, c.softplus)
		out, hT := tt.outputAs(bf16, nBDL), tt.outputAs(fp32, B*D*N)
		tt.b.SelectiveScan(out, hT, a)
		tt.checkOut("out", out, nBDL, wantOut)
		tt.checkOut("hT", hT, B*D*N, wantHT)
		if c.h0 { // in place (hT = H0, step mode): the state starts as a copy of H0
			ip := a
			ip.H0, _ = tt.inputAs(fp32, in.h0)
			out2 := tt.outputAs(bf16, nBDL)
			tt.b.SelectiveScan(out2, ip.H0, ip)
			tt.checkOut("out (in place)", out2, nBDL, wantOut)
			tt.checkOut("hT (in place)", ip.H0, B*D*N, wantHT)
			// A bfloat16 state (decode), in place: H0 as rounded, hT
			// rounded once.
			sa, sin := a, in
			sa.H0, sin.h0 = tt.inputAs(bf16, in.h0)
			sOut, sHT := refSelectiveScan(sin, B, D, L, N, G, c.softplus)
			out3 := tt.outputAs(bf16, nBDL)
			tt.b.SelectiveScan(out3, sa.H0, sa)
			tt.checkOut("out (bfloat16 state)", out3, nBDL, sOut)
			tt.checkOut("hT (bfloat16 state)", sa.H0, B*D*N, sHT)
		}

		if c.split > 0 {
			rows, rowsBC := B*D, B*G*N
			got := make([]float64, nBDL)
			h0 := a.H0
			var pT nn.Buffer
			for _, p := range [][2]int{{0, c.split}, {c.split, L}} {
				lo, hi := p[0], p[1]
				pa := a
				pa.L, pa.H0 = hi-lo, h0
				pa.U, _ = tt.inputAs(bf16, sliceCols(in.u, rows, L, lo, hi))
				pa.Delta, _ = tt.inputAs(bf16, sliceCols(in.delta, rows, L, lo, hi))
				pa.Bm, _ = tt.inputAs(bf16, sliceCols(in.Bm, rowsBC, L, lo, hi))
				pa.Cm, _ = tt.inputAs(bf16, sliceCols(in.Cm, rowsBC, L, lo, hi))
				pa.Z, _ = tt.inputAs(bf16, sliceCols(in.z, rows, L, lo, hi))
				po := tt.outputAs(bf16, rows*pa.L)
				pT = tt.outputAs(fp32, B*D*N)
				tt.b.SelectiveScan(po, pT, pa)
				putCols(got, tt.resultAs("piece out", po, rows*pa.L), rows, L, lo, hi)
				h0 = pT
			}
			AssertClose(tt, "pieces out", got, wantOut, tt.fwdTol+u)
			tt.checkOut("pieces hT", pT, B*D*N, wantHT)
		}

		// The backward, from H0 when given.
		tt.checkBF16ScanBackward(in, a, B, D, L, N, G, c.softplus)
	})
}
