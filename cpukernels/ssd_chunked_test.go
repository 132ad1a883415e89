package cpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/nn"
)

// ssdRecCase is one SSD shape and its options for the chunked-vs-recurrence
// tests.
type ssdRecCase struct {
	B, L, H, P, G, N            int
	softplus, noD, noBias, noH0 bool
}

func (c ssdRecCase) String() string {
	return fmt.Sprintf("B%d_L%d_H%d_P%d_G%d_N%d_sp%v_D%v_bias%v_h0%v",
		c.B, c.L, c.H, c.P, c.G, c.N, c.softplus, !c.noD, !c.noBias, !c.noH0)
}

// ssdRecIn are one case's inputs in float64; D, bias, h0 are nil when absent.
type ssdRecIn struct{ x, dt, A, bm, cm, D, bias, h0 []float64 }

// draw gives random inputs as the conformance suite draws them: dt around
// softplus(−1) (or in [0.05, 0.5] without the softplus), A in −[0.5, 3], so
// that decays across a chunk span e^−1 .. e^−30.
func (c ssdRecCase) draw(rng *rand.Rand) ssdRecIn {
	uniform := func(n int, lo, hi float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = lo + (hi-lo)*rng.Float64()
		}
		return v
	}
	in := ssdRecIn{x: refRandn(rng, c.B*c.L*c.H*c.P, 1), A: uniform(c.H, -3, -0.5),
		bm: refRandn(rng, c.B*c.L*c.G*c.N, 1), cm: refRandn(rng, c.B*c.L*c.G*c.N, 1)}
	if c.softplus {
		in.dt = refRandn(rng, c.B*c.L*c.H, 0.5)
		for i := range in.dt {
			in.dt[i]--
		}
	} else {
		in.dt = uniform(c.B*c.L*c.H, 0.05, 0.5)
	}
	if !c.noD {
		in.D = refRandn(rng, c.H, 1)
	}
	if !c.noBias {
		if c.softplus {
			in.bias = refRandn(rng, c.H, 0.5)
		} else {
			in.bias = uniform(c.H, 0, 0.1)
		}
	}
	if !c.noH0 {
		in.h0 = refRandn(rng, c.B*c.H*c.P*c.N, 1)
	}
	return in
}

// round gives the inputs as T holds them.
func roundSSDIn[T Float](in ssdRecIn) ssdRecIn {
	r := func(v []float64) []float64 {
		if v == nil {
			return nil
		}
		return refRound[T](v)
	}
	return ssdRecIn{r(in.x), r(in.dt), r(in.A), r(in.bm), r(in.cm), r(in.D), r(in.bias), r(in.h0)}
}

// ssdRecGrads are the gradients of every input, H0's included.
type ssdRecGrads map[string][]float64

