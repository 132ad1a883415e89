package mamba2_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/mamba2"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny returns a small config: d 4, E 2 (8 channels), headdim 2 (4 heads),
// 2 groups, N 3, chunk 3 (so sequences of 5..7 steps run several chunks,
// the last one partial).
func tiny(tie bool) *mamba2.Config {
	c := mamba2.DefaultConfig()
	c.DModel, c.NLayers, c.DState, c.HeadDim, c.NGroups, c.ChunkSize = 4, 2, 3, 2, 2, 3
	c.TieEmbeddings = tie
	return c
}

func name(c *mamba2.Config) string {
	return fmt.Sprintf("tie=%v/d=%d/E=%d/P=%d/G=%d/N=%d/W=%d/Q=%d",
		c.TieEmbeddings, c.DModel, c.Expand, c.HeadDim, c.NGroups, c.DState, c.DConv, c.ChunkSize)
}

func build(t *testing.T, c *mamba2.Config, b nn.Backend, vocab int, seed uint64) *mamba2.Model {
	t.Helper()
	m, err := c.Build(arch.Env{Backend: b, Vocab: vocab, RNG: rand.New(rand.NewPCG(seed, 1))})
	if err != nil {
		t.Fatalf("%s: %v", name(c), err)
	}
	return m.(*mamba2.Model)
}

// variants covers every option that changes shapes or the computation.
func variants() []*mamba2.Config {
	cs := []*mamba2.Config{tiny(true), tiny(false)}
	c := tiny(true)
	c.HeadDim, c.NGroups, c.DState, c.DConv = 1, 1, 1, 1 // P = 1 (8 heads), N = 1, no conv state
	cs = append(cs, c)
	c = tiny(false)
	c.DModel, c.Expand, c.HeadDim, c.NGroups, c.DConv, c.ChunkSize = 5, 3, 5, 3, 3, 2 // E·d = 15, 3 heads of 5, 3 groups
	cs = append(cs, c)
	c = tiny(true)
	c.HeadDim, c.NGroups, c.ChunkSize = 8, 1, 64 // one head, one chunk
	return append(cs, c)
}

// The closed form must equal what Build allocates; names are unique and
// only the 2-D weights of the projections and the conv take weight decay.
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

// mamba2-130m's config (mamba_ssm: d_model 768, 24 layers, d_state 128,
// headdim 64, ngroups 1, expand 2, tied, vocab 50277 padded to 50288): per
// layer in_proj 768·(2·1536 + 2·128 + 24), conv (1536 + 256)·(4 + 1),
// dt_bias, A_log, D 3·24, gated norm 1536, out_proj 1536·768, block norm
// 768; 128,989,632 in all, the "130M" of its name.
func TestNumParamsMamba2_130m(t *testing.T) {
	c := mamba2.DefaultConfig()
	c.DModel, c.NLayers, c.DState = 768, 24, 128
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	perLayer := 768*(3072+256+24) + 1792*5 + 3*24 + 1536 + 1536*768 + 768
	want := 50288*768 + 24*perLayer + 768
	if want != 128_989_632 {
		t.Fatalf("the hand count is %d", want)
	}
	if got := c.NumParams(50288, 0); got != want {
		t.Errorf("NumParams = %d, want %d", got, want)
	}
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny(false), b, 7, 1)
	var names []string
	for _, p := range m.Params() {
		names = append(names, fmt.Sprintf("%s%v", p.Name, p.T.Shape))
	}
	// in_proj: 2·8 + 2·2·3 + 4 = 32; conv channels 8 + 12 = 20.
	want := "embed.weight[7 4] layers.0.norm.weight[4] layers.0.mixer.in_proj.weight[32 4] " +
		"layers.0.mixer.conv1d.weight[20 4] layers.0.mixer.conv1d.bias[20] layers.0.mixer.dt_bias[4] " +
		"layers.0.mixer.A_log[4] layers.0.mixer.D[4] layers.0.mixer.norm.weight[8] layers.0.mixer.out_proj.weight[4 8]"
	if got := strings.Join(names[:10], " "); got != want {
		t.Errorf("names:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(names[len(names)-2:], " "); got != "norm_f.weight[4] lm_head.weight[7 4]" {
		t.Errorf("last names: %s", got)
	}
}

