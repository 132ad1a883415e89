package backendtest

import (
	"fmt"
	"strings"
	"testing"

	"seqbench/nn"
)

// RunBF16SSDStates checks the SSD's state-carrying paths in the bfloat16
// types (x, dt, Bm, Cm, out, dout and their gradients bfloat16; A, Dskip,
// DtBias, H0 and hT float32), which testBF16SSD leaves out: a given H0,
// forward and backward; several heads' dBm, dCm summed in a group against
// one head per group (the gradient accumulated straight into bfloat16);
// runs longer than one tile of a GPU kernel (32 steps); N ≥ 32 (16 states a
// GPU lane); and a sequence in two pieces, the first's float32 hT passed
// as the second's H0. The tolerances are the file header's (bf16.go): an
// output or the state written once, a gradient accumulated into.
func RunBF16SSDStates(t *testing.T, b nn.MixedBackend) {
	t.Run("H0", func(t *testing.T) { testBF16SSDH0(t, b) })
	t.Run("Pieces", func(t *testing.T) { testBF16SSDPieces(t, b) })
	t.Run("Contracts", func(t *testing.T) { testBF16SSDContracts(t, b) })
}

// ssdBF16Inputs draws c's inputs, the activations re-uploaded as bfloat16,
// the parameters and H0 float32.
func (tt *tester) ssdBF16Inputs(c ssdCase) ssdInputs {
	in := tt.ssdDraw(c)
	in.args.X, in.x = tt.toBF16(in.x)
	in.args.Dt, in.dt = tt.toBF16(in.dt)
	in.args.Bm, in.bm = tt.toBF16(in.bm)
	in.args.Cm, in.cm = tt.toBF16(in.cm)
	return in
}

// testBF16SSDH0: the forward's out and hT, and every gradient, from a
// random H0 (the backward honours a given H0: nn.SSDArgs).
func testBF16SSDH0(t *testing.T, b nn.MixedBackend) {
	cases := []ssdCase{
		{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true, h0: true},
		{B: 2, L: 70, H: 2, P: 3, G: 2, N: 5, Chunk: 16, softplus: true, h0: true}, // a head per group, 3 tiles
		{B: 1, L: 40, H: 2, P: 2, G: 1, N: 33, Chunk: 8, softplus: true, h0: true}, // N ≥ 32
		{B: 1, L: 9, H: 2, P: 3, G: 1, N: 3, Chunk: 4, h0: true, noD: true, noBias: true},
		{B: 2, L: 1, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true, h0: true}, // a decoded token
	}
	runCases(t, b, "BF16SSDH0", cases, ssdCase.desc, func(tt *tester, c ssdCase) {
		in := tt.ssdBF16Inputs(c)
		nx, nd, nbc, nh := c.B*c.L*c.H*c.P, c.B*c.L*c.H, c.B*c.L*c.G*c.N, c.B*c.H*c.P*c.N
		out, hT := tt.outputAs(bf16, nx), tt.outputAs(fp32, nh)
		tt.b.SSD(out, hT, in.args)
		wantOut, wantHT := refSSD(c, in)
		tt.checkOut("out", out, nx, wantOut)
		tt.checkOut("hT", hT, nh, wantHT)
		// In place (hT = H0, step mode): the state starts as a copy of H0.
		ip := in.args
		ip.H0, _ = tt.inputAs(fp32, in.h0)
		out2 := tt.outputAs(bf16, nx)
		tt.b.SSD(out2, ip.H0, ip)
		tt.checkOut("out (in place)", out2, nx, wantOut)
		tt.checkOut("hT (in place)", ip.H0, nh, wantHT)
		// A bfloat16 state (decode), in place: H0 as rounded, hT rounded
		// once.
		sa, sin := in.args, in
		sa.H0, sin.h0 = tt.inputAs(bf16, in.h0)
		sOut, sHT := refSSD(c, sin)
		out3 := tt.outputAs(bf16, nx)
		tt.b.SSD(out3, sa.H0, sa)
		tt.checkOut("out (bfloat16 state)", out3, nx, sOut)
		tt.checkOut("hT (bfloat16 state)", sa.H0, nh, sHT)

		dout, douts := tt.inputAs(bf16, tt.randn(nx))
		type gradOf struct {
			name string
			x    []float64
			acc  accum
			slot *nn.Buffer
		}
		var g nn.SSDGrads
		all := []gradOf{{"X", in.x, tt.accumAs(bf16, nx), &g.X}, {"Dt", in.dt, tt.accumAs(bf16, nd), &g.Dt},
			{"A", in.A, tt.accumAs(fp32, c.H), &g.A}, {"Bm", in.bm, tt.accumAs(bf16, nbc), &g.Bm},
			{"Cm", in.cm, tt.accumAs(bf16, nbc), &g.Cm}}
		if in.D != nil {
			all = append(all, gradOf{"Dskip", in.D, tt.accumAs(fp32, c.H), &g.Dskip})
		}
		if in.bias != nil {
			all = append(all, gradOf{"DtBias", in.bias, tt.accumAs(fp32, c.H), &g.DtBias})
		}
		for _, gr := range all {
			*gr.slot = gr.acc.buf
		}
		tt.b.SSDBackward(g, in.args, dout)
		f := func() []float64 { o, _ := refSSD(c, in); return o }
		for _, gr := range all {
			tt.checkAccum("d"+gr.name, gr.acc, vjp(f, gr.x, douts))
		}
	})
}

