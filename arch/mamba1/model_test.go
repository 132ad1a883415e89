package mamba1_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
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
	return fmt.Sprintf("%s/tie=%v/E=%d/N=%d/W=%d/R=%d/h=%d/hb=%v", c.Norm, c.TieEmbeddings, c.Expand, c.DState, c.DConv, c.DtRank, c.DIntermediate, c.HeadBias)
}

func cases(cs ...*mamba1.Config) []archtest.Case { return archtest.Cases(name, cs...) }

func build(t *testing.T, c *mamba1.Config, b nn.Backend, vocab int, seed uint64) *mamba1.Model {
	t.Helper()
	return archtest.Build(t, b, cases(c)[0], vocab, 0, seed).(*mamba1.Model)
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
	cs = append(cs, c)
	c = tiny("layernorm", true)
	c.DIntermediate = 6 // a GatedMLP branch in every block
	cs = append(cs, c)
	c = tiny("rmsnorm", false)
	c.HeadBias = true // an untied head with a bias
	return append(cs, c)
}

// The closed form must equal what Build allocates; names are unique and
// only 2-D weights of projections and the conv take weight decay (A_log is
// 2-D but takes none).
func TestNumParamsMatchesBuild(t *testing.T) {
	archtest.CheckParams(t, cpukernels.New[float64](), cases(variants()...), archtest.ParamOptions{Vocab: 7})
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	archtest.CheckParamNames(t, build(t, tiny("layernorm", false), b, 7, 1).Params(),
		"embed.weight[7 4] layers.0.norm.weight[4] layers.0.norm.bias[4] layers.0.mixer.in_proj.weight[16 4] "+
			"layers.0.mixer.conv1d.weight[8 4] layers.0.mixer.conv1d.bias[8] layers.0.mixer.x_proj.weight[7 8] "+
			"layers.0.mixer.dt_proj.weight[8 1] layers.0.mixer.dt_proj.bias[8] layers.0.mixer.A_log[8 3] "+
			"layers.0.mixer.D[8] layers.0.mixer.out_proj.weight[4 8] "+
			"... norm_f.weight[4] norm_f.bias[4] lm_head.weight[7 4]")
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

// randomize is archtest's default with A_log kept around its init
// log(1..N) (decays that neither vanish nor explode); dt biases are drawn
// around 0 like every other parameter.
func randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	archtest.RandomizeBy(b, ps, rng, func(name string, old, r float64) float64 {
		if strings.HasSuffix(name, "A_log") {
			return old + 0.3*r
		}
		return archtest.O1(name, r)
	})
}

// The 6-point stencil at h = 1.5e-3: its truncation error O(h⁶) stays near
// 1e-11 and its rounding error near 2e-13. (The 4-point stencil's O(h⁴)
// reached 1e-8 absolute on the most curved embedding element, falling 16×
// per halving of h.)
func TestGradCheck(t *testing.T) {
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(variants()...), archtest.GradOptions{
		Vocab: 7, B: 2, L: 5, H: 1.5e-3, Stencil: archtest.Central6, Tol: 1e-6, Randomize: randomize,
	})
}

// At L = 1 the layout copies are reshapes sharing their sources' memory
// and gradients (arch.ChannelsFirst): the gradients stay right.
func TestGradCheckOneToken(t *testing.T) {
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(variants()[0]), archtest.GradOptions{
		Vocab: 7, B: 4, L: 1, H: 1.5e-3, Stencil: archtest.Central6, Tol: 1e-6, Randomize: randomize,
	})
}

// Nothing mixes positions but the causal conv and the scan: logits before
// a changed token do not move at all.
func TestCausal(t *testing.T) {
	archtest.CheckCausal(t, cpukernels.New[float64](), cases(tiny("rmsnorm", true)), archtest.CausalOptions{
		Vocab: 7, B: 2, L: 6, Leak: 0, Randomize: randomize,
	})
}

// Step mode, one token at a time and in uneven chunks, gives the rows
// Forward gives on the whole sequence; the state is the conv window and
// the scan state, n_layers·B·E·(d_conv − 1 + d_state) elements.
func TestStepMatchesForward(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.New[float64](), cases(variants()...), archtest.StepOptions{
		Vocab: 7, B: 2, L: 7,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {5, 2}},
		Err:    archtest.Rel(1e-3), Tol: 1e-12,
		StateBytes: func(cfg arch.Config, B, _ int) int64 {
			c := cfg.(*mamba1.Config)
			return int64(c.NLayers * B * c.Expand * c.DModel * (c.DConv - 1 + c.DState) * 8)
		},
		Randomize: randomize,
	})
}

