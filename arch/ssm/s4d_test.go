package ssm_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
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

func cases(cs ...*ssm.Config) []archtest.Case { return archtest.Cases(name, cs...) }

func build(t *testing.T, c *ssm.Config, b nn.Backend, vocab int, seed uint64) *ssm.Model {
	t.Helper()
	return archtest.Build(t, b, cases(c)[0], vocab, 0, seed).(*ssm.Model)
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
	archtest.CheckParams(t, cpukernels.New[float64](), cases(allConfigs()...), archtest.ParamOptions{
		Vocab: 7,
		Decays: func(p nn.Param) bool {
			return strings.HasSuffix(p.Name, "output_linear.weight") || p.Name == "lm_head.weight"
		},
	})
	// d_model 64, d_state 64, 2 layers, vocab 16, defaults (GLU, LayerNorm,
	// tied): 16·64 + 2·(128 + 2·64·65 + 128·64 + 128) + 128 = 34 688.
	if got := ssm.DefaultConfig().NumParams(16, 0); got != 34688 {
		t.Errorf("default NumParams(16) = %d, want 34688", got)
	}
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	archtest.CheckParamNames(t, build(t, tiny("lin", "glu", "layernorm", false), b, 7, 1).Params(),
		"embed.weight[7 6] layers.0.norm.weight[6] layers.0.norm.bias[6] layers.0.s4d.D[6] "+
			"layers.0.s4d.kernel.log_dt[6] layers.0.s4d.kernel.log_A_real[6 2] layers.0.s4d.kernel.A_imag[6 2] "+
			"layers.0.s4d.kernel.C[6 2 2] layers.0.s4d.output_linear.weight[12 6] layers.0.s4d.output_linear.bias[12] "+
			"... norm_f.weight[6] norm_f.bias[6] lm_head.weight[7 6]")
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

// randomize is archtest's default (O(1) values, norm weights around 1)
// with each channel a step dt in [0.1, 1], so that A, dt and C all move the
// kernel noticeably within the few positions of a test sequence. A keeps
// its init (Lin, Inv or Real).
func randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	archtest.RandomizeBy(b, ps, rng, func(name string, old, r float64) float64 {
		switch {
		case strings.HasSuffix(name, "log_A_real") || strings.HasSuffix(name, "A_imag"):
			return old
		case strings.HasSuffix(name, "log_dt"):
			return math.Log(0.1) + rng.Float64()*math.Log(10)
		}
		return archtest.O1(name, r)
	})
}

// h = 5e-4: the 4-point stencil's O(h⁴) error grows with the kernel's
// phase rate dt·A_im·k (at h = 1e-3 it reached 2.6e-7 on an A_imag
// element, falling 16× per halving of h), and rounding (~1e-16/h on a loss
// of ~2) sets the floor of a few 1e-8.
func TestGradCheck(t *testing.T) {
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(
		tiny("lin", "glu", "layernorm", true),
		tiny("inv", "linear", "rmsnorm", false),
		tiny("real", "glu", "rmsnorm", false),
	), archtest.GradOptions{Vocab: 7, B: 2, L: 6, H: 5e-4, Stencil: archtest.Central4, Tol: 1e-6, Randomize: randomize})
}

// Forward is an FFT convolution: a later token may move earlier logits by
// float64 rounding.
func TestCausal(t *testing.T) {
	archtest.CheckCausal(t, cpukernels.New[float64](), cases(tiny("lin", "glu", "layernorm", true)), archtest.CausalOptions{
		Vocab: 7, B: 2, L: 6, Leak: 1e-12, Randomize: randomize,
	})
}

// Step mode (the recurrence, T = 1 and uneven chunks) gives the rows
// Forward (the FFT convolution) gives on the whole sequence, for every
// init, at the init's own dt range and at the large dt of randomize; the
// state is n_layers·B·d·d_state elements.
func TestStepMatchesForward(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.New[float64](), cases(
		tiny("lin", "glu", "layernorm", true),
		tiny("inv", "linear", "rmsnorm", false),
		tiny("real", "glu", "rmsnorm", true),
	), archtest.StepOptions{
		Vocab: 7, B: 2, L: 9,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 4}, {9}},
		Err:    archtest.Rel(1), Tol: 1e-10,
		AlsoInit: true,
		StateBytes: func(cfg arch.Config, B, _ int) int64 {
			c := cfg.(*ssm.Config)
			return int64(c.NLayers * B * c.DModel * c.DState * 8)
		},
		Randomize: randomize,
	})
}

func TestStepContract(t *testing.T) {
	archtest.CheckStepContract(t, cpukernels.New[float64](), cases(tiny("lin", "glu", "layernorm", true))[0], archtest.FreedRestarts)
}

// Predicting the second copy is a fixed lag of 3: a convolution an LTI
// model can hold.
func TestLearnsToCopy(t *testing.T) {
	c := ssm.DefaultConfig()
	c.DModel, c.NLayers, c.DState = 16, 2, 16
	archtest.CheckLearnsToCopy(t, cpukernels.New[float32](), cases(c)[0], archtest.LearnOptions{Steps: 200, LR: 1e-2, Bound: 0.5})
}

