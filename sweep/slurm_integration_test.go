package sweep_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

// TestSlurmIntegration submits a 6-run sweep through `seqbench sweep run
// --executor slurm` to a real single-node Slurm on localhost, which
// testdata/slurm/slurm-local.sh configures and starts (munged, slurmctld,
// slurmd on ports of their own, so a system Slurm is left alone), and
// checks every run's summary. The daemons are stopped by their PIDs.
//
// It needs Debian's slurmctld, slurmd, slurm-client and munge, and root.
// Without them it is skipped, saying why, unless SEQBENCH_SLURM_TEST=1
// (set by .ci/run once it has installed them): then it fails, so CI cannot
// pass without running it. SEQBENCH_SLURM_TEST=0 skips it.
func TestSlurmIntegration(t *testing.T) {
	required := os.Getenv("SEQBENCH_SLURM_TEST") == "1"
	skip := func(why string) {
		t.Helper()
		if required {
			t.Fatalf("SEQBENCH_SLURM_TEST=1 but %s", why)
		}
		t.Skipf("skipping the Slurm integration test: %s (.ci/run installs Slurm and sets SEQBENCH_SLURM_TEST=1)", why)
	}
	switch {
	case os.Getenv("SEQBENCH_SLURM_TEST") == "0":
		t.Skip("SEQBENCH_SLURM_TEST=0")
	case testing.Short():
		skip("-short")
	case os.Geteuid() != 0:
		skip("not root (slurmd starts jobs as their users; munged runs as user munge)")
	}
	for _, c := range []string{"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "setpriv", "bash", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			skip(c + " not found (apt-get install slurmctld slurmd slurm-client munge)")
		}
	}
	begin := time.Now()

	// slurm.conf names the work folder, so it has no spaces; the sweep's
	// own paths below do.
	work, err := os.MkdirTemp("", "seqbench-slurm-")
	require.NoError(t, err)
	t.Cleanup(func() {
		stopDaemons(t, filepath.Join(work, "pids"))
		if !t.Failed() {
			os.RemoveAll(work)
		} else {
			t.Logf("Slurm logs kept in %s/log", work)
		}
	})
	ctld, slurmd := freePort(t), freePort(t)
	script, err := filepath.Abs("testdata/slurm/slurm-local.sh")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script, "start", work, strconv.Itoa(ctld), strconv.Itoa(slurmd)).CombinedOutput()
	require.NoError(t, err, "starting Slurm: %s", out)
	t.Logf("Slurm up in %.1fs", time.Since(begin).Seconds())
	env := append(os.Environ(), "SLURM_CONF="+filepath.Join(work, "slurm.conf"))

	dir := filepath.Join(t.TempDir(), weird)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	bin := filepath.Join(dir, "bin "+weird, "seqbench")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "seqbench/cmd/seqbench")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err = build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	t.Logf("seqbench built at %.1fs", time.Since(begin).Seconds())

	config := filepath.Join(dir, "six "+weird+".yaml")
	require.NoError(t, os.WriteFile(config, []byte(`name: six
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 20, batch_size: 4, lr: 1.0e-2, warmup: 2, eval_every: 10, log_every: 5, eval_batches: 1}
models:
  - {arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}
sweep:
  seed: [1, 2, 3]
  zip:
    - {model.d_model: [8, 16], model.n_layers: [1, 2]}
slurm: {cpus_per_task: 1, time: "5"}
`), 0o644))
	results := filepath.Join(dir, "results "+weird)
	sweepRun := func(flags ...string) string {
		cmd := exec.CommandContext(ctx, bin, append([]string{"sweep", "run", config, "--executor", "slurm", "--out", results,
			"--device", "cpu", "--poll", "250ms"}, flags...)...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	log := sweepRun()
	t.Logf("sweep done at %.1fs:\n%s", time.Since(begin).Seconds(), log)
	require.Contains(t, log, "submitted job ")
	require.Contains(t, log, "6 array tasks for 6 runs")
	runs, _ := filepath.Glob(filepath.Join(results, "six", "transformer-*"))
	require.Len(t, runs, 6)
	for _, r := range runs {
		s, err := train.ReadSummary(r)
		require.NoError(t, err)
		require.Equal(t, train.StatusOK, s.Status, "%s: %s", r, s.Reason)
		require.Equal(t, 20, s.Steps)
		require.Equal(t, "cpu-float32", s.Backend)
	}
	outs, _ := filepath.Glob(filepath.Join(results, "six", "slurm", "*", "task-*_*.out"))
	require.Len(t, outs, 6)
	_, err = os.Stat(filepath.Join(results, "six", "report.md"))
	require.NoError(t, err)
	for _, d := range []string{dir, results, filepath.Dir(outs[0])} {
		for _, name := range []string{"PWNED", "PWNED2"} {
			_, err := os.Stat(filepath.Join(d, name))
			require.True(t, os.IsNotExist(err), "%s appeared in %s", name, d)
		}
	}

	// Resume: nothing left to submit.
	log = sweepRun()
	require.NotContains(t, log, "submitted job")
	require.Contains(t, log, "6 ok before (skipped)")

	// Several runs per array task: --force trains them all again, 3 a task.
	log = sweepRun("--force", "--runs-per-task", "3")
	require.Contains(t, log, "2 array tasks for 6 runs")
	require.Contains(t, log, "0 failed, 0 interrupted (resumable), 0 not started")
	for _, r := range runs {
		s, err := train.ReadSummary(r)
		require.NoError(t, err)
		require.Equal(t, train.StatusOK, s.Status, "%s: %s", r, s.Reason)
	}
	t.Logf("Slurm integration test: %.1fs in all", time.Since(begin).Seconds())
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// stopDaemons sends SIGTERM to each PID of the file ("name pid" lines)
// and waits for them to go (SIGKILL after 10 s). They stop together: one
// at a time takes twice as long.
func stopDaemons(t *testing.T, pidFile string) {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	var pids []int
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) == 2 {
			if pid, err := strconv.Atoi(fields[1]); err == nil && syscall.Kill(pid, syscall.SIGTERM) == nil {
				pids = append(pids, pid)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Logf("pid %d ignored SIGTERM; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	os.Remove(pidFile)
}
