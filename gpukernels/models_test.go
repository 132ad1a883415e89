package gpukernels

import (
	"testing"

	"seqbench/arch/archtest"
	"seqbench/cpukernels"
	"seqbench/nn"
)

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
	cases := archtest.Zoo(t)
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
	cases := archtest.Zoo(t)
	archtest.CheckStepMatchesForward(t, be, cases, archtest.StepOptions{
		Vocab: 11, B: 2, L: 9, Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5, 2}, {9}},
		Err: archtest.Rel(1e-3), Tol: 1e-9,
	})
	for _, c := range cases {
		archtest.CheckStepContract(t, be, c, archtest.FreedRestarts)
	}
}