// ssdRecurrence is SSD's definition step by step in float64 (nn.SSDArgs):
// out, the final state, and the gradients for dout by the exact adjoint of
// the recurrence (reverse time, the states of every step kept).
func ssdRecurrence(c ssdRecCase, in ssdRecIn, dout []float64) (out, hT []float64, gr ssdRecGrads) {
	B, L, H, P, G, N := c.B, c.L, c.H, c.P, c.G, c.N
	PN := P * N
	out, hT = make([]float64, B*L*H*P), make([]float64, B*H*PN)
	gr = ssdRecGrads{"X": make([]float64, len(in.x)), "Dt": make([]float64, len(in.dt)), "A": make([]float64, H),
		"Bm": make([]float64, len(in.bm)), "Cm": make([]float64, len(in.cm)), "Dskip": make([]float64, H),
		"DtBias": make([]float64, H), "H0": make([]float64, B*H*PN)}
	// eff is the effective dt at (b, t, h) and its derivative.
	eff := func(b, t, h int) (d, dd float64) {
		z := in.dt[(b*L+t)*H+h]
		if in.bias != nil {
			z += in.bias[h]
		}
		if !c.softplus || z > softplusThreshold {
			return z, 1
		}
		return math.Log1p(math.Exp(z)), 1 / (1 + math.Exp(-z))
	}
	states := make([]float64, (L+1)*PN)
	for b := range B {
		for h := range H {
			g := h / (H / G)
			D := 0.0
			if in.D != nil {
				D = in.D[h]
			}
			clear(states[:PN])
			if in.h0 != nil {
				copy(states[:PN], in.h0[(b*H+h)*PN:])
			}
			for t := range L {
				d, _ := eff(b, t, h)
				alpha := math.Exp(d * in.A[h])
				x := in.x[((b*L+t)*H+h)*P:]
				bm, cm := in.bm[((b*L+t)*G+g)*N:], in.cm[((b*L+t)*G+g)*N:]
				prev, cur := states[t*PN:(t+1)*PN], states[(t+1)*PN:(t+2)*PN]
				for p := range P {
					y := D * x[p]
					for n := range N {
						cur[p*N+n] = alpha*prev[p*N+n] + d*x[p]*bm[n]
						y += cur[p*N+n] * cm[n]
					}
					out[((b*L+t)*H+h)*P+p] = y
				}
			}
			copy(hT[(b*H+h)*PN:], states[L*PN:(L+1)*PN])
			if dout == nil {
				continue
			}
			adj := make([]float64, PN) // the adjoint of the state after step t
			for t := L - 1; t >= 0; t-- {
				d, dd := eff(b, t, h)
				alpha := math.Exp(d * in.A[h])
				xo, bo := ((b*L+t)*H+h)*P, ((b*L+t)*G+g)*N
				x, bm, cm, dy := in.x[xo:xo+P], in.bm[bo:bo+N], in.cm[bo:bo+N], dout[xo:xo+P]
				prev, cur := states[t*PN:(t+1)*PN], states[(t+1)*PN:(t+2)*PN]
				ddt := 0.0
				for p := range P {
					gr["Dskip"][h] += dy[p] * x[p]
					gr["X"][xo+p] += D * dy[p]
					gB := 0.0
					for n := range N {
						adj[p*N+n] += dy[p] * cm[n]
						gr["Cm"][bo+n] += cur[p*N+n] * dy[p]
						gB += adj[p*N+n] * bm[n]
						gr["Bm"][bo+n] += d * adj[p*N+n] * x[p]
					}
					gr["X"][xo+p] += d * gB
					ddt += x[p] * gB
				}
				ap := 0.0 // ⟨adjoint, previous state⟩
				for k := range adj {
					ap += adj[k] * prev[k]
					adj[k] *= alpha
				}
				ddt += in.A[h] * alpha * ap
				gr["A"][h] += d * alpha * ap
				gr["Dt"][(b*L+t)*H+h] += ddt * dd
				gr["DtBias"][h] += ddt * dd
			}
			copy(gr["H0"][(b*H+h)*PN:], adj)
		}
	}
	return out, hT, gr
}

// ssdChunkedRun runs SSDChunked and SSDChunkedBackward (every gradient, H0's
// included) on the T-rounded inputs with chunk Q and returns the results in
// float64.
func ssdChunkedRun[T Float](be *Backend[T], c ssdRecCase, in ssdRecIn, dout []float64, Q int) (out, hT []float64, gr ssdRecGrads) {
	return ssdRun(be, c, in, dout, Q, true)
}

// ssdRun is ssdChunkedRun (chunked true) or the same with SSD and
// SSDBackward (no dH0).
func ssdRun[T Float](be *Backend[T], c ssdRecCase, in ssdRecIn, dout []float64, Q int, chunked bool) (out, hT []float64, gr ssdRecGrads) {
	opt := func(v []float64) nn.Buffer {
		if v == nil {
			return nil
		}
		return refBuf[T](v)
	}
	a := nn.SSDArgs{B: c.B, L: c.L, H: c.H, P: c.P, G: c.G, N: c.N, Chunk: Q, DtSoftplus: c.softplus,
		X: refBuf[T](in.x), Dt: refBuf[T](in.dt), A: refBuf[T](in.A), Bm: refBuf[T](in.bm), Cm: refBuf[T](in.cm),
		Dskip: opt(in.D), DtBias: opt(in.bias), H0: opt(in.h0)}
	nx, nh := len(in.x), c.B*c.H*c.P*c.N
	o, h := make(Buf[T], nx), make(Buf[T], nh)
	bufs := map[string]Buf[T]{"X": make(Buf[T], nx), "Dt": make(Buf[T], len(in.dt)), "A": make(Buf[T], c.H),
		"Bm": make(Buf[T], len(in.bm)), "Cm": make(Buf[T], len(in.cm))}
	if chunked {
		be.SSDChunked(o, h, a)
		bufs["H0"] = make(Buf[T], nh)
	} else {
		be.SSD(o, h, a)
	}
	g := nn.SSDGrads{X: bufs["X"], Dt: bufs["Dt"], A: bufs["A"], Bm: bufs["Bm"], Cm: bufs["Cm"]}
	if in.D != nil {
		bufs["Dskip"] = make(Buf[T], c.H)
		g.Dskip = bufs["Dskip"]
	}
	if in.bias != nil {
		bufs["DtBias"] = make(Buf[T], c.H)
		g.DtBias = bufs["DtBias"]
	}
	if chunked {
		be.SSDChunkedBackward(g, bufs["H0"], a, refBuf[T](dout))
	} else {
		be.SSDBackward(g, a, refBuf[T](dout))
	}
	gr = ssdRecGrads{}
	for k, b := range bufs {
		gr[k] = refF64(b, len(b))
	}
	return refF64(o, nx), refF64(h, nh), gr
}

