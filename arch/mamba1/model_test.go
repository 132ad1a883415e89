package mamba1_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/mamba1"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny returns a small config: d 4, E 2 (8 channels), N 3, dt_rank 1.
func tiny(norm string, tie bool) *mamba1.Config {
	c := mamba1.DefaultConfig()
	c.DModel, c.NLayers, c.DState = 4, 2, 3
	c.Norm, c.TieEmbeddings = norm, tie
	return c
}

func name(c *mamba1.Config) string {
	return fmt.Sprintf("%s/tie=%v/E=%d/N=%d/W=%d/R=%d", c.Norm, c.TieEmbeddings, c.Expand, c.DState, c.DConv, c.DtRank)
}

func build(t *testing.T, c *mamba1.Config, b nn.Backend, vocab int, seed uint64) *mamba1.Model {
	t.Helper()
	m, err := c.Build(arch.Env{Backend: b, Vocab: vocab, RNG: rand.New(rand.NewPCG(seed, 1))})
	if err != nil {
		t.Fatalf("%s: %v", name(c), err)
	}
	return m.(*mamba1.Model)
}

// variants covers every option that changes shapes or the computation.
func variants() []*mamba1.Config {
	var cs []*mamba1.Config
	for _, norm := range []string{"rmsnorm", "layernorm"} {
		for _, tie := range []bool{true, false} {
			cs = append(cs, tiny(norm, tie))
		}
	}
	c := tiny("rmsnorm", true)
	c.DConv, c.DtRank, c.Expand, c.DState = 1, 3, 1, 1 // no conv state, N = 1
	cs = append(cs, c)
	c = tiny("layernorm", false)
	c.DModel, c.DConv, c.Expand, c.DState = 5, 3, 3, 2 // odd d, E·d = 15
	return append(cs, c)
}

// The closed form must equal what Build allocates; names are unique and
// only 2-D weights of projections and the conv take weight decay (A_log is
// 2-D but takes none).
func TestNumParamsMatchesBuild(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab = 7
	for _, c := range variants() {
		m := build(t, c, b, vocab, 1)
		ps := m.Params()
		if got, want := nn.CountParams(ps), c.NumParams(vocab, 0); got != want {
			t.Errorf("%s: built %d params, NumParams says %d", name(c), got, want)
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if seen[p.Name] {
				t.Errorf("%s: duplicate name %s", name(c), p.Name)
			}
			seen[p.Name] = true
			decay := strings.HasSuffix(p.Name, ".weight") && len(p.T.Shape) == 2 && !strings.Contains(p.Name, "embed")
			if p.Decay != decay {
				t.Errorf("%s: %s %v decay %v", name(c), p.Name, p.T.Shape, p.Decay)
			}
		}
	}
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny("layernorm", false), b, 7, 1)
	var names []string
	for _, p := range m.Params() {
		names = append(names, fmt.Sprintf("%s%v", p.Name, p.T.Shape))
	}
	want := "embed.weight[7 4] layers.0.norm.weight[4] layers.0.norm.bias[4] layers.0.mixer.in_proj.weight[16 4] " +
		"layers.0.mixer.conv1d.weight[8 4] layers.0.mixer.conv1d.bias[8] layers.0.mixer.x_proj.weight[7 8] " +
		"layers.0.mixer.dt_proj.weight[8 1] layers.0.mixer.dt_proj.bias[8] layers.0.mixer.A_log[8 3] " +
		"layers.0.mixer.D[8] layers.0.mixer.out_proj.weight[4 8]"
	if got := strings.Join(names[:12], " "); got != want {
		t.Errorf("names:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(names[len(names)-3:], " "); got != "norm_f.weight[4] norm_f.bias[4] lm_head.weight[7 4]" {
		t.Errorf("last names: %s", got)
	}
}

