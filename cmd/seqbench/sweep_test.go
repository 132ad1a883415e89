package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"seqbench/configs"
	"seqbench/reports"
	"seqbench/train"
)

// TestMain lets a test run this test binary as the seqbench command (a
// child process that can be sent SIGINT).
func TestMain(m *testing.M) {
	if os.Getenv("SEQBENCH_TEST_AS_CLI") == "1" {
		os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// Every shipped experiment expands and validates (from the repository
// root, where their data paths are relative to).
func TestSweepPlanShippedConfigs(t *testing.T) {
	t.Chdir("../..")
	names := configs.Names()
	require.Contains(t, names, "scaling_lm.yaml")
	for _, name := range names {
		path := filepath.Join("configs", name)
		code, stdout, stderr := runCLI(t, "sweep", "plan", path, "--out", t.TempDir())
		require.Equal(t, 0, code, "%s: %s", name, stderr)
		require.Contains(t, stdout, "experiment ")
		code, _, stderr = runCLI(t, "run", "--dry-run", path, "--device", "cpu", "--out", t.TempDir())
		require.Equal(t, 0, code, "%s: %s", name, stderr)
	}
	_, stdout, _ := runCLI(t, "sweep", "plan", "configs/scaling_lm.yaml", "--out", t.TempDir())
	for _, a := range []string{"transformer", "lstm", "gru", "s4d", "mamba1", "mamba2"} {
		require.Equal(t, 4, strings.Count(stdout, "  "+a+"-"), "%s: four sizes\n%s", a, stdout)
	}
}

// twelve is a 12-run CPU grid of small runs.
const twelve = `name: twelve
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 60, batch_size: 4, lr: 1.0e-2, warmup: 2, eval_every: 20, log_every: 10, eval_batches: 1}
models:
  - {arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}
sweep:
  seed: [1, 2, 3]
  train.lr: [1.0e-2, 5.0e-3]
  zip:
    - {model.d_model: [8, 16], model.n_layers: [1, 2]}
`

// A 12-run grid on 2 workers, interrupted mid-way by SIGINT, then rerun:
// the runs that finished are not repeated and the report has all 12.
func TestSweepRunInterruptResume(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, twelve)
	out := filepath.Join(dir, "results")
	cmd := exec.Command(os.Args[0], "sweep", "run", cfg, "--workers", "2", "--out", out, "--device", "cpu")
	cmd.Env = append(os.Environ(), "SEQBENCH_TEST_AS_CLI=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	okRuns := func() map[string]time.Time {
		m := map[string]time.Time{}
		runs, _ := filepath.Glob(filepath.Join(out, "twelve", "*"))
		for _, r := range runs {
			if s, err := train.ReadSummary(r); err == nil && s.Status == train.StatusOK {
				m[s.Run] = s.StartedAt
			}
		}
		return m
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(okRuns()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, stderr.String())
	require.Equal(t, 130, exit.ExitCode(), stderr.String())
	require.Contains(t, stderr.String(), "interrupt: stopping")

	first := okRuns()
	require.GreaterOrEqual(t, len(first), 4)
	require.Less(t, len(first), 12, "the sweep finished before the interrupt")
	interrupted := map[string]time.Time{}
	runs, _ := filepath.Glob(filepath.Join(out, "twelve", "*-*"))
	for _, r := range runs {
		s, err := train.ReadSummary(r)
		require.NoError(t, err, "%s has no readable summary", r)
		if s.Status != train.StatusOK {
			require.Equal(t, train.StatusInterrupted, s.Status, s.Reason)
			interrupted[s.Run] = s.StartedAt
		}
		tmp, _ := filepath.Glob(filepath.Join(r, ".*tmp*"))
		require.Empty(t, tmp)
	}
	require.NotEmpty(t, interrupted)
	t.Logf("interrupted after %d ok runs, %d cut short", len(first), len(interrupted))

	code, stdout, errOut := runCLI(t, "sweep", "run", cfg, "--workers", "2", "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "already ok, skipped")
	require.Contains(t, stdout, "report in ")
	require.Contains(t, stdout, fmt.Sprintf("12 runs: %d trained now, %d ok before (skipped), 0 failed, 0 interrupted (resumable), 0 not started",
		12-len(first), len(first)))
	final := okRuns()
	require.Len(t, final, 12)
	for name, started := range first {
		require.Equal(t, started, final[name], "%s was trained again", name)
	}
	for name, started := range interrupted {
		// A run continued from its checkpoint keeps its start time.
		require.Equal(t, started, final[name], "%s started over instead of resuming", name)
	}
	res, err := reports.Load(filepath.Join(out, "twelve"))
	require.NoError(t, err)
	require.Len(t, res.Experiments, 1)
	require.Len(t, res.Experiments[0].Runs, 12)
	for _, r := range res.Experiments[0].Runs {
		require.True(t, r.OK(), "%s: %s", r.Name, r.Reason)
	}
	_, err = os.Stat(filepath.Join(out, "twelve", "report.md"))
	require.NoError(t, err)
}

func TestSweepCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, goodConfig+"sweep: {seed: [1, 2]}\n")
	out := filepath.Join(dir, "results")

	code, stdout, stderr := runCLI(t, "sweep", "plan", cfg, "--out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "2 runs (2 to train)")

	// One run by index, as a Slurm array task would.
	code, _, stderr = runCLI(t, "sweep", "worker", "--index", "1", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	code, stdout, _ = runCLI(t, "sweep", "plan", cfg, "--out", out)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "2 runs (1 to train)")
	require.Contains(t, stdout, " ok ")

	// The Slurm script, written but not submitted.
	code, stdout, stderr = runCLI(t, "sweep", "run", cfg, "--out", out, "--executor", "slurm", "--dry-run",
		"--partition", "gpu", "--time", "10", "--sbatch=--account=proj", "--binary", "/opt/seqbench")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "#SBATCH --partition=gpu\n#SBATCH --time=10\n#SBATCH --account=proj\n")
	require.Contains(t, stdout, "sbatch --parsable --array=0-0 ")
	require.Contains(t, stdout, " /opt/seqbench ")

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sweep"}, 2, "sweep plan"},
		{[]string{"sweep", "launch", cfg}, 2, "launch"},
		{[]string{"sweep", "run", cfg, "--executor", "k8s"}, 2, "k8s"},
		{[]string{"sweep", "run", cfg, "--executor", "slurm", "--dry-run", "--partition", "a\nb"}, 2, "slurm.partition"},
		{[]string{"sweep", "run", cfg, "--retries", "-1"}, 2, "--retries"},
		{[]string{"sweep", "worker", cfg}, 2, "--index"},
		{[]string{"sweep", "worker", "--index", "7", cfg}, 1, "--index 7"},
		{[]string{"sweep", "plan"}, 2, "CONFIG"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		require.Equal(t, c.code, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, c.want, "%v", c.args)
	}
}

// --dry-run trains nothing on either executor (no run folder appears), and
// a flag of the other executor is an error, not silently ignored.
func TestSweepDryRunTrainsNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, goodConfig+"sweep: {seed: [1, 2, 3]}\n")
	out := filepath.Join(dir, "results")
	code, stdout, stderr := runCLI(t, "sweep", "run", cfg, "--out", out, "--device", "cpu", "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "3 runs (3 to train)")
	require.Contains(t, stdout, "nothing trained (--dry-run)")
	require.Equal(t, 3, strings.Count(stdout, "transformer-"), stdout)
	code, _, stderr = runCLI(t, "run", cfg, "--out", out, "--device", "cpu", "--dry-run")
	require.Equal(t, 0, code, stderr)
	_, err := os.Stat(out)
	require.True(t, os.IsNotExist(err), "a dry run wrote %s", out)

	for _, c := range []struct{ args []string }{
		{[]string{"--executor", "local", "--partition", "gpu"}},
		{[]string{"--detach"}},
		{[]string{"--executor", "slurm", "--dry-run", "--workers", "2"}},
	} {
		code, _, stderr := runCLI(t, append([]string{"sweep", "run", cfg, "--out", out}, c.args...)...)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, "not allowed with --executor", "%v", c.args)
	}
	_, err = os.Stat(out)
	require.True(t, os.IsNotExist(err))
}
