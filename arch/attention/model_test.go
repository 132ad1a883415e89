package attention_test

import (
	"fmt"
	"slices"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/attention"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny returns a small config with the given options.
func tiny(pos, mlp, norm string, bias, tie bool) *attention.Config {
	c := attention.DefaultConfig()
	c.DModel, c.NLayers, c.NHeads, c.MLPRatio = 8, 2, 2, 2
	c.Pos, c.MLP, c.Norm, c.Bias, c.TieEmbeddings = pos, mlp, norm, bias, tie
	return c
}

func name(c *attention.Config) string {
	return fmt.Sprintf("%s/%s/%s/bias=%v/tie=%v", c.Pos, c.MLP, c.Norm, c.Bias, c.TieEmbeddings)
}

func cases(cs ...*attention.Config) []archtest.Case { return archtest.Cases(name, cs...) }

func build(t *testing.T, c *attention.Config, b nn.Backend, vocab, maxLen int, seed uint64) *attention.Model {
	t.Helper()
	return archtest.Build(t, b, cases(c)[0], vocab, maxLen, seed).(*attention.Model)
}

// The closed form must equal what Build allocates, for every option
// combination; names are unique and decay follows the convention (only
// Linear weights, which are the only 2-D params besides embeddings).
func TestNumParamsMatchesBuild(t *testing.T) {
	var cs []*attention.Config
	for _, pos := range []string{"rope", "learned", "none"} {
		for _, mlp := range []string{"gelu", "swiglu", "none"} {
			for _, norm := range []string{"rmsnorm", "layernorm"} {
				for _, bias := range []bool{false, true} {
					for _, tie := range []bool{false, true} {
						c := tiny(pos, mlp, norm, bias, tie)
						c.MLPRatio = 2.5          // hidden 20: not a multiple of d
						c.HeadBias = !tie && bias // an untied head with a bias
						cs = append(cs, c)
					}
				}
			}
		}
	}
	archtest.CheckParams(t, cpukernels.New[float64](), cases(cs...), archtest.ParamOptions{Vocab: 7, MaxLen: 5})
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	archtest.CheckParamNames(t, build(t, tiny("learned", "gelu", "layernorm", true, false), b, 7, 5, 1).Params(),
		"embed.weight[7 8] pos_embed.weight[5 8] "+
			"layers.0.norm1.weight[8] layers.0.norm1.bias[8] layers.0.attn.qkv.weight[24 8] layers.0.attn.qkv.bias[24] "+
			"layers.0.attn.proj.weight[8 8] layers.0.attn.proj.bias[8] layers.0.norm2.weight[8] layers.0.norm2.bias[8] "+
			"layers.0.mlp.fc.weight[16 8] layers.0.mlp.fc.bias[16] layers.0.mlp.proj.weight[8 16] layers.0.mlp.proj.bias[8] "+
			"... norm_f.weight[8] norm_f.bias[8] lm_head.weight[7 8]")
}

func TestFLOPsPerToken(t *testing.T) {
	b := cpukernels.New[float64]()
	c := tiny("rope", "gelu", "rmsnorm", false, true)
	c.MLPRatio = 4
	m := build(t, c, b, 7, 5, 1)
	// matmuls 2·(2·(4·64 + 2·8·32) + 8·7) = 3184; attention 2·4·((5+1)/2)·8 = 192.
	if got := m.FLOPsPerToken(5); got != 3376 {
		t.Errorf("FLOPsPerToken(5) = %g, want 3376", got)
	}
}

// The gradient check runs on archtest's default randomization: O(1) values
// instead of the GPT-2 init (norm weights around 1), so that every path —
// attention scores, gates, norm scales — carries gradient large enough to
// compare. The 4-point stencil's error is O(h⁴): at h = 1e-3 about 1e-8
// absolute on the most curved element (it falls 16× per halving of h, so it
// is truncation, not a gradient bug) and ~1e-13 of rounding, which keeps
// relative errors under 1e-6; gradients below 1e-6 (e.g. the exactly-zero
// gradient of the key bias) are compared at that floor.
func TestGradCheck(t *testing.T) {
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(
		tiny("rope", "gelu", "rmsnorm", false, true),
		tiny("rope", "swiglu", "layernorm", true, false),
		tiny("learned", "swiglu", "layernorm", true, false),
		tiny("learned", "gelu", "rmsnorm", true, true),
		tiny("none", "gelu", "layernorm", false, true),
		tiny("none", "swiglu", "rmsnorm", false, false),
		tiny("learned", "none", "layernorm", true, false),
	), archtest.GradOptions{Vocab: 7, B: 2, L: 5, H: 1e-3, Stencil: archtest.Central4, Tol: 1e-6})
}