// mamba_ssm's init: A_log = log U(1, 16), softplus(dt_bias) log-uniform
// in [dt_min, dt_max], D = 1, norm weights 1, conv weights and bias in
// ±1/√W, out_proj within torch's Linear bound scaled by 1/√n_layers.
func TestInit(t *testing.T) {
	b := cpukernels.New[float64]()
	c := mamba2.DefaultConfig()
	c.DModel, c.NLayers, c.HeadDim, c.DtMin, c.DtMax = 64, 4, 1, 0.01, 0.05 // 128 heads
	m := build(t, c, b, 11, 3)
	mx := m.Blocks[1].Mixer
	E := 2 * c.DModel
	span := func(what string, x []float64, f func(float64) float64, lo, hi float64) {
		t.Helper()
		mn, mx := math.Inf(1), math.Inf(-1)
		for _, v := range x {
			mn, mx = min(mn, f(v)), max(mx, f(v))
		}
		if mn < lo*(1-1e-12) || mx > hi*(1+1e-12) || mx-mn < 0.5*(hi-lo) {
			t.Errorf("%s spans [%g, %g], want a spread inside [%g, %g]", what, mn, mx, lo, hi)
		}
	}
	span("-A = exp(A_log)", b.Read(mx.ALog.Data), math.Exp, 1, 16)
	span("softplus(dt_bias)", b.Read(mx.DtBias.Data), func(v float64) float64 { return math.Log1p(math.Exp(v)) }, 0.01, 0.05)
	for _, p := range []struct {
		name string
		t    *nn.Tensor
	}{{"D", mx.D}, {"norm.weight", mx.NormW}} {
		for i, v := range b.Read(p.t.Data) {
			if v != 1 {
				t.Fatalf("%s[%d] = %g, want 1", p.name, i, v)
			}
		}
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
	within("conv1d.weight", b.Read(mx.ConvW.Data), 0.5)
	within("conv1d.bias", b.Read(mx.ConvB.Data), 0.5)
	within("in_proj.weight", b.Read(mx.InProj.W.Data), 1/math.Sqrt(float64(c.DModel)))
	within("out_proj.weight", b.Read(mx.OutProj.W.Data), 1/math.Sqrt(float64(E))/2)
}

func TestFLOPsPerToken(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny(true), b, 7, 1)
	// d 4, E 8, H 4, P 2, G 2, N 3, W 4, K 20, V 7, chunk 3, 2 layers.
	// Per layer: projections 2·(4·32 + 8·4) = 320; conv 2·20·4 = 160;
	// 4·H·P·N = 96; D skip 16; at L = 6 (two full chunks): q = 2·6/6 = 2,
	// intra 2·2·(6 + 8) = 56, inter 2·24·(2/6) = 16: 664 per layer,
	// 2·664 + head 2·4·7 = 1384.
	if got := m.FLOPsPerToken(6); math.Abs(got-1384) > 1e-9 {
		t.Errorf("FLOPsPerToken(6) = %g, want 1384", got)
	}
	// L = 1: q = 1, intra 2·1·14 = 28, inter 2·24 = 48: 668 per layer.
	if got := m.FLOPsPerToken(1); math.Abs(got-(2*668+56)) > 1e-9 {
		t.Errorf("FLOPsPerToken(1) = %g, want %d", got, 2*668+56)
	}
}

// randomize replaces the init with O(1) values so every path carries
// gradient large enough to compare: norm weights around 1, A_log around 0
// (decays e^−dt..), dt biases around 0.
func randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	for _, p := range ps {
		v := b.Read(p.T.Data)
		for i := range v {
			r := 0.5 * rng.NormFloat64()
			switch {
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
// (every element of small tensors, 24 random ones of larger), with the
// 4-point stencil at h = 1e-3 (truncation O(h⁴)); gradients below 1e-6 are
// compared at that floor. L = 7 runs chunks of 3, 3 and 1 (2, 2, 2, 1 for
// the chunk-2 variant). norm_eps is 0.1: the norms here act on vectors of
// 4 to 15 elements, and after the random draw a few are nearly 0, where
// x/rms(x) bends on a scale of ~1e-3 and the stencil's truncation reaches
// 1e-3 at norm_eps 1e-5 (it falls as h⁴ towards the analytic gradient, so
// it is the stencil, not the gradient).
func TestGradCheck(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L, h = 7, 2, 7, 1e-3
	rng := rand.New(rand.NewPCG(11, 12))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i], targets[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
	}
	targets[3] = -1 // an ignored row must contribute nothing
	for _, c := range variants() {
		c.NormEps = 0.1
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
				num := (-at(i, x0+2*h) + 8*at(i, x0+h) - 8*at(i, x0-h) + at(i, x0-2*h)) / (12 * h)
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
	const vocab, B, L = 7, 2, 7
	m := build(t, tiny(true), b, vocab, 3)
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

// Step mode, one token at a time and in uneven pieces (each a different
// cut through the chunks of 3), gives the rows Forward gives on the whole
// sequence.
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
		for _, pieces := range [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {5, 2}, {7}} {
			st := m.NewState(B)
			pos, worst := 0, 0.0
			for _, T := range pieces {
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
			t.Logf("%s pieces %v: worst rel err %.2g", name(c), pieces, worst)
			if worst > 1e-12 {
				t.Errorf("%s pieces %v: step logits differ from forward by rel %.3g", name(c), pieces, worst)
			}
			E := c.Expand * c.DModel
			K, H := E+2*c.NGroups*c.DState, E/c.HeadDim
			if got, want := st.Bytes(), int64(c.NLayers*B*(K*(c.DConv-1)+H*c.HeadDim*c.DState)*8); got != want {
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
	m := build(t, tiny(true), b, 7, 1)
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
// the state to remember earlier tokens (chance: log 8 ≈ 2.08). Chunks of 4
// put the two copies in different chunks: the inter-chunk state carries it.
func TestLearnsToCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("training run")
	}
	b := cpukernels.New[float32]()
	const vocab, B, half, steps = 8, 16, 4, 200
	const L = 2 * half
	c := mamba2.DefaultConfig()
	c.DModel, c.NLayers, c.DState, c.HeadDim, c.ChunkSize = 16, 2, 16, 8, 4
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
