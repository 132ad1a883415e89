package sweep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/sweep"
	"seqbench/train"
)

// tinySweep is 4 runs of a few milliseconds each.
const tinySweep = `
name: tiny
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 8, batch_size: 4, lr: 1.0e-2, warmup: 2, eval_every: 4, log_every: 2, eval_batches: 1}
models:
  - {arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}
sweep:
  seed: [1, 2, 3, 4]
`

// flaky is a backend whose first `fails` reads of a loss panic, as a
// transient device error would.
type flaky struct {
	nn.Backend
	fails *atomic.Int32
}

func (f flaky) Read(b nn.Buffer) []float64 {
	if f.fails.Add(-1) >= 0 {
		panic("transient device error")
	}
	return f.Backend.Read(b)
}

// localOpts gives each worker a backend that fails its first `fails`
// reads.
func localOpts(t *testing.T, fails int32) sweep.LocalOptions {
	return sweep.LocalOptions{Out: t.TempDir(), Workers: 2, Device: "cpu", Retries: 1,
		Backend: func(int) (nn.Backend, error) {
			n := &atomic.Int32{}
			n.Store(fails)
			return flaky{cpukernels.NewWithWorkers[float32](1), n}, nil
		}}
}

func mustParse(t *testing.T, y string) *sweep.Experiment {
	exp, err := sweep.Parse([]byte(y))
	require.NoError(t, err)
	return exp
}

func TestRunLocalResumes(t *testing.T) {
	exp := mustParse(t, tinySweep)
	opt := localOpts(t, 0)
	var log strings.Builder
	opt.Progress = &log
	res, err := sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Len(t, res.Summaries, 4)
	require.Zero(t, res.Failed+res.Skipped+res.NotStarted)
	for i, s := range res.Summaries {
		require.Equal(t, train.StatusOK, s.Status, s.Reason)
		require.Equal(t, exp.Runs[i].Name, s.Run, "summaries in run order")
		_, err := os.Stat(filepath.Join(sweep.RunDir(opt.Out, exp, exp.Runs[i]), "train.log"))
		require.NoError(t, err)
	}
	require.Equal(t, 4, strings.Count(log.String(), "] ok "), log.String())
	require.Contains(t, log.String(), "done 4/4")

	// A rerun trains nothing; a new grid value trains only the new run.
	res2, err := sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Equal(t, 4, res2.Skipped)
	for i := range res.Summaries {
		require.Equal(t, res.Summaries[i].StartedAt, res2.Summaries[i].StartedAt)
	}
	more := mustParse(t, strings.Replace(tinySweep, "[1, 2, 3, 4]", "[1, 2, 3, 4, 5]", 1))
	res3, err := sweep.RunLocal(context.Background(), more, opt)
	require.NoError(t, err)
	require.Equal(t, 4, res3.Skipped)
	require.Len(t, res3.Summaries, 5)
}

// Verbose (seqbench run: one worker) announces each run and shows its step
// lines, which train.log holds too; a failed run is retried as in a sweep.
func TestRunLocalVerbose(t *testing.T) {
	exp := mustParse(t, tinySweep)
	opt := localOpts(t, 1)
	opt.Workers, opt.Verbose = 1, true
	var log strings.Builder
	opt.Progress = &log
	res, err := sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Zero(t, res.Failed, log.String())
	require.Contains(t, log.String(), "retrying")
	for i, r := range exp.Runs {
		require.Contains(t, log.String(), fmt.Sprintf("[%d/4] %s  selective_copy train.seed=%d\n", i+1, r.Name, i+1))
		tl, err := os.ReadFile(filepath.Join(sweep.RunDir(opt.Out, exp, r), "train.log"))
		require.NoError(t, err)
		require.Contains(t, string(tl), "step 8/8 loss")
	}
	require.Equal(t, 4, strings.Count(log.String(), "step 8/8 loss"), log.String())
	require.NotContains(t, log.String(), "running 1", "the sweep's status line is not drawn")
}