// At L = 1 the heads' layout copies are reshapes of the same memory: the
// gradients stay right.
func TestGradCheckOneToken(t *testing.T) {
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(tiny("rope", "swiglu", "rmsnorm", true, false)),
		archtest.GradOptions{Vocab: 7, B: 4, L: 1, H: 1e-3, Stencil: archtest.Central4, Tol: 1e-6})
}

// The softmax over keys may reassociate when a later key changes, so
// logits upstream of a change may move by float64 rounding.
func TestCausal(t *testing.T) {
	archtest.CheckCausal(t, cpukernels.New[float64](), cases(
		tiny("rope", "swiglu", "rmsnorm", true, true),
		tiny("learned", "swiglu", "rmsnorm", true, true),
		tiny("none", "swiglu", "rmsnorm", true, true),
	), archtest.CausalOptions{Vocab: 7, B: 2, L: 6, Leak: 1e-12})
}

// The copy task needs attention to earlier positions.
func TestLearnsToCopy(t *testing.T) {
	c := attention.DefaultConfig()
	c.DModel, c.NLayers, c.NHeads = 16, 2, 2
	archtest.CheckLearnsToCopy(t, cpukernels.New[float32](), cases(c)[0], archtest.LearnOptions{Steps: 200, LR: 1e-2, Bound: 0.5})
}

// Step mode (KV cache) gives the rows Forward gives on the whole sequence,
// to float64 rounding in absolute terms; the cache holds K and V of every
// token consumed: 2·n_layers·B·n·d elements.
func TestStepMatchesForward(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.New[float64](), cases(
		tiny("rope", "gelu", "rmsnorm", true, true),
		tiny("learned", "swiglu", "layernorm", false, false),
		tiny("none", "gelu", "layernorm", true, true),
		tiny("rope", "none", "rmsnorm", false, true),
	), archtest.StepOptions{
		Vocab: 7, B: 2, L: 7,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {7}},
		Err:    archtest.Abs, Tol: 1e-12,
		StateBytes: func(c arch.Config, B, n int) int64 {
			cfg := c.(*attention.Config)
			return int64(2 * cfg.NLayers * B * n * cfg.DModel * 8)
		},
	})
}

// A KV cache sized at its first step for the model's maximum length grows
// when the tokens pass it (RoPE and no positions have no limit), keeping
// what it holds: the logits stay Forward's.
func TestStepPastMaxLen(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.New[float64](), cases(
		tiny("rope", "gelu", "rmsnorm", true, true),
		tiny("none", "swiglu", "layernorm", false, false),
	), archtest.StepOptions{
		Vocab: 7, B: 2, L: 11, MaxLen: 2,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 1, 1, 3, 4}, {3, 8}},
		Err:    archtest.Abs, Tol: 1e-12,
		StateBytes: func(c arch.Config, B, n int) int64 {
			cfg := c.(*attention.Config)
			return int64(2 * cfg.NLayers * B * n * cfg.DModel * 8)
		},
	})
}

// A freed KV cache is empty: generation starts over at position 0.
func TestStepContract(t *testing.T) {
	archtest.CheckStepContract(t, cpukernels.New[float64](), cases(tiny("learned", "gelu", "rmsnorm", true, true))[0], archtest.FreedRestarts)
}

