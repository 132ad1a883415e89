package arch_test

import (
	"math/rand/v2"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	_ "seqbench/arch/hybrid"
	"seqbench/cpukernels"
)

// A one-token Step is replayable exactly where no block's step-mode work
// depends on the position: the recurrent and convolutional states advance
// in place (Mamba-1, Mamba-2, S4D, LSTM, GRU, and MLP layers beside them)
// and attention's position is on the device, its cache allocated for the
// model's maximum length; learned positions index by it on the host.
func TestStepReplayable(t *testing.T) {
	for _, c := range []struct {
		block string
		want  bool
	}{
		{"{arch: mamba1, d_model: 16, n_layers: 2}", true},
		{"{arch: mamba2, d_model: 32, n_layers: 2, headdim: 8}", true},
		{"{arch: s4d, d_model: 16, n_layers: 2}", true},
		{"{arch: transformer, d_model: 16, n_layers: 2, n_heads: 2}", true},
		{"{arch: transformer, d_model: 16, n_layers: 2, n_heads: 2, pos: learned}", false},
		{"{arch: lstm, d_model: 16, n_layers: 2}", true},
		{"{arch: gru, d_model: 16, n_layers: 2}", true},
		{"{arch: hybrid, d_model: 16, n_layers: 2, pattern: mamba1 mlp}", true},
		{"{arch: hybrid, d_model: 16, n_layers: 4, pattern: mamba1, attention_at: [2], attention: {n_heads: 2}}", true},
		{"{arch: hybrid, d_model: 16, n_layers: 2, pattern: mamba1 lstm}", true},
	} {
		var node yaml.Node
		if err := yaml.Load([]byte(c.block), &node); err != nil {
			t.Fatal(err)
		}
		cfg, err := arch.Decode(node.Content[0])
		if err != nil {
			t.Fatalf("%s: %v", c.block, err)
		}
		m, err := cfg.Build(arch.Env{Backend: cpukernels.New[float32](), Vocab: 32, MaxLen: 16, RNG: rand.New(rand.NewPCG(1, 2))})
		if err != nil {
			t.Fatalf("%s: %v", c.block, err)
		}
		rs, ok := m.(arch.ReplayStepper)
		if !ok {
			t.Fatalf("%s: a %T is no arch.ReplayStepper", c.block, m)
		}
		if got := rs.StepReplayable(); got != c.want {
			t.Errorf("%s: StepReplayable() = %v, want %v", c.block, got, c.want)
		}
	}
	// Without a maximum length the KV cache grows, and a replay would not.
	var node yaml.Node
	if err := yaml.Load([]byte("{arch: transformer, d_model: 16, n_layers: 2, n_heads: 2}"), &node); err != nil {
		t.Fatal(err)
	}
	cfg, err := arch.Decode(node.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := cfg.Build(arch.Env{Backend: cpukernels.New[float32](), Vocab: 32, RNG: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	if m.(arch.ReplayStepper).StepReplayable() {
		t.Error("a transformer without a maximum length is replayable")
	}
}
