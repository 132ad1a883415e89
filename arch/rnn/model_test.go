package rnn_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/rnn"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny returns a small config with the given options.
func tiny(cell, norm string, bias, tie bool) *rnn.Config {
	c := rnn.DefaultConfig(cell)
	c.DModel, c.NLayers = 6, 2
	c.Norm, c.Bias, c.TieEmbeddings = norm, bias, tie
	return c
}

func name(c *rnn.Config) string {
	return fmt.Sprintf("%s/%s/bias=%v/tie=%v/layers=%d", c.Arch, c.Norm, c.Bias, c.TieEmbeddings, c.NLayers)
}

// variants are the option combinations most tests run over.
func variants() []*rnn.Config {
	var cs []*rnn.Config
	for _, cell := range []string{"lstm", "gru"} {
		cs = append(cs,
			tiny(cell, "rmsnorm", true, true),
			tiny(cell, "layernorm", true, false),
			tiny(cell, "none", false, false),
			tiny(cell, "layernorm", false, true),
		)
	}
	return cs
}

func cases(cs ...*rnn.Config) []archtest.Case { return archtest.Cases(name, cs...) }

func build(t *testing.T, c *rnn.Config, b nn.Backend, vocab int, seed uint64) *rnn.Model {
	t.Helper()
	return archtest.Build(t, b, cases(c)[0], vocab, 0, seed).(*rnn.Model)
}

// The closed form must equal what Build allocates for every option
// combination; names are unique and only the matrices decay.
func TestNumParamsMatchesBuild(t *testing.T) {
	var cs []*rnn.Config
	for _, cell := range []string{"lstm", "gru"} {
		for _, norm := range []string{"rmsnorm", "layernorm", "none"} {
			for _, bias := range []bool{false, true} {
				for _, tie := range []bool{false, true} {
					for _, layers := range []int{1, 3} {
						c := tiny(cell, norm, bias, tie)
						c.NLayers = layers
						cs = append(cs, c)
					}
				}
			}
		}
	}
	archtest.CheckParams(t, cpukernels.New[float64](), cases(cs...), archtest.ParamOptions{
		Vocab: 7,
		Decays: func(p nn.Param) bool {
			return strings.Contains(p.Name, "weight_") || p.Name == "lm_head.weight"
		},
	})
}

// torch.nn.LSTM(64, 64, num_layers=2) and torch.nn.GRU(64, 64,
// num_layers=2) hold 66 560 and 49 920 parameters (4H(I+H) + 8H and
// 3H(I+H) + 6H per layer); with a 100-token tied embedding and an RMSNorm
// the model adds 6400 + 64.
func TestNumParamsTorch(t *testing.T) {
	for cell, rnnParams := range map[string]int{"lstm": 66_560, "gru": 49_920} {
		c := rnn.DefaultConfig(cell)
		if got, want := c.NumParams(100, 0), rnnParams+6400+64; got != want {
			t.Errorf("%s: NumParams = %d, want %d", cell, got, want)
		}
		c.Bias = false
		if got, want := c.NumParams(100, 0), rnnParams-2*2*c.DModel*map[string]int{"lstm": 4, "gru": 3}[cell]+6400+64; got != want {
			t.Errorf("%s bias=false: NumParams = %d, want %d", cell, got, want)
		}
	}
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	for cell, G := range map[string]int{"lstm": 4, "gru": 3} {
		g := G * 6
		want := fmt.Sprintf("embed.weight[7 6] "+
			"layers.weight_ih_l0[%d 6] layers.weight_hh_l0[%d 6] layers.bias_ih_l0[%d] layers.bias_hh_l0[%d] "+
			"layers.weight_ih_l1[%d 6] layers.weight_hh_l1[%d 6] layers.bias_ih_l1[%d] layers.bias_hh_l1[%d] "+
			"norm_f.weight[6] norm_f.bias[6] lm_head.weight[7 6]", g, g, g, g, g, g, g, g)
		archtest.CheckParamNames(t, build(t, tiny(cell, "layernorm", true, false), b, 7, 1).Params(), want)
	}
}

