package gpukernels

import (
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/arch/archtest"
	_ "seqbench/arch/hybrid"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// modelCases are whole models of every architecture, at sizes where every
// CUDA path they take is one a training run takes too: the six single-kind
// models, a hybrid with one layer of every kind and a Mamba-2/attention
// hybrid with SwiGLU blocks.
var modelCases = []struct{ name, src string }{
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

func decodeModels(t *testing.T) []archtest.Case {
	t.Helper()
	cs := make([]archtest.Case, len(modelCases))
	for i, mc := range modelCases {
		cs[i] = archtest.Case{Name: mc.name, Config: decodeModel(t, mc.src)}
	}
	return cs
}

// decodeModel decodes one model's YAML, as a run's config holds it.
func decodeModel(t *testing.T, src string) arch.Config {
	t.Helper()
	var node yaml.Node
	if err := yaml.Load([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	c, err := arch.Decode(node.Content[0])
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return c
}

// Every architecture, hybrids included, computes on the GPU the logits,
// the loss and the gradients it computes on the CPU, in every precision:
// float64 to rounding, float32 to float32's, bfloat16 against the CPU's
// exact-rounding bfloat16 backend. L 9 crosses the SSD's chunks of 4.
func TestGPUModelsMatchCPU(t *testing.T) {
	needGPU(t)
	bf, err := newBF16(gpu(t, nn.Float32))
	if err != nil {
		t.Fatal(err)
	}
	cases := decodeModels(t)
	f64 := cpukernels.New[float64]()
	// bfloat16 rounds every activation, so its error against float64 is
	// the precision's own (at the models' initialization 0.5-4 % on the
	// CPU, up to 60 % with O(1) weights in every layer of the hybrids); the
	// GPU's must stay within twice the exact-rounding CPU backend's, at
	// the initialization a training run starts from.
	for _, c := range []struct {
		name  string
		be    nn.Backend
		tol   float64
		like  nn.Backend
		slack float64
		init  archtest.Randomizer
	}{
		{"float64", gpu(t, nn.Float64), 1e-10, nil, 0, nil},
		{"float32", gpu(t, nn.Float32), 1e-4, nil, 0, nil},
		{"bfloat16", bf, 0.01, cpukernels.NewBF16(), 2, archtest.AsBuilt},
	} {
		t.Run(c.name, func(t *testing.T) {
			archtest.CheckBackendsAgree(t, f64, c.be, cases, archtest.AgreeOptions{
				Vocab: 11, B: 2, L: 9, Tol: c.tol, Like: c.like, Slack: c.slack, Randomize: c.init,
			})
		})
	}
}

// Step mode on the GPU gives Forward's logits, token by token and in
// pieces that cut the SSD's chunks, for every architecture.
func TestGPUModelsStepMatchesForward(t *testing.T) {
	be := gpu(t, nn.Float64)
	cases := decodeModels(t)
	archtest.CheckStepMatchesForward(t, be, cases, archtest.StepOptions{
		Vocab: 11, B: 2, L: 9, Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5, 2}, {9}},
		Err: archtest.Rel(1e-3), Tol: 1e-9,
	})
	for _, c := range cases {
		archtest.CheckStepContract(t, be, c, archtest.FreedRestarts)
	}
}
