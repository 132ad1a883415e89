package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"seqbench/arch"
	"seqbench/dist"
	"seqbench/internal/atomicfile"
	"seqbench/internal/buildinfo"
	"seqbench/nn"
	"seqbench/tasks"
	"seqbench/trainstep"
)

// Run statuses written to summary.json.
const (
	StatusOK       = "ok"
	StatusFailed   = "failed"
	StatusDiverged = "diverged"
	// StatusInterrupted is a run stopped by a signal (its context): not a
	// failure, and a rerun continues it from its checkpoint.
	StatusInterrupted = "interrupted"
)

// Summary is what summary.json holds for one run.
type Summary struct {
	Experiment string            `json:"experiment"`
	Run        string            `json:"run"`
	ID         string            `json:"id"`
	Arch       string            `json:"arch"`
	Task       string            `json:"task"`
	Overrides  map[string]string `json:"overrides,omitempty"`
	Params     int               `json:"params"`
	// NonEmbeddingParams is the N of scaling laws (arch.NonEmbeddingParams).
	NonEmbeddingParams int     `json:"non_embedding_params,omitempty"`
	FLOPsPerToken      float64 `json:"flops_per_token"`
	SeqLen             int     `json:"seq_len"`
	Steps              int     `json:"steps"` // steps actually taken
	Tokens             int64   `json:"tokens"`
	// Final* are from the last evaluation, Best* the best over all of them.
	FinalLoss     Num     `json:"final_loss"`
	FinalAccuracy float64 `json:"final_accuracy"`
	BestLoss      Num     `json:"best_loss"`
	BestAccuracy  float64 `json:"best_accuracy"`
	TrainLoss     Num     `json:"train_loss"` // last logged training loss
	WallSeconds   float64 `json:"wall_seconds"`
	// TrainSeconds is the time spent in training steps (the batch, or the
	// wait for a prefetched one, forward, backward, optimizer),
	// EvalSeconds in evaluations; checkpoints and start-up count in
	// neither. TokensPerSec is Tokens / TrainSeconds: the training
	// throughput, whatever the evaluation schedule.
	TrainSeconds float64 `json:"train_seconds"`
	EvalSeconds  float64 `json:"eval_seconds"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	PeakMemBytes uint64  `json:"peak_mem_bytes"`
	Device       string  `json:"device"`
	Backend      string  `json:"backend"`
	// Precision is train.precision: fp32, tf32 or bf16.
	Precision   string    `json:"precision"`
	GitRevision string    `json:"git_revision"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	// Segments are the per-segment evaluations of a tasks.Segmented task,
	// in the task's order.
	Segments []SegmentSummary `json:"segments,omitempty"`
	// Selected is the evaluation the run is scored at (train.select), every
	// result from that one step; nil before the first evaluation.
	Selected *Selection `json:"selected,omitempty"`
}

// SetTokensPerSec derives TokensPerSec from Tokens and TrainSeconds (left
// as is before any training time was counted).
func (s *Summary) SetTokensPerSec() {
	if s.TrainSeconds > 0 {
		s.TokensPerSec = float64(s.Tokens) / s.TrainSeconds
	}
}

// Metrics is one line of metrics.jsonl.
type Metrics struct {
	Step     int     `json:"step"`
	Tokens   int64   `json:"tokens"`
	Loss     Num     `json:"loss"`
	Accuracy float64 `json:"accuracy"`
	LR       float64 `json:"lr"`
	GradNorm float64 `json:"grad_norm"`
	// TokensPerSec is the training throughput since the previous line
	// (evaluations excluded); TrainSeconds the training time so far.
	TokensPerSec float64  `json:"tokens_per_sec"`
	TrainSeconds float64  `json:"train_seconds"`
	EvalLoss     *Num     `json:"eval_loss,omitempty"`
	EvalAccuracy *float64 `json:"eval_accuracy,omitempty"`
	// EvalMacroAccuracy is the eval set's accuracy macro-averaged over
	// target classes (torchmetrics' average="macro", MAD's metric);
	// EvalExampleAccuracy its accuracy averaged per sequence (Zoology's).
	EvalMacroAccuracy   *float64 `json:"eval_macro_accuracy,omitempty"`
	EvalExampleAccuracy *float64 `json:"eval_example_accuracy,omitempty"`
	// Segments holds each segment's evaluation (tasks.Segmented), by name.
	Segments    map[string]SegmentMetrics `json:"segments,omitempty"`
	WallSeconds float64                   `json:"wall_seconds"`
}

