package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

func init() {
	registerFused("SSD", testSSD)
	registerFused("SSDChunkInvariance", testSSDChunkInvariance)
	registerFused("SSDPieces", testSSDPieces)
}

// ssdCase is one shape of the Mamba-2 SSD and its options.
type ssdCase struct {
	B, L, H, P, G, N, Chunk int
	softplus                bool
	noD, noBias             bool
	h0                      bool    // start from a random state and check hT (forward only)
	only                    string  // non-empty: ask for this gradient alone ("X", "Bm", ...)
	decay                   float64 // scales A; large values test the clamped exps (forward only)
}

func (c ssdCase) desc() string {
	s := fmt.Sprintf("B%d_L%d_H%d_P%d_G%d_N%d", c.B, c.L, c.H, c.P, c.G, c.N)
	if c.Chunk > 0 {
		s += fmt.Sprintf("_Q%d", c.Chunk)
	}
	if c.softplus {
		s += "_softplus"
	}
	if c.noD {
		s += "_noD"
	}
	if c.noBias {
		s += "_noBias"
	}
	if c.h0 {
		s += "_h0"
	}
	if c.only != "" {
		s += "_only" + c.only
	}
	if c.decay != 0 {
		s += fmt.Sprintf("_decay%g", c.decay)
	}
	return s
}

// ssdInputs are one case's inputs as the backend stores them (float64
// views) and their buffers. D, bias, h0 are nil when absent.
type ssdInputs struct {
	x, dt, A, bm, cm, D, bias, h0 []float64
	args                          nn.SSDArgs
}

// ssdDraw uploads random inputs for c: dt around softplus(−1) ≈ 0.3 (or
// uniform [0.05, 0.5] without the softplus, so that dt + bias stays
// positive), A in −[0.5, 3]·decay, so that the decay across a 37-step run
// spans e^−1 .. e^−30 and every exp path carries weight.
func (tt *tester) ssdDraw(c ssdCase) ssdInputs {
	nx, nd, nbc := c.B*c.L*c.H*c.P, c.B*c.L*c.H, c.B*c.L*c.G*c.N
	var in ssdInputs
	a := nn.SSDArgs{B: c.B, L: c.L, H: c.H, P: c.P, G: c.G, N: c.N, Chunk: c.Chunk, DtSoftplus: c.softplus}
	a.X, in.x = tt.input(tt.randn(nx))
	if c.softplus {
		dt := tt.randn(nd)
		for i := range dt {
			dt[i] = 0.5*dt[i] - 1
		}
		a.Dt, in.dt = tt.input(dt)
	} else {
		a.Dt, in.dt = tt.input(tt.uniform(nd, 0.05, 0.5))
	}
	decay := c.decay
	if decay == 0 {
		decay = 1
	}
	A := tt.uniform(c.H, -3, -0.5)
	for i := range A {
		A[i] *= decay
	}
	a.A, in.A = tt.input(A)
	a.Bm, in.bm = tt.input(tt.randn(nbc))
	a.Cm, in.cm = tt.input(tt.randn(nbc))
	if !c.noD {
		a.Dskip, in.D = tt.input(tt.randn(c.H))
	}
	if !c.noBias {
		if c.softplus {
			bias := tt.randn(c.H)
			for i := range bias {
				bias[i] *= 0.5
			}
			a.DtBias, in.bias = tt.input(bias)
		} else {
			a.DtBias, in.bias = tt.input(tt.uniform(c.H, 0, 0.1))
		}
	}
	if c.h0 {
		a.H0, in.h0 = tt.input(tt.randn(c.B * c.H * c.P * c.N))
	}
	in.args = a
	return in
}

