package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The shipped CPU reduction plans its 48 runs (2 models × 12 settings × 2
// learning rates) without training, and the full protocol its 792.
func TestMadConfigsDryRun(t *testing.T) {
	t.Chdir("../..")
	code, stdout, stderr := runCLI(t, "run", "--dry-run", "configs/mad_cpu.yaml", "--device", "cpu", "--out", t.TempDir())
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "experiment mad-cpu: 48 runs")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 1+48)
	for _, want := range []string{"mad.task=memorization", "mad.setting=vocab=128", "task.vocab=128", "train.lr=0.003",
		"mad.model=mamba1(d_model=32,n_layers=2,d_state=4)", "mad_selective_copying", "mad.setting=num_tokens=8"} {
		require.Contains(t, stdout, want)
	}
	code, stdout, stderr = runCLI(t, "run", "--dry-run", "configs/mad.yaml", "--device", "cpu", "--out", t.TempDir())
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "experiment mad: 792 runs")
}

// A tiny `kind: mad` experiment trains end to end, and `mad score` reads
// its results back.
func TestMadRunAndScore(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `name: mad-tiny
kind: mad
mad:
  lrs: [1.0e-2]
  weight_decays: [0.0]
  tasks:
    memorization:
      baseline: {vocab: 9, seq_len: 8, num_train_examples: 8, num_test_examples: 8}
      changes: {vocab: [11]}
    compression:
      baseline: {vocab: 4, seq_len: 4, num_train_examples: 8, num_test_examples: 4}
      changes: {}
train: {steps: 3, batch_size: 4, warmup: 0, eval_every: 3, log_every: 3}
models:
  - {arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}
`)
	out := filepath.Join(dir, "results")
	code, stdout, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "experiment mad-tiny: 3 runs")

	code, stdout, stderr = runCLI(t, "mad", "score", filepath.Join(out, "mad-tiny"), "--settings")
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{"MAD score (best_accuracy", "C", "M", "overall", "transformer(d_model=8,n_layers=1,n_heads=2)",
		"memorization", "vocab=11", "1/1"} {
		require.Contains(t, stdout, want)
	}
	// Both tasks are scored: no '*' marks on the summary row.
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "transformer(") && !strings.Contains(line, "memorization") && !strings.Contains(line, "compression") {
			require.NotContains(t, line, "*", stdout)
			require.Len(t, strings.Fields(line), 4, line)
		}
	}
	code, _, stderr = runCLI(t, "mad", "score", out, "--metric", "final_accuracy")
	require.Equal(t, 0, code, stderr)
}

func TestMadScoreErrors(t *testing.T) {
	empty := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(empty, "exp", "run"), 0o755))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"mad", "score", empty}, "no runs of a `mad` experiment"},
		{[]string{"mad", "score", filepath.Join(empty, "missing")}, "no such file"},
		{[]string{"mad", "score"}, "missing the results folder"},
		{[]string{"mad", "score", empty, "--metric", "loss"}, `metric "loss" is not allowed`},
		{[]string{"mad", "score", empty, empty}, "unexpected arguments"},
		{[]string{"mad"}, "usage: seqbench mad score DIR"},
		{[]string{"mad", "plot", empty}, "usage: seqbench mad score DIR"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, c.args...)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, c.want, c.args)
	}
}
