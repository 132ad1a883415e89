package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

func init() { registerFused("SelectiveScan", testSelectiveScan) }

// scanInputs are the host values of a selective scan (nil: absent).
type scanInputs struct {
	u, delta, A, Bm, Cm, D, z, bias, h0 []float64
}

// refSelectiveScan is mamba_ssm's selective_scan_ref written as the
// recurrence over time, all states of a step at once:
//
//	δ = delta + bias (softplus'ed when asked)
//	h_t[d,n] = exp(δ_t[d]·A[d,n])·h_{t−1}[d,n] + δ_t[d]·Bm_t[g,n]·u_t[d]
//	y_t[d]   = Σ_n Cm_t[g,n]·h_t[d,n] + D[d]·u_t[d]
//	out_t[d] = y_t[d]·SiLU(z_t[d])
//
// with g = d/(D/G), h_{−1} = h0 (zeros when nil); hT is h_{L−1}.
func refSelectiveScan(in scanInputs, B, D, L, N, G int, softplus bool) (out, hT []float64) {
	out, hT = make([]float64, B*D*L), make([]float64, B*D*N)
	h := make([]float64, D*N)
	for b := 0; b < B; b++ {
		for i := range h {
			h[i] = 0
			if in.h0 != nil {
				h[i] = in.h0[b*D*N+i]
			}
		}
		for t := 0; t < L; t++ {
			for d := 0; d < D; d++ {
				g := d / (D / G)
				x := b*D*L + d*L + t
				dt := in.delta[x]
				if in.bias != nil {
					dt += in.bias[d]
				}
				if softplus && dt <= 20 {
					dt = math.Log1p(math.Exp(dt))
				}
				y := 0.0
				for n := 0; n < N; n++ {
					bc := ((b*G+g)*N+n)*L + t
					h[d*N+n] = math.Exp(dt*in.A[d*N+n])*h[d*N+n] + dt*in.Bm[bc]*in.u[x]
					y += in.Cm[bc] * h[d*N+n]
				}
				if in.D != nil {
					y += in.D[d] * in.u[x]
				}
				if in.z != nil {
					y *= refAct(nn.SiLU, in.z[x])
				}
				out[x] = y
			}
		}
		copy(hT[b*D*N:], h)
	}
	return out, hT
}

type scanCase struct {
	B, D, L, N, G    int
	noD, noZ, noBias bool
	softplus         bool
	stiff            bool   // δ·A far below exp's float32 limit for some states
	h0               bool   // forward only: start from a random state, check hT
	split            int    // > 0: also run as pieces [0, split), [split, L) carrying the state
	only             string // "": every gradient; "none"; or the one gradient wanted ("A", "Bm")
	noDU, noDDelta   bool
}

