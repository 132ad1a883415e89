package sweep_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/sweep"
	"seqbench/train"
)

// The pool takes the next run in order when a worker is free.
func TestMakespan(t *testing.T) {
	for _, c := range []struct {
		secs    []float64
		workers int
		want    float64
	}{
		{[]float64{3, 1, 1, 1}, 1, 6},
		{[]float64{3, 1, 1, 1}, 2, 3},
		{[]float64{1, 1, 1, 3}, 2, 4}, // in order: the long run starts last
		{[]float64{2, 2}, 8, 2},
		{nil, 3, 0},
	} {
		require.Equal(t, c.want, sweep.Makespan(c.secs, c.workers), "%v on %d", c.secs, c.workers)
	}
}

// Plan counts every run, measures each shape once (seeds and learning
// rates share a measurement, sizes do not) and only for the runs to train,
// and predicts time as steps × step time + evaluations × evaluation time.
func TestPlanMeasuresEachShapeOnce(t *testing.T) {
	exp := mustParse(t, `
name: plan
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 40, batch_size: 4, lr: 1.0e-2, warmup: 2, eval_every: 10, eval_batches: 1}
models:
  - {arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}
sweep:
  seed: [1, 2]
  train.lr: [1.0e-2, 5.0e-3]
  model.d_model: [8, 16]
`)
	require.Len(t, exp.Runs, 8)
	var lines []string
	opt := sweep.MeasureOptions{Backend: cpukernels.NewWithWorkers[float32](1), Device: "cpu", Warmup: 1, Steps: 2,
		Progress: func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }}
	todo := []int{0, 1, 2, 3, 4, 5, 6} // the last run is trained already
	est, err := sweep.Plan(context.Background(), exp, todo, cpukernels.New[float32](), opt)
	require.NoError(t, err)
	require.Len(t, est, 8)
	require.Len(t, lines, 2, "one measurement per d_model: %q", lines)
	for i, e := range est {
		require.Equal(t, 40, e.Steps)
		require.Equal(t, int64(40*4*12), e.Tokens)
		require.Equal(t, 4, e.Evals)
		require.Greater(t, e.FLOPs, 0.0)
		if i == 7 {
			require.Zero(t, e.Seconds, "a run not to train is not measured")
			continue
		}
		require.Greater(t, e.Seconds, 0.0)
		require.Greater(t, e.PeakMemBytes, uint64(0))
	}
	// The same model, the same prediction.
	for i := range 7 {
		for j := range 7 {
			if fmt.Sprint(exp.Runs[i].Model) == fmt.Sprint(exp.Runs[j].Model) {
				require.Equal(t, est[i].Seconds, est[j].Seconds, "%s and %s", exp.Runs[i].Name, exp.Runs[j].Name)
			}
		}
	}
}

func TestMeasureNeedsSteps(t *testing.T) {
	exp := mustParse(t, tinySweep)
	_, err := sweep.Measure(context.Background(), exp.Runs[0], sweep.MeasureOptions{Backend: cpukernels.New[float32](), Steps: 0, Warmup: 1})
	require.ErrorContains(t, err, "warm-up and timed steps")
}

// plan.json round-trips the measured runs; RunsPerDevice packs by the
// largest measured peak and falls back to one run a device without a
// measurement of every run on that device.
func TestPlanFilePacking(t *testing.T) {
	exp := mustParse(t, tinySweep)
	est := make([]sweep.Estimate, len(exp.Runs))
	for i := range est {
		est[i].Steps, est[i].Seconds, est[i].PeakMemBytes = 8, float64(i+1), uint64(i+1)<<30
	}
	est[3].Seconds = 0 // not measured (trained already)
	dir := t.TempDir()
	require.NoError(t, sweep.WritePlan(dir, "cuda", "cuda-float32", exp, est))
	f, err := sweep.ReadPlan(dir)
	require.NoError(t, err)
	require.Equal(t, "cuda", f.Device)
	require.Len(t, f.Runs, 3)
	require.Equal(t, uint64(3)<<30, f.Runs[exp.Runs[2].Name].PeakMemBytes)

	const gib = 1 << 30
	for _, c := range []struct {
		runs    []int
		device  string
		mem     uint64
		most, n int
		why     string
	}{
		{[]int{0, 1, 2}, "cuda", 80 * gib, 8, 8, "the largest measured peak, 3.0 GiB, fits 21 times"},
		{[]int{0, 1, 2}, "cuda", 80 * gib, 30, 21, "21 runs a cuda"},
		{[]int{0}, "cuda", 80 * gib, 100, 64, "1.0 GiB, fits 64 times in 80 % of its 80.0 GiB"},
		{[]int{2}, "cuda", 2 * gib, 8, 1, "fits 0 times"}, // too large to pack: one at a time
		{[]int{0, 3}, "cuda", 80 * gib, 8, 1, "has no measurement of " + exp.Runs[3].Name},
		{[]int{0}, "cpu", 80 * gib, 8, 1, "no plan.json measured on cpu"},
	} {
		var runs = make([]train.Spec, len(c.runs))
		for i, k := range c.runs {
			runs[i] = exp.Runs[k]
		}
		n, why := sweep.RunsPerDevice(f, c.device, runs, c.mem, c.most)
		require.Equal(t, c.n, n, why)
		require.Contains(t, why, c.why)
	}
	_, err = sweep.ReadPlan(t.TempDir())
	require.Error(t, err)
}

// A data-parallel run is measured as one rank with its share of the batch.
func TestMeasureDataParallel(t *testing.T) {
	exp := mustParse(t, `
name: ddp
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 20, batch_size: 4, gpus: 2, warmup: 0, eval_every: 10, eval_batches: 1}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
	m, err := sweep.Measure(context.Background(), exp.Runs[0], sweep.MeasureOptions{Backend: cpukernels.New[float32](),
		Device: "cpu", Warmup: 1, Steps: 2})
	require.NoError(t, err)
	require.Greater(t, m.StepSeconds, 0.0)
}
