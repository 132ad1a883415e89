package ssm_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/arch/ssm"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny returns a small config with the given options.
func tiny(init, output, norm string, tie bool) *ssm.Config {
	c := ssm.DefaultConfig()
	c.DModel, c.NLayers, c.DState = 6, 2, 4
	c.Init, c.Output, c.Norm, c.TieEmbeddings = init, output, norm, tie
	return c
}

func name(c *ssm.Config) string {
	return fmt.Sprintf("%s/%s/%s/tie=%v", c.Init, c.Output, c.Norm, c.TieEmbeddings)
}

func build(t *testing.T, c *ssm.Config, b nn.Backend, vocab int, seed uint64) *ssm.Model {
	t.Helper()
	m, err := c.Build(arch.Env{Backend: b, Vocab: vocab, RNG: rand.New(rand.NewPCG(seed, 1))})
	if err != nil {
		t.Fatalf("%s: %v", name(c), err)
	}
	return m.(*ssm.Model)
}

// every config option combination.
func allConfigs() []*ssm.Config {
	var cs []*ssm.Config
	for _, init := range []string{"lin", "inv", "real"} {
		for _, out := range []string{"glu", "linear"} {
			for _, norm := range []string{"layernorm", "rmsnorm"} {
				for _, tie := range []bool{true, false} {
					cs = append(cs, tiny(init, out, norm, tie))
				}
			}
		}
	}
	return cs
}

// The closed form equals what Build allocates for every option; names are
// unique and only Linear weights decay.
func TestNumParamsMatchesBuild(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab = 7
	for _, c := range allConfigs() {
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
			linearW := strings.HasSuffix(p.Name, "output_linear.weight") || p.Name == "lm_head.weight"
			if p.Decay != linearW {
				t.Errorf("%s: %s decay %v", name(c), p.Name, p.Decay)
			}
		}
	}
	// d_model 64, d_state 64, 2 layers, vocab 16, defaults (GLU, LayerNorm,
	// tied): 16·64 + 2·(128 + 2·64·65 + 128·64 + 128) + 128 = 34 688.
	if got := ssm.DefaultConfig().NumParams(16, 0); got != 34688 {
		t.Errorf("default NumParams(16) = %d, want 34688", got)
	}
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny("lin", "glu", "layernorm", false), b, 7, 1)
	var names []string
	for _, p := range m.Params() {
		names = append(names, fmt.Sprintf("%s%v", p.Name, p.T.Shape))
	}
	want := "embed.weight[7 6] layers.0.norm.weight[6] layers.0.norm.bias[6] layers.0.s4d.D[6] " +
		"layers.0.s4d.kernel.log_dt[6] layers.0.s4d.kernel.log_A_real[6 2] layers.0.s4d.kernel.A_imag[6 2] " +
		"layers.0.s4d.kernel.C[6 2 2] layers.0.s4d.output_linear.weight[12 6] layers.0.s4d.output_linear.bias[12]"
	if got := strings.Join(names[:10], " "); got != want {
		t.Errorf("names:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(names[len(names)-3:], " "); got != "norm_f.weight[6] norm_f.bias[6] lm_head.weight[7 6]" {
		t.Errorf("last names: %s", got)
	}
}

// The inits put A where the paper says, and log dt in [log dt_min,
// log dt_max].
func TestInit(t *testing.T) {
	b := cpukernels.New[float64]()
	for _, tc := range []struct {
		init   string
		re, im func(n float64) float64
	}{
		{"lin", func(float64) float64 { return -0.5 }, func(n float64) float64 { return math.Pi * n }},
		{"inv", func(float64) float64 { return -0.5 }, func(n float64) float64 { return 8 / math.Pi * (8/(2*n+1) - 1) }},
		{"real", func(n float64) float64 { return -(n + 1) }, func(float64) float64 { return 0 }},
	} {
		c := tiny(tc.init, "glu", "layernorm", true)
		c.DState = 8
		s := build(t, c, b, 5, 3).Blocks[1].SSM
		logA, aIm, logDt := b.Read(s.LogAReal.Data), b.Read(s.AImag.Data), b.Read(s.LogDt.Data)
		for i := range logA {
			n := float64(i % 4)
			if re := -math.Exp(logA[i]); math.Abs(re-tc.re(n)) > 1e-14 || math.Abs(aIm[i]-tc.im(n)) > 1e-12 {
				t.Errorf("%s: A[%d] = %g%+gi, want %g%+gi", tc.init, i, re, aIm[i], tc.re(n), tc.im(n))
			}
		}
		for h, v := range logDt {
			if v < math.Log(c.DtMin) || v > math.Log(c.DtMax) {
				t.Errorf("%s: log_dt[%d] = %g outside [log %g, log %g]", tc.init, h, v, c.DtMin, c.DtMax)
			}
		}
	}
}