// refSSD is the SSD's definition, the recurrence per (b, h) as a loop
// (nn.SSDArgs): with d = softplus?(dt + bias),
//
//	hs[p,n] = exp(d·A)·hs[p,n] + d·x[p]·B[n]
//	out[p]  = Σ_n hs[p,n]·C[n] + D·x[p]
//
// starting from h0 (zeros when nil); it returns out and the final state.
func refSSD(c ssdCase, in ssdInputs) (out, hT []float64) {
	B, L, H, P, G, N := c.B, c.L, c.H, c.P, c.G, c.N
	out, hT = make([]float64, B*L*H*P), make([]float64, B*H*P*N)
	for b := range B {
		for h := range H {
			g := h / (H / G)
			hs := hT[(b*H+h)*P*N : (b*H+h+1)*P*N]
			if in.h0 != nil {
				copy(hs, in.h0[(b*H+h)*P*N:])
			}
			for t := range L {
				d := in.dt[(b*L+t)*H+h]
				if in.bias != nil {
					d += in.bias[h]
				}
				if c.softplus {
					d = refAct(nn.Softplus, d)
				}
				decay := math.Exp(d * in.A[h])
				x := in.x[((b*L+t)*H+h)*P:]
				bm, cm := in.bm[((b*L+t)*G+g)*N:], in.cm[((b*L+t)*G+g)*N:]
				for p := range P {
					y := 0.0
					for n := range N {
						hs[p*N+n] = decay*hs[p*N+n] + d*x[p]*bm[n]
						y += hs[p*N+n] * cm[n]
					}
					if in.D != nil {
						y += in.D[h] * x[p]
					}
					out[((b*L+t)*H+h)*P+p] = y
				}
			}
		}
	}
	return out, hT
}

func testSSD(t *testing.T, b nn.Backend) {
	cases := []ssdCase{
		{B: 1, L: 1, H: 1, P: 1, G: 1, N: 1, Chunk: 8, softplus: true},
		{B: 1, L: 5, H: 2, P: 3, G: 1, N: 5, Chunk: 8, softplus: true},
		{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true},
		{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Chunk: 16},
		{B: 1, L: 37, H: 3, P: 5, G: 1, N: 3, Chunk: 64, softplus: true},
		{B: 2, L: 37, H: 2, P: 1, G: 2, N: 1, Chunk: 8, softplus: true},
		{B: 1, L: 37, H: 2, P: 3, G: 1, N: 5, Chunk: 16, softplus: true, noD: true, noBias: true},
		{B: 1, L: 5, H: 4, P: 3, G: 2, N: 3, Chunk: 8, noD: true},
		{B: 1, L: 5, H: 2, P: 1, G: 1, N: 3, Chunk: 1, noBias: true},
		{B: 1, L: 9, H: 2, P: 2, G: 1, N: 2, Chunk: 1, softplus: true},
		{B: 1, L: 16, H: 2, P: 3, G: 2, N: 3, Chunk: 8, softplus: true}, // L a multiple of Chunk
		{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true, h0: true},
		{B: 1, L: 5, H: 2, P: 3, G: 1, N: 3, Chunk: 16, h0: true, noD: true},
		{B: 2, L: 1, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true, h0: true}, // a decoded token
		{B: 1, L: 37, H: 2, P: 3, G: 1, N: 3, Chunk: 16, softplus: true, decay: 300},
		{B: 1, L: 13, H: 4, P: 3, G: 2, N: 3, Chunk: 8, softplus: true, only: "X"},
		{B: 1, L: 13, H: 4, P: 3, G: 2, N: 3, Chunk: 8, softplus: true, only: "Bm"},
		{B: 1, L: 13, H: 4, P: 3, G: 2, N: 3, Chunk: 8, softplus: true, only: "A"},
	}
	runCases(t, b, "SSD", cases, ssdCase.desc, func(tt *tester, c ssdCase) {
		in := tt.ssdDraw(c)
		nx, nd, nbc, nh := c.B*c.L*c.H*c.P, c.B*c.L*c.H, c.B*c.L*c.G*c.N, c.B*c.H*c.P*c.N
		out := tt.output(nx)
		var hT nn.Buffer
		if c.h0 {
			hT = tt.output(nh)
		}
		tt.b.SSD(out, hT, in.args)
		wantOut, wantHT := refSSD(c, in)
		tt.fwd("out", tt.result("out", out, nx), wantOut)
		if c.h0 {
			tt.fwd("hT", tt.result("hT", hT, nh), wantHT)
			// In place (hT = H0, step mode): the state starts as a copy of H0.
			ip := in.args
			ip.H0, _ = tt.input(in.h0)
			out2 := tt.output(nx)
			tt.b.SSD(out2, ip.H0, ip)
			tt.fwd("out (in place)", tt.result("out (in place)", out2, nx), wantOut)
			tt.fwd("hT (in place)", tt.result("hT (in place)", ip.H0, nh), wantHT)
		}
		if c.h0 || c.decay != 0 {
			return // backwards start from zeros (nn.SeqOps); the clamp is a forward matter
		}

		dout, douts := tt.input(tt.randn(nx))
		type gradOf struct {
			name string
			n    int
			x    []float64 // the input it differentiates, perturbed by vjp
		}
		all := []gradOf{{"X", nx, in.x}, {"Dt", nd, in.dt}, {"A", c.H, in.A}, {"Bm", nbc, in.bm}, {"Cm", nbc, in.cm}}
		if in.D != nil {
			all = append(all, gradOf{"Dskip", c.H, in.D})
		}
		if in.bias != nil {
			all = append(all, gradOf{"DtBias", c.H, in.bias})
		}
		var g nn.SSDGrads
		slots := map[string]*nn.Buffer{"X": &g.X, "Dt": &g.Dt, "A": &g.A, "Bm": &g.Bm, "Cm": &g.Cm, "Dskip": &g.Dskip, "DtBias": &g.DtBias}
		accs := map[string]accum{}
		for _, gr := range all {
			if c.only != "" && gr.name != c.only {
				continue
			}
			accs[gr.name] = tt.accum(gr.n, true)
			*slots[gr.name] = accs[gr.name].buf
		}
		tt.b.SSDBackward(g, in.args, dout)
		f := func() []float64 {
			o, _ := refSSD(c, in)
			return o
		}
		for _, gr := range all {
			if acc, ok := accs[gr.name]; ok {
				tt.grad("d"+gr.name, tt.delta("d"+gr.name, acc), vjp(f, gr.x, douts))
			}
		}
	})
}