// The initialization of mamba_ssm: A_log = log(1..N), D = 1,
// softplus(dt_proj.bias) in [dt_min, dt_max], dt_proj.weight in ±R^−½,
// conv weights and bias in ±1/√W, out_proj within torch's Linear bound
// scaled by 1/√n_layers.
func TestInit(t *testing.T) {
	b := cpukernels.New[float64]()
	c := mamba1.DefaultConfig()
	c.DModel, c.NLayers, c.DtMin, c.DtMax = 32, 4, 0.01, 0.05
	m := build(t, c, b, 11, 3)
	mx := m.Blocks[1].Mixer
	E, N := 2*c.DModel, c.DState
	alog := b.Read(mx.ALog.Data)
	for i, v := range alog {
		if want := math.Log(float64(i%N + 1)); v != want {
			t.Fatalf("A_log[%d] = %g, want log(%d)", i, v, i%N+1)
		}
	}
	for i, v := range b.Read(mx.D.Data) {
		if v != 1 {
			t.Fatalf("D[%d] = %g, want 1", i, v)
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range b.Read(mx.DtProj.B.Data) {
		dt := math.Log1p(math.Exp(v))
		lo, hi = min(lo, dt), max(hi, dt)
	}
	if lo < 0.01*(1-1e-12) || hi > 0.05*(1+1e-12) || hi-lo < 0.02 {
		t.Errorf("softplus(dt_proj.bias) spans [%g, %g], want a spread inside [0.01, 0.05]", lo, hi)
	}
	within := func(what string, x []float64, bound float64) {
		t.Helper()
		worst := 0.0
		for _, v := range x {
			worst = max(worst, math.Abs(v))
		}
		if worst > bound || worst < 0.8*bound {
			t.Errorf("%s: max |w| = %g, want just under %g", what, worst, bound)
		}
	}
	within("dt_proj.weight", b.Read(mx.DtProj.W.Data), 1/math.Sqrt(2)) // dt_rank = ceil(32/16) = 2
	within("conv1d.weight", b.Read(mx.ConvW.Data), 0.5)
	within("conv1d.bias", b.Read(mx.ConvB.Data), 0.5)
	within("out_proj.weight", b.Read(mx.OutProj.W.Data), 1/math.Sqrt(float64(E))/2)
	if got := len(b.Read(mx.XProj.W.Data)); got != E*(2+2*N) {
		t.Errorf("x_proj has %d weights, want %d", got, E*(2+2*N))
	}
}

func TestFLOPsPerToken(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny("rmsnorm", true), b, 7, 1)
	// d 4, E 8, R 1, N 3, W 4, V 7, 2 layers. Per layer:
	// 2·(8·4·2 + 8·7 + 1·8 + 8·4) = 320; conv 2·8·4 = 64; scan 9·8·3 + 2·8 = 232.
	// 2·616 + head 2·4·7 = 1288.
	for _, L := range []int{1, 1000} {
		if got := m.FLOPsPerToken(L); got != 1288 {
			t.Errorf("FLOPsPerToken(%d) = %g, want 1288", L, got)
		}
	}
}

// randomize replaces the init with O(1) values so every path carries
// gradient large enough to compare: norm weights around 1, A_log around
// log(1..N) (decays that neither vanish nor explode), dt biases around 0.
func randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	for _, p := range ps {
		v := b.Read(p.T.Data)
		for i := range v {
			r := 0.5 * rng.NormFloat64()
			switch {
			case strings.HasSuffix(p.Name, "A_log"):
				v[i] += 0.3 * r
			case strings.Contains(p.Name, "norm") && strings.HasSuffix(p.Name, "weight"):
				v[i] = 1 + r
			default:
				v[i] = r
			}
		}
		b.Write(p.T.Data, v)
	}
}

func loss(b nn.Backend, m arch.Model, ids, targets []int32, B, L int, record bool) (float64, *nn.Tape, *nn.Tensor) {
	tp := nn.NewTape(b, record)
	l, _ := tp.CrossEntropy(m.Forward(tp, ids, B, L), targets, -1)
	return b.Read(l.Data)[0], tp, l
}

