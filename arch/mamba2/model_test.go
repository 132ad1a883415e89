package mamba2_test

import (
	"fmt"
	"math"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
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
	return fmt.Sprintf("tie=%v/d=%d/E=%d/P=%d/G=%d/N=%d/W=%d/Q=%d/h=%d",
		c.TieEmbeddings, c.DModel, c.Expand, c.HeadDim, c.NGroups, c.DState, c.DConv, c.ChunkSize, c.DIntermediate)
}

func cases(cs ...*mamba2.Config) []archtest.Case { return archtest.Cases(name, cs...) }

func build(t *testing.T, c *mamba2.Config, b nn.Backend, vocab int, seed uint64) *mamba2.Model {
	t.Helper()
	return archtest.Build(t, b, cases(c)[0], vocab, 0, seed).(*mamba2.Model)
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
	cs = append(cs, c)
	c = tiny(false)
	c.DIntermediate = 6 // a GatedMLP branch in every block
	return append(cs, c)
}

// The closed form must equal what Build allocates; names are unique and
// only the 2-D weights of the projections and the conv take weight decay.
func TestNumParamsMatchesBuild(t *testing.T) {
	archtest.CheckParams(t, cpukernels.New[float64](), cases(variants()...), archtest.ParamOptions{Vocab: 7})
}

// mamba2-130m's config (mamba_ssm: d_model 768, 24 layers, d_state 128,
// headdim 64, ngroups 1, expand 2, tied, vocab 50277 padded to 50288): per
// layer in_proj 768·(2·1536 + 2·128 + 24), conv (1536 + 256)·(4 + 1),
// dt_bias, A_log, D 3·24, gated norm 1536, out_proj 1536·768, block norm
// 768; 128,989,632 in all, the "130M" of its name. d_state 128 and headdim
// 64 are the defaults.
func TestNumParamsMamba2_130m(t *testing.T) {
	c := mamba2.DefaultConfig()
	c.DModel, c.NLayers = 768, 24
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
	// in_proj: 2·8 + 2·2·3 + 4 = 32; conv channels 8 + 12 = 20.
	archtest.CheckParamNames(t, build(t, tiny(false), b, 7, 1).Params(),
		"embed.weight[7 4] layers.0.norm.weight[4] layers.0.mixer.in_proj.weight[32 4] "+
			"layers.0.mixer.conv1d.weight[20 4] layers.0.mixer.conv1d.bias[20] layers.0.mixer.dt_bias[4] "+
			"layers.0.mixer.A_log[4] layers.0.mixer.D[4] layers.0.mixer.norm.weight[8] layers.0.mixer.out_proj.weight[4 8] "+
			"... norm_f.weight[4] lm_head.weight[7 4]")
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

// The gradient check runs on archtest's default randomization (norm
// weights around 1, A_log and dt biases around 0: decays e^−dt..), with
// the 4-point stencil at h = 1e-3 (truncation O(h⁴)). L = 7 runs chunks of
// 3, 3 and 1 (2, 2, 2, 1 for the chunk-2 variant). norm_eps is 0.1: the
// norms here act on vectors of 4 to 15 elements, and after the random draw
// a few are nearly 0, where x/rms(x) bends on a scale of ~1e-3 and the
// stencil's truncation reaches 1e-3 at norm_eps 1e-5 (it falls as h⁴
// towards the analytic gradient, so it is the stencil, not the gradient).
func TestGradCheck(t *testing.T) {
	cs := variants()
	for _, c := range cs {
		c.NormEps = 0.1
	}
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(cs...), archtest.GradOptions{
		Vocab: 7, B: 2, L: 7, H: 1e-3, Stencil: archtest.Central4, Tol: 1e-6,
	})
}

// At L = 1 the layout copies are reshapes sharing their sources' memory
// and gradients (arch.ChannelsFirst): the gradients stay right.
func TestGradCheckOneToken(t *testing.T) {
	c := variants()[0]
	c.NormEps = 0.1
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(c), archtest.GradOptions{
		Vocab: 7, B: 4, L: 1, H: 1e-3, Stencil: archtest.Central4, Tol: 1e-6,
	})
}

// Nothing mixes positions but the causal conv and the SSD (whose chunks
// see only earlier chunks): logits before a changed token do not move.
func TestCausal(t *testing.T) {
	archtest.CheckCausal(t, cpukernels.New[float64](), cases(tiny(true)), archtest.CausalOptions{
		Vocab: 7, B: 2, L: 7, Leak: 0,
	})
}

