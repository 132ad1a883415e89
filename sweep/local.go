package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"seqbench/nn"
	"seqbench/train"
)

// LocalOptions configure RunLocal.
type LocalOptions struct {
	// Out is the results root: runs land in Out/<experiment>/<run>/.
	Out string
	// Workers is how many runs train at once (at least 1).
	Workers int
	// Backend makes worker w's backend (w in [0, Workers)), once, before
	// its first run: on a GPU host worker w is bound to GPU w; on the CPU
	// each worker gets its share of the cores (see CPUWorkers).
	Backend func(w int) (nn.Backend, error)
	Device  string // recorded in the summaries ("cpu", "cuda")
	// Retries is how many times a failed run is tried again (diverged
	// and interrupted runs are not).
	Retries int
	// Force reruns runs whose summary already says ok, and starts
	// interrupted ones over instead of continuing their checkpoints.
	Force bool
	// Progress receives the live progress (nil: none); Interactive redraws
	// a status line in place (a terminal).
	Progress    io.Writer
	Interactive bool
	// Verbose also sends each run's own progress (its step lines, or its
	// bar when Interactive) to Progress, in place of the sweep's status
	// line: for one worker, as `seqbench run` uses it. train.log gets the
	// step lines either way, except the bar.
	Verbose bool
}

// CPUWorkers chooses how many runs train at once on a CPU and how many
// kernel goroutines each gets, so that workers × threads fits the cores.
// Unset (< 1) values are chosen: by default one worker per run up to the
// cores, and the cores shared among the workers (runs are independent, so
// running several at once scales better than spreading one run over every
// core; a sweep of fewer runs than cores gives each more threads).
func CPUWorkers(cores, runs, workers, threads int) (w, t int) {
	cores, runs = max(cores, 1), max(runs, 1)
	switch {
	case workers < 1 && threads < 1:
		w = min(runs, cores)
		t = cores / w
	case workers < 1:
		t = threads
		w = max(1, min(runs, cores/threads))
	case threads < 1:
		w = workers
		t = max(1, cores/workers)
	default:
		w, t = workers, threads
	}
	return w, t
}

// RunLocal trains the sweep's runs on a pool of opt.Workers goroutines,
// each with its own backend. Runs whose summary says ok are skipped; a
// failed run is retried up to opt.Retries times and never stops the
// others. A run whose folder another process holds locked (see runLock)
// is skipped with a message. Cancelling ctx (SIGINT) stops handing out
// runs; the running ones end as interrupted after saving a checkpoint, and
// a later call skips the finished runs and continues the interrupted ones
// from their checkpoints (unless opt.Force). The error is nil unless no
// worker could start.
func RunLocal(ctx context.Context, exp *Experiment, opt LocalOptions) (*Result, error) {
	dir := RunDir(opt.Out, exp, train.Spec{})
	sums, todo := pending(opt.Out, exp, opt.Force)
	skipped := len(sums)
	workers := max(1, min(opt.Workers, len(todo)))
	prog := newProgress(opt.Progress, opt.Interactive && !opt.Verbose, len(exp.Runs), skipped, workers)
	prog.announce = opt.Verbose
	var echo io.Writer
	if opt.Verbose {
		echo = opt.Progress
	}
	defer prog.close()
	if skipped > 0 {
		prog.printf("%d of %d runs already ok, skipped (--force reruns them)", skipped, len(exp.Runs))
	}

	var (
		mu       sync.Mutex
		next     atomic.Int64
		wg       sync.WaitGroup
		started  atomic.Int64
		workErrs []error
		// lateSkipped runs were found ok by the time a worker took them;
		// locked ones were being trained by another process.
		lateSkipped, locked int
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			be, err := opt.Backend(w)
			if err != nil {
				prog.printf("worker %d: no backend: %v", w, err)
				mu.Lock()
				workErrs = append(workErrs, fmt.Errorf("worker %d: %w", w, err))
				mu.Unlock()
				return
			}
			if c, ok := be.(io.Closer); ok {
				defer c.Close() // a GPU backend's context and cached memory
			}
			started.Add(1)
			for ctx.Err() == nil {
				k := int(next.Add(1)) - 1
				if k >= len(todo) {
					return
				}
				i := todo[k]
				spec := exp.Runs[i]
				runDir := RunDir(opt.Out, exp, spec)
				lock, err := lockRun(runDir)
				var le *LockedError
				switch {
				case errors.As(err, &le):
					mu.Lock()
					locked++
					mu.Unlock()
					prog.skipLocked(spec, le)
					continue
				case err != nil:
					prog.printf("%s: %v (training it without the lock)", spec.Name, err)
				}
				if s, ok := okSummary(runDir); ok && !opt.Force {
					// Finished by another process since the sweep began.
					lock.release()
					mu.Lock()
					sums[i] = s
					lateSkipped++
					mu.Unlock()
					prog.finish(spec, s)
					continue
				}
				prog.start(spec)
				s := attempt(ctx, spec, runDir, train.Options{Backend: be, Device: opt.Device, Resume: !opt.Force,
					Log: echo, Interactive: opt.Interactive}, opt.Retries,
					func(failed train.Summary, try int) {
						prog.printf("retrying %s (%d of %d): it failed: %s", spec.Name, try, opt.Retries, firstLine(failed.Reason))
					})
				lock.release()
				mu.Lock()
				sums[i] = s
				mu.Unlock()
				prog.finish(spec, s)
			}
		}()
	}
	wg.Wait()
	prog.close()
	res := collect(dir, exp, sums, skipped+lateSkipped, ctx.Err() != nil)
	res.Locked, res.NotStarted = locked, res.NotStarted-locked
	if locked > 0 && locked == len(todo) {
		prog.printf("nothing to do: every run left to train is locked by another process")
	}
	if started.Load() == 0 && len(todo) > 0 {
		return res, fmt.Errorf("no worker could start: %w", errors.Join(workErrs...))
	}
	return res, nil
}