// torch's init: every RNN weight and bias in U(−1/√d, 1/√d), filling it.
func TestInit(t *testing.T) {
	b := cpukernels.New[float64]()
	c := rnn.DefaultConfig("lstm")
	m := build(t, c, b, 11, 3)
	bound := 1 / math.Sqrt(float64(c.DModel))
	for _, p := range m.Params() {
		if !strings.HasPrefix(p.Name, "layers.") {
			continue
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range b.Read(p.T.Data) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if lo < -bound || hi > bound || hi-lo < bound {
			t.Errorf("%s: values in [%.3g, %.3g], want spread over U(±%.3g)", p.Name, lo, hi, bound)
		}
	}
}

func TestFLOPsPerToken(t *testing.T) {
	b := cpukernels.New[float64]()
	for cell, want := range map[string]float64{
		// 2·2·4·8·16 + 2·8·7 = 2048 + 112; GRU 2·2·3·8·16 + 112 = 1536 + 112.
		"lstm": 2160, "gru": 1648,
	} {
		c := rnn.DefaultConfig(cell)
		c.DModel = 8
		m := build(t, c, b, 7, 1)
		for _, L := range []int{1, 100} {
			if got := m.FLOPsPerToken(L); got != want {
				t.Errorf("%s: FLOPsPerToken(%d) = %g, want %g", cell, L, got, want)
			}
		}
	}
}

// The checks below run on archtest's default randomization: O(1) values
// (norm weights around 1), so that every gate is exercised away from its
// linear region.

// Every parameter's gradient against 4-point central differences.
func TestGradCheck(t *testing.T) {
	archtest.CheckGradients(t, cpukernels.New[float64](), cases(variants()...), archtest.GradOptions{
		Vocab: 7, B: 2, L: 5, H: 1e-3, Stencil: archtest.Central4, Tol: 1e-6,
	})
}

func TestCausal(t *testing.T) {
	archtest.CheckCausal(t, cpukernels.New[float64](), cases(variants()[:2]...), archtest.CausalOptions{
		Vocab: 7, B: 2, L: 6, Leak: 1e-12,
	})
}

// Step mode, one token at a time and in uneven chunks, gives the rows
// Forward gives on the whole sequence; the state does not grow: two
// buffers (B, d) for h, and two for c, per layer.
func TestStepMatchesForward(t *testing.T) {
	archtest.CheckStepMatchesForward(t, cpukernels.New[float64](), cases(variants()...), archtest.StepOptions{
		Vocab: 7, B: 3, L: 7,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {7}},
		Err:    archtest.Rel(1), Tol: 1e-12,
		StateBytes: func(cfg arch.Config, B, _ int) int64 {
			c := cfg.(*rnn.Config)
			per := int64(4) // h twice, c twice
			if c.Arch == "gru" {
				per = 2
			}
			return per * int64(c.NLayers*B*c.DModel*8)
		},
	})
}

// A freed state starts over from zeros.
func TestStepContract(t *testing.T) {
	for _, c := range cases(tiny("lstm", "rmsnorm", true, true), tiny("gru", "rmsnorm", true, true)) {
		archtest.CheckStepContract(t, cpukernels.New[float64](), c, archtest.FreedRestarts)
	}
}

// The copy task needs the recurrence to carry the first copy in its state.
func TestLearnsToCopy(t *testing.T) {
	for _, cell := range []string{"lstm", "gru"} {
		c := rnn.DefaultConfig(cell)
		c.DModel, c.NLayers = 32, 1
		archtest.CheckLearnsToCopy(t, cpukernels.New[float32](), cases(c)[0], archtest.LearnOptions{Steps: 300, LR: 2e-2, Bound: 0.5})
	}
}
