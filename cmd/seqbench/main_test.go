package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = dispatch(args, &o, &e)
	return code, o.String(), e.String()
}

const goodConfig = `name: tiny
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 6, batch_size: 4, lr: 1.0e-2, warmup: 2, eval_every: 3, log_every: 2, eval_batches: 1}
models:
  - {arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}
`

func writeConfig(t *testing.T, dir, body string) string {
	path := filepath.Join(dir, "exp.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

// Bad configs exit 2 with a message naming the field, before any run
// folder exists.
func TestRunRejectsBadConfig(t *testing.T) {
	cases := []struct{ name, from, to, want string }{
		{"misspelled field", "batch_size:", "batchsize:", "batchsize"},
		{"unknown arch", "arch: transformer", "arch: transformr", "known:"},
		{"heads do not divide d_model", "d_model: 8, n_layers: 1, n_heads: 2", "d_model: 64, n_layers: 1, n_heads: 3", "n_heads"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, strings.Replace(goodConfig, c.from, c.to, 1))
			out := filepath.Join(dir, "results")
			code, _, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
			require.Equal(t, 2, code, stderr)
			require.Contains(t, stderr, c.want)
			require.Contains(t, stderr, "line")
			_, err := os.Stat(out)
			require.True(t, os.IsNotExist(err), "a results folder was written")
		})
	}
}

func TestRunTrainsAndResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, goodConfig)
	out := filepath.Join(dir, "results")
	code, stdout, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "transformer")
	runs, err := filepath.Glob(filepath.Join(out, "tiny", "transformer-*"))
	require.NoError(t, err)
	require.Len(t, runs, 1)
	for _, f := range []string{"config.yaml", "metrics.jsonl", "summary.json", "train.log"} { // train.log: the local executor's
		_, err := os.Stat(filepath.Join(runs[0], f))
		require.NoError(t, err, f)
	}
	s, err := train.ReadSummary(runs[0])
	require.NoError(t, err)
	require.Equal(t, train.StatusOK, s.Status)
	require.Equal(t, 6, s.Steps)
	require.Equal(t, "cpu-float32", s.Backend)

	// A second run of the same experiment skips the finished run.
	code, _, stderr = runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "already ok")
}

// A second seqbench into the same --out leaves a run that another process
// holds locked alone and exits 1 saying so.
func TestRunSkipsLockedRun(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, goodConfig)
	out := filepath.Join(dir, "results")
	code, stdout, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu", "--dry-run")
	require.Equal(t, 0, code, stderr)
	name := regexp.MustCompile(`transformer-[0-9a-f]{10}`).FindString(stdout)
	runDir := filepath.Join(out, "tiny", name)
	require.NoError(t, os.MkdirAll(runDir, 0o755))
	f, err := os.OpenFile(filepath.Join(runDir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))

	code, stdout, stderr = runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "is being trained by another process (locked)")
	require.Contains(t, stderr, "nothing to do")
	require.Contains(t, stdout, "1 locked by another process (skipped)")
	require.Equal(t, 1, strings.Count(stderr, "being trained by another seqbench process"), stderr)
	_, err = os.Stat(filepath.Join(runDir, "metrics.jsonl"))
	require.True(t, os.IsNotExist(err), "the locked run was trained")
}

func TestQuickstartDryRun(t *testing.T) {
	code, stdout, stderr := runCLI(t, "run", "--dry-run", "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "experiment quickstart")
	require.Contains(t, stdout, "copying")
	require.Contains(t, stdout, "selective_copy")
}

func TestInfoCommands(t *testing.T) {
	code, stdout, _ := runCLI(t, "tasks")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "selective_copy")
	code, stdout, _ = runCLI(t, "tasks", "selective_copy", "--show", "2")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "example 2")
	code, stdout, _ = runCLI(t, "archs", "--d-model", "64", "--n-layers", "2")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "transformer")
	code, stdout, _ = runCLI(t, "devices")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "cpu:")
	code, _, _ = runCLI(t, "version")
	require.Equal(t, 0, code)
	code, _, stderr := runCLI(t, "run", "--device", "tpu")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "tpu")
	code, _, _ = runCLI(t, "nosuch")
	require.Equal(t, 2, code)
}
