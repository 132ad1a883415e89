package train_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/dist"
	"seqbench/nn"
	"seqbench/sweep"
	"seqbench/tasks"
	"seqbench/train"
)

// rankOptions are the options of n ranks, each its own float32 CPU backend.
func rankOptions(n int) []train.Options { return rankOptionsOn(n, cpu32) }

func cpu32() nn.Backend { return cpukernels.New[float32]() }
func cpu64() nn.Backend { return cpukernels.New[float64]() }

// rankOptionsOn are the options of n ranks, each its own backend from be.
func rankOptionsOn(n int, be func() nn.Backend) []train.Options {
	opts := make([]train.Options, n)
	for i := range opts {
		opts[i] = train.Options{Backend: be(), Device: "cpu"}
	}
	return opts
}

// relDiff is |a−b| / max(|a|, |b|), 0 for two zeros.
func relDiff(a, b float64) float64 {
	d := math.Abs(a - b)
	if d == 0 {
		return 0
	}
	return d / max(math.Abs(a), math.Abs(b))
}

// ddpSpec is a 20-step run of a small transformer on selective copying,
// logged at every step. Its batches score as many targets in each
// sequence; fuzzy recall's do not (see TestDataParallelWeighsUnevenShares).
const ddpSpec = `name: ddp
task: {name: selective_copy, seq_len: 16, num_tokens: 3, vocab: 6}
train: {steps: 20, batch_size: 8, lr: 2.0e-3, warmup: 5, eval_every: 10, log_every: 1, eval_batches: 2}
models: [{arch: transformer, d_model: 16, n_layers: 2, n_heads: 2}]
`

// compareRanks trains spec on 1 rank and on each of ranks and checks that
// every step's training loss and gradient norm, and every evaluation, agree
// within tol (relative): the same global batch gives the same training up
// to the order of float32 sums. It returns the largest difference seen.
func compareRanks(t *testing.T, spec train.Spec, be func() nn.Backend, tol float64, ranks ...int) float64 {
	t.Helper()
	oneDir := t.TempDir()
	one := train.Run(context.Background(), spec, oneDir, rankOptionsOn(1, be)[0])
	require.Equal(t, train.StatusOK, one.Status, one.Reason)
	want := metricsOf(t, oneDir)
	require.Len(t, want, spec.Train.Steps)
	worst := 0.0
	for _, n := range ranks {
		spec.Train.GPUs = n
		dir := t.TempDir()
		s := train.RunRanks(context.Background(), spec, dir, rankOptionsOn(n, be))
		require.Equal(t, train.StatusOK, s.Status, s.Reason)
		require.Equal(t, one.Tokens, s.Tokens, "tokens count the global batch")
		got := metricsOf(t, dir)
		require.Len(t, got, len(want), "%d ranks: one metrics line per step (rank 0 alone writes)", n)
		for i := range want {
			w, g := want[i], got[i]
			require.Equal(t, w.Step, g.Step)
			require.Equal(t, w.Tokens, g.Tokens)
			pairs := [][2]float64{{float64(w.Loss), float64(g.Loss)}, {w.GradNorm, g.GradNorm}, {w.Accuracy, g.Accuracy}}
			if w.EvalLoss != nil {
				require.NotNil(t, g.EvalLoss)
				pairs = append(pairs, [2]float64{float64(*w.EvalLoss), float64(*g.EvalLoss)})
			}
			for k, p := range pairs {
				d := relDiff(p[0], p[1])
				worst = max(worst, d)
				require.LessOrEqual(t, d, tol, "%d ranks, step %d, value %d: %v on 1 rank, %v", n, w.Step, k, p[0], p[1])
			}
		}
	}
	return worst
}

// Two and four ranks sharing a global batch of 8 train as one rank with
// the batch of 8 does, up to summation order: within 1e-5 in float32 (the
// differences seen are below 1e-6) and 1e-12 in float64, where a wrong
// weight or a missed gradient could not hide.
func TestDataParallelMatchesOneRank(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	worst := compareRanks(t, spec, cpu32, 1e-5, 2, 4)
	t.Logf("float32: largest relative difference over 20 steps, 2 and 4 ranks: %.3g", worst)
	worst = compareRanks(t, spec, cpu64, 1e-12, 2, 4)
	t.Logf("float64: largest relative difference over 20 steps, 2 and 4 ranks: %.3g", worst)
}

