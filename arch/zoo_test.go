package arch_test

import (
	"testing"

	"seqbench/arch/archtest"
	"seqbench/cpukernels"
)

// Every architecture, hybrids included, computes the same step on the CPU
// in float32 as in float64 (logits, loss, every gradient), and in
// bfloat16 within the precision's own error at the initialization a run
// starts from (up to 4.4 % on a hybrid's dt_bias gradient); step mode
// gives Forward's logits. The GPU runs the same zoo against the CPU
// (gpukernels' TestGPUModelsMatchCPU).
func TestZooAcrossPrecisions(t *testing.T) {
	cases := archtest.Zoo(t)
	f64 := cpukernels.New[float64]()
	archtest.CheckBackendsAgree(t, f64, cpukernels.New[float32](), cases, archtest.AgreeOptions{Vocab: 11, B: 2, L: 9, Tol: 1e-4})
	archtest.CheckBackendsAgree(t, f64, cpukernels.NewBF16(), cases, archtest.AgreeOptions{Vocab: 11, B: 2, L: 9, Tol: 0.1,
		Randomize: archtest.AsBuilt})
	archtest.CheckStepMatchesForward(t, f64, cases, archtest.StepOptions{
		Vocab: 11, B: 2, L: 9, Chunks: [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5, 2}, {9}},
		Err: archtest.Rel(1e-3), Tol: 1e-9,
	})
}
