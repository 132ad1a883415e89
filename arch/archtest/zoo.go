package archtest

import (
	"testing"

	// The zoo's architectures.
	_ "seqbench/arch/attention"
	_ "seqbench/arch/hybrid"
	_ "seqbench/arch/mamba1"
	_ "seqbench/arch/mamba2"
	_ "seqbench/arch/rnn"
	_ "seqbench/arch/ssm"
)

// zoo is a small model of every architecture, sized so that a whole-model
// check takes milliseconds while every block takes the paths a training
// run takes: the six single-kind models, a hybrid with one layer of every
// kind and a Mamba-2/attention hybrid with SwiGLU blocks. Mamba-2's
// chunks of 4 are cut by any length over 4.
var zoo = []struct{ name, src string }{
	{"mamba1", "{arch: mamba1, d_model: 16, n_layers: 2, d_state: 4}"},
	{"mamba2", "{arch: mamba2, d_model: 32, n_layers: 2, headdim: 8, d_state: 8, chunk_size: 4}"},
	{"s4d", "{arch: s4d, d_model: 16, n_layers: 2, d_state: 8}"},
	{"lstm", "{arch: lstm, d_model: 16, n_layers: 2}"},
	{"gru", "{arch: gru, d_model: 16, n_layers: 2}"},
	{"transformer", "{arch: transformer, d_model: 32, n_layers: 2, n_heads: 2}"},
	{"hybrid of every kind", "{arch: hybrid, d_model: 16, pattern: [mamba1, mamba2, attention, s4d, lstm, gru, mlp], " +
		"mamba1: {d_state: 4}, mamba2: {d_state: 8, headdim: 8, chunk_size: 4}, attention: {n_heads: 2}}"},
	{"hybrid mamba2 mlp attention mlp", "{arch: hybrid, d_model: 32, n_layers: 4, pattern: mamba2, attention_at: [2], " +
		"every: {k: 2, block: mlp}, mamba2: {d_state: 8, headdim: 8, chunk_size: 4}, attention: {n_heads: 2}, mlp: {mlp: swiglu}}"},
}

// Zoo decodes the zoo's models (see zoo): checks that hold for every
// architecture run over it, on the CPU and on the GPU.
func Zoo(t testing.TB) []Case {
	t.Helper()
	cs := make([]Case, len(zoo))
	for i, z := range zoo {
		c, err := Decode(t, z.src)
		if err != nil {
			t.Fatalf("%s: %v", z.src, err)
		}
		cs[i] = Case{Name: z.name, Config: c}
	}
	return cs
}

// ZooSource is the YAML of the zoo's model named name ("" where there is
// none).
func ZooSource(name string) string {
	for _, z := range zoo {
		if z.name == name {
			return z.src
		}
	}
	return ""
}