func TestFLOPsPerToken(t *testing.T) {
	b := cpukernels.New[float64]()
	c := tiny("lin", "glu", "layernorm", true)
	c.DModel = 8
	m := build(t, c, b, 7, 1)
	// L = 5: n = 16. Per channel 8·2 + (7.5·16·4 + 48)/5 + 2 = 123.6; per
	// layer 8·123.6 + 2·16·8 = 1244.8; 2 layers + head 2·8·7 = 2601.6.
	if got := m.FLOPsPerToken(5); math.Abs(got-2601.6) > 1e-9 {
		t.Errorf("FLOPsPerToken(5) = %g, want 2601.6", got)
	}
}

// randomize gives every parameter O(1) values (norm weights around 1) and
// each channel a step dt in [0.1, 1], so that A, dt and C all move the
// kernel noticeably within the few positions of a test sequence. A keeps
// its init (Lin, Inv or Real).
func randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	for _, p := range ps {
		v := make([]float64, p.T.Len())
		for i := range v {
			v[i] = 0.5 * rng.NormFloat64()
			switch {
			case strings.Contains(p.Name, "norm") && strings.HasSuffix(p.Name, "weight"):
				v[i] += 1
			case strings.HasSuffix(p.Name, "log_dt"):
				v[i] = math.Log(0.1) + rng.Float64()*math.Log(10)
			}
		}
		if strings.HasSuffix(p.Name, "log_A_real") || strings.HasSuffix(p.Name, "A_imag") {
			continue
		}
		b.Write(p.T.Data, v)
	}
}

func loss(b nn.Backend, m arch.Model, ids, targets []int32, B, L int, record bool) (float64, *nn.Tape, *nn.Tensor) {
	tp := nn.NewTape(b, record)
	l, _ := tp.CrossEntropy(m.Forward(tp, ids, B, L), targets, -1)
	return b.Read(l.Data)[0], tp, l
}

// Every parameter's gradient against a 4-point central difference in
// float64, on all elements of small tensors and 24 random ones of larger;
// gradients below 1e-6 are compared at that floor. h = 5e-4: the stencil's
// O(h⁴) error grows with the kernel's phase rate dt·A_im·k (at h = 1e-3 it
// reached 2.6e-7 on an A_imag element, falling 16× per halving of h), and
// rounding (~1e-16/h on a loss of ~2) sets the floor of a few 1e-8.
func TestGradCheck(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L, h = 7, 2, 6, 5e-4
	rng := rand.New(rand.NewPCG(11, 12))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i], targets[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
	}
	targets[3] = -1
	for _, c := range []*ssm.Config{
		tiny("lin", "glu", "layernorm", true),
		tiny("inv", "linear", "rmsnorm", false),
		tiny("real", "glu", "rmsnorm", false),
	} {
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
	const vocab, B, L = 7, 2, 6
	m := build(t, tiny("lin", "glu", "layernorm", true), b, vocab, 3)
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
			if affected := seq == 0 && p >= tok; !affected && diff > 1e-12 {
				t.Errorf("token %d changed logits of sequence %d position %d by %g", tok, seq, p, diff)
			} else if seq == 0 && p == tok && diff < 1e-6 {
				t.Errorf("token %d did not change its own logits", tok)
			}
		}
	}
}