// ssdRecCases cover groups G > 1, odd N and P, L not a multiple of Q, L < Q,
// L = 1, L = 0, with and without the softplus, D, the bias and H0.
var ssdRecCases = []ssdRecCase{
	{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, softplus: true},
	{B: 1, L: 37, H: 6, P: 5, G: 3, N: 7, noD: true, noBias: true},
	{B: 2, L: 64, H: 2, P: 4, G: 1, N: 4, softplus: true, noH0: true},
	{B: 1, L: 10, H: 2, P: 3, G: 2, N: 3, softplus: true, noBias: true},
	{B: 2, L: 1, H: 2, P: 1, G: 1, N: 1, softplus: true},
	{B: 1, L: 0, H: 2, P: 2, G: 1, N: 3},
	{B: 1, L: 97, H: 1, P: 2, G: 1, N: 2, softplus: true},
}

// SSDChunked and SSDChunkedBackward equal the recurrence: out, hT and every
// gradient (H0's included) to float64 rounding in float64 (norm-wise 1e-12)
// and within the conformance suite's tolerances in float32 (forward 1e-5,
// gradients 1e-3; against the recurrence on the float32-rounded inputs).
// So do the backend's SSD and SSDBackward (without dH0), checked alike.
func TestSSDChunkedMatchesRecurrence(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testSSDChunkedRec(t, New[float64](), 1e-12, 1e-12) })
	t.Run("float32", func(t *testing.T) { testSSDChunkedRec(t, New[float32](), 1e-5, 1e-3) })
}

func testSSDChunkedRec[T Float](t *testing.T, be *Backend[T], fwdTol, gradTol float64) {
	rng := rand.New(rand.NewPCG(16, 1))
	worst := map[string]float64{}
	for _, c := range ssdRecCases {
		in := roundSSDIn[T](c.draw(rng))
		dout := refRound[T](refRandn(rng, len(in.x), 1))
		wantOut, wantHT, wantG := ssdRecurrence(c, in, dout)
		for _, run := range []struct {
			op      string
			chunked bool
			Q       int
		}{{"SSDChunked", true, 1}, {"SSDChunked", true, 3}, {"SSDChunked", true, 16}, {"SSDChunked", true, 64},
			{"SSD", false, 1}, {"SSD", false, 3}, {"SSD", false, 16}, {"SSD", false, 64}} {
			Q := run.Q
			out, hT, gr := ssdRun(be, c, in, dout, Q, run.chunked)
			check := func(name string, got, want []float64, tol float64) {
				t.Helper()
				e := 0.0
				if refDot(want, want) > 0 {
					e = relNorm(got, want)
				} else if refDot(got, got) > 0 {
					e = math.Inf(1) // want is all zeros: so must got be
				}
				worst[run.op+" "+name] = max(worst[run.op+" "+name], e)
				if !(e <= tol) {
					t.Errorf("%s %v Q %d: %s rel err %.3g > %g", run.op, c, Q, name, e, tol)
				}
			}
			check("out", out, wantOut, fwdTol)
			check("hT", hT, wantHT, fwdTol)
			for k, g := range gr {
				check("d"+k, g, wantG[k], gradTol)
			}
		}
	}
	t.Logf("largest norm-wise rel err over %d cases × Q 1, 3, 16, 64: %v", len(ssdRecCases), worst)
}

// Two pieces carrying the state (hT of the first as H0 of the second, split
// not on a chunk boundary) give the whole run's out and final state.
func TestSSDChunkedPieces(t *testing.T) {
	c := ssdRecCase{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, softplus: true}
	in := c.draw(rand.New(rand.NewPCG(16, 2)))
	be := New[float64]()
	const Q, split = 8, 13
	wantOut, wantHT, _ := ssdRecurrence(c, in, nil)
	piece := func(x []float64, w, t0, t1 int) []float64 {
		var s []float64
		for b := range c.B {
			s = append(s, x[(b*c.L+t0)*w:(b*c.L+t1)*w]...)
		}
		return s
	}
	HP, GN := c.H*c.P, c.G*c.N
	got := make([]float64, len(wantOut))
	state := in.h0
	for _, span := range [][2]int{{0, split}, {split, c.L}} {
		t0, t1 := span[0], span[1]
		pc := c
		pc.L = t1 - t0
		pin := in
		pin.x, pin.dt = piece(in.x, HP, t0, t1), piece(in.dt, c.H, t0, t1)
		pin.bm, pin.cm, pin.h0 = piece(in.bm, GN, t0, t1), piece(in.cm, GN, t0, t1), state
		out, hT, _ := ssdChunkedRun(be, pc, pin, make([]float64, len(pin.x)), Q)
		for b := range c.B {
			copy(got[(b*c.L+t0)*HP:(b*c.L+t1)*HP], out[b*pc.L*HP:(b+1)*pc.L*HP])
		}
		state = hT
	}
	refRel(t, "out in pieces", got, wantOut, 1e-12)
	refRel(t, "hT in pieces", state, wantHT, 1e-12)
}