// holdLock takes a run folder's lock through a file of its own, as another
// seqbench process would, until the test ends.
func holdLock(t *testing.T, dir string) {
	require.NoError(t, os.MkdirAll(dir, 0o755))
	f, err := os.OpenFile(filepath.Join(dir, sweep.LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	f.WriteString("pid 99999 on elsewhere since now\n")
	t.Cleanup(func() { f.Close() })
}

// A run another process holds is skipped with a message naming the
// holder; the other runs train, and a later sweep trains the skipped one.
func TestRunLocalSkipsLockedRuns(t *testing.T) {
	exp := mustParse(t, tinySweep)
	opt := localOpts(t, 0)
	var log strings.Builder
	opt.Progress = &log
	held := sweep.RunDir(opt.Out, exp, exp.Runs[2])
	holdLock(t, held)
	res, err := sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Equal(t, 1, res.Locked)
	require.Equal(t, 3, res.Trained)
	require.Zero(t, res.Failed+res.NotStarted)
	require.Contains(t, log.String(), "skipped "+exp.Runs[2].Name+": "+held+" is being trained by pid 99999 on elsewhere")
	_, err = os.Stat(filepath.Join(held, "summary.json"))
	require.True(t, os.IsNotExist(err), "the locked run was written to")

	// Everything left is locked: nothing to do, said so.
	log.Reset()
	res, err = sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Equal(t, 1, res.Locked)
	require.Equal(t, 3, res.Skipped)
	require.Contains(t, log.String(), "nothing to do: every run left to train is locked by another process")
}

func TestRunLocalRetriesAndIsolatesFailures(t *testing.T) {
	exp := mustParse(t, tinySweep)
	// A transient failure in each worker, one retry: every run ends ok.
	opt := localOpts(t, 1)
	var log strings.Builder
	opt.Progress = &log
	res, err := sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Zero(t, res.Failed, log.String())
	require.Contains(t, log.String(), "retrying")

	// Without retries the failures stay, and the other runs still finish.
	opt = localOpts(t, 1)
	opt.Retries = 0
	res, err = sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	failed := res.Failed // 1 or 2: a worker that got no run failed none
	require.True(t, failed == 1 || failed == 2, "%d failed", failed)
	require.Len(t, res.Summaries, 4)
	for _, s := range res.Summaries {
		if s.Status != train.StatusOK {
			require.Contains(t, s.Reason, "transient device error")
		}
	}
	// The rerun trains just the failed ones.
	opt.Retries = 1
	res, err = sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Equal(t, 4-failed, res.Skipped)
	require.Zero(t, res.Failed)
}

// A run too large for the machine fails with its estimate; the process
// and the other runs go on.
func TestRunLocalImpossibleRunFailsAlone(t *testing.T) {
	exp := mustParse(t, strings.Replace(tinySweep, "seed: [1, 2, 3, 4]", "train.batch_size: [4, 1000000000, 8]", 1))
	opt := localOpts(t, 0)
	opt.Retries = 0
	res, err := sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 2, res.Trained)
	for _, s := range res.Summaries {
		if s.Overrides["train.batch_size"] == "1000000000" {
			require.Equal(t, train.StatusFailed, s.Status)
			require.Contains(t, s.Reason, "the run needs at least")
		} else {
			require.Equal(t, train.StatusOK, s.Status, s.Reason)
		}
	}
}

func TestRunLocalNoBackend(t *testing.T) {
	exp := mustParse(t, tinySweep)
	opt := localOpts(t, 0)
	opt.Backend = func(w int) (nn.Backend, error) { return nil, errors.New("no GPU 3") }
	res, err := sweep.RunLocal(context.Background(), exp, opt)
	require.ErrorContains(t, err, "no GPU 3")
	require.Equal(t, 4, res.NotStarted)
}

// Cancelling stops the sweep cleanly: the running runs end as interrupted
// (not failed), nothing is half-written, and the next call resumes.
func TestRunLocalInterrupt(t *testing.T) {
	exp := mustParse(t, strings.Replace(tinySweep, "steps: 8", "steps: 100", 1))
	opt := localOpts(t, 0)
	opt.Workers = 1
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the first run has written metrics.
		for {
			m, _ := filepath.Glob(filepath.Join(opt.Out, "tiny", "*", "metrics.jsonl"))
			if len(m) > 0 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res, err := sweep.RunLocal(ctx, exp, opt)
	require.NoError(t, err)
	require.True(t, res.Interrupted)
	require.Equal(t, 1, res.Resumable)
	require.Zero(t, res.Failed)
	require.Positive(t, res.NotStarted)
	require.Len(t, res.Summaries, 4-res.NotStarted)
	require.Contains(t, res.Summaries[len(res.Summaries)-1].Reason, "interrupted")
	tmp, _ := filepath.Glob(filepath.Join(opt.Out, "tiny", "*", ".*tmp*"))
	require.Empty(t, tmp, "temporary files left behind")
	cutSkipped := res.Trained

	exp = mustParse(t, strings.Replace(tinySweep, "steps: 8", "steps: 100", 1))
	res, err = sweep.RunLocal(context.Background(), exp, opt)
	require.NoError(t, err)
	require.Zero(t, res.Failed+res.NotStarted+res.Resumable)
	require.Equal(t, 4-cutSkipped, res.Trained, "the runs finished in this call")
	require.Equal(t, cutSkipped, res.Skipped)
	require.Len(t, res.Summaries, 4)
}

func TestCPUWorkers(t *testing.T) {
	cases := []struct{ cores, runs, workers, threads, w, t int }{
		{2, 12, 0, 0, 2, 1},   // more runs than cores: one core each
		{64, 12, 0, 0, 12, 5}, // fewer runs: the cores shared among them
		{8, 1, 0, 0, 1, 8},
		{8, 12, 2, 0, 2, 4},
		{8, 12, 0, 4, 2, 4},
		{8, 1, 0, 4, 1, 4},
		{8, 12, 3, 5, 3, 5}, // both given: as asked
		{4, 0, 0, 0, 1, 4},
	}
	for i, c := range cases {
		w, th := sweep.CPUWorkers(c.cores, c.runs, c.workers, c.threads)
		require.Equal(t, [2]int{c.w, c.t}, [2]int{w, th}, "case %d %+v", i, c)
	}
}
