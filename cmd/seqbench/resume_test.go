package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	require.Equal(t, train.StatusInterrupted, s.Status)
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

// SIGHUP (a dropped SSH session) stops a run as SIGINT does: a checkpoint
// and a summary are written, the exit status is 130, and the run resumes.
func TestSIGHUPSavesCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, strings.Replace(goodConfig, "steps: 6,", "steps: 100000,", 1))
	out := filepath.Join(dir, "results")
	cmd := exec.Command(os.Args[0], "run", cfg, "--out", out, "--device", "cpu")
	cmd.Env = append(os.Environ(), "SEQBENCH_TEST_AS_CLI=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(out, "tiny", "*", "metrics.jsonl")); len(m) > 0 {
			if fi, err := os.Stat(m[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, stderr.String())
	require.Equal(t, 130, exit.ExitCode(), stderr.String())
	runs, _ := filepath.Glob(filepath.Join(out, "tiny", "transformer-*"))
	require.Len(t, runs, 1)
	s, err := train.ReadSummary(runs[0])
	require.NoError(t, err, stderr.String())
	require.Equal(t, train.StatusInterrupted, s.Status)
	require.Contains(t, s.Reason, "interrupted after step")
	_, err = os.Stat(filepath.Join(runs[0], train.CheckpointFile))
	require.NoError(t, err, "no checkpoint")
}
