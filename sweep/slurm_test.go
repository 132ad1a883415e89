package sweep_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"seqbench/sweep"
	"seqbench/train"
)

// weird is a folder name a careless script would execute.
const weird = `we ird 'q' "dq" $(touch PWNED) ` + "`touch PWNED2`" + ` ; x`

// fakeSlurm stands in for sbatch, squeue, scontrol and scancel. sbatch
// hands the submission to onSubmit; squeue reports the tasks in queue
// (set by the test); scontrol reports ends.
type fakeSlurm struct {
	mu       sync.Mutex
	queue    []map[int]string // successive squeue answers; the last repeats
	ends     map[int]string   // task -> final JobState
	calls    []string
	onSubmit func(args []string)
}

func (f *fakeSlurm) run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.mu.Unlock()
	switch name {
	case "sbatch":
		if f.onSubmit != nil {
			f.onSubmit(args)
		}
		return []byte("4242\n"), nil
	case "squeue":
		f.mu.Lock()
		defer f.mu.Unlock()
		var b bytes.Buffer
		if len(f.queue) > 0 {
			for k, v := range f.queue[0] {
				fmt.Fprintf(&b, "%d|%s\n", k, v)
			}
			if len(f.queue) > 1 {
				f.queue = f.queue[1:]
			}
		}
		return b.Bytes(), nil
	case "scontrol":
		var b bytes.Buffer
		for k, v := range f.ends {
			fmt.Fprintf(&b, "JobId=%d ArrayJobId=4242 ArrayTaskId=%d JobName=x JobState=%s Reason=None ExitCode=1:0\n", 5000+k, k, v)
		}
		return b.Bytes(), nil
	case "scancel":
		f.mu.Lock()
		f.queue = []map[int]string{{}}
		for k := range f.ends {
			f.ends[k] = "CANCELLED"
		}
		f.mu.Unlock()
		return nil, nil
	}
	return nil, fmt.Errorf("%s: not faked", name)
}

// scriptArgs splits sbatch's arguments into its options, the script and
// the script's arguments.
func scriptArgs(args []string) (opts []string, script string, rest []string) {
	for i, a := range args {
		if !strings.HasPrefix(a, "--") {
			return args[:i], a, args[i+1:]
		}
	}
	return args, "", nil
}

func slurmOpts(t *testing.T, f *fakeSlurm, exp string) sweep.SlurmOptions {
	dir := filepath.Join(t.TempDir(), weird)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	config := filepath.Join(dir, "exp "+weird+".yaml")
	require.NoError(t, os.WriteFile(config, []byte(exp), 0o644))
	return sweep.SlurmOptions{Config: config, Out: filepath.Join(dir, "results "+weird), Binary: "/nonexistent/seqbench",
		Device: "cpu", Retries: 1, Poll: time.Millisecond, Exec: f.run}
}