// Step mode (the recurrence, T = 1 and uneven chunks) gives the rows
// Forward (the FFT convolution) gives on the whole sequence, for every
// init, at the init's own dt range and at the large dt of randomize.
func TestStepMatchesForward(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L = 7, 2, 9
	rng := rand.New(rand.NewPCG(31, 32))
	ids := make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	for _, c := range []*ssm.Config{
		tiny("lin", "glu", "layernorm", true),
		tiny("inv", "linear", "rmsnorm", false),
		tiny("real", "glu", "rmsnorm", true),
	} {
		for _, random := range []bool{false, true} {
			m := build(t, c, b, vocab, 7)
			if random {
				randomize(b, m.Params(), rng)
			}
			tp := nn.NewTape(b, false)
			want := b.Read(m.Forward(tp, ids, B, L).Data)
			tp.Release()
			for _, chunks := range [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 4}, {9}} {
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
							worst = max(worst, math.Abs(g-w)/max(1, math.Abs(w)))
						}
					}
					pos += T
				}
				if worst > 1e-10 {
					t.Errorf("%s random=%v chunks %v: step differs from forward by %.3g", name(c), random, chunks, worst)
				}
				if got, want := st.Bytes(), int64(c.NLayers*B*c.DModel*c.DState*8); got != want {
					t.Errorf("%s: state Bytes %d, want %d", name(c), got, want)
				}
				st.Free()
				if st.Bytes() != 0 {
					t.Errorf("%s: Bytes %d after Free", name(c), st.Bytes())
				}
			}
		}
	}
}

// A short run must learn to copy: each sequence is 4 random tokens repeated
// (x1..x4 x1..x4), and the loss counts only the second copy. Predicting it
// is a fixed lag of 3 — a convolution an LTI model can hold (chance:
// log 8 ≈ 2.08).
func TestLearnsToCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("training run")
	}
	b := cpukernels.New[float32]()
	const vocab, B, half, steps = 8, 16, 4, 200
	const L = 2 * half
	c := ssm.DefaultConfig()
	c.DModel, c.NLayers, c.DState = 16, 2, 16
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

func decode(t *testing.T, src string) (arch.Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("yaml %q: %v", src, err)
	}
	return arch.Decode(doc.Content[0])
}

func TestDecode(t *testing.T) {
	cfg, err := decode(t, "{arch: s4d, d_model: 32, n_layers: 3, d_state: 16, init: inv, output: linear, norm: rmsnorm, norm_eps: 1.0e-6, tie_embeddings: false, dt_min: 0.01, dt_max: 0.5}")
	if err != nil {
		t.Fatal(err)
	}
	want := ssm.DefaultConfig()
	want.DModel, want.NLayers, want.DState, want.Init, want.Output, want.Norm = 32, 3, 16, "inv", "linear", "rmsnorm"
	want.NormEps, want.TieEmbeddings, want.DtMin, want.DtMax = 1e-6, false, 0.01, 0.5
	if got := cfg.(*ssm.Config); *got != *want {
		t.Errorf("decoded %+v, want %+v", *got, *want)
	}
	cfg, err = decode(t, "arch: s4d")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.(*ssm.Config); *got != *ssm.DefaultConfig() {
		t.Errorf("defaults: got %+v", *got)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	for i, tc := range []struct {
		src  string
		want []string // substrings of the error
	}{
		{"{arch: s4d, d_state: 63}", []string{"d_state", "63", "even"}},
		{"{arch: s4d, d_state: 0}", []string{"d_state", "0"}},
		{"{arch: s4d, d_state: 2}", nil}, // one complex mode
		{"{arch: s4d, init: legs}", []string{"init", "legs", "lin", "inv", "real"}},
		{"{arch: s4d, output: gelu}", []string{"output", "gelu", "glu"}},
		{"{arch: s4d, norm: batchnorm}", []string{"norm", "batchnorm"}},
		{"{arch: s4d, d_model: 0}", []string{"d_model", "0"}},
		{"{arch: s4d, n_layers: -1}", []string{"n_layers", "-1"}},
		{"{arch: s4d, norm_eps: 0}", []string{"norm_eps"}},
		{"{arch: s4d, dt_min: 0.5, dt_max: 0.1}", []string{"dt_min", "0.5", "dt_max"}},
		{"{arch: s4d, dt_min: -1}", []string{"dt_min", "-1"}},
		{"{arch: s4d, d_stat: 64}", []string{"d_stat"}},
		{"{arch: s4d, d_state: 64.5}", []string{"64.5"}},
	} {
		_, err := decode(t, tc.src)
		if tc.want == nil {
			if err != nil {
				t.Errorf("case %d %s: unexpected error %v", i, tc.src, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("case %d %s: no error", i, tc.src)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d %s: error %q does not mention %q", i, tc.src, err, w)
			}
		}
	}
}
