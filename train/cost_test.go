package train_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/sweep"
	"seqbench/train"
)

// CostOf predicts what the run then does: its steps (here from epochs over
// a fixed set), tokens, evaluations and the FLOPs the summary counts.
func TestCostOfMatchesTheRun(t *testing.T) {
	for _, src := range []string{`name: zoo
task: {name: mqar, vocab: 32, seq_len: 16, num_kv_pairs: 2, num_examples: 22, num_test_examples: 10}
train: {epochs: 3, batch_size: 4, eval_every: 4, warmup: 0}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`, `name: copy
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 9, batch_size: 3, eval_every: 3, warmup: 0, eval_batches: 1}
models: [{arch: mamba2, d_model: 8, n_layers: 1, d_state: 4, headdim: 4}]
`} {
		exp, err := sweep.Parse([]byte(src))
		require.NoError(t, err)
		spec := exp.Runs[0]
		cost, err := train.CostOf(spec, cpukernels.New[float32]())
		require.NoError(t, err)
		s := train.Run(context.Background(), spec, t.TempDir(), train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
		require.Equal(t, train.StatusOK, s.Status, s.Reason)
		require.Equal(t, s.Steps, cost.Steps, exp.Name)
		require.Equal(t, s.Tokens, cost.Tokens, exp.Name)
		require.Equal(t, s.SeqLen, cost.SeqLen, exp.Name)
		require.Equal(t, s.FLOPsPerToken, cost.FLOPsPerToken, exp.Name)
		require.InDelta(t, 3*s.FLOPsPerToken*float64(s.Tokens), cost.FLOPs, 1e-6*cost.FLOPs, exp.Name)
		require.Equal(t, (s.Steps+spec.Train.EvalEvery-1)/spec.Train.EvalEvery, cost.Evals, exp.Name)
	}
}