// The script holds no value of the sweep outside #SBATCH comment lines:
// running it passes every path, however written, to the worker verbatim.
func TestSlurmScriptPassesDataVerbatim(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	exp := mustParse(t, tinySweep+`
slurm: {partition: gpu, time: "1:00:00", gpus_per_task: 1, cpus_per_task: 2, mem: 4G, extra: ["--account=a'b", "#SBATCH --qos=$(x)"]}
`)
	script := sweep.Script(exp, exp.Slurm)
	body := script[strings.Index(script, "set -eu"):]
	for _, line := range strings.Split(strings.TrimSuffix(script[:len(script)-len(body)], "\n"), "\n") {
		require.True(t, strings.HasPrefix(line, "#"), "a line before the body is not a comment: %q", line)
	}
	require.Contains(t, script, "#SBATCH --partition=gpu\n#SBATCH --time=1:00:00\n#SBATCH --gres=gpu:1\n#SBATCH --cpus-per-task=2\n#SBATCH --mem=4G\n#SBATCH --account=a'b\n#SBATCH --qos=$(x)\n")
	require.NotContains(t, body, "tiny") // nothing of the experiment in the executed part

	f := &fakeSlurm{ends: map[int]string{0: "FAILED", 1: "FAILED"}}
	opt := slurmOpts(t, f, tinySweep)
	opt.Slurm.RunsPerTask = 3 // 4 runs: tasks of 3 and 1
	record := filepath.Join(t.TempDir(), "argv")
	fake := filepath.Join(t.TempDir(), "seqbench "+weird)
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \""+record+"-$SLURM_ARRAY_TASK_ID\"\n"), 0o755))
	opt.Binary = fake
	f.onSubmit = func(args []string) {
		opts, script, rest := scriptArgs(args)
		require.Contains(t, opts, "--array=0-1")
		var chdir string
		for _, o := range opts {
			if v, ok := strings.CutPrefix(o, "--chdir="); ok {
				chdir = v
			}
		}
		for task := range 2 {
			cmd := exec.Command("bash", append([]string{script}, rest...)...)
			cmd.Dir = chdir
			cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID="+strconv.Itoa(task))
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
		}
	}
	res, sub, err := sweep.RunSlurm(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Len(t, sub.Tasks, 2)
	out, _ := filepath.Abs(opt.Out)
	for task := range 2 {
		data, err := os.ReadFile(record + "-" + strconv.Itoa(task))
		require.NoError(t, err)
		argv := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
		require.Equal(t, []string{"sweep", "worker", "--index=" + strconv.Itoa(task),
			"--tasks=" + filepath.Join(sub.Dir, "tasks.json"), "--out=" + out, "--device=cpu", "--retries=1",
			"--force=false", "--", filepath.Join(sub.Dir, "experiment.yaml")}, argv)
	}
	wd, _ := os.Getwd()
	for _, dir := range []string{wd, sub.Dir, filepath.Dir(opt.Config), opt.Out, filepath.Dir(fake)} {
		for _, name := range []string{"PWNED", "PWNED2"} {
			_, err := os.Stat(filepath.Join(dir, name))
			require.True(t, os.IsNotExist(err), "%s appeared in %s", name, dir)
		}
	}

	// The fake worker wrote no summary: every run is failed with Slurm's state.
	require.Equal(t, 4, res.Failed)
	for _, s := range res.Summaries {
		require.Contains(t, s.Reason, "ended FAILED (exit code 1:0) without writing summary.json")
	}
	s, err := train.ReadSummary(sweep.RunDir(opt.Out, exp, exp.Runs[3]))
	require.NoError(t, err, "the report must see the failure")
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "array task 1 of job 4242")
}

// writeOK writes an ok summary, as a worker would.
func writeOK(t *testing.T, dir string, spec train.Spec) {
	require.NoError(t, os.MkdirAll(dir, 0o755))
	data, err := json.Marshal(train.Summary{Run: spec.Name, ID: spec.ID, Arch: spec.Arch, Status: train.StatusOK, StartedAt: time.Now().UTC()})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "summary.json"), data, 0o644))
}

func TestSlurmFollow(t *testing.T) {
	exp := mustParse(t, tinySweep)
	f := &fakeSlurm{ends: map[int]string{0: "COMPLETED", 1: "COMPLETED", 2: "TIMEOUT"}}
	opt := slurmOpts(t, f, tinySweep)
	var log strings.Builder
	opt.Progress = &log
	// Run 0 is ok already; run 3 failed before, and its stale summary must
	// not count as this job's.
	writeOK(t, sweep.RunDir(opt.Out, exp, exp.Runs[0]), exp.Runs[0])
	dir3 := sweep.RunDir(opt.Out, exp, exp.Runs[3])
	require.NoError(t, os.MkdirAll(dir3, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir3, "summary.json"), []byte(`{"status":"failed","reason":"old","started_at":"2020-01-01T00:00:00Z"}`), 0o644))
	f.queue = []map[int]string{{0: "RUNNING", 1: "PENDING", 2: "PENDING"}, {1: "RUNNING", 2: "RUNNING"}, {}}
	f.onSubmit = func(args []string) {
		// Tasks 0 and 1 (runs 1, 2) finish; task 2 (run 3) times out.
		writeOK(t, sweep.RunDir(opt.Out, exp, exp.Runs[1]), exp.Runs[1])
		writeOK(t, sweep.RunDir(opt.Out, exp, exp.Runs[2]), exp.Runs[2])
	}
	res, sub, err := sweep.RunSlurm(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Equal(t, [][]int{{1}, {2}, {3}}, sub.Tasks)
	require.Equal(t, 1, res.Skipped)
	require.Equal(t, 1, res.Failed)
	require.Len(t, res.Summaries, 4)
	require.Contains(t, res.Summaries[3].Reason, "ended TIMEOUT")
	require.Contains(t, log.String(), "submitted job 4242")
	require.Contains(t, log.String(), "ok ")
	var rec struct{ Followed bool }
	data, err := os.ReadFile(filepath.Join(sub.Dir, "submit.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rec))
	require.True(t, rec.Followed)

	// The rerun submits only run 3, which its worker continues from a
	// checkpoint: the new summary keeps the old start time, and still
	// counts as new.
	f.queue, f.ends = []map[int]string{{}}, map[int]string{0: "COMPLETED"}
	require.NoError(t, os.WriteFile(filepath.Join(dir3, "summary.json"), []byte(`{"status":"failed","reason":"interrupted","started_at":"2020-01-01T00:00:00Z"}`), 0o644))
	f.onSubmit = func([]string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir3, "summary.json"), []byte(`{"status":"ok","started_at":"2020-01-01T00:00:00Z"}`), 0o644))
	}
	res, sub, err = sweep.RunSlurm(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Equal(t, [][]int{{3}}, sub.Tasks)
	require.Equal(t, 3, res.Skipped)
	require.Zero(t, res.Failed)
}