// Gradients packed into many small buckets, some of a single parameter
// (reduced in place), average as one bucket of all does.
func TestDataParallelSmallBuckets(t *testing.T) {
	defer train.SetBucketBytes(4 << 10)()
	spec := parse(t, ddpSpec)[0]
	spec.Train.Steps = 5
	worst := compareRanks(t, spec, cpu64, 1e-12, 2)
	t.Logf("float64, 4 KiB buckets: largest relative difference over 5 steps, 2 ranks: %.3g", worst)
}

// In bf16 the differences of summation order are amplified by the
// roundings of activations to 8 significant bits (about 2e-4 seen).
func TestDataParallelMatchesOneRankBF16(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	spec.Train.Precision = train.PrecisionBF16
	worst := compareRanks(t, spec, cpu32, 1e-3, 2, 4)
	t.Logf("bf16: largest relative difference over 20 steps, 2 and 4 ranks: %.3g", worst)
}

// A rank whose slice scores more targets weighs more: the mean loss is
// over the global batch's scored targets, as on one rank. (No task of
// seqbench scores different numbers of targets in the sequences of one
// batch, so unevenTask makes one.)
func TestDataParallelWeighsUnevenShares(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	spec.Train.Steps = 10
	spec.Task = unevenConfig{Inner: spec.Task}
	task, err := spec.Task.Build()
	require.NoError(t, err)
	b := task.Batch(tasks.Train, spec.Train.Seed, 0, spec.Train.BatchSize)
	count := func(lo, hi int) int {
		n := 0
		for _, tg := range b.Targets[lo*b.L : hi*b.L] {
			if tg != tasks.Ignore {
				n++
			}
		}
		return n
	}
	require.NotEqual(t, count(0, 4), count(4, 8), "the test needs ranks that score different numbers of targets")
	worst := compareRanks(t, spec, cpu64, 1e-12, 2, 4)
	t.Logf("float64: largest relative difference over 10 steps, 2 and 4 ranks: %.3g", worst)
}

// unevenConfig is a task whose sequence i keeps only its first i%3 + 1
// scored targets of those of Inner's task.
type unevenConfig struct {
	Inner tasks.Config `yaml:"inner"`
}

func (c unevenConfig) Validate() error { return c.Inner.Validate() }
func (c unevenConfig) Build() (tasks.Task, error) {
	t, err := c.Inner.Build()
	return unevenTask{t}, err
}

type unevenTask struct{ tasks.Task }

func (u unevenTask) Batch(split tasks.Split, seed uint64, index int64, size int) tasks.Batch {
	b := u.Task.Batch(split, seed, index, size)
	b.Targets = append([]int32(nil), b.Targets...)
	for i := range b.B {
		kept := 0
		for p := i * b.L; p < (i+1)*b.L; p++ {
			if b.Targets[p] == tasks.Ignore {
				continue
			}
			if kept > i%3 {
				b.Targets[p] = tasks.Ignore
			}
			kept++
		}
	}
	return b
}

// An interrupted run of two ranks stops both at the same step, and
// resuming it (rank 0 reads the checkpoint and broadcasts it) gives
// exactly the metrics of an uninterrupted two-rank run.
func TestDataParallelInterruptAndResume(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	spec.Train.GPUs = 2
	wholeDir, dir := t.TempDir(), t.TempDir()
	want := train.RunRanks(context.Background(), spec, wholeDir, rankOptions(2))
	require.Equal(t, train.StatusOK, want.Status, want.Reason)

	ctx, cancel := context.WithCancel(context.Background())
	opts := rankOptions(2)
	opts[0].Log = &cancelAt{marker: "step 12/", cancel: cancel}
	cut := train.RunRanks(ctx, spec, dir, opts)
	require.Equal(t, train.StatusInterrupted, cut.Status, cut.Reason)
	require.Contains(t, cut.Reason, "interrupted after step 12")

	opts = rankOptions(2)
	for i := range opts {
		opts[i].Resume = true
	}
	got := train.RunRanks(context.Background(), spec, dir, opts)
	require.Equal(t, train.StatusOK, got.Status, got.Reason)
	require.Equal(t, want.FinalLoss, got.FinalLoss)
	require.Equal(t, metricsOf(t, wholeDir), metricsOf(t, dir))
}