// ssdChunkCase is one chunk-invariance check: the same inputs run at
// several chunk sizes.
type ssdChunkCase struct {
	ssdCase
	chunks []int
}

// The chunked algorithm is a re-association of the recurrence: its result
// must not depend on the chunk size beyond rounding. At L = 100, chunks of
// 8, 16 and 64 (partial last chunks of 4, 4 and 36 steps), 1 and 100 (one
// chunk) must agree with each other to float64 rounding and with the plain
// recurrence (refSSD), output and final state alike.
func testSSDChunkInvariance(t *testing.T, b nn.Backend) {
	base := ssdCase{B: 2, L: 100, H: 4, P: 3, G: 2, N: 5, softplus: true, h0: true}
	cases := []ssdChunkCase{{base, []int{8, 16, 64, 1, 100}}}
	small := base
	small.H, small.P, small.G, small.N, small.h0 = 2, 1, 1, 1, false
	cases = append(cases, ssdChunkCase{small, []int{8, 16, 64, 3}})
	desc := func(c ssdChunkCase) string { return fmt.Sprintf("%s_chunks%v", c.desc(), c.chunks) }
	runCases(t, b, "SSDChunkInvariance", cases, desc, func(tt *tester, c ssdChunkCase) {
		in := tt.ssdDraw(c.ssdCase)
		nx, nh := c.B*c.L*c.H*c.P, c.B*c.H*c.P*c.N
		wantOut, wantHT := refSSD(c.ssdCase, in)
		// Float64 kernels must agree with each other far below the
		// forward tolerance: only the order of the sums differs.
		tol := tt.fwdTol
		if tt.b.DType() == nn.Float64 {
			tol = 1e-13
		}
		var first []float64
		for _, Q := range c.chunks {
			a := in.args
			a.Chunk = Q
			out, hT := tt.output(nx), tt.output(nh)
			tt.b.SSD(out, hT, a)
			got, gotHT := tt.result("out", out, nx), tt.result("hT", hT, nh)
			name := fmt.Sprintf("chunk %d", Q)
			tt.fwd(name+" out vs recurrence", got, wantOut)
			tt.fwd(name+" hT vs recurrence", gotHT, wantHT)
			e, _ := RelErr(got, wantOut)
			tt.Logf("%s: rel err vs recurrence %.2g", name, e)
			if first == nil {
				first = got
				continue
			}
			AssertClose(tt, fmt.Sprintf("chunk %d vs chunk %d", Q, c.chunks[0]), got, first, tol)
			e, _ = RelErr(got, first)
			tt.Logf("%s: rel err vs chunk %d %.2g", name, c.chunks[0], e)
		}
	})
}

