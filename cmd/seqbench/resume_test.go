package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

// sigintAt sends SIGINT to this process when the log reaches a step, as a
// user pressing Ctrl-C mid-run would; seqbench run catches it.
type sigintAt struct {
	bytes.Buffer
	marker string
	sent   bool
}

func (s *sigintAt) Write(p []byte) (int, error) {
	if !s.sent && strings.Contains(string(p), s.marker) {
		s.sent = true
		syscall.Kill(os.Getpid(), syscall.SIGINT)
	}
	return s.Buffer.Write(p)
}

func TestSIGINTThenResume(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `name: sig
task: {name: selective_copy, seq_len: 16, num_tokens: 3, vocab: 6}
train: {steps: 60, batch_size: 8, lr: 5.0e-3, warmup: 5, eval_every: 20, log_every: 5, eval_batches: 1}
models:
  - {arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}
`)
	whole := filepath.Join(dir, "whole")
	code, _, stderr := runCLI(t, "run", cfg, "--out", whole, "--device", "cpu")
	require.Equal(t, 0, code, stderr)

	out := filepath.Join(dir, "cut")
	log := &sigintAt{marker: "step 25/"}
	code = dispatch([]string{"run", cfg, "--out", out, "--device", "cpu"}, &bytes.Buffer{}, log)
	require.Equal(t, 130, code, log.String())
	runs, _ := filepath.Glob(filepath.Join(out, "sig", "transformer-*"))
	require.Len(t, runs, 1)
	s, err := train.ReadSummary(runs[0])
	require.NoError(t, err)
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "interrupted after step") // the signal lands a step or two later under load

	code, _, stderr = runCLI(t, "run", "--resume", runs[0], "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	got, err := train.ReadSummary(runs[0])
	require.NoError(t, err)
	wantDirs, _ := filepath.Glob(filepath.Join(whole, "sig", "transformer-*"))
	want, err := train.ReadSummary(wantDirs[0])
	require.NoError(t, err)
	require.Equal(t, train.StatusOK, got.Status)
	require.Equal(t, want.FinalLoss, got.FinalLoss, "resumed run ends with a different loss")
	require.Equal(t, want.Steps, got.Steps)

	code, _, stderr = runCLI(t, "run", "--resume", filepath.Join(dir, "nope"))
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "not a run folder")
}
