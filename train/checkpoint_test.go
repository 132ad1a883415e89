package train_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/train"
)

// cancelAt cancels a context when the progress log reaches a step.
type cancelAt struct {
	marker string
	cancel context.CancelFunc
}

func (c *cancelAt) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.marker) {
		c.cancel()
	}
	return len(p), nil
}

// metricsOf reads metrics.jsonl without the wall-clock fields.
func metricsOf(t *testing.T, dir string) []train.Metrics {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var ms []train.Metrics
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var m train.Metrics
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		m.TokensPerSec, m.WallSeconds, m.TrainSeconds = 0, 0, 0
		ms = append(ms, m)
	}
	return ms
}

// resumed are the runs of interruptAndResume: want never interrupted (in
// whole), cut stopped by a cancel and got resumed from its checkpoint (in
// dir).
type resumed struct {
	want, cut, got train.Summary
	whole, dir     string
}

// interruptAndResume trains spec on the float32 CPU backend once through,
// then again cancelled after step `at` (which must leave a checkpoint) and
// resumed; every run must end with the status it should.
func interruptAndResume(t *testing.T, spec train.Spec, at int) resumed {
	t.Helper()
	opts := func() train.Options { return train.Options{Backend: cpukernels.New[float32](), Device: "cpu"} }
	r := resumed{whole: t.TempDir(), dir: t.TempDir()}
	r.want = train.Run(context.Background(), spec, r.whole, opts())
	require.Equal(t, train.StatusOK, r.want.Status, r.want.Reason)

	ctx, cancel := context.WithCancel(context.Background())
	o := opts()
	o.Log = &cancelAt{marker: fmt.Sprintf("step %d/", at), cancel: cancel}
	r.cut = train.Run(ctx, spec, r.dir, o)
	require.Equal(t, train.StatusInterrupted, r.cut.Status, r.cut.Reason)
	_, err := os.Stat(filepath.Join(r.dir, train.CheckpointFile))
	require.NoError(t, err, "no checkpoint after the interrupt")

	o = opts()
	o.Resume = true
	r.got = train.Run(context.Background(), spec, r.dir, o)
	require.Equal(t, train.StatusOK, r.got.Status, r.got.Reason)
	return r
}

// An interrupted run saves a checkpoint; resuming it gives exactly the
// metrics of a run that was never interrupted.
func TestInterruptAndResumeMatchesUninterrupted(t *testing.T) {
	specs := parse(t, `name: resume
task: {name: selective_copy, seq_len: 16, num_tokens: 3, vocab: 6}
train: {steps: 40, batch_size: 8, lr: 5.0e-3, warmup: 5, eval_every: 10, log_every: 5, eval_batches: 2}
models: [{arch: transformer, d_model: 16, n_layers: 2, n_heads: 2}]
`)
	r := interruptAndResume(t, specs[0], 15)
	want, cut, got, whole, dir := r.want, r.cut, r.got, r.whole, r.dir
	require.Contains(t, cut.Reason, "interrupted after step 15")
	require.Equal(t, want.Steps, got.Steps)
	require.Equal(t, want.Tokens, got.Tokens)
	require.Equal(t, want.FinalLoss, got.FinalLoss)
	require.Equal(t, want.TrainLoss, got.TrainLoss)
	require.Equal(t, want.BestAccuracy, got.BestAccuracy)
	require.Equal(t, metricsOf(t, whole), metricsOf(t, dir))
	require.GreaterOrEqual(t, got.WallSeconds, cut.WallSeconds, "the resumed wall time forgot the time before the checkpoint")
	require.GreaterOrEqual(t, got.TrainSeconds, cut.TrainSeconds, "the resumed training time forgot the time before the checkpoint")
	_, err := os.Stat(filepath.Join(dir, train.CheckpointFile))
	require.True(t, os.IsNotExist(err), "a stale checkpoint was left behind")
	// The resume rewrote metrics.jsonl (cut back to the checkpoint) and
	// the summary: they stay readable by all, as when first written.
	for _, f := range []string{"config.yaml", "metrics.jsonl", "summary.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), f)
	}
}

func TestCheckpointEveryKeepsFinalWeights(t *testing.T) {
	specs := parse(t, `name: ckpt
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 6, batch_size: 4, checkpoint_every: 4, eval_every: 3}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
	dir := t.TempDir()
	s := train.Run(context.Background(), specs[0], dir, train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	_, err := os.Stat(filepath.Join(dir, train.CheckpointFile))
	require.NoError(t, err)
}