func TestStepContract(t *testing.T) {
	archtest.CheckStepContract(t, cpukernels.New[float64](), cases(tiny("rmsnorm", true))[0], archtest.FreedRestarts)
}

// The copy task needs the selective state to remember earlier tokens.
func TestLearnsToCopy(t *testing.T) {
	c := mamba1.DefaultConfig()
	c.DModel, c.NLayers, c.DState = 16, 2, 8
	archtest.CheckLearnsToCopy(t, cpukernels.New[float32](), cases(c)[0], archtest.LearnOptions{Steps: 200, LR: 1e-2, Bound: 0.5})
}

// d_intermediate adds mamba_ssm's GatedMLP branch to every block: its
// weights under mamba_ssm's names, 6·h·d more FLOPs per layer, and
// out_proj and fc2 scaled by 1/√(2·n_layers) (two residual branches).
func TestGatedMLP(t *testing.T) {
	b := cpukernels.New[float64]()
	c := tiny("layernorm", true)
	c.DIntermediate = 6
	m := build(t, c, b, 7, 1)
	archtest.CheckParamNames(t, m.Params(), "embed.weight[7 4] layers.0.norm.weight[4] layers.0.norm.bias[4] "+
		"... layers.1.mixer.out_proj.weight[4 8] layers.1.norm2.weight[4] layers.1.norm2.bias[4] "+
		"layers.1.mlp.fc1.weight[12 4] layers.1.mlp.fc2.weight[4 6] norm_f.weight[4] norm_f.bias[4]")
	// tiny's 616 per layer (TestFLOPsPerToken) + 6·6·4 = 760: 2·760 + 56.
	if got := m.FLOPsPerToken(9); got != 2*760+56 {
		t.Errorf("FLOPsPerToken = %g, want %d", got, 2*760+56)
	}
	bound := func(w *nn.Tensor, fanIn int) float64 { return 1 / math.Sqrt(float64(fanIn)) / math.Sqrt(4) }
	for _, tc := range []struct {
		name  string
		w     *nn.Tensor
		fanIn int
	}{{"out_proj", m.Blocks[0].Mixer.OutProj.W, 8}, {"fc2", m.Blocks[1].MLP.FC2.W, 6}} {
		hi := 0.0
		for _, v := range b.Read(tc.w.Data) {
			hi = max(hi, math.Abs(v))
		}
		if lim := bound(tc.w, tc.fanIn); hi > lim || hi < lim/2 {
			t.Errorf("%s: largest |w| %g, want within (%g/2, %g], torch's bound over √(2·n_layers)", tc.name, hi, lim, lim)
		}
	}
}

// Under bf16 (cpu-bfloat16) step mode and Forward round the same
// activations. With float32 states (4 bytes an element) one landing a
// bfloat16 ulp apart (2⁻⁸) would move a logit by a few: the tolerance is
// 2⁻⁵ relative (absolute below 1). With arch.Env.LowpState the states are
// bfloat16 (2 bytes): each token rounds the SSM state once more than
// Forward does (the conv state holds bfloat16 inputs exactly), so one
// token at a time drifts further: 2⁻³ (the worst measured is 0.027).
func TestStepMatchesForwardBF16(t *testing.T) {
	for _, lowp := range []bool{false, true} {
		cs, tol, size := cases(tiny("rmsnorm", true)), 1.0/32, 4
		if lowp {
			tol, size = 1.0/8, 2
			for i := range cs {
				cs[i].LowpState = true
			}
		}
		archtest.CheckStepMatchesForward(t, cpukernels.NewBF16(), cs, archtest.StepOptions{
			Vocab: 7, B: 2, L: 7,
			Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {5, 2}},
			Err:    archtest.Rel(1), Tol: tol,
			StateBytes: func(cfg arch.Config, B, _ int) int64 {
				c := cfg.(*mamba1.Config)
				return int64(c.NLayers * B * c.Expand * c.DModel * (c.DConv - 1 + c.DState) * size)
			},
		})
	}
}