func testSelectiveScan(t *testing.T, b nn.Backend) {
	var cases []scanCase
	for _, sp := range []bool{true, false} {
		cases = append(cases,
			scanCase{B: 1, D: 1, L: 1, N: 1, G: 1, softplus: sp},
			scanCase{B: 1, D: 3, L: 7, N: 4, G: 1, softplus: sp},
			scanCase{B: 2, D: 4, L: 33, N: 5, G: 2, softplus: sp},
			scanCase{B: 2, D: 3, L: 7, N: 1, G: 1, softplus: sp},
			scanCase{B: 1, D: 4, L: 7, N: 3, G: 2, softplus: sp, noD: true},
			scanCase{B: 1, D: 4, L: 7, N: 3, G: 2, softplus: sp, noZ: true},
			scanCase{B: 1, D: 4, L: 7, N: 3, G: 4, softplus: sp, noBias: true},
			scanCase{B: 2, D: 2, L: 7, N: 3, G: 1, softplus: sp, noD: true, noZ: true, noBias: true},
			scanCase{B: 2, D: 4, L: 9, N: 3, G: 2, softplus: sp, h0: true},
			scanCase{B: 2, D: 4, L: 1, N: 3, G: 2, softplus: sp, h0: true}, // a decoded token
			scanCase{B: 2, D: 4, L: 9, N: 3, G: 2, softplus: sp, split: 4},
			scanCase{B: 1, D: 2, L: 7, N: 3, G: 1, softplus: sp, h0: true, split: 1, noZ: true},
		)
	}
	cases = append(cases,
		scanCase{B: 1, D: 4, L: 17, N: 3, G: 2, softplus: true, stiff: true},
		scanCase{B: 2, D: 17, L: 5, N: 2, G: 1, softplus: true}, // many channels per group
		scanCase{B: 9, D: 4, L: 3, N: 2, G: 2, softplus: true},  // many (b, g) pairs
		scanCase{B: 1, D: 4, L: 7, N: 3, G: 2, softplus: true, noDU: true, noDDelta: true},
		scanCase{B: 1, D: 4, L: 7, N: 3, G: 2, softplus: true, only: "Bm"},
		scanCase{B: 1, D: 4, L: 7, N: 3, G: 2, softplus: true, only: "A"},
		scanCase{B: 1, D: 4, L: 7, N: 3, G: 2, softplus: true, only: "none"},
	)
	desc := func(c scanCase) string {
		s := fmt.Sprintf("B%d_D%d_L%d_N%d_G%d", c.B, c.D, c.L, c.N, c.G)
		for _, f := range []struct {
			on   bool
			name string
		}{{c.softplus, "_softplus"}, {c.noD, "_noD"}, {c.noZ, "_noZ"}, {c.noBias, "_noBias"},
			{c.stiff, "_stiff"}, {c.h0, "_h0"}, {c.noDU, "_noDU"}, {c.noDDelta, "_noDDelta"}} {
			if f.on {
				s += f.name
			}
		}
		if c.split > 0 {
			s += fmt.Sprintf("_split%d", c.split)
		}
		if c.only != "" {
			s += "_only" + c.only
		}
		return s
	}
	runCases(t, b, "SelectiveScan", cases, desc, func(tt *tester, c scanCase) { tt.scanCase(c) })
}

