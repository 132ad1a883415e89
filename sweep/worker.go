package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"seqbench/nn"
	"seqbench/train"
)

// WorkerOptions configure RunWorker.
type WorkerOptions struct {
	Out     string // results root, as for RunLocal
	Backend nn.Backend
	Device  string
	Retries int
	Force   bool
	Log     io.Writer // a line per run (the Slurm task's output file)
}

// taskFile is tasks.json of a Slurm submission: the runs of each array
// task, by index into the expanded experiment and by name, so a worker can
// tell that the experiment still expands to the runs it was submitted for.
type taskFile struct {
	Experiment string      `json:"experiment"`
	Tasks      [][]taskRun `json:"tasks"`
}

type taskRun struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
}

// WorkerRuns are the runs one worker trains: array task index of the
// tasks file at path, or, without a tasks file, run number index of the
// experiment.
func WorkerRuns(exp *Experiment, tasksPath string, index int) ([]int, error) {
	if tasksPath == "" {
		if index < 0 || index >= len(exp.Runs) {
			return nil, fmt.Errorf("--index %d is not allowed (the experiment has runs 0..%d)", index, len(exp.Runs)-1)
		}
		return []int{index}, nil
	}
	data, err := os.ReadFile(tasksPath)
	if err != nil {
		return nil, err
	}
	var tf taskFile
	if err := json.Unmarshal(data, &tf); err != nil {
		return nil, fmt.Errorf("%s: %w", tasksPath, err)
	}
	if index < 0 || index >= len(tf.Tasks) {
		return nil, fmt.Errorf("--index %d is not allowed (%s lists tasks 0..%d)", index, tasksPath, len(tf.Tasks)-1)
	}
	var runs []int
	for _, tr := range tf.Tasks[index] {
		if tf.Experiment != exp.Name || tr.Index < 0 || tr.Index >= len(exp.Runs) || exp.Runs[tr.Index].Name != tr.Name {
			// The config or the binary changed since submission: a
			// different run must not land in this one's folder.
			return nil, fmt.Errorf("%s: run %d was %s/%s when submitted, but the experiment now expands differently (was the config or seqbench changed?)",
				tasksPath, tr.Index, tf.Experiment, tr.Name)
		}
		runs = append(runs, tr.Index)
	}
	return runs, nil
}

// RunWorker trains the given runs (indices into exp.Runs) one after the
// other: the body of a Slurm array task. Like RunLocal it skips runs that
// are already ok or locked by another process and retries failed ones; it
// returns the summaries of the runs it did not skip as locked.
func RunWorker(ctx context.Context, exp *Experiment, runs []int, opt WorkerOptions) []train.Summary {
	var out []train.Summary
	for _, i := range runs {
		spec := exp.Runs[i]
		dir := RunDir(opt.Out, exp, spec)
		if ctx.Err() != nil {
			break
		}
		lock, err := lockRun(dir)
		var le *LockedError
		switch {
		case errors.As(err, &le):
			logf(opt.Log, "run %d %s: skipped: %v", i, spec.Name, le)
			continue
		case err != nil:
			logf(opt.Log, "run %d %s: %v (training it without the lock)", i, spec.Name, err)
		}
		if s, ok := okSummary(dir); ok && !opt.Force {
			lock.release()
			logf(opt.Log, "run %d %s: already ok, skipped", i, spec.Name)
			out = append(out, s)
			continue
		}
		logf(opt.Log, "run %d %s: training (%s) %s", i, spec.Name, opt.Backend.Name(), Describe(spec))
		s := attempt(ctx, spec, dir, train.Options{Backend: opt.Backend, Device: opt.Device, Resume: !opt.Force}, opt.Retries,
			func(failed train.Summary, try int) {
				logf(opt.Log, "run %d %s: failed (%s), retry %d of %d", i, spec.Name, firstLine(failed.Reason), try, opt.Retries)
			})
		lock.release()
		if s.Reason != "" {
			logf(opt.Log, "run %d %s: %s in %s: %s", i, spec.Name, s.Status, roundDuration(s.WallSeconds), firstLine(s.Reason))
		} else {
			logf(opt.Log, "run %d %s: %s in %s", i, spec.Name, s.Status, roundDuration(s.WallSeconds))
		}
		out = append(out, s)
	}
	return out
}

func logf(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, time.Now().Format("15:04:05 ")+format+"\n", a...)
	}
}