// A global batch the ranks cannot share evenly fails the run, naming the
// field, the value and the world size.
func TestDataParallelRefusesUnevenBatch(t *testing.T) {
	dir := t.TempDir()
	spec := parse(t, ddpSpec)[0]
	spec.Train.GPUs = 3 // past the config's validation, which refuses it too
	s := train.RunRanks(context.Background(), spec, dir, rankOptions(3))
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "train.batch_size: 8")
	require.Contains(t, s.Reason, "3 ranks")
	got, err := train.ReadSummary(dir)
	require.NoError(t, err)
	require.Equal(t, train.StatusFailed, got.Status)
}

// Rank 0's parameters win: a rank whose initial weights differ takes rank
// 0's at the start, so the run is the one of ranks built alike.
func TestDataParallelStartsFromRankZero(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	spec.Train.Steps, spec.Train.EvalEvery, spec.Train.GPUs = 4, 4, 2
	wantDir := t.TempDir()
	want := train.RunRanks(context.Background(), spec, wantDir, rankOptions(2))
	require.Equal(t, train.StatusOK, want.Status, want.Reason)

	opts := rankOptions(2)
	off := &perturbed{Backend: cpukernels.New[float32]()}
	opts[1].Backend = off
	gotDir := t.TempDir()
	got := train.RunRanks(context.Background(), spec, gotDir, opts)
	require.Equal(t, train.StatusOK, got.Status, got.Reason)
	require.Greater(t, off.changed, 0, "no initial weight was perturbed")
	require.Equal(t, metricsOf(t, wantDir), metricsOf(t, gotDir))
}

// perturbed is a backend whose writes of initial weights are off by 1%:
// every Write of more than 4 values before the first one of 4 values, the
// start's broadcast of the resume header (the model here has no tensor of
// 4 elements or fewer).
type perturbed struct {
	nn.Backend
	started bool
	changed int
}

func (p *perturbed) Write(dst nn.Buffer, src []float64) {
	if len(src) == 4 {
		p.started = true
	}
	if !p.started && len(src) > 4 {
		v := make([]float64, len(src))
		for i, x := range src {
			v[i] = 1.01*x + 0.01
		}
		src = v
		p.changed++
	}
	p.Backend.Write(dst, src)
}

// train.gpus: 1 is the default (the same run and id as leaving it out);
// a bad value, or a batch the ranks cannot share, is refused naming the
// field, the value and what is allowed.
func TestGPUsField(t *testing.T) {
	const yaml = `name: gpus
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 4, batch_size: 8%s}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`
	plain := parse(t, fmt.Sprintf(yaml, ""))[0]
	require.Equal(t, 1, plain.Train.GPUs)
	require.Equal(t, plain.ID, parse(t, fmt.Sprintf(yaml, ", gpus: 1"))[0].ID)
	two := parse(t, fmt.Sprintf(yaml, ", gpus: 2"))[0]
	require.Equal(t, 2, two.Train.GPUs)
	require.NotEqual(t, plain.ID, two.ID)
	for extra, want := range map[string]string{
		", gpus: 0":  "field train.gpus: 0 is not allowed (must be in [1, 2^16]",
		", gpus: -2": "field train.gpus: -2 is not allowed",
		", gpus: 3":  "field train.batch_size: 8 is not allowed (must be a multiple of train.gpus = 3",
	} {
		_, err := sweep.Parse(fmt.Appendf(nil, yaml, extra))
		require.ErrorContains(t, err, want, extra)
	}
}

// Run given train.gpus: 2 and a CPU backend runs both ranks itself, as
// RunRanks does; a backend that cannot, or a communicator of another
// size, is an error naming train.gpus.
func TestRunStartsCPURanks(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	spec.Train.Steps, spec.Train.EvalEvery, spec.Train.GPUs = 4, 4, 2
	wantDir, gotDir := t.TempDir(), t.TempDir()
	want := train.RunRanks(context.Background(), spec, wantDir, rankOptions(2))
	require.Equal(t, train.StatusOK, want.Status, want.Reason)
	got := train.Run(context.Background(), spec, gotDir, rankOptions(1)[0])
	require.Equal(t, train.StatusOK, got.Status, got.Reason)
	require.Equal(t, metricsOf(t, wantDir), metricsOf(t, gotDir))

	other := train.Options{Backend: &perturbed{Backend: cpu32(), started: true}, Device: "cpu"}
	s := train.Run(context.Background(), spec, t.TempDir(), other)
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "field train.gpus: 2, but the run has 1 ranks")

	spec.Train.GPUs = 1
	s = train.RunRanks(context.Background(), spec, t.TempDir(), rankOptions(2))
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "field train.gpus: 1, but the run has 2 ranks")
}