// SSDChunkedBackward's gradients do not depend on the number of workers
// (the heads of a group, the batch and the chunks are summed in a fixed
// order): bitwise equal.
func TestSSDChunkedBackwardDeterministic(t *testing.T) {
	c := ssdRecCase{B: 3, L: 29, H: 4, P: 3, G: 2, N: 5, softplus: true}
	rng := rand.New(rand.NewPCG(16, 3))
	in := c.draw(rng)
	dout := refRandn(rng, len(in.x), 1)
	flat := func(workers int) []float64 {
		out, hT, gr := ssdChunkedRun(&Backend[float64]{workers: workers}, c, in, dout, 8)
		all := append(out, hT...)
		for _, k := range []string{"X", "Dt", "A", "Bm", "Cm", "Dskip", "DtBias", "H0"} {
			all = append(all, gr[k]...)
		}
		return all
	}
	one := flat(1)
	for _, w := range []int{2, 3, 7} {
		for i, v := range flat(w) {
			if v != one[i] {
				t.Fatalf("%d workers: element %d is %.17g, with 1 worker %.17g", w, i, v, one[i])
			}
		}
	}
}

// BenchmarkSSD's shape through SSDChunked and SSDChunkedBackward (no dH0).
func BenchmarkSSDChunked(b *testing.B) {
	be := New[float32]()
	benchSSD(b, benchSSDArgs(), be.SSDChunked, func(g nn.SSDGrads, a nn.SSDArgs, dout nn.Buffer) {
		be.SSDChunkedBackward(g, nil, a, dout)
	})
}

// Through a long decay (states falling through T's subnormal range inside
// the run, ssdDecayArgs) no output, final state or gradient of the chunked
// form is subnormal, dH0 included, and some outputs and final states decay
// to exactly 0.
func TestSSDChunkedLongDecayNoSubnormals(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testSSDChunkedLongDecay[float64](t) })
	t.Run("float32", func(t *testing.T) { testSSDChunkedLongDecay[float32](t) })
}

func testSSDChunkedLongDecay[T Float](t *testing.T) {
	be := New[T]()
	tiny := minNormal[T]()
	// L ends the run inside T's subnormal band for one head's state
	// (float64: rate 1, e^−720; float32: rate 0.2, e^−96), so that hT tests
	// the flush too.
	const B, H, P, N, chunk = 2, 4, 4, 4, 64
	L := 720
	if tiny > 0x1p-1022 {
		L = 480
	}
	a := ssdDecayArgs[T](B, L, H, P, N, chunk, true)
	out, hT := make(Buf[T], B*L*H*P), make(Buf[T], B*H*P*N)
	be.SSDChunked(out, hT, a)
	dout := refBuf[T](refRandn(rand.New(rand.NewPCG(5, 6)), B*L*H*P, 1))
	g := nn.SSDGrads{X: make(Buf[T], B*L*H*P), Dt: make(Buf[T], B*L*H), A: make(Buf[T], H),
		Bm: make(Buf[T], B*L*N), Cm: make(Buf[T], B*L*N), Dskip: make(Buf[T], H)}
	dH0 := make(Buf[T], B*H*P*N)
	be.SSDChunkedBackward(g, dH0, a, dout)
	zeros := 0
	for name, buf := range map[string]Buf[T]{"out": out, "hT": hT, "dX": g.X.(Buf[T]), "dDt": g.Dt.(Buf[T]),
		"dA": g.A.(Buf[T]), "dBm": g.Bm.(Buf[T]), "dCm": g.Cm.(Buf[T]), "dD": g.Dskip.(Buf[T]), "dH0": dH0} {
		for i, v := range buf {
			if isSubnormal(float64(v), tiny) || math.IsNaN(float64(v)) {
				t.Fatalf("%s[%d] = %g", name, i, v)
			}
			if (name == "out" || name == "hT") && v == 0 {
				zeros++
			}
		}
	}
	if zeros == 0 {
		t.Errorf("no output or final state decayed to 0: the test does not reach the subnormal range")
	}
}