// Options say where and how a run executes.
type Options struct {
	Backend nn.Backend
	Device  string    // the device asked for ("cpu", "cuda"), recorded as is
	Log     io.Writer // progress; nil for silence
	// Interactive draws a progress bar (a terminal); otherwise a plain line
	// is written every LogEvery steps.
	Interactive bool
	// Resume continues from dir's checkpoint.safetensors when there is one
	// (a run interrupted earlier), instead of starting over.
	Resume bool
	// Comm, when it has more than one rank, makes the run one rank of a
	// data-parallel run (see ddp.go and RunRanks): rank 0 writes the run's
	// files; the others write nothing to dir.
	Comm dist.Comm
}

// divergence ends a run whose numbers stopped being finite.
type divergence struct{ reason string }

// Run trains spec into dir (created if needed) and returns its summary, which
// is also written to dir/summary.json. It never panics: a failure inside the
// run ends it as failed with the reason, so the caller can go on with others.
// Cancelling ctx (SIGINT) ends the run as StatusInterrupted after saving a
// checkpoint from which Options.Resume continues it: the resumed run
// produces the metrics an uninterrupted one would have.
//
// A run of train.gpus > 1 given no Options.Comm runs its ranks in this
// process when the backend is the CPU's (RunRanks); other backends need
// their ranks launched as processes, each with its Comm.
func Run(ctx context.Context, spec Spec, dir string, opt Options) (sum Summary) {
	if spec.Train.GPUs > 1 && opt.Comm == nil {
		if opts, ok := cpuRanks(opt, spec.Train.GPUs); ok {
			return RunRanks(ctx, spec, dir, opts)
		}
	}
	start := time.Now()
	sum = Summary{
		Experiment: spec.Experiment, Run: spec.Name, ID: spec.ID, Arch: spec.Arch, Task: spec.TaskName,
		Overrides: spec.Overrides, Device: opt.Device, Backend: opt.Backend.Name(),
		Precision:   spec.Train.PrecisionName(),
		GitRevision: buildinfo.Revision(), StartedAt: start.UTC(), Status: StatusFailed,
		BestLoss: Num(math.NaN()), FinalLoss: Num(math.NaN()), TrainLoss: Num(math.NaN()),
	}
	lead := opt.Comm == nil || opt.Comm.Rank() == 0
	var r *runner
	finish := func() {
		begin := start
		if r != nil {
			begin = r.start // a resumed run counts the time before its checkpoint too
		}
		sum.WallSeconds = time.Since(begin).Seconds()
		sum.SetTokensPerSec()
		if !lead {
			return
		}
		if err := writeJSON(filepath.Join(dir, "summary.json"), sum); err != nil && sum.Reason == "" {
			sum.Status, sum.Reason = StatusFailed, err.Error()
		}
	}
	defer func() {
		if r := recover(); r != nil {
			sum.Status, sum.Reason = StatusFailed, panicReason(r)
		}
		finish()
	}()
	// Every rank of several reaches start, failed or not, and they agree
	// there: a rank left waiting for one that failed would wait forever.
	r = &runner{spec: spec, opt: opt, sum: &sum, start: start, dir: dir, firstStep: 1, lead: lead}
	defer r.free()
	var err error
	if opt.Comm != nil && opt.Comm.Size() > 1 {
		err = agreeToStart(opt.Comm, opt.Backend, recovered(r.prepare))
	} else {
		err = r.prepare()
	}
	if err == nil && r.dist != nil {
		if r.firstStep, err = r.dist.syncStart(r.be, r.optim, r.firstStep); err != nil {
			err = fmt.Errorf("starting the ranks: %w", err)
		}
		r.optim.ResetCopies() // rank 0's weights may have replaced these
	}
	if r.metricsFile != nil {
		defer r.metricsFile.Close()
	}
	if err != nil {
		sum.Reason = err.Error()
		return sum
	}
	status, reason := r.loop(ctx)
	sum.Status, sum.Reason = status, reason
	return sum
}

