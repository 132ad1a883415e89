package train_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	_ "seqbench/arch/hybrid"
	"seqbench/cpukernels"
	"seqbench/train"
)

// hybridModel has a layer of every kind that carries weights of its own
// shape (SSD, attention, LSTM, MLP), small enough for a test run.
const hybridModel = `{arch: hybrid, d_model: 16, pattern: [mamba2, attention, lstm, mlp],
  mamba2: {d_state: 8, headdim: 8}, attention: {n_heads: 2}, mlp: {mlp_ratio: 2}}`

// A hybrid run interrupted and resumed from its checkpoint gives exactly
// the metrics of one never interrupted: every kind's weights and optimizer
// state round-trip through the checkpoint by name.
func TestHybridResumeMatchesUninterrupted(t *testing.T) {
	spec := parse(t, `name: hybrid-resume
task: {name: selective_copy, seq_len: 16, num_tokens: 3, vocab: 6}
train: {steps: 20, batch_size: 4, lr: 5.0e-3, warmup: 5, eval_every: 10, log_every: 5, eval_batches: 1}
models: [`+hybridModel+`]
`)[0]
	r := interruptAndResume(t, spec, 10)
	want, got := r.want, r.got
	require.Equal(t, want.FinalLoss, got.FinalLoss)
	require.Equal(t, want.TrainLoss, got.TrainLoss)
	require.Equal(t, metricsOf(t, r.whole), metricsOf(t, r.dir))
}

// A hybrid trains at every CPU precision: fp64, fp32, and bf16 (its loss
// close to fp32's, not equal).
func TestHybridPrecisions(t *testing.T) {
	src := func(p string) string {
		return `name: hybrid-prec
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 20, batch_size: 8, lr: 1.0e-2, warmup: 5, eval_every: 20, log_every: 10, precision: ` + p + `}
models: [` + hybridModel + `]
`
	}
	s64 := runPrecision(t, src("fp32"), cpukernels.New[float64]())
	s32 := runPrecision(t, src("fp32"), cpukernels.New[float32]())
	s16 := runPrecision(t, src("bf16"), cpukernels.New[float32]())
	for _, s := range []train.Summary{s64, s32, s16} {
		require.Equal(t, train.StatusOK, s.Status, s.Reason)
	}
	require.Equal(t, "cpu-bfloat16", s16.Backend)
	l64, l32, l16 := float64(s64.FinalLoss), float64(s32.FinalLoss), float64(s16.FinalLoss)
	require.InDelta(t, l64, l32, 1e-3*l64, "fp32 loss %v far from fp64 %v", l32, l64)
	require.NotEqual(t, l32, l16, "bf16 equals fp32")
	require.InDelta(t, l32, l16, 0.05*l32, "bf16 loss %v far from fp32 %v", l16, l32)
}
