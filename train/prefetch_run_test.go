package train_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/sweep"
	"seqbench/train"
)

// prefetchYAML is the run of testdata/prefetch_main/metrics.jsonl: mqar
// with a fixed training set, whose epoch shuffles the concurrently
// generated batches share.
const prefetchYAML = `name: prefetch
task: {name: mqar, vocab: 32, seq_len: 16, num_kv_pairs: 2, num_examples: 22, num_test_examples: 10}
train: {steps: 24, batch_size: 4, lr: 5.0e-3, warmup: 3, eval_every: 8, log_every: 2, eval_batches: 2%s}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`

// A run gives the same metrics with prefetching on (the default) and off,
// equal to those of the training loop before prefetching existed
// (testdata/prefetch_main/metrics.jsonl, written by it for this config),
// apart from the wall-clock fields. prefetch: on is the default's run id.
func TestPrefetchOnOffSameMetrics(t *testing.T) {
	want := metricsOf(t, filepath.Join("testdata", "prefetch_main"))
	ids := map[string]string{}
	for _, extra := range []string{"", ", prefetch: on", ", prefetch: off"} {
		spec := parse(t, fmt.Sprintf(prefetchYAML, extra))[0]
		ids[extra] = spec.ID
		dir := t.TempDir()
		s := train.Run(context.Background(), spec, dir, train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
		require.Equal(t, train.StatusOK, s.Status, s.Reason)
		require.Equal(t, want, metricsOf(t, dir), "prefetch setting %q", extra)
	}
	require.Equal(t, ids[""], ids[", prefetch: on"])
	require.NotEqual(t, ids[""], ids[", prefetch: off"])

	_, err := sweep.Parse(fmt.Appendf(nil, prefetchYAML, ", prefetch: sometimes"))
	require.ErrorContains(t, err, `field train.prefetch: "sometimes" is not allowed (one of "on" (the default), "off")`)
}

// argmaxCounter counts the backend's ArgmaxRows calls (the training
// accuracy's read-back).
type argmaxCounter struct {
	nn.Backend
	calls int
}

func (a *argmaxCounter) ArgmaxRows(x nn.Buffer, rows, cols int) []int32 {
	a.calls++
	return a.Backend.ArgmaxRows(x, rows, cols)
}

// The training accuracy is computed (its logits' argmax read back) only at
// the steps that are logged, not at every step.
func TestTrainAccuracyOnlyAtLoggedSteps(t *testing.T) {
	spec := parse(t, `name: acc
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 12, batch_size: 2, eval_every: 12, log_every: 4, eval_batches: 1}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)[0]
	be := &argmaxCounter{Backend: cpukernels.New[float32]()}
	dir := t.TempDir()
	s := train.Run(context.Background(), spec, dir, train.Options{Backend: be, Device: "cpu"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	require.Len(t, metricsOf(t, dir), 4) // steps 1, 4, 8, 12
	// 4 logged steps and the one eval batch at step 12.
	require.Equal(t, 5, be.calls)
}