// Every parameter's gradient against central finite differences in float64
// (every element of small tensors, 24 random ones of larger), by the
// 6-point stencil at h = 1.5e-3: its truncation error O(h⁶) stays near
// 1e-11 and its rounding error near 2e-13. (The 4-point stencil's O(h⁴)
// reached 1e-8 absolute on the most curved embedding element, falling 16×
// per halving of h.) Gradients below 1e-6 are compared at that floor.
func TestGradCheck(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L, h = 7, 2, 5, 1.5e-3
	rng := rand.New(rand.NewPCG(11, 12))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i], targets[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
	}
	targets[3] = -1 // an ignored row must contribute nothing
	for _, c := range variants() {
		m := build(t, c, b, vocab, 2)
		ps := m.Params()
		randomize(b, ps, rng)
		nn.ZeroGrads(b, ps)
		_, tp, l := loss(b, m, ids, targets, B, L, true)
		tp.Backward(l)
		tp.Release()
		worst, where := 0.0, ""
		for _, p := range ps {
			grad := b.Read(p.T.Grad())
			x := b.Read(p.T.Data)
			idx := rng.Perm(len(x))
			if len(idx) > 24 {
				idx = idx[:24]
			}
			at := func(i int, v float64) float64 {
				old := x[i]
				x[i] = v
				b.Write(p.T.Data, x)
				f, eval, _ := loss(b, m, ids, targets, B, L, false)
				eval.Release()
				x[i] = old
				b.Write(p.T.Data, x)
				return f
			}
			for _, i := range idx {
				x0 := x[i]
				num := (at(i, x0+3*h) - 9*at(i, x0+2*h) + 45*at(i, x0+h) -
					45*at(i, x0-h) + 9*at(i, x0-2*h) - at(i, x0-3*h)) / (60 * h)
				e := math.Abs(num-grad[i]) / math.Max(1e-6, math.Max(math.Abs(num), math.Abs(grad[i])))
				if !(e <= worst) {
					worst, where = e, fmt.Sprintf("%s[%d]: analytic %.12g, numeric %.12g", p.Name, i, grad[i], num)
				}
			}
		}
		t.Logf("%s: worst rel err %.2g at %s", name(c), worst, where)
		if !(worst < 1e-6) {
			t.Errorf("%s: gradient check failed, rel err %.3g at %s", name(c), worst, where)
		}
	}
}

// Changing token t may change logits only at positions ≥ t of that
// sequence.
func TestCausal(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L = 7, 2, 6
	c := tiny("rmsnorm", true)
	m := build(t, c, b, vocab, 3)
	randomize(b, m.Params(), rand.New(rand.NewPCG(4, 4)))
	rng := rand.New(rand.NewPCG(5, 5))
	ids := make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	logits := func(ids []int32) []float64 {
		tp := nn.NewTape(b, false)
		defer tp.Release()
		return b.Read(m.Forward(tp, ids, B, L).Data)
	}
	base := logits(ids)
	for tok := range L {
		alt := append([]int32(nil), ids...)
		alt[tok] = (alt[tok] + 1) % vocab // sequence 0 only
		got := logits(alt)
		for row := range B * L {
			diff := 0.0
			for v := range vocab {
				diff = math.Max(diff, math.Abs(got[row*vocab+v]-base[row*vocab+v]))
			}
			seq, p := row/L, row%L
			if affected := seq == 0 && p >= tok; !affected && diff != 0 {
				t.Errorf("token %d changed logits of sequence %d position %d by %g", tok, seq, p, diff)
			} else if seq == 0 && p == tok && diff < 1e-6 {
				t.Errorf("token %d did not change its own logits", tok)
			}
		}
	}
}