// mlp none: attention-only blocks (Zoology's baseline), no norm2 or mlp
// weights, and matmul FLOPs 2·4d² per layer.
func TestMLPNone(t *testing.T) {
	b := cpukernels.New[float64]()
	c := tiny("learned", "none", "rmsnorm", false, true)
	archtest.CheckParamNames(t, build(t, c, b, 7, 5, 1).Params(),
		"embed.weight[7 8] pos_embed.weight[5 8] layers.0.norm1.weight[8] layers.0.attn.qkv.weight[24 8] "+
			"layers.0.attn.proj.weight[8 8] layers.1.norm1.weight[8] layers.1.attn.qkv.weight[24 8] "+
			"layers.1.attn.proj.weight[8 8] norm_f.weight[8]")
	// matmuls 2·(2·4·64 + 8·7) = 1136; attention 2·4·3·8 = 192.
	if got := build(t, c, b, 7, 5, 1).FLOPsPerToken(5); got != 1328 {
		t.Errorf("FLOPsPerToken(5) = %g, want 1328", got)
	}
}

// Dropout off (0, the default) gives the model it gave before the field
// existed; dropout on draws the same weights (its stream is seeded after
// them), changes nothing in evaluation or step mode, and changes the
// training forward pass, at rate p per element.
func TestDropout(t *testing.T) {
	b := cpukernels.New[float64]()
	ids := []int32{1, 2, 3, 4, 5, 6, 0, 1, 2, 3}
	forward := func(m *attention.Model, record bool) []float64 {
		tp := nn.NewTape(b, record)
		defer tp.Release()
		return b.Read(m.Forward(tp, ids, 2, 5).Data)
	}
	off := build(t, tiny("learned", "gelu", "rmsnorm", false, true), b, 7, 5, 3)
	for _, cfg := range [][3]float64{{0.2, 0, 0}, {0, 0.2, 0}, {0, 0, 0.2}, {0.1, 0.1, 0.1}} {
		c := tiny("learned", "gelu", "rmsnorm", false, true)
		c.Dropout, c.EmbedDropout, c.AttnDropout = cfg[0], cfg[1], cfg[2]
		on := build(t, c, b, 7, 5, 3)
		pOff, pOn := off.Params(), on.Params()
		for i := range pOff {
			if !slices.Equal(b.Read(pOff[i].T.Data), b.Read(pOn[i].T.Data)) {
				t.Fatalf("dropout %v: %s drawn differently", cfg, pOn[i].Name)
			}
		}
		if !slices.Equal(forward(off, false), forward(on, false)) {
			t.Errorf("dropout %v: evaluation differs", cfg)
		}
		if slices.Equal(forward(off, true), forward(on, true)) {
			t.Errorf("dropout %v: training forward unchanged", cfg)
		}
	}
	if !slices.Equal(forward(off, true), forward(off, false)) {
		t.Error("dropout 0: training and evaluation forward differ")
	}
}

// Under bf16 (cpu-bfloat16) the KV cache holds bfloat16 activations, 2
// bytes an element, and step mode still gives Forward's rows: both compute
// each row alike and round the same activations (they agree exactly on
// the CPU); the tolerance, 2⁻⁶ on logits of O(1), leaves room for a
// kernel whose float32 summation order depends on the batch shape, which
// can move an activation by a bfloat16 ulp.
func TestStepMatchesForwardBF16(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.NewBF16(), cases(
		tiny("rope", "gelu", "rmsnorm", true, true),
		tiny("learned", "swiglu", "layernorm", false, false),
	), archtest.StepOptions{
		Vocab: 7, B: 2, L: 7,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {7}},
		Err:    archtest.Abs, Tol: 1.0 / 64,
		StateBytes: func(c arch.Config, B, n int) int64 {
			cfg := c.(*attention.Config)
			return int64(2 * cfg.NLayers * B * n * cfg.DModel * 2)
		},
	})
}
