package sweep

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"seqbench/internal/units"
	"seqbench/nn"
	"seqbench/train"
)

// Estimate is one run's plan: what it costs (steps, tokens, FLOPs) and,
// where it was measured on a device, how long it will take there and how
// much memory it holds at its peak.
type Estimate struct {
	train.Cost
	// Seconds is the predicted time of the whole run: steps × the
	// measured step time + evaluations × the measured evaluation time
	// (0: not measured).
	Seconds      float64
	PeakMemBytes uint64
}

// Measurement is a run shape's measured cost on one backend.
type Measurement struct {
	StepSeconds  float64 // one training step, after the warm-up
	EvalSeconds  float64 // one evaluation (the run's whole eval set)
	PeakMemBytes uint64
}

// MeasureOptions configure Plan's measurements.
type MeasureOptions struct {
	Backend nn.Backend // where to measure (nil: count costs only)
	Device  string     // recorded in the measuring runs' summaries
	// Warmup steps (at least; see Measure) are trained before the timed
	// Steps: kernel builds, first allocations and the step graph's
	// capture land there.
	Warmup, Steps int
	// Progress receives a line per measured shape (nil: none).
	Progress func(format string, a ...any)
}

// Plan counts the cost of every run of exp (CostOf, the models built on
// counter, a CPU backend) and, with opt.Backend, predicts the time and
// peak memory of the runs todo lists: it measures each distinct shape
// once (runs that differ only in what does not change a step's work, such
// as the seed, the learning rate or the number of steps, share a
// measurement).
func Plan(ctx context.Context, exp *Experiment, todo []int, counter nn.Backend, opt MeasureOptions) ([]Estimate, error) {
	out := make([]Estimate, len(exp.Runs))
	measured := map[string]Measurement{}
	toTrain := make([]bool, len(exp.Runs))
	for _, i := range todo {
		toTrain[i] = true
	}
	for i, spec := range exp.Runs {
		cost, err := train.CostOf(spec, counter)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
		out[i].Cost = cost
		if opt.Backend == nil || !toTrain[i] {
			continue
		}
		key, err := shapeKey(spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
		m, ok := measured[key]
		if !ok {
			if m, err = Measure(ctx, spec, opt); err != nil {
				return nil, fmt.Errorf("measuring %s: %w", spec.Name, err)
			}
			measured[key] = m
			if opt.Progress != nil {
				opt.Progress("measured %s: %.4g s a step, %.4g s an evaluation, peak %s", spec.Name, m.StepSeconds,
					m.EvalSeconds, units.Bytes(int64(m.PeakMemBytes)))
			}
		}
		out[i].Seconds = float64(cost.Steps)*m.StepSeconds + float64(cost.Evals)*m.EvalSeconds
		out[i].PeakMemBytes = m.PeakMemBytes
	}
	return out, nil
}

// shapeKey is spec's configuration without what does not change the work
// of a step or an evaluation: runs with one key take the same time a step.
func shapeKey(spec train.Spec) (string, error) {
	s := spec
	s.Experiment, s.ID, s.Name, s.Overrides = "", "", "", nil
	c := &s.Train
	c.Steps, c.TokensPerParam, c.Epochs, c.Warmup, c.Seed = 1, 0, 0, 0, 0
	c.LR, c.MinLRRatio, c.WeightDecay, c.Beta1, c.Beta2, c.Eps = 0, 0, 0, 0, 0, 0
	c.EvalEvery, c.LogEvery, c.CheckpointEvery, c.TargetAccuracy, c.Schedule, c.Select = 0, 0, 0, 0, "", ""
	b, err := s.ResolvedYAML()
	return string(b), err
}

// Measure trains a short copy of spec on opt.Backend in a temporary
// folder (opt.Warmup steps, rounded up to a multiple of opt.Steps, then
// opt.Steps timed ones; one evaluation at the end, no checkpoint; a data-parallel run as one rank with its share of the
// batch) and returns its time a step over the timed steps, the time of its
// evaluation and its peak memory.
func Measure(ctx context.Context, spec train.Spec, opt MeasureOptions) (Measurement, error) {
	if opt.Warmup < 1 || opt.Steps < 1 {
		return Measurement{}, fmt.Errorf("measuring needs warm-up and timed steps (got %d and %d)", opt.Warmup, opt.Steps)
	}
	dir, err := os.MkdirTemp("", "seqbench-measure-")
	if err != nil {
		return Measurement{}, err
	}
	defer os.RemoveAll(dir)
	// The metrics lines, which wait for the device, are written at every
	// multiple of opt.Steps: the warm-up is rounded up to one, so that the
	// timed steps run between two of them with no wait inside.
	lead := (opt.Warmup + opt.Steps - 1) / opt.Steps * opt.Steps
	n := lead + opt.Steps
	s := spec
	c := &s.Train
	c.Steps, c.TokensPerParam, c.Epochs, c.Warmup = n, 0, 0, 0
	c.EvalEvery, c.LogEvery, c.CheckpointEvery, c.TargetAccuracy = n, opt.Steps, 0, 0
	if c.GPUs > 1 && c.BatchSize%c.GPUs == 0 {
		// One rank's share on one device: the data-parallel step less its
		// all-reduce, which the prediction leaves out.
		c.BatchSize, c.GPUs = c.BatchSize/c.GPUs, 1
	}
	sum := train.Run(ctx, s, dir, train.Options{Backend: opt.Backend, Device: opt.Device})
	if sum.Status != train.StatusOK {
		return Measurement{}, fmt.Errorf("the measuring run ended %s: %s", sum.Status, sum.Reason)
	}
	at, err := trainSecondsAt(filepath.Join(dir, "metrics.jsonl"), lead, n)
	if err != nil {
		return Measurement{}, err
	}
	return Measurement{StepSeconds: (at[1] - at[0]) / float64(opt.Steps), EvalSeconds: sum.EvalSeconds,
		PeakMemBytes: sum.PeakMemBytes}, nil
}

// trainSecondsAt reads the training seconds a metrics.jsonl records at
// each of the steps given.
func trainSecondsAt(path string, steps ...int) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]float64, len(steps))
	found := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m train.Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if i := slices.Index(steps, m.Step); i >= 0 {
			out[i] = m.TrainSeconds
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if found != len(steps) {
		return nil, fmt.Errorf("%s: no metrics at every step of %v", path, steps)
	}
	return out, nil
}

// Makespan is how long runs of the given seconds take on a pool of
// workers that each take the next run in order when free, as RunLocal
// hands them out. A run's time is its measured one: runs that share a GPU
// are assumed not to slow each other down, which holds while the GPU has
// room to spare (small models) and not once it is busy.
func Makespan(seconds []float64, workers int) float64 {
	free := make([]float64, max(workers, 1))
	for _, t := range seconds {
		i := slices.Index(free, slices.Min(free))
		free[i] += t
	}
	return slices.Max(free)
}
