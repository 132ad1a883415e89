package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
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
	// The runs SelectionHeadline needs: the LTI s4d and the selective SSMs.
	for _, arch := range []string{"s4d", "mamba1", "mamba2"} {
		require.Contains(t, stdout, arch+"-")
	}
}

// An experiment of selective copying and copying with s4d and a selective
// SSM gets the headline line under its table; a few steps show it not
// shown, with the numbers.
func TestRunPrintsSelectionHeadline(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `name: tiny
task: {name: selective_copy, seq_len: 8, num_tokens: 2, vocab: 4}
train: {steps: 2, batch_size: 4, lr: 1.0e-2, warmup: 1, eval_every: 2, log_every: 2, eval_batches: 1}
models:
  - {arch: s4d, d_model: 8, n_layers: 1, d_state: 4}
  - {arch: mamba1, d_model: 8, n_layers: 1}
sweep:
  task.name: [selective_copy, copying]
`)
	code, stdout, stderr := runCLI(t, "run", cfg, "--out", filepath.Join(dir, "results"), "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^headline not shown \(best accuracy\): on selective copying mamba1 0\.\d{3} not 0\.10 above the LTI s4d's 0\.\d{3}; on copying .*below 0\.95\.$`, stdout)
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

// Exit statuses and messages: usage errors exit 2 with one message, help
// exits 0, and every command answers -h.
func TestExitCodesAndHelp(t *testing.T) {
	for _, c := range []struct {
		args      []string
		code      int
		out, err  string // substrings of stdout and stderr
		errOnceOf string // appears exactly once in stderr
	}{
		{args: []string{"archs", "--d-model", "0"}, code: 2, err: "--d-model 0 is not allowed (must be in [1, 131072])"},
		{args: []string{"archs", "--d-model", "30"}, code: 2, out: "must divide d_model = 30", err: "transformer: not allowed at this size"},
		{args: []string{"report", "/nonexistent"}, code: 2, err: "/nonexistent is not a folder"},
		{args: []string{"report", ".", "--dpi", "100000"}, code: 2, err: "--dpi 100000 is not allowed"},
		{args: []string{"tasks", "copying", "--show", "100000000"}, code: 2, err: "--show 100000000 is not allowed (0 to 1000 examples)"},
		{args: []string{"--version"}, code: 0, out: "seqbench 0.1.0"},
		{args: []string{"-v"}, code: 0, out: "seqbench 0.1.0"},
		{args: []string{"help", "run"}, code: 0, out: "usage: seqbench run [CONFIG]"},
		{args: []string{"help", "run"}, code: 0, out: "-dry-run"},
		{args: []string{"help", "sweep", "run"}, code: 0, out: "seqbench sweep run CONFIG"},
		{args: []string{"sweep", "-h"}, code: 0, err: "seqbench sweep plan CONFIG"},
		{args: []string{"run", "--bogus"}, code: 2, errOnceOf: "-bogus"},
		{args: []string{"help", "nosuch"}, code: 2, err: `unknown command "nosuch"`},
	} {
		code, stdout, stderr := runCLI(t, c.args...)
		require.Equal(t, c.code, code, "%v: %s", c.args, stderr)
		require.Contains(t, stdout, c.out, "%v", c.args)
		require.Contains(t, stderr, c.err, "%v", c.args)
		if c.errOnceOf != "" {
			require.Equal(t, 1, strings.Count(stderr, c.errOnceOf), "%v: %s", c.args, stderr)
		}
		if c.code == 2 {
			require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "%v: one line of error: %s", c.args, stderr)
		}
	}
	for _, cmd := range commands() {
		code, _, stderr := runCLI(t, cmd.name, "-h")
		require.Equal(t, 0, code, "%s -h: %s", cmd.name, stderr)
		require.Contains(t, stderr, "usage", "%s -h", cmd.name)
	}
}

// archs counts the parameters of a model far too large to build without
// allocating it.
func TestArchsHugeCountsWithoutAllocating(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, stdout, stderr := runCLI(t, "archs", "--n-layers", "100000", "--d-model", "65536")
	runtime.ReadMemStats(&after)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "transformer  5153973863514112                -")
	require.Contains(t, stdout, "is not computed")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "archs allocated")
}