// An interrupt cancels the job; runs whose tasks never began stay not
// started (no summary), and the next submission is refused while an
// unfollowed job still runs.
func TestSlurmInterruptAndActiveJob(t *testing.T) {
	exp := mustParse(t, tinySweep)
	f := &fakeSlurm{ends: map[int]string{0: "RUNNING", 1: "PENDING", 2: "PENDING", 3: "PENDING"}}
	opt := slurmOpts(t, f, tinySweep)
	f.queue = []map[int]string{{0: "RUNNING", 1: "PENDING", 2: "PENDING", 3: "PENDING"}}
	ctx, cancel := context.WithCancel(context.Background())
	f.onSubmit = func([]string) {
		// Task 0's worker starts run 0 (its folder exists) and then is
		// cancelled before writing a summary.
		require.NoError(t, os.MkdirAll(sweep.RunDir(opt.Out, exp, exp.Runs[0]), 0o755))
		cancel()
	}
	res, _, err := sweep.RunSlurm(ctx, exp, opt)
	require.NoError(t, err)
	require.True(t, res.Interrupted)
	require.Contains(t, f.calls, "scancel")
	require.Equal(t, 1, res.Resumable, "cancelled by the interrupt: not a failure")
	require.Zero(t, res.Failed)
	require.Equal(t, 3, res.NotStarted)
	require.Equal(t, train.StatusInterrupted, res.Summaries[0].Status)
	require.Contains(t, res.Summaries[0].Reason, "interrupted")

	// A detached submission is not followed; while it runs, no second one.
	opt.Detach = true
	f.queue = []map[int]string{{0: "RUNNING"}}
	_, sub, err := sweep.RunSlurm(context.Background(), exp, opt)
	require.NoError(t, err)
	require.NotNil(t, sub)
	opt.Detach = false
	_, _, err = sweep.RunSlurm(context.Background(), exp, opt)
	require.ErrorContains(t, err, "job 4242 of this sweep")
	require.ErrorContains(t, err, "still queued or running")
}

func TestSlurmDryRun(t *testing.T) {
	exp := mustParse(t, tinySweep)
	f := &fakeSlurm{}
	opt := slurmOpts(t, f, tinySweep)
	opt.DryRun = true
	opt.Slurm = sweep.SlurmConfig{RunsPerTask: 2, MaxParallel: 1}
	_, sub, err := sweep.RunSlurm(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Empty(t, f.calls, "a dry run calls no Slurm command")
	require.Contains(t, sub.Args, "--array=0-1%1")
	for _, name := range []string{"job.sbatch", "experiment.yaml", "tasks.json"} {
		_, err := os.Stat(filepath.Join(sub.Dir, name))
		require.NoError(t, err)
	}
	// The quoted command, run by a shell, gives back the same arguments.
	if _, err := exec.LookPath("bash"); err == nil {
		out, err := exec.Command("bash", "-c", `printf '%s\0' `+sweep.ShellQuote(sub.Args)).Output()
		require.NoError(t, err)
		require.Equal(t, sub.Args, strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"))
	}
}
