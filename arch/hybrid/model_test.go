package hybrid_test

import (
	"regexp"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/hybrid"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tinyBlocks are sub-blocks small enough for d_model 4.
const tinyBlocks = `mamba1: {d_state: 2}
mamba2: {d_state: 3, headdim: 2, ngroups: 2, chunk_size: 3}
attention: {n_heads: 2}
s4d: {d_state: 4}
mlp: {mlp_ratio: 2}
gru: {bias: false}
`

// patterns are the shapes under test: a single layer, one layer of every
// kind, and the shorthands over a repeated pattern (untied, LayerNorm).
var patterns = []struct{ name, src string }{
	{"single attention", "{arch: hybrid, d_model: 4, pattern: attention, attention: {n_heads: 2}}"},
	{"every kind", "arch: hybrid\nd_model: 4\npattern: [mamba1, mamba2, attention, s4d, lstm, gru, mlp]\n" + tinyBlocks},
	{"shorthands", "arch: hybrid\nd_model: 4\npattern: mamba2\nn_layers: 4\nevery: {k: 2, block: mlp}\n" +
		"attention_at: [2]\nnorm: layernorm\ntie_embeddings: false\n" +
		"mamba2: {d_state: 3, headdim: 2, ngroups: 2, chunk_size: 3, d_intermediate: 3}\nattention: {n_heads: 1, mlp: gelu, mlp_ratio: 1}\nmlp: {mlp: gelu, bias: true}\n"},
}

func cases(t testing.TB, epsilon float64) []archtest.Case {
	var cs []archtest.Case
	for _, p := range patterns {
		c, err := archtest.Decode(t, p.src)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if epsilon > 0 {
			c.(*hybrid.Config).NormEps = epsilon
		}
		cs = append(cs, archtest.Case{Name: p.name, Config: c})
	}
	return cs
}

// RNN weight matrices decay although torch names them weight_ih_l{k}.
var rnnWeight = regexp.MustCompile(`\.weight_(ih|hh)_l\d+$`)

func decays(p nn.Param) bool { return archtest.DecaysLinear(p) || rnnWeight.MatchString(p.Name) }

func TestLayers(t *testing.T) {
	cs := cases(t, 0)
	for i, want := range []string{"attention", "mamba1 mamba2 attention s4d lstm gru mlp", "mamba2 mlp attention mlp"} {
		if got := hybrid.Pattern(cs[i].Config.(*hybrid.Config).Layers()); got.String() != want && joined(got) != want {
			t.Errorf("%s: layers %v, want %s", cs[i].Name, got, want)
		}
	}
}

func joined(p hybrid.Pattern) string {
	s := ""
	for i, k := range p {
		if i > 0 {
			s += " "
		}
		s += k
	}
	return s
}

func TestNumParamsMatchesBuild(t *testing.T) {
	archtest.CheckParams(t, cpukernels.New[float64](), cases(t, 0), archtest.ParamOptions{Vocab: 7, Decays: decays})
}

// norm_eps 0.1 keeps the norms of 4-element vectors off the scale where
// the stencil's truncation dominates (as mamba2's tests say); h = 1e-4
// because at 1e-3 the truncation (which falls as h⁴) still reaches 1e-5 in
// the LayerNorm pattern, and float64 rounding stays below 1e-6 at 1e-4.
func TestGradCheck(t *testing.T) {
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(t, 0.1), archtest.GradOptions{
		Vocab: 7, B: 2, L: 6, H: 1e-4, Stencil: archtest.Central4, Tol: 1e-6,
	})
}

// Attention's softmax and S4D's FFT reassociate sums over the sequence:
// float64 rounding may leak.
func TestCausal(t *testing.T) {
	archtest.CheckCausal(t, cpukernels.New[float64](), cases(t, 0), archtest.CausalOptions{Vocab: 7, B: 2, L: 6, Leak: 1e-12})
}

// Step mode carries one state per layer of its kind (KV cache, conv and
// scan state, S4D state, RNN state, nothing for mlp) and gives Forward's
// logits, one token at a time and in pieces cutting the SSD's chunks.
func TestStepMatchesForward(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.New[float64](), cases(t, 0), archtest.StepOptions{
		Vocab: 7, B: 2, L: 6, Chunks: [][]int{{1, 1, 1, 1, 1, 1}, {1, 3, 2}, {6}},
		Err: archtest.Rel(1e-3), Tol: 1e-10, AlsoInit: true,
	})
	for _, c := range cases(t, 0) {
		archtest.CheckStepContract(t, cpukernels.New[float64](), c, archtest.FreedRestarts)
	}
}

// Under bf16 (cpu-bfloat16) step mode and Forward round alike, as each
// kind's own bf16 test finds.
func TestStepMatchesForwardBF16(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.NewBF16(), cases(t, 0)[1:2], archtest.StepOptions{
		Vocab: 7, B: 2, L: 6, Chunks: [][]int{{1, 1, 1, 1, 1, 1}, {6}},
		Err: archtest.Rel(1), Tol: 1.0 / 32,
	})
}

func TestLearnsToCopy(t *testing.T) {
	c, err := archtest.Decode(t, "{arch: hybrid, d_model: 16, pattern: [mamba2, attention], mamba2: {d_state: 8, headdim: 8}, attention: {n_heads: 2}}")
	if err != nil {
		t.Fatal(err)
	}
	archtest.CheckLearnsToCopy(t, cpukernels.New[float32](), archtest.Case{Name: "mamba2+attention", Config: c},
		archtest.LearnOptions{Steps: 200, LR: 1e-2, Bound: 0.5})
}

var _ arch.Config = (*hybrid.Config)(nil)