// The memory check counts a rank's activations for its share of the
// batch: a batch too large for one device trains on four.
func TestDataParallelMemoryCheckPerRank(t *testing.T) {
	spec := parse(t, `name: mem
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 1, batch_size: 2048, eval_batches: 1}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)[0]
	const free = 1 << 20
	s := train.Run(context.Background(), spec, t.TempDir(), train.Options{Backend: fakeDevice{cpu32(), free}, Device: "cuda"})
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "of device memory")

	spec.Train.GPUs = 4
	opts := rankOptions(4)
	for i := range opts {
		opts[i].Backend = fakeDevice{opts[i].Backend, free}
	}
	s = train.RunRanks(context.Background(), spec, t.TempDir(), opts)
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
}

// Runs of several ranks pass the pre-flight check on the CPU and fail it,
// naming the run and the field, on a backend that cannot start them.
func TestCheckRanks(t *testing.T) {
	specs := parse(t, ddpSpec)
	require.NoError(t, train.CheckRanks(fakeDevice{cpu32(), 1 << 30}, specs), "one rank runs anywhere")
	specs[0].Train.GPUs = 2
	require.NoError(t, train.CheckRanks(cpu32(), specs))
	require.NoError(t, train.CheckRanks(cpu64(), specs))
	err := train.CheckRanks(fakeDevice{cpu32(), 1 << 30}, specs)
	require.ErrorContains(t, err, "run "+specs[0].Name+": field train.gpus: 2 is not supported on fake-device")
}

// A rank that cannot start (here: too little device memory) stops the
// others at the start instead of leaving them waiting, even on a
// communicator that nobody closes.
func TestDataParallelRankFailingAtStart(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	spec.Train.GPUs = 2
	dir := t.TempDir()
	comms := dist.NewLocal(2)
	sums := make(chan train.Summary, 2)
	for r, c := range comms {
		be := nn.Backend(fakeDevice{cpu32(), 1 << 30})
		if r == 1 {
			be = fakeDevice{cpu32(), 1 << 10}
		}
		go func() {
			sums <- train.Run(context.Background(), spec, dir, train.Options{Backend: be, Device: "cuda", Comm: c})
		}()
	}
	var got []train.Summary
	for range 2 {
		select {
		case s := <-sums:
			got = append(got, s)
		case <-time.After(20 * time.Second):
			t.Fatal("a rank is still waiting")
		}
	}
	reasons := got[0].Reason + " | " + got[1].Reason
	require.Equal(t, train.StatusFailed, got[0].Status)
	require.Equal(t, train.StatusFailed, got[1].Status)
	require.Contains(t, reasons, "another rank failed: 1 of the 2 ranks could not start")
	require.Contains(t, reasons, "more than the 1.0 KiB free on the device")
	s, err := train.ReadSummary(dir)
	require.NoError(t, err)
	require.Contains(t, s.Reason, "another rank failed")
}

// runUnclosed runs spec's ranks, one per backend, on a communicator that
// nobody closes (as NCCL's would not be): a rank left waiting for the
// others fails the test instead of being freed.
func runUnclosed(t *testing.T, spec train.Spec, dir string, bes ...nn.Backend) []train.Summary {
	t.Helper()
	comms := dist.NewLocal(len(bes))
	done := make(chan struct{})
	sums := make([]train.Summary, len(bes))
	for r, c := range comms {
		go func() {
			sums[r] = train.Run(context.Background(), spec, dir, train.Options{Backend: bes[r], Device: "cpu", Comm: c})
			done <- struct{}{}
		}()
	}
	for range bes {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("a rank is still waiting")
		}
	}
	return sums
}

// Reaching the target accuracy, which rank 0 alone sees (it alone
// evaluates), stops every rank at the same step.
func TestDataParallelTargetAccuracyStopsAllRanks(t *testing.T) {
	spec := parse(t, ddpSpec)[0]
	spec.Train.GPUs, spec.Train.TargetAccuracy, spec.Train.EvalEvery = 2, 1e-9, 5
	sums := runUnclosed(t, spec, t.TempDir(), cpu32(), cpu32())
	for r, s := range sums {
		require.Equal(t, train.StatusOK, s.Status, "rank %d: %s", r, s.Reason)
		require.Equal(t, 5, s.Steps, "rank %d", r)
	}
}
