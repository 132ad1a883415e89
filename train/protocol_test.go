package train_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	_ "seqbench/arch/ssm"
	"seqbench/cpukernels"
	"seqbench/sweep"
	"seqbench/train"
)

// runSpec parses a one-run experiment and trains it on the CPU in float64,
// returning its summary.
func runSpec(t *testing.T, src string) train.Summary {
	t.Helper()
	exp, err := sweep.Parse([]byte(src))
	require.NoError(t, err)
	require.Len(t, exp.Runs, 1)
	s := train.Run(context.Background(), exp.Runs[0], t.TempDir(), train.Options{Backend: cpukernels.New[float64](), Device: "cpu"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	return s
}

// weight_decay_on: all also decays the embedding and norms, so the run
// differs from the default (matrices), which an explicit "matrices" equals.
func TestWeightDecayOn(t *testing.T) {
	exp := func(on string) string {
		return `name: wd
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 12, batch_size: 4, lr: 1.0e-2, weight_decay: 0.5, warmup: 2, eval_every: 12, log_every: 4` + on + `}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`
	}
	def := runSpec(t, exp(""))
	require.Equal(t, def.FinalLoss, runSpec(t, exp(", weight_decay_on: matrices")).FinalLoss)
	require.NotEqual(t, def.FinalLoss, runSpec(t, exp(", weight_decay_on: all")).FinalLoss)
	_, err := sweep.Parse([]byte(exp(", weight_decay_on: some")))
	require.ErrorContains(t, err, `field train.weight_decay_on: "some" is not allowed`)
}

// s4d's kernel_lr reaches the optimizer: a run with it differs from one
// without, at an lr above the cap.
func TestS4DKernelLR(t *testing.T) {
	exp := func(extra string) string {
		return `name: s4
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 12, batch_size: 4, lr: 1.0e-2, warmup: 2, eval_every: 12, log_every: 4}
models: [{arch: s4d, d_model: 8, n_layers: 1, d_state: 4` + extra + `}]
`
	}
	require.NotEqual(t, runSpec(t, exp("")).FinalLoss, runSpec(t, exp(", kernel_lr: 0.001")).FinalLoss)
}