// prepare writes config.yaml (rank 0), sets the run up, and opens
// metrics.jsonl (rank 0), resuming from the checkpoint when asked to.
func (r *runner) prepare() error {
	if r.lead {
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return err
		}
		resolved, err := r.spec.ResolvedYAML()
		if err == nil {
			err = atomicfile.WriteFile(filepath.Join(r.dir, "config.yaml"), resolved)
		}
		if err != nil {
			return err
		}
	}
	if err := r.setup(); err != nil {
		return err
	}
	if !r.lead {
		return nil
	}
	metricsPath := filepath.Join(r.dir, "metrics.jsonl")
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if _, err := os.Stat(filepath.Join(r.dir, CheckpointFile)); r.opt.Resume && err == nil {
		if err := r.resume(metricsPath); err != nil {
			return fmt.Errorf("resuming: %w", err)
		}
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(metricsPath, flags, 0o644)
	if err != nil {
		return err
	}
	r.metricsFile, r.metrics = f, json.NewEncoder(f)
	return nil
}

// panicReason describes a panic that ended a run: an out-of-memory error
// as itself, anything else with its stack (a bug to report).
func panicReason(r any) string {
	var oom interface{ OutOfMemory() bool }
	if err, ok := r.(error); ok && errors.As(err, &oom) && oom.OutOfMemory() {
		return err.Error()
	}
	return fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
}

// resume restores the checkpoint and the progress saved with it, and cuts
// metrics.jsonl back to the checkpoint's step.
func (r *runner) resume(metricsPath string) error {
	st, err := loadCheckpoint(r.dir, r.be, r.optim)
	if err != nil {
		return err
	}
	r.optim.ResetCopies() // the weights changed outside a step
	if err := truncateMetrics(metricsPath, st.Step); err != nil {
		return err
	}
	saved := st.Summary
	saved.Device, saved.Backend, saved.GitRevision = r.sum.Device, r.sum.Backend, r.sum.GitRevision
	saved.Status, saved.Reason = StatusFailed, ""
	*r.sum = saved
	r.firstStep = st.Step + 1
	r.start = time.Now().Add(-time.Duration(st.ElapsedSec * float64(time.Second)))
	return nil
}

// checkpoint saves the state after step (steps done so far).
func (r *runner) checkpoint(step int) error {
	return saveCheckpoint(r.dir, r.be, r.optim, progressState{
		Step: step, AdamSteps: r.optim.Steps, Summary: *r.sum, ElapsedSec: time.Since(r.start).Seconds()})
}

// free returns the model's and the optimizer's device memory, so that the
// next run of a sweep starts from an empty allocator.
func (r *runner) free() {
	if r.steps != nil {
		r.steps.Free()
	}
	if r.dist != nil {
		r.dist.free(r.be)
	}
	if r.optim != nil {
		r.optim.Free()
	}
	if r.params != nil {
		nn.FreeParams(r.be, r.params)
	}
}

type runner struct {
	spec      Spec
	opt       Options
	sum       *Summary
	start     time.Time
	dir       string
	firstStep int // 1, or the step after a resumed checkpoint
	be        nn.Backend
	task      tasks.Task
	model     arch.Model
	params    []nn.Param
	optim     *nn.AdamW
	sched     nn.Schedule
	evalSet   []tasks.Batch
	// casts are the weights' activation-type copies the tapes of one
	// evaluation share (nil outside an evaluation; see evalTape).
	casts *nn.Casts
	// segments are evaluated on their own at every eval (see eval.go).
	segments []tasks.Segment
	metrics  *json.Encoder
	peakMem  uint64
	// metricsFile is metrics.jsonl, open for the run (rank 0).
	metricsFile *os.File
	// lead: this process writes the run's files (rank 0, or the only
	// rank); dist is its part of data-parallel training (nil on one rank).
	lead bool
	dist *ddp
	// steps runs the training steps of one rank (the distributed step
	// has its own, distStep).
	steps *trainstep.Runner
}