func (tt *tester) scanCase(c scanCase) {
	B, D, L, N, G := c.B, c.D, c.L, c.N, c.G
	nBDL, nBGNL := B*D*L, B*G*N*L
	var in scanInputs
	a := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: c.softplus}
	a.U, in.u = tt.input(tt.randn(nBDL))
	// δ stays positive and O(1): raw values around 0 through softplus, or
	// positive values (and bias) without it.
	if c.softplus {
		a.Delta, in.delta = tt.input(tt.randn(nBDL))
	} else {
		a.Delta, in.delta = tt.input(tt.uniform(nBDL, 0.05, 1))
	}
	Av := make([]float64, D*N)
	for i := range Av {
		Av[i] = -math.Exp(0.5 * tt.rng.NormFloat64())
		if c.stiff && i%2 == 0 {
			Av[i] = -200 // exp(δ·A) underflows float32 for δ > 0.45
		}
	}
	a.A, in.A = tt.input(Av)
	a.Bm, in.Bm = tt.input(tt.randn(nBGNL))
	a.Cm, in.Cm = tt.input(tt.randn(nBGNL))
	if !c.noD {
		a.Dskip, in.D = tt.input(tt.randn(D))
	}
	if !c.noZ {
		a.Z, in.z = tt.input(tt.randn(nBDL))
	}
	if !c.noBias {
		if c.softplus {
			a.DeltaBias, in.bias = tt.input(tt.randn(D))
		} else {
			a.DeltaBias, in.bias = tt.input(tt.uniform(D, 0, 0.3))
		}
	}
	if c.h0 {
		a.H0, in.h0 = tt.input(tt.randn(B * D * N))
	}

	wantOut, wantHT := refSelectiveScan(in, B, D, L, N, G, c.softplus)
	out, hT := tt.output(nBDL), tt.output(B*D*N)
	tt.b.SelectiveScan(out, hT, a)
	tt.fwd("out", tt.result("out", out, nBDL), wantOut)
	tt.fwd("hT", tt.result("hT", hT, B*D*N), wantHT)
	if c.h0 { // in place (hT = H0, step mode): the state starts as a copy of H0
		ip := a
		ip.H0, _ = tt.input(in.h0)
		out3 := tt.output(nBDL)
		tt.b.SelectiveScan(out3, ip.H0, ip)
		tt.fwd("out (in place)", tt.result("out (in place)", out3, nBDL), wantOut)
		tt.fwd("hT (in place)", tt.result("hT (in place)", ip.H0, B*D*N), wantHT)
	}
	// Without hT the output is the same.
	out2 := tt.output(nBDL)
	tt.b.SelectiveScan(out2, nil, a)
	tt.fwd("out (no hT)", tt.result("out (no hT)", out2, nBDL), wantOut)

	if c.split > 0 {
		tt.scanPieces(c, a, in, wantOut, wantHT)
	}
	if c.h0 {
		return // backwards start from a zero state
	}

	dout, douts := tt.input(tt.randn(nBDL))
	want := func(name string) bool {
		switch c.only {
		case "":
			return !(name == "U" && c.noDU) && !(name == "Delta" && c.noDDelta)
		case "none":
			return false
		}
		return name == c.only
	}
	type gradIn struct {
		name string
		x    []float64 // the input's values (nil: absent)
		n    int
		acc  accum
		buf  nn.Buffer
	}
	grads := []*gradIn{
		{name: "U", x: in.u, n: nBDL}, {name: "Delta", x: in.delta, n: nBDL}, {name: "A", x: in.A, n: D * N},
		{name: "Bm", x: in.Bm, n: nBGNL}, {name: "Cm", x: in.Cm, n: nBGNL}, {name: "Dskip", x: in.D, n: D},
		{name: "Z", x: in.z, n: nBDL}, {name: "DeltaBias", x: in.bias, n: D},
	}
	for _, g := range grads {
		if g.x != nil && want(g.name) {
			g.acc, g.buf = tt.optAccum(g.n, false)
		}
	}
	tt.b.SelectiveScanBackward(nn.ScanGrads{U: grads[0].buf, Delta: grads[1].buf, A: grads[2].buf, Bm: grads[3].buf,
		Cm: grads[4].buf, Dskip: grads[5].buf, Z: grads[6].buf, DeltaBias: grads[7].buf}, a, dout)
	f := func() []float64 { o, _ := refSelectiveScan(in, B, D, L, N, G, c.softplus); return o }
	for _, g := range grads {
		if g.buf != nil {
			tt.grad("d"+g.name, tt.delta("d"+g.name, g.acc), vjp(f, g.x, douts))
		}
	}
}

// scanPieces runs the scan over [0, split) then [split, L), the first
// piece's hT being the second's H0, and checks that the pieces give the
// whole run's output and final state.
func (tt *tester) scanPieces(c scanCase, a nn.ScanArgs, in scanInputs, wantOut, wantHT []float64) {
	tt.Helper()
	B, D, L, N, G := c.B, c.D, c.L, c.N, c.G
	rows, rowsBC := B*D, B*G*N
	got := make([]float64, rows*L)
	h0 := a.H0
	var hT nn.Buffer
	for _, p := range [][2]int{{0, c.split}, {c.split, L}} {
		lo, hi := p[0], p[1]
		pa := a
		pa.L = hi - lo
		pa.H0 = h0
		pa.U, _ = tt.input(sliceCols(in.u, rows, L, lo, hi))
		pa.Delta, _ = tt.input(sliceCols(in.delta, rows, L, lo, hi))
		pa.Bm, _ = tt.input(sliceCols(in.Bm, rowsBC, L, lo, hi))
		pa.Cm, _ = tt.input(sliceCols(in.Cm, rowsBC, L, lo, hi))
		if in.z != nil {
			pa.Z, _ = tt.input(sliceCols(in.z, rows, L, lo, hi))
		}
		out := tt.output(rows * pa.L)
		hT = tt.output(B * D * N)
		tt.b.SelectiveScan(out, hT, pa)
		putCols(got, tt.result("piece out", out, rows*pa.L), rows, L, lo, hi)
		h0 = hT
	}
	tt.fwd("pieces out", got, wantOut)
	tt.fwd("pieces hT", tt.result("pieces hT", hT, B*D*N), wantHT)
}