// Two pieces carrying the state (the first's hT as the second's H0) give the
// run over the whole sequence: out and the final state. The split is not a
// multiple of the chunk size.
func testSSDPieces(t *testing.T, b nn.Backend) {
	type piecesCase struct {
		ssdCase
		split int
	}
	cases := []piecesCase{
		{ssdCase{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true}, 13},
		{ssdCase{B: 1, L: 37, H: 2, P: 1, G: 1, N: 3, Chunk: 16, noD: true, noBias: true}, 1},
		{ssdCase{B: 1, L: 6, H: 2, P: 3, G: 1, N: 2, Chunk: 4, softplus: true, h0: true}, 5},
	}
	desc := func(c piecesCase) string { return fmt.Sprintf("%s_split%d", c.desc(), c.split) }
	runCases(t, b, "SSDPieces", cases, desc, func(tt *tester, c piecesCase) {
		in := tt.ssdDraw(c.ssdCase)
		B, L, H, P, G, N := c.B, c.L, c.H, c.P, c.G, c.N
		nx, nh := B*L*H*P, B*H*P*N
		whole, wholeHT := tt.output(nx), tt.output(nh)
		tt.b.SSD(whole, wholeHT, in.args)
		wantOut := tt.result("whole out", whole, nx)
		wantHT := tt.result("whole hT", wholeHT, nh)

		// piece slices steps [t0, t1) of a (B, L, ...) tensor of row width w.
		piece := func(x []float64, w, t0, t1 int) nn.Buffer {
			var s []float64
			for bi := range B {
				s = append(s, x[(bi*L+t0)*w:(bi*L+t1)*w]...)
			}
			buf, _ := tt.input(s)
			return buf
		}
		got := make([]float64, nx)
		var state nn.Buffer
		if in.h0 != nil {
			state, _ = tt.input(in.h0)
		}
		for _, span := range [][2]int{{0, c.split}, {c.split, L}} {
			t0, t1 := span[0], span[1]
			n := t1 - t0
			a := in.args
			a.L = n
			a.X, a.Dt = piece(in.x, H*P, t0, t1), piece(in.dt, H, t0, t1)
			a.Bm, a.Cm = piece(in.bm, G*N, t0, t1), piece(in.cm, G*N, t0, t1)
			a.H0 = state
			out, hT := tt.output(B*n*H*P), tt.output(nh)
			tt.b.SSD(out, hT, a)
			o := tt.result("piece out", out, B*n*H*P)
			for bi := range B {
				copy(got[(bi*L+t0)*H*P:(bi*L+t1)*H*P], o[bi*n*H*P:(bi+1)*n*H*P])
			}
			state, _ = tt.input(tt.result("piece hT", hT, nh))
		}
		tt.fwd("out in pieces", got, wantOut)
		tt.fwd("hT in pieces", tt.b.Read(state)[:nh], wantHT)
	})
}
