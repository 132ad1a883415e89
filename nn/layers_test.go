package nn_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

// The layers are thin wrappers over tape ops (whose gradients nn's op tests
// check); these tests pin what the wrappers add: layouts, init, names, decay.

func layerRandn(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// layerLinearRef is y = x·Wᵀ + b written out, x (rows, in), W (out, in).
func layerLinearRef(x []float64, rows, in int, w []float64, out int, b []float64) []float64 {
	y := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			s := 0.0
			if b != nil {
				s = b[o]
			}
			for i := range in {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func layerClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		if e := math.Abs(got[i]-want[i]) / math.Max(1, math.Abs(want[i])); !(e <= worst) {
			worst, at = e, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: worst error %.3g at %d: got %.15g, want %.15g", what, worst, at, got[at], want[at])
	}
}

func TestLayerLinear(t *testing.T) {
	b, rng := cpukernels.New[float64](), rand.New(rand.NewPCG(1, 2))
	const rows, in, out = 3, 4, 5
	for _, bias := range []bool{false, true} {
		l := nn.NewLinear(b, in, out, bias, rng)
		if !slices.Equal(l.W.Shape, []int{out, in}) {
			t.Fatalf("W shape %v, want torch's (out, in)", l.W.Shape)
		}
		bound := 1 / math.Sqrt(in)
		for _, v := range b.Read(l.W.Data) {
			if math.Abs(v) > bound {
				t.Errorf("init %g outside ±1/√in = %g", v, bound)
			}
		}
		xv := layerRandn(rng, rows*in)
		tp := nn.NewTape(b, false)
		y := l.Forward(tp, nn.NewConst(b, xv, rows, in))
		var bv []float64
		names := []string{"enc.proj.weight"}
		if bias {
			bv = b.Read(l.B.Data)
			names = append(names, "enc.proj.bias")
		}
		layerClose(t, "Linear", b.Read(y.Data), layerLinearRef(xv, rows, in, b.Read(l.W.Data), out, bv), 1e-14)
		tp.Release()
		ps := l.Params("enc.proj")
		for i, p := range ps {
			if p.Name != names[i] || p.Decay != (i == 0) {
				t.Errorf("param %d: %s decay %v, want %s decay %v", i, p.Name, p.Decay, names[i], i == 0)
			}
		}
	}
}

func TestLayerNorms(t *testing.T) {
	b, rng := cpukernels.New[float64](), rand.New(rand.NewPCG(3, 4))
	const rows, d, eps = 3, 6, 1e-5
	xv := layerRandn(rng, rows*d)
	wv, bv := layerRandn(rng, d), layerRandn(rng, d)
	rms, ln := make([]float64, rows*d), make([]float64, rows*d)
	for r := range rows {
		row := xv[r*d : (r+1)*d]
		ss, mean := 0.0, 0.0
		for _, v := range row {
			ss += v * v
			mean += v / d
		}
		vr := 0.0
		for _, v := range row {
			vr += (v - mean) * (v - mean) / d
		}
		for i, v := range row {
			rms[r*d+i] = v / math.Sqrt(ss/d+eps) * wv[i]
			ln[r*d+i] = (v-mean)/math.Sqrt(vr+eps)*wv[i] + bv[i]
		}
	}
	for _, tc := range []struct {
		kind  nn.NormKind
		bias  bool
		want  []float64
		names []string
	}{
		{nn.NormRMS, true, rms, []string{"n.weight"}}, // bias ignored for RMSNorm
		{nn.NormLayer, true, ln, []string{"n.weight", "n.bias"}},
	} {
		n := nn.NewNorm(b, tc.kind, d, eps, tc.bias)
		ps := n.Params("n")
		for _, v := range b.Read(ps[0].T.Data) {
			if v != 1 {
				t.Fatalf("%s: weight init %g, want 1", tc.kind, v)
			}
		}
		b.Write(ps[0].T.Data, wv)
		if len(ps) > 1 {
			b.Write(ps[1].T.Data, bv)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Name)
			if p.Decay {
				t.Errorf("%s: %s decays", tc.kind, p.Name)
			}
		}
		if !slices.Equal(got, tc.names) {
			t.Errorf("%s: params %v, want %v", tc.kind, got, tc.names)
		}
		tp := nn.NewTape(b, false)
		layerClose(t, string(tc.kind), b.Read(n.Forward(tp, nn.NewConst(b, xv, rows, d)).Data), tc.want, 1e-13)
		tp.Release()
	}
	if ps := nn.NewLayerNorm(b, d, eps, false).Params(""); len(ps) != 1 || ps[0].Name != "weight" {
		t.Errorf("LayerNorm without bias: params %v", ps)
	}
}

func TestLayerMLP(t *testing.T) {
	b, rng := cpukernels.New[float64](), rand.New(rand.NewPCG(5, 6))
	const rows, d, h = 2, 4, 6
	gelu := func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
	silu := func(x float64) float64 { return x / (1 + math.Exp(-x)) }
	xv := layerRandn(rng, rows*d)
	for _, tc := range []struct {
		kind  nn.MLPKind
		names []string
	}{
		{nn.MLPGELU, []string{"mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"}},
		{nn.MLPSwiGLU, []string{"mlp.gate.weight", "mlp.gate.bias", "mlp.up.weight", "mlp.up.bias", "mlp.down.weight", "mlp.down.bias"}},
	} {
		m := nn.NewMLP(b, tc.kind, d, h, true, rng)
		var names []string
		for _, p := range m.Params("mlp") {
			names = append(names, p.Name)
			if p.Decay != (len(p.T.Shape) == 2) {
				t.Errorf("%s: %s decay %v", tc.kind, p.Name, p.Decay)
			}
		}
		if !slices.Equal(names, tc.names) {
			t.Errorf("%s: params %v, want %v", tc.kind, names, tc.names)
		}
		lin := func(l *nn.Linear, x []float64, in, out int) []float64 {
			return layerLinearRef(x, rows, in, b.Read(l.W.Data), out, b.Read(l.B.Data))
		}
		hid := lin(m.Up, xv, d, h)
		for i := range hid {
			if m.Gate == nil {
				hid[i] = gelu(hid[i])
			}
		}
		if m.Gate != nil {
			g := lin(m.Gate, xv, d, h)
			for i := range hid {
				hid[i] *= silu(g[i])
			}
		}
		tp := nn.NewTape(b, false)
		layerClose(t, string(tc.kind), b.Read(m.Forward(tp, nn.NewConst(b, xv, rows, d)).Data), lin(m.Down, hid, h, d), 1e-13)
		tp.Release()
	}
	if m := nn.NewMLP(b, nn.MLPGELU, d, 0, false, rng); m.Up.W.Dim(0) != 4*d || m.Up.B != nil {
		t.Errorf("default hidden: fc %v, want (4d, d) without bias", m.Up.W.Shape)
	}
}

// Initializers are deterministic in the seed and draw what they say.
func TestInitializers(t *testing.T) {
	b := cpukernels.New[float64]()
	const n = 20000
	draw := func(seed uint64) []float64 {
		p := nn.NewParam(b, n)
		nn.Normal(b, p, 0.5, rand.New(rand.NewPCG(seed, 0)))
		return b.Read(p.Data)
	}
	v := draw(7)
	if !slices.Equal(v, draw(7)) || slices.Equal(v, draw(8)) {
		t.Fatal("Normal is not a function of the seed")
	}
	mean, sq := 0.0, 0.0
	for _, x := range v {
		mean += x / n
		sq += x * x / n
	}
	if std := math.Sqrt(sq - mean*mean); math.Abs(mean) > 0.02 || math.Abs(std-0.5) > 0.02 {
		t.Errorf("Normal(0.5): mean %g std %g", mean, std)
	}

	p := nn.NewParam(b, n)
	nn.Uniform(b, p, -1, 3, rand.New(rand.NewPCG(1, 1)))
	lo, hi := slices.Min(b.Read(p.Data)), slices.Max(b.Read(p.Data))
	if lo < -1 || hi >= 3 || lo > -0.99 || hi < 2.99 {
		t.Errorf("Uniform(-1, 3): range [%g, %g]", lo, hi)
	}
	nn.Ones(b, p)
	if b.Sum(p.Data) != n {
		t.Error("Ones")
	}
	nn.Zeros(b, p)
	if b.SumSquares(p.Data) != 0 {
		t.Error("Zeros")
	}
}

// Dropout: the identity at p 0, on a tape that does not record, and for a
// nil Dropout (no draws); in training each element is 0 or x/(1−p), zeroed
// at rate ≈ p, and the gradient is the mask.
func TestDropout(t *testing.T) {
	b := cpukernels.New[float64]()
	const n = 4000
	x := nn.NewParam(b, n)
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = float64(i%7) + 1
	}
	b.Write(x.Data, vals)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		d      *nn.Dropout
		record bool
	}{{nil, true}, {&nn.Dropout{P: 0, RNG: rng}, true}, {&nn.Dropout{P: 0.3, RNG: rng}, false}} {
		tp := nn.NewTape(b, tc.record)
		if y := tc.d.Forward(tp, x); y != x {
			t.Errorf("%+v record %v: not the identity", tc.d, tc.record)
		}
		tp.Release()
	}
	if got := rng.Uint64(); got != rand.New(rand.NewPCG(1, 2)).Uint64() {
		t.Error("the identity cases drew from the RNG")
	}
	const p = 0.3
	tp := nn.NewTape(b, true)
	defer tp.Release()
	y := (&nn.Dropout{P: p, RNG: rng}).Forward(tp, x)
	ys := b.Read(y.Data)
	zeros := 0
	for i, v := range ys {
		switch {
		case v == 0:
			zeros++
		case math.Abs(v-vals[i]/(1-p)) > 1e-12:
			t.Fatalf("element %d: %g, want 0 or %g", i, v, vals[i]/(1-p))
		}
	}
	if rate := float64(zeros) / n; math.Abs(rate-p) > 0.03 {
		t.Errorf("zeroed %.3f of the elements, want ≈ %g", rate, p)
	}
	// The gradient through the mask: 0 where dropped, not 0 where kept
	// (two-class cross-entropy never has a zero gradient).
	loss, _ := tp.CrossEntropy(tp.Reshape(y, n/2, 2), make([]int32, n/2), -1)
	tp.Backward(loss)
	g := b.Read(x.Grad())
	for i := range g {
		if (ys[i] == 0) != (g[i] == 0) {
			t.Fatalf("element %d: output %g but gradient %g", i, ys[i], g[i])
		}
	}
}
