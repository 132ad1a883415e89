package sweep

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"seqbench/internal/atomicfile"
	"seqbench/train"
)

// Result is what an executor did with a sweep.
type Result struct {
	// Dir is the experiment's results folder, OUT/<experiment>.
	Dir string
	// Summaries holds every run that has a summary, in the order of
	// Experiment.Runs: runs skipped because they were already ok, runs
	// that finished, failed or were interrupted.
	Summaries []train.Summary
	// Skipped runs were ok before the sweep started; Trained runs ended ok
	// in this sweep; Failed runs ended failed or diverged (after their
	// retries); Resumable runs ended interrupted (a rerun continues them);
	// NotStarted runs never began (an interrupt, or no worker could start);
	// Locked runs were left to another process that was training them.
	Skipped, Trained, Failed, Resumable, NotStarted, Locked int
	// Interrupted says the context was cancelled (SIGINT).
	Interrupted bool
}

// Failure says whether a status is a failure of the run (failed or
// diverged): not ok, and not merely interrupted.
func Failure(status string) bool {
	return status != train.StatusOK && status != train.StatusInterrupted
}

// RunDir is the folder of a run: OUT/<experiment>/<run>.
func RunDir(out string, exp *Experiment, run train.Spec) string {
	return filepath.Join(out, exp.Name, run.Name)
}

// okSummary returns the summary in dir if it says ok.
func okSummary(dir string) (train.Summary, bool) {
	s, err := train.ReadSummary(dir)
	return s, err == nil && s.Status == train.StatusOK
}

// pending splits the runs into those already ok (their summaries, by run
// index) and the indices still to run; force reruns everything.
func pending(out string, exp *Experiment, force bool) (done map[int]train.Summary, todo []int) {
	done = map[int]train.Summary{}
	for i, r := range exp.Runs {
		if s, ok := okSummary(RunDir(out, exp, r)); ok && !force {
			done[i] = s
			continue
		}
		todo = append(todo, i)
	}
	return done, todo
}

// Pending lists the indices of the runs a sweep would train: those whose
// summary does not say ok (every run with force).
func Pending(out string, exp *Experiment, force bool) []int {
	_, todo := pending(out, exp, force)
	return todo
}

// collect orders the summaries of a sweep into a Result; skipped of them
// were ok without this sweep training them.
func collect(dir string, exp *Experiment, sums map[int]train.Summary, skipped int, interrupted bool) *Result {
	res := &Result{Dir: dir, Skipped: skipped, Interrupted: interrupted}
	for i := range exp.Runs {
		s, ok := sums[i]
		switch {
		case !ok:
			res.NotStarted++
			continue
		case s.Status == train.StatusInterrupted:
			res.Resumable++
		case s.Status != train.StatusOK:
			res.Failed++
		default:
			res.Trained++
		}
		res.Summaries = append(res.Summaries, s)
	}
	res.Trained -= skipped
	return res
}

// attempt trains one run, retrying a failed one up to retries times.
// Diverged runs are not retried (the same seed diverges again), nor runs
// cut short by ctx. The run's progress goes to DIR/train.log, appended
// attempt after attempt, and also to opt.Log when there is one (a bar
// there, and nothing in the file, when opt.Interactive); onRetry hears
// about each failure that is retried.
func attempt(ctx context.Context, spec train.Spec, dir string, opt train.Options, retries int, onRetry func(train.Summary, int)) train.Summary {
	echo, bar := opt.Log, opt.Interactive && opt.Log != nil
	for try := 0; ; try++ {
		log, err := openLog(dir, try)
		switch {
		case bar:
			opt.Log, opt.Interactive = echo, true
		case err != nil:
			opt.Log, opt.Interactive = echo, false
		case echo != nil:
			opt.Log, opt.Interactive = io.MultiWriter(log, echo), false
		default:
			opt.Log, opt.Interactive = log, false
		}
		s := train.Run(ctx, spec, dir, opt)
		if log != nil {
			fmt.Fprintf(log, "%s: %s %s\n", time.Now().UTC().Format(time.RFC3339), s.Status, s.Reason)
			log.Close()
		}
		if s.Status != train.StatusFailed || try >= retries || ctx.Err() != nil {
			return s
		}
		if onRetry != nil {
			onRetry(s, try+1)
		}
	}
}

// openLog opens DIR/train.log for appending, headed by the attempt.
func openLog(dir string, try int) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "train.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "--- attempt %d, %s, pid %d\n", try+1, time.Now().UTC().Format(time.RFC3339), os.Getpid())
	return f, nil
}

// writeSummary writes summary.json atomically (temp file and rename), as
// train.Run does: for runs whose process died before it could write one.
func writeSummary(dir string, s train.Summary) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "summary.json"), append(data, '\n'))
}