func (r *runner) setup() error {
	t, c := r.spec.Task, r.spec.Train
	if ranks := r.ranks(); ranks != max(c.GPUs, 1) {
		how := "the CPU runs the ranks in-process; other backends need one process per GPU, each given its rank's communicator"
		if r.opt.Comm != nil {
			how = "a run's ranks are as many as its GPUs"
		}
		return fmt.Errorf("field train.gpus: %d, but the run has %d ranks on %s (%s)", c.GPUs, ranks, r.opt.Backend.Name(), how)
	}
	task, err := t.Build()
	if err != nil {
		return fmt.Errorf("building task: %w", err)
	}
	r.task = task
	if r.be, err = precisionBackend(r.opt.Backend, c.PrecisionName()); err != nil {
		return err
	}
	r.sum.Backend = r.be.Name()
	// A size that cannot fit ends the run here, before anything is
	// allocated.
	perRank := r.spec // each rank holds the activations of its share of the batch
	if n := r.ranks(); c.BatchSize%n == 0 {
		perRank.Train.BatchSize /= n
	}
	if err := checkMemory(estimateMemory(perRank, task, r.be.DType(), actDType(r.be)), r.be); err != nil {
		r.sum.Params = r.spec.Model.NumParams(task.Vocab(), task.SeqLen())
		return err
	}
	if m, ok := r.be.(interface{ ResetPeak() }); ok {
		m.ResetPeak() // the backend may have served earlier runs
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x5eedba5e))
	model, err := r.spec.Model.Build(arch.Env{Backend: r.be, Vocab: task.Vocab(), MaxLen: task.SeqLen(), RNG: rng})
	if err != nil {
		return fmt.Errorf("building model: %w", err)
	}
	r.model, r.params = model, model.Params()
	r.sum.Params = nn.CountParams(r.params)
	r.sum.NonEmbeddingParams = arch.NonEmbeddingParams(r.spec.Model)
	r.sum.SeqLen = task.SeqLen()
	r.sum.FLOPsPerToken = model.FLOPsPerToken(task.SeqLen())
	r.optim = nn.NewAdamW(r.be, r.params, c.WeightDecay)
	r.optim.Beta1, r.optim.Beta2, r.optim.Eps = c.Beta1, c.Beta2, c.Eps
	r.optim.DecayAll, r.optim.BaseLR = c.WeightDecayOn == "all", c.LR
	if comm := r.opt.Comm; comm != nil && comm.Size() > 1 {
		if r.dist, err = newDDP(comm, r.be, r.optim, c.BatchSize); err != nil {
			return err
		}
	}
	if r.dist == nil {
		r.steps = trainstep.New(r.be, r.model, r.params, r.optim, trainstep.Options{
			GradClip: c.GradClip, Ignore: tasks.Ignore, Graph: c.Graph != GraphOff, Log: r.opt.Log})
	}
	if c.Epochs > 0 {
		if c.Steps, err = epochSteps(c, task, r.spec.TaskName); err != nil {
			return err
		}
		r.spec.Train.Steps = c.Steps
	}
	r.sched = nn.Schedule{Kind: c.Schedule, Base: c.LR, Warmup: c.Warmup, Total: c.Steps, MinRatio: c.MinLRRatio}
	if !r.lead {
		return nil // rank 0 alone evaluates
	}
	for i, size := range c.evalBatchSizes() {
		r.evalSet = append(r.evalSet, evalBatch(task, c, i, size))
	}
	if seg, ok := task.(tasks.Segmented); ok {
		r.segments = seg.EvalSegments()
		r.sum.Segments = newSegmentSummaries(r.segments, c.evalSequences())
	}
	return nil
}

