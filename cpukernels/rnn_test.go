package cpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/nn"
)

// The conformance suite (nn/backendtest) checks LSTM and GRU against the
// recurrence and finite differences at small shapes; these tests cover what
// is particular to this backend: the PyTorch golden vectors, the parallel
// layouts and the chunked inference path (which small shapes never reach),
// a given initial state in the backward, and subnormal flushing.

// rnnInputs are the host values of one LSTM/GRU call.
type rnnInputs struct {
	gru                   bool
	B, L, I, H            int
	x, wih, whh, bih, bhh []float64
	h0, c0                []float64 // nil: zeros
	dout                  []float64
}

func (in *rnnInputs) gates() int {
	if in.gru {
		return 3
	}
	return 4
}

func newRNNInputs(rng *rand.Rand, gru bool, B, L, I, H int, state bool) *rnnInputs {
	in := &rnnInputs{gru: gru, B: B, L: L, I: I, H: H}
	GH := in.gates() * H
	s := 1 / math.Sqrt(float64(H))
	in.x = refRandn(rng, B*L*I, 1)
	in.wih, in.whh = refRandn(rng, GH*I, s), refRandn(rng, GH*H, s)
	in.bih, in.bhh = refRandn(rng, GH, 0.5), refRandn(rng, GH, 0.5)
	if state {
		in.h0 = refRandn(rng, B*H, 0.5)
		if !gru {
			in.c0 = refRandn(rng, B*H, 1)
		}
	}
	in.dout = refRandn(rng, B*L*H, 1)
	return in
}

// rnnResult is everything a forward and backward produce.
type rnnResult struct {
	out, hT, cT, saved         []float64
	dx, dwih, dwhh, dbih, dbhh []float64
}

func (r *rnnResult) fields() map[string][]float64 {
	return map[string][]float64{"out": r.out, "hT": r.hT, "cT": r.cT, "saved": r.saved,
		"dX": r.dx, "dWih": r.dwih, "dWhh": r.dwhh, "dBih": r.dbih, "dBhh": r.dbhh}
}

// runRNN runs the forward (saving when save) and, when backward, the
// backward on be.
func runRNN[T Float](be *Backend[T], in *rnnInputs, save, backward bool) *rnnResult {
	B, L, I, H, GH := in.B, in.L, in.I, in.H, in.gates()*in.H
	opt := func(v []float64) nn.Buffer {
		if v == nil {
			return nil
		}
		return refBuf[T](v)
	}
	a := nn.RNNArgs{B: B, L: L, I: I, H: H, X: refBuf[T](in.x), Wih: refBuf[T](in.wih), Whh: refBuf[T](in.whh),
		Bih: opt(in.bih), Bhh: opt(in.bhh), H0: opt(in.h0), C0: opt(in.c0)}
	out, hT, cT := make(Buf[T], B*L*H), make(Buf[T], B*H), make(Buf[T], B*H)
	var saved Buf[T]
	if save {
		n := nn.LSTMSavedLen(B, L, H)
		if in.gru {
			n = nn.GRUSavedLen(B, L, H)
		}
		saved = make(Buf[T], n)
	}
	res := &rnnResult{}
	if in.gru {
		be.GRU(out, hT, saved.orNil(), a)
	} else {
		be.LSTM(out, hT, cT, saved.orNil(), a)
		res.cT = refF64(cT, B*H)
	}
	res.out, res.hT, res.saved = refF64(out, B*L*H), refF64(hT, B*H), refF64(saved, len(saved))
	if !backward {
		return res
	}
	dx, dwih, dwhh := make(Buf[T], B*L*I), make(Buf[T], GH*I), make(Buf[T], GH*H)
	dbih, dbhh := make(Buf[T], GH), make(Buf[T], GH)
	g := nn.RNNGrads{X: dx, Wih: dwih, Whh: dwhh, Bih: dbih, Bhh: dbhh}
	if in.gru {
		be.GRUBackward(g, a, out, saved, refBuf[T](in.dout))
	} else {
		be.LSTMBackward(g, a, out, saved, refBuf[T](in.dout))
	}
	res.dx, res.dwih, res.dwhh = refF64(dx, len(dx)), refF64(dwih, len(dwih)), refF64(dwhh, len(dwhh))
	res.dbih, res.dbhh = refF64(dbih, GH), refF64(dbhh, GH)
	return res
}

// orNil keeps a nil slice a nil interface.
func (b Buf[T]) orNil() nn.Buffer {
	if b == nil {
		return nil
	}
	return b
}

func rnnName(gru bool) string {
	if gru {
		return "GRU"
	}
	return "LSTM"
}