func TestDecode(t *testing.T) {
	cfg, err := archtest.Decode(t, "{arch: s4d, d_model: 32, n_layers: 3, d_state: 16, init: inv, output: linear, norm: rmsnorm, norm_eps: 1.0e-6, tie_embeddings: false, dt_min: 0.01, dt_max: 0.5, kernel_lr: 0.001}")
	if err != nil {
		t.Fatal(err)
	}
	want := ssm.DefaultConfig()
	want.DModel, want.NLayers, want.DState, want.Init, want.Output, want.Norm = 32, 3, 16, "inv", "linear", "rmsnorm"
	want.NormEps, want.TieEmbeddings, want.DtMin, want.DtMax, want.KernelLR = 1e-6, false, 0.01, 0.5, 1e-3
	if got := cfg.(*ssm.Config); *got != *want {
		t.Errorf("decoded %+v, want %+v", *got, *want)
	}
	cfg, err = archtest.Decode(t, "arch: s4d")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.(*ssm.Config); *got != *ssm.DefaultConfig() {
		t.Errorf("defaults: got %+v", *got)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	archtest.CheckDecodeErrors(t, []archtest.DecodeCase{
		{Src: "{arch: s4d, d_state: 63}", Want: []string{"d_state", "63", "even"}},
		{Src: "{arch: s4d, d_state: 0}", Want: []string{"d_state", "0"}},
		{Src: "{arch: s4d, d_state: 2}", Want: nil}, // one complex mode
		{Src: "{arch: s4d, init: legs}", Want: []string{"init", "legs", "lin", "inv", "real"}},
		{Src: "{arch: s4d, output: gelu}", Want: []string{"output", "gelu", "glu"}},
		{Src: "{arch: s4d, norm: batchnorm}", Want: []string{"norm", "batchnorm"}},
		{Src: "{arch: s4d, d_model: 0}", Want: []string{"d_model", "0"}},
		{Src: "{arch: s4d, n_layers: -1}", Want: []string{"n_layers", "-1"}},
		{Src: "{arch: s4d, norm_eps: 0}", Want: []string{"norm_eps"}},
		{Src: "{arch: s4d, dt_min: 0.5, dt_max: 0.1}", Want: []string{"dt_min", "0.5", "dt_max"}},
		{Src: "{arch: s4d, dt_min: -1}", Want: []string{"dt_min", "-1"}},
		{Src: "{arch: s4d, d_stat: 64}", Want: []string{"d_stat"}},
		{Src: "{arch: s4d, d_state: 64.5}", Want: []string{"64.5"}},
		{Src: "{arch: s4d, kernel_lr: -0.001}", Want: []string{"kernel_lr", "-0.001"}},
	})
}

// kernel_lr puts log_dt, log_A_real and A_imag (only) in a group with that
// peak lr and no weight decay, the S4 repository's optimizer setting; by
// default (0) no parameter has a group.
func TestKernelLRGroup(t *testing.T) {
	b := cpukernels.New[float64]()
	c := tiny("lin", "glu", "layernorm", false)
	for _, p := range build(t, c, b, 5, 1).Params() {
		if p.Group != nil {
			t.Errorf("kernel_lr 0: %s has group %+v", p.Name, *p.Group)
		}
	}
	c.KernelLR = 1e-3
	n := 0
	for _, p := range build(t, c, b, 5, 1).Params() {
		kernel := strings.Contains(p.Name, ".kernel.log_dt") || strings.Contains(p.Name, ".kernel.log_A_real") ||
			strings.Contains(p.Name, ".kernel.A_imag")
		switch {
		case kernel && (p.Group == nil || p.Group.MaxLR != 1e-3 || !p.Group.NoDecay):
			t.Errorf("%s: group %+v, want MaxLR 0.001 without decay", p.Name, p.Group)
		case !kernel && p.Group != nil:
			t.Errorf("%s: group %+v, want none", p.Name, *p.Group)
		}
		if kernel {
			n++
		}
	}
	if n != 3*c.NLayers {
		t.Errorf("%d kernel parameters, want %d", n, 3*c.NLayers)
	}
}

// Under bf16 (cpu-bfloat16) step mode (the recurrence, float32 state) and
// Forward (the FFT convolution) each compute in float32 and round the same
// activations; an activation near a rounding boundary could land one
// bfloat16 ulp apart (2⁻⁸ relative), and a logit would carry a few such
// ulps: the tolerance is 2⁻⁵ relative (absolute below 1). They agree
// exactly on this case. The state stays float32: n_layers·B·d·d_state
// elements of 4 bytes.
func TestStepMatchesForwardBF16(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.NewBF16(), cases(tiny("lin", "glu", "layernorm", true)), archtest.StepOptions{
		Vocab: 7, B: 2, L: 9,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 4}, {9}},
		Err:    archtest.Rel(1), Tol: 1.0 / 32,
		StateBytes: func(cfg arch.Config, B, _ int) int64 {
			c := cfg.(*ssm.Config)
			return int64(c.NLayers * B * c.DModel * c.DState * 4)
		},
	})
}