// loop runs the training steps and returns the final status and reason.
func (r *runner) loop(ctx context.Context) (status, reason string) {
	c := r.spec.Train
	bar := newProgress(r.opt.Log, r.opt.Interactive, c.Steps)
	defer bar.done()
	var tickTokens int64
	var tickSeconds float64
	workers := prefetchWorkers()
	if c.Prefetch == PrefetchOff {
		workers = 0
	}
	trainBatches := newBatches(func(i int64) tasks.Batch { return r.task.Batch(tasks.Train, c.Seed, i, c.BatchSize) },
		int64(r.firstStep-1), int64(c.Steps), workers)
	defer trainBatches.close()
	for step := r.firstStep; step <= c.Steps; step++ {
		// One rank stops at once; several agree on the step first (an
		// interruption reaches them at different times), in distStep.
		interrupted := ctx.Err() != nil
		if interrupted && r.dist == nil {
			return r.interrupt(step - 1)
		}
		t0 := time.Now()
		batch := trainBatches.take() // batch step−1
		lr := r.sched.At(step - 1)
		evalNow := step%c.EvalEvery == 0 || step == c.Steps
		logNow := step%c.LogEvery == 0 || evalNow || step == 1
		var loss, acc, gnorm float64
		var div *divergence
		if r.dist == nil {
			loss, acc, gnorm, div = r.trainStep(batch, lr, step, logNow)
		} else {
			var stop bool
			var err error
			loss, acc, gnorm, div, stop, err = r.distStep(r.dist.slice(batch), scored(batch.Targets), lr, step, logNow, interrupted)
			if err != nil {
				return StatusFailed, fmt.Sprintf("step %d: %v", step, err)
			}
			if stop {
				return r.interrupt(step - 1)
			}
		}
		dt := time.Since(t0).Seconds()
		r.sum.TrainSeconds += dt
		tickSeconds += dt
		r.sum.Steps = step
		r.sum.Tokens += int64(batch.B * batch.L)
		tickTokens += int64(batch.B * batch.L)
		if div != nil {
			return StatusDiverged, div.reason
		}
		r.sum.TrainLoss = Num(loss)
		status, reason, code := "", "", verdictGoOn
		if logNow && r.lead {
			m := Metrics{Step: step, Tokens: r.sum.Tokens, Loss: Num(loss), Accuracy: acc, LR: lr, GradNorm: gnorm,
				TokensPerSec: float64(tickTokens) / tickSeconds, TrainSeconds: r.sum.TrainSeconds,
				WallSeconds: time.Since(r.start).Seconds()}
			tickTokens, tickSeconds = 0, 0
			status, reason, code = r.logStep(ctx, &m, step, evalNow, bar)
		}
		checkpointNow := c.CheckpointEvery > 0 && step%c.CheckpointEvery == 0 && step < c.Steps
		if code == verdictGoOn && checkpointNow && r.lead {
			if err := r.checkpoint(step); err != nil {
				status, reason, code = StatusFailed, "saving the checkpoint: "+err.Error(), verdictEnd
			}
		}
		if r.dist != nil && (logNow || checkpointNow) {
			v, err := r.dist.verdict(r.be, code)
			if err != nil {
				return StatusFailed, fmt.Sprintf("step %d: %v", step, err)
			}
			if !r.lead && v == verdictEnd {
				status, reason = StatusFailed, rankZeroEnded
			}
			code = v
		}
		if code == verdictEnd {
			return status, reason
		}
		if code == verdictStop {
			break
		}
	}
	r.sum.PeakMemBytes = r.peakMem
	if !r.lead {
		return StatusOK, ""
	}
	// The final checkpoint holds the trained weights when checkpoints were
	// asked for; otherwise one left by an interruption is stale.
	if c.CheckpointEvery > 0 {
		if err := r.checkpoint(r.sum.Steps); err != nil {
			return StatusFailed, "saving the checkpoint: " + err.Error()
		}
	} else if err := os.Remove(filepath.Join(r.dir, CheckpointFile)); err != nil && !os.IsNotExist(err) {
		return StatusFailed, err.Error()
	}
	return StatusOK, ""
}

// interrupt ends the run after step (steps done so far), saving the
// checkpoint a rerun continues from.
func (r *runner) interrupt(step int) (status, reason string) {
	if !r.lead {
		return StatusInterrupted, fmt.Sprintf("interrupted after step %d", step)
	}
	if err := r.checkpoint(step); err != nil {
		return StatusFailed, fmt.Sprintf("interrupted after step %d; saving the checkpoint failed: %v", step, err)
	}
	return StatusInterrupted, fmt.Sprintf("interrupted after step %d (checkpoint saved: `seqbench run --resume %s` continues it)", step, r.dir)
}

// logStep evaluates (when evalNow), records and shows the metrics m of a
// logged step. It returns verdictStop when the target accuracy is reached,
// and verdictEnd with the run's status and reason when it ends the run.
func (r *runner) logStep(ctx context.Context, m *Metrics, step int, evalNow bool, bar *progress) (status, reason string, code int) {
	c := r.spec.Train
	if evalNow {
		t := time.Now()
		err := r.evalAt(ctx, m)
		r.sum.EvalSeconds += time.Since(t).Seconds()
		if err != nil && ctx.Err() != nil {
			// The step's metrics are incomplete: no checkpoint of it.
			return StatusInterrupted, err.Error() + " (a rerun continues from the last checkpoint, or starts over)", verdictEnd
		}
		if err != nil {
			return StatusFailed, err.Error(), verdictEnd
		}
	}
	r.trackMemory()
	if err := r.metrics.Encode(*m); err != nil {
		return StatusFailed, "writing metrics.jsonl: " + err.Error(), verdictEnd
	}
	bar.update(step, *m)
	if evalNow && c.TargetAccuracy > 0 && r.sum.FinalAccuracy >= c.TargetAccuracy {
		return "", "", verdictStop
	}
	return "", "", verdictGoOn
}