// TestRNNGolden reproduces torch.nn.LSTM / torch.nn.GRU (float64 autograd)
// on the shared golden vectors: out and dx for the given dout.
func TestRNNGolden(t *testing.T) {
	for _, gru := range []bool{false, true} {
		file := "04_lstm.safetensors"
		if gru {
			file = "05_gru.safetensors"
		}
		v := refGolden(t, file)
		// x (1, 55, 6), weight_ih_l0 (G·5, 6).
		in := &rnnInputs{gru: gru, B: 1, L: 55, I: 6, H: 5, x: v["x"], wih: v["weight_ih_l0"], whh: v["weight_hh_l0"],
			bih: v["bias_ih_l0"], bhh: v["bias_hh_l0"], dout: v["dout"]}
		if len(in.x) != 55*6 || len(in.wih) != in.gates()*5*6 || len(in.dout) != 55*5 {
			t.Fatalf("%s: unexpected shapes", file)
		}
		for _, tc := range []struct {
			name string
			run  func() *rnnResult
			tol  float64
		}{
			{"float64", func() *rnnResult { return runRNN(New[float64](), in, true, true) }, 1e-10},
			{"float32", func() *rnnResult { return runRNN(New[float32](), in, true, true) }, 1e-4},
		} {
			r := tc.run()
			name := rnnName(gru) + " " + tc.name
			t.Logf("%s: max rel err out %.2g, dx %.2g", name, rnnMaxRel(r.out, v["out"]), rnnMaxRel(r.dx, v["dx"]))
			refRel(t, name+" out", r.out, v["out"], tc.tol)
			refRel(t, name+" dx", r.dx, v["dx"], tc.tol)
			refRel(t, name+" hT", r.hT, v["out"][54*5:], tc.tol)
		}
	}
}

// rnnMaxRel is the largest |got − want| / max(|want|, 1e-3·max|want|).
func rnnMaxRel(got, want []float64) float64 {
	scale := 0.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	e := 0.0
	for i, w := range want {
		e = max(e, math.Abs(got[i]-w)/max(math.Abs(w), 1e-3*scale))
	}
	return e
}

// TestRNNParallelLayouts: the unit-split and batch-split recurrences give
// bit-identical results to one worker (every dot product sums in the same
// order whatever the split), forward and backward, with and without an
// initial state.
func TestRNNParallelLayouts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, gru := range []bool{false, true} {
		for _, c := range []struct{ B, L, I, H, workers int }{
			{1, 4, 7, 150, 8},  // generation-like: units split
			{3, 3, 5, 90, 8},   // odd batch, units split
			{5, 3, 7, 70, 6},   // batch tail of one row, units split
			{5, 50, 3, 16, 4},  // batch split (B ≥ workers)
			{7, 20, 9, 33, 16}, // units split, many workers
		} {
			for _, state := range []bool{false, true} {
				name := fmt.Sprintf("%s B=%d L=%d I=%d H=%d workers=%d state=%v", rnnName(gru), c.B, c.L, c.I, c.H, c.workers, state)
				in := newRNNInputs(rng, gru, c.B, c.L, c.I, c.H, state)
				one := runRNN(&Backend[float64]{workers: 1}, in, true, true)
				many := runRNN(&Backend[float64]{workers: c.workers}, in, true, true)
				for k, want := range one.fields() {
					got := many.fields()[k]
					for i := range want {
						if got[i] != want[i] {
							t.Errorf("%s: %s[%d] = %.17g with %d workers, %.17g with one", name, k, i, got[i], c.workers, want[i])
							break
						}
					}
				}
			}
		}
	}
	// The shapes above must reach both layouts.
	unit := &rnn[float64]{B: 1, H: 150, G: 3, GH: 450}
	batch := &rnn[float64]{B: 5, H: 16, G: 4, GH: 64}
	if !unit.unitMode(8) || batch.unitMode(4) {
		t.Errorf("layout choice: unit %v (want true), batch %v (want false)", unit.unitMode(8), batch.unitMode(4))
	}
}

// TestRNNChunkedInference: without saved, the input projections are made a
// chunk of steps at a time; the result equals the saving forward exactly.
func TestRNNChunkedInference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, gru := range []bool{false, true} {
		const B, L, I, H = 2, 1100, 8, 40
		in := newRNNInputs(rng, gru, B, L, I, H, true)
		if tc := rnnScratchElems / (B * (&rnnInputs{gru: gru}).gates() * H); tc >= L {
			t.Fatalf("%s: chunk %d ≥ L = %d: the test does not reach the chunked path", rnnName(gru), tc, L)
		}
		be := New[float32]()
		saving, chunked := runRNN(be, in, true, false), runRNN(be, in, false, false)
		for _, k := range []string{"out", "hT", "cT"} {
			got, want := chunked.fields()[k], saving.fields()[k]
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s %s[%d]: chunked %.9g, saving %.9g", rnnName(gru), k, i, got[i], want[i])
					break
				}
			}
		}
	}
}