// Step mode, one token at a time and in uneven chunks, gives the rows
// Forward gives on the whole sequence.
func TestStepMatchesForward(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L = 7, 2, 7
	rng := rand.New(rand.NewPCG(31, 32))
	ids := make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	for _, c := range variants() {
		m := build(t, c, b, vocab, 7)
		randomize(b, m.Params(), rng)
		tp := nn.NewTape(b, false)
		want := b.Read(m.Forward(tp, ids, B, L).Data)
		tp.Release()
		for _, chunks := range [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {5, 2}} {
			st := m.NewState(B)
			pos, worst := 0, 0.0
			for _, T := range chunks {
				chunk := make([]int32, 0, B*T)
				for s := range B {
					chunk = append(chunk, ids[s*L+pos:s*L+pos+T]...)
				}
				tp := nn.NewTape(b, false)
				got := b.Read(m.Step(tp, st, chunk, B, T).Data)
				tp.Release()
				for s := range B {
					for j := range T * vocab {
						g, w := got[(s*T)*vocab+j], want[(s*L+pos)*vocab+j]
						worst = max(worst, math.Abs(g-w)/max(math.Abs(w), 1e-3))
					}
				}
				pos += T
			}
			if worst > 1e-12 {
				t.Errorf("%s chunks %v: step logits differ from forward by rel %.3g", name(c), chunks, worst)
			}
			E := c.Expand * c.DModel
			if got, want := st.Bytes(), int64(c.NLayers*B*E*(c.DConv-1+c.DState)*8); got != want {
				t.Errorf("%s: state Bytes %d, want %d", name(c), got, want)
			}
			st.Free()
			if st.Bytes() != 0 {
				t.Errorf("%s: Bytes %d after Free", name(c), st.Bytes())
			}
		}
	}
}

func TestStepErrors(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny("rmsnorm", true), b, 7, 1)
	panics := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			t.Helper()
			r := recover()
			if r == nil || !strings.Contains(fmt.Sprint(r), want) {
				t.Errorf("%s: panic %v, want one saying %q", what, r, want)
			}
		}()
		f()
	}
	st := m.NewState(2)
	panics("recording tape", "inference-only", func() { m.Step(nn.NewTape(b, true), st, []int32{1, 2}, 2, 1) })
	panics("wrong batch", "state for B=2", func() { m.Step(nn.NewTape(b, false), st, []int32{1, 2, 3}, 3, 1) })
	st.Free()
	panics("freed state", "freed", func() { m.Step(nn.NewTape(b, false), st, []int32{1, 2}, 2, 1) })
}

// A short run must learn to copy: each sequence is 4 random tokens repeated
// (x1..x4 x1..x4), and the loss counts only the second copy, which needs
// the selective state to remember earlier tokens (chance: log 8 ≈ 2.08).
func TestLearnsToCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("training run")
	}
	b := cpukernels.New[float32]()
	const vocab, B, half, steps = 8, 16, 4, 200
	const L = 2 * half
	c := mamba1.DefaultConfig()
	c.DModel, c.NLayers, c.DState = 16, 2, 8
	m := build(t, c, b, vocab, 1)
	ps := m.Params()
	opt := nn.NewAdamW(b, ps, 0.01)
	sched := nn.NewSchedule("cosine", 1e-2, 20, steps)
	rng := rand.New(rand.NewPCG(9, 9))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	last := 0.0
	for step := range steps {
		for s := range B {
			for p := range half {
				tok := int32(rng.IntN(vocab))
				ids[s*L+p], ids[s*L+half+p] = tok, tok
			}
			for p := range L {
				targets[s*L+p] = -1
				if p >= half-1 && p < L-1 {
					targets[s*L+p] = ids[s*L+p+1]
				}
			}
		}
		nn.ZeroGrads(b, ps)
		f, tp, l := loss(b, m, ids, targets, B, L, true)
		tp.Backward(l)
		tp.Release()
		nn.ClipGradNorm(b, ps, 1)
		opt.Step(sched.At(step))
		last = 0.9*last + 0.1*f
		if step < 10 {
			last = f
		}
	}
	t.Logf("smoothed copy loss after %d steps: %.3f", steps, last)
	if last > 0.5 {
		t.Errorf("copy loss %.3f after %d steps, want < 0.5", last, steps)
	}
}