// Step mode, one token at a time and in uneven pieces (each a different
// cut through the chunks of 3), gives the rows Forward gives on the whole
// sequence; the state is the conv window of [x | B | C] and the SSM state,
// n_layers·B·(K·(d_conv − 1) + H·P·N) elements.
func TestStepMatchesForward(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.New[float64](), cases(variants()...), archtest.StepOptions{
		Vocab: 7, B: 2, L: 7,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {5, 2}, {7}},
		Err:    archtest.Rel(1e-3), Tol: 1e-12,
		StateBytes: func(cfg arch.Config, B, _ int) int64 {
			c := cfg.(*mamba2.Config)
			E := c.Expand * c.DModel
			K, H := E+2*c.NGroups*c.DState, E/c.HeadDim
			return int64(c.NLayers * B * (K*(c.DConv-1) + H*c.HeadDim*c.DState) * 8)
		},
	})
}

func TestStepContract(t *testing.T) {
	archtest.CheckStepContract(t, cpukernels.New[float64](), cases(tiny(true))[0], archtest.FreedRestarts)
}

// The copy task needs the state to remember earlier tokens. Chunks of 4
// put the two copies in different chunks: the inter-chunk state carries
// it.
func TestLearnsToCopy(t *testing.T) {
	c := mamba2.DefaultConfig()
	c.DModel, c.NLayers, c.DState, c.HeadDim, c.ChunkSize = 16, 2, 16, 8, 4
	archtest.CheckLearnsToCopy(t, cpukernels.New[float32](), cases(c)[0], archtest.LearnOptions{Steps: 200, LR: 1e-2, Bound: 0.5})
}

// d_intermediate adds mamba_ssm's GatedMLP branch to every block: its
// weights under mamba_ssm's names and 6·h·d more FLOPs per layer.
func TestGatedMLP(t *testing.T) {
	b := cpukernels.New[float64]()
	c := tiny(true)
	c.DIntermediate = 6
	m := build(t, c, b, 7, 1)
	archtest.CheckParamNames(t, m.Params(), "embed.weight[7 4] layers.0.norm.weight[4] "+
		"... layers.1.mixer.out_proj.weight[4 8] layers.1.norm2.weight[4] "+
		"layers.1.mlp.fc1.weight[12 4] layers.1.mlp.fc2.weight[4 6] norm_f.weight[4]")
	// tiny's 664 per layer at L = 6 (TestFLOPsPerToken) + 6·6·4 = 808.
	if got := m.FLOPsPerToken(6); math.Abs(got-(2*808+56)) > 1e-9 {
		t.Errorf("FLOPsPerToken(6) = %g, want %d", got, 2*808+56)
	}
}

// Under bf16 (cpu-bfloat16) step mode and Forward (the chunked SSD) round
// the same activations. With float32 states (4 bytes an element) one
// landing a bfloat16 ulp apart (2⁻⁸) would move a logit by a few: the
// tolerance is 2⁻⁵ relative (absolute below 1). With arch.Env.LowpState
// the states are bfloat16 (2 bytes): each token rounds the SSD state once
// more than Forward does (the conv state holds bfloat16 inputs exactly),
// so one token at a time drifts further: 2⁻³ (the worst measured is
// 0.072).
func TestStepMatchesForwardBF16(t *testing.T) {
	for _, lowp := range []bool{false, true} {
		cs, tol, size := cases(tiny(true)), 1.0/32, 4
		if lowp {
			tol, size = 1.0/8, 2
			for i := range cs {
				cs[i].LowpState = true
			}
		}
		archtest.CheckStepMatchesForward(t, cpukernels.NewBF16(), cs, archtest.StepOptions{
			Vocab: 7, B: 2, L: 7,
			Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {7}},
			Err:    archtest.Rel(1), Tol: tol,
			StateBytes: func(cfg arch.Config, B, _ int) int64 {
				c := cfg.(*mamba2.Config)
				E := c.Expand * c.DModel
				K, H := E+2*c.NGroups*c.DState, E/c.HeadDim
				return int64(c.NLayers * B * (K*(c.DConv-1) + H*c.HeadDim*c.DState) * size)
			},
		})
	}
}