// TestRNNBackwardInitialState: this backend's backward also honours H0 and
// C0 (beyond the nn.SeqOps contract); checked against central differences
// of the forward in float64.
func TestRNNBackwardInitialState(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	be := New[float64]()
	for _, gru := range []bool{false, true} {
		in := newRNNInputs(rng, gru, 3, 5, 4, 3, true)
		got := runRNN(be, in, true, true)
		loss := func() float64 { return refDot(runRNN(be, in, false, false).out, in.dout) }
		for _, p := range []struct {
			name string
			x    []float64
			g    []float64
		}{
			{"dX", in.x, got.dx}, {"dWih", in.wih, got.dwih}, {"dWhh", in.whh, got.dwhh},
			{"dBih", in.bih, got.dbih}, {"dBhh", in.bhh, got.dbhh},
		} {
			refRel(t, rnnName(gru)+" "+p.name, p.g, refNumGrad(p.x, loss), 1e-6)
		}
	}
}

// TestRNNSubnormalDecay: a state that decays geometrically over a long
// sequence (an LSTM forget gate of 0.27 with g = 0; a GRU update gate of
// 0.73 with n = 0), and its gradient decaying backward from
// the last step, reach exactly 0 in float32 instead of passing through
// subnormal numbers (docs/DESIGN.md, "Subnormal floats").
func TestRNNSubnormalDecay(t *testing.T) {
	for _, gru := range []bool{false, true} {
		const B, L, I, H = 2, 400, 1, 3
		in := &rnnInputs{gru: gru, B: B, L: L, I: I, H: H}
		GH := in.gates() * H
		in.x, in.wih, in.whh = make([]float64, B*L*I), make([]float64, GH*I), make([]float64, GH*H)
		in.bih, in.bhh = make([]float64, GH), make([]float64, GH)
		in.h0 = make([]float64, B*H)
		for i := range in.h0 {
			in.h0[i] = 1
		}
		for u := range H {
			if gru {
				in.bih[H+u] = 1 // z = σ(1) ≈ 0.73; n = tanh(0) = 0
			} else {
				in.bih[H+u] = -1 // f = σ(−1) ≈ 0.27, i = 0.5, g = tanh(0) = 0
			}
		}
		if !gru {
			in.c0 = append([]float64(nil), in.h0...)
		}
		in.dout = make([]float64, B*L*H)
		for b := range B {
			for u := range H {
				in.dout[(b*L+L-1)*H+u] = 1
			}
		}
		r := runRNN(New[float32](), in, true, true)
		tiny := minNormal[float32]()
		// The carried gradient (dc, dh·z) is internal: check the cells that
		// write it. A carry of 1e-37 times a gate of 0.01 is 1e-39.
		c := &rnn[float32]{gru: gru, H: 1, tiny: tiny}
		cy := []float32{1e-37}
		zero := []float32{0}
		if gru {
			c.gruCellBackward([]float32{0.5, 0.01, 0, 0}, zero, zero, zero, cy, make([]float32, 4), 0, 1)
		} else {
			c.lstmCellBackward([]float32{0.5, 0.01, 0, 0.5, 0}, zero, zero, zero, cy, make([]float32, 4), 0, 1)
		}
		if cy[0] != 0 {
			t.Errorf("%s: carried gradient 1e-37 · 0.01 gave %g, want 0", rnnName(gru), cy[0])
		}
		for k, vals := range r.fields() {
			for i, v := range vals {
				if v != 0 && math.Abs(v) < tiny {
					t.Errorf("%s %s[%d] = %g is subnormal", rnnName(gru), k, i, v)
					break
				}
			}
		}
		if r.out[(L-1)*H] != 0 || r.out[0] == 0 {
			t.Errorf("%s: h_0 = %g, h_L−1 = %g: want a state that decays to exactly 0", rnnName(gru), r.out[0], r.out[(L-1)*H])
		}
	}
}

// BenchmarkRNN times one layer (I = H) forward, saving as training does,
// and forward + backward, at training shapes (batch split) and at a
// generation-like batch of one (units split).
func BenchmarkRNN(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		B, L, H int
		bwd     []bool
	}{
		{16, 128, 128, []bool{false, true}},
		{64, 64, 256, []bool{true}},
		{1, 64, 512, []bool{false}},
	} {
		for _, gru := range []bool{false, true} {
			in := newRNNInputs(rng, gru, c.B, c.L, c.H, c.H, false)
			for _, bwd := range c.bwd {
				name := fmt.Sprintf("%s/B%d_L%d_H%d/fwd", rnnName(gru), c.B, c.L, c.H)
				if bwd {
					name += "+bwd"
				}
				b.Run(name, func(b *testing.B) {
					be := New[float32]()
					for b.Loop() {
						runRNN(be, in, true, bwd)
					}
					// Forward: input and hidden projections; the backward
					// doubles that (dh and dX, dWih and dWhh).
					flops := 2 * float64(c.B*c.L*in.gates()*c.H*2*c.H)
					if bwd {
						flops *= 3
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