// testBF16SSDPieces: two pieces, the first's float32 hT buffer passed as
// the second's H0, give the whole sequence's out and final state (the
// reference runs it in one go); the split is not a multiple of a tile.
func testBF16SSDPieces(t *testing.T, b nn.MixedBackend) {
	type piecesCase struct {
		ssdCase
		split int
	}
	cases := []piecesCase{
		{ssdCase{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Chunk: 8, softplus: true}, 13},
		{ssdCase{B: 1, L: 70, H: 2, P: 2, G: 2, N: 33, Chunk: 16, softplus: true, h0: true}, 45},
	}
	desc := func(c piecesCase) string { return fmt.Sprintf("%s_split%d", c.desc(), c.split) }
	runCases(t, b, "BF16SSDPieces", cases, desc, func(tt *tester, c piecesCase) {
		in := tt.ssdBF16Inputs(c.ssdCase)
		B, L, H, P, G, N := c.B, c.L, c.H, c.P, c.G, c.N
		nx, nh := B*L*H*P, B*H*P*N
		wantOut, wantHT := refSSD(c.ssdCase, in)

		// piece slices steps [t0, t1) of a (B, L, ...) bfloat16 tensor of
		// row width w (its values are bfloat16 already: stored as they are).
		piece := func(x []float64, w, t0, t1 int) nn.Buffer {
			var s []float64
			for bi := range B {
				s = append(s, x[(bi*L+t0)*w:(bi*L+t1)*w]...)
			}
			buf, _ := tt.inputAs(bf16, s)
			return buf
		}
		got := make([]float64, nx)
		state := in.args.H0
		var hT nn.Buffer
		for _, span := range [][2]int{{0, c.split}, {c.split, L}} {
			t0, t1 := span[0], span[1]
			n := t1 - t0
			a := in.args
			a.L = n
			a.X, a.Dt = piece(in.x, H*P, t0, t1), piece(in.dt, H, t0, t1)
			a.Bm, a.Cm = piece(in.bm, G*N, t0, t1), piece(in.cm, G*N, t0, t1)
			a.H0 = state
			out := tt.outputAs(bf16, B*n*H*P)
			hT = tt.outputAs(fp32, nh)
			tt.b.SSD(out, hT, a)
			o := tt.resultAs("piece out", out, B*n*H*P)
			for bi := range B {
				copy(got[(bi*L+t0)*H*P:(bi*L+t1)*H*P], o[bi*n*H*P:(bi+1)*n*H*P])
			}
			state = hT
		}
		AssertClose(tt, "out in pieces", got, wantOut, tt.fwdTol+u)
		tt.checkOut("hT in pieces", hT, nh, wantHT)
	})
}

// testBF16SSDContracts: H0 and hT are of one type, and the backward's H0
// is float32; a call that breaks either panics, saying so (as
// testBF16Contracts' cases).
func testBF16SSDContracts(t *testing.T, b nn.MixedBackend) {
	type contract struct {
		name string
		call func(tt *tester)
	}
	// args is a one-element SSD of bfloat16 activations and float32
	// parameters, with the state h0 (nil: none).
	args := func(tt *tester, h0 nn.Buffer) nn.SSDArgs {
		h, f := func() nn.Buffer { return tt.allocAs(1, bf16) }, func() nn.Buffer { return tt.allocAs(1, fp32) }
		return nn.SSDArgs{B: 1, L: 1, H: 1, P: 1, G: 1, N: 1, Chunk: 1, X: h(), Dt: h(), A: f(), Bm: h(), Cm: h(), H0: h0}
	}
	cases := []contract{
		{"SSD_hT_mixed", func(tt *tester) { tt.b.SSD(tt.allocAs(1, bf16), tt.allocAs(1, bf16), args(tt, tt.allocAs(1, fp32))) }},
		{"SSD_H0_mixed", func(tt *tester) { tt.b.SSD(tt.allocAs(1, bf16), tt.allocAs(1, fp32), args(tt, tt.allocAs(1, bf16))) }},
		{"SSDBackward_H0", func(tt *tester) {
			tt.b.SSDBackward(nn.SSDGrads{X: tt.allocAs(1, bf16)}, args(tt, tt.allocAs(1, bf16)), tt.allocAs(1, bf16))
		}},
	}
	runCases(t, b, "BF16SSDContracts", cases, func(c contract) string { return c.name }, func(tt *tester, c contract) {
		defer func() {
			r := recover()
			if r == nil {
				tt.Fatalf("%s: no panic", c.name)
			}
			want := "must be float32"
			if strings.HasSuffix(c.name, "_mixed") {
				want = "must be of one type"
			}
			if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
				tt.Fatalf("%s: the panic %q does not say %q", c.name, msg, want)
			}
		}()
		c.call(tt)
	})
}