// trainStep runs forward, backward, clipping and the optimizer update
// (trainstep.Runner: nothing read back before the step's end, and a
// replayed graph where the backend captures them). The training accuracy
// is computed only when the step is logged (withAcc); acc is 0 otherwise.
// A step whose loss or gradient norm is not finite updates nothing and
// ends the run, naming the loss, or the first gradient that is not finite.
func (r *runner) trainStep(b tasks.Batch, lr float64, step int, withAcc bool) (loss, acc, gnorm float64, div *divergence) {
	res := r.steps.Step(trainstep.Batch{Inputs: b.Inputs, Targets: b.Targets, B: b.B, L: b.L}, lr, withAcc)
	loss, gnorm = res.Loss, res.GradNorm
	if !trainstep.Finite(loss) {
		return loss, 0, gnorm, &divergence{fmt.Sprintf("loss is %v at step %d", loss, step)}
	}
	if div = r.gradDivergence(gnorm, step); div != nil {
		return loss, 0, gnorm, div
	}
	if withAcc {
		acc = hitRate(res.Pred, b.Targets)
	}
	return loss, acc, gnorm, nil
}

// gradDivergence is the divergence of a step whose gradient norm is not
// finite, naming the first gradient that is not; nil for a finite norm.
func (r *runner) gradDivergence(gnorm float64, step int) *divergence {
	if trainstep.Finite(gnorm) {
		return nil
	}
	for _, p := range r.params {
		if s := r.be.SumSquares(p.T.Grad()); !trainstep.Finite(s) {
			return &divergence{fmt.Sprintf("gradient of %s is not finite at step %d", p.Name, step)}
		}
	}
	return &divergence{fmt.Sprintf("gradient norm is %v at step %d", gnorm, step)}
}

// update is the distributed step's clip and update (its gradients are
// averaged over the ranks between the backward and here): it measures the
// gradient norm and, where it is finite, applies the optimizer with the
// clip in the update's own pass; a non-finite norm is a divergence naming
// the first gradient that is not finite, and nothing is updated.
func (r *runner) update(lr float64, step int) (gnorm float64, div *divergence) {
	gnorm = nn.GradNorm(r.be, r.params)
	if div = r.gradDivergence(gnorm, step); div != nil {
		return gnorm, div
	}
	r.optim.StepScaled(lr, nn.ClipFactor(gnorm, r.spec.Train.GradClip))
	return gnorm, nil
}

// trackMemory records the peak memory: the device allocator's peak when the
// backend has a meter (GPU), else the Go heap in use.
func (r *runner) trackMemory() {
	if m, ok := r.be.(interface{ PeakBytes() int64 }); ok {
		r.peakMem = max(r.peakMem, uint64(m.PeakBytes()))
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.peakMem = max(r.peakMem, ms.HeapInuse)
}

// CheckPrecisions says, before anything trains, whether be can run every
// spec's precision: a bf16 run needs a backend with a bfloat16 mode (the
// CPU and CUDA backends have one). It changes nothing on be.
func CheckPrecisions(be nn.Backend, specs []Spec) error {
	for _, s := range specs {
		if s.Train.PrecisionName() != PrecisionBF16 {
			continue
		}
		if _, err := precisionBackend(be, PrecisionBF16); err != nil {
			return fmt.Errorf("run %s: %w", s.Name, err)
		}
	}
	return nil
}

// precisionBackend is the backend a run of precision p computes on, given
// the device's backend be (docs/PRECISION.md). fp32 and tf32 keep be and
// set its TF32 mode where it has one (CUDA); a backend without one (the
// CPU) runs tf32 as fp32. bf16 asks be for its bfloat16 mixed-precision
// backend and fails, naming why, where there is none: never silently fp32.
func precisionBackend(be nn.Backend, p string) (nn.Backend, error) {
	switch p {
	case PrecisionFP32, PrecisionTF32:
		if t, ok := be.(interface{ SetTF32(on bool) error }); ok {
			if err := t.SetTF32(p == PrecisionTF32); err != nil {
				return nil, fmt.Errorf("field train.precision: %s: %w", p, err)
			}
		}
		return be, nil
	case PrecisionBF16:
		if m, ok := be.(nn.MixedBackend); ok && m.ActDType() == nn.BFloat16 {
			return be, nil
		}
		bf, ok := be.(interface {
			BF16() (nn.MixedBackend, error)
		})
		if !ok {
			return nil, fmt.Errorf("field train.precision: bf16 is not supported by the %s backend", be.Name())
		}
		m, err := bf.BF16()
		if err != nil {
			return nil, fmt.Errorf("field train.precision: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("field train.precision: %q is not allowed (one of \"fp32\", \"tf32\", \"bf16\")", p)
}
