package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"seqbench/arch"
	"seqbench/internal/units"
	"seqbench/nn"
	"seqbench/tasks"
)

// Evaluation. At every eval the run scores the task's own fixed eval set
// (the top-level eval_loss / eval_accuracy) and, when the task is
// tasks.Segmented, every segment on its own fixed set (per-segment results
// in metrics.jsonl and summary.json).
//
// Long sequences. A piece evaluated in one parallel Forward holds at most
// eval_parallel_tokens tokens (B·L), and its logits (B·L·V floats) fit in
// eval_memory_mb; a segment is evaluated in pieces of
// B = min(batch_size, that limit / L) sequences. A segment whose single sequence is
// over the limit runs in step mode when the model is an arch.Stepper: B
// sequences (B·eval_chunk within the limit) advance together eval_chunk
// tokens per Step, carrying the state, and only chunks holding scored
// positions are scored. A recurrent state does not grow with L, so Mamba
// evaluates 2^20 tokens in the memory of one chunk; the transformer's KV
// cache grows with every token, so after each chunk the state's size
// (State.Bytes) is extrapolated linearly to the end of the sequence, and a
// segment whose state would exceed eval_memory_mb stops and is reported as
// oom with the bytes it would need. A model without a step mode cannot run
// such a segment at all: oom too. Nothing of this is a crash: a segment
// that panics anyway is reported as failed and the run goes on.
//
// A segment's eval set is the segment task's eval batches 0 ..
// eval_batches−1 (batch_size sequences each), so a segment at the training
// length scores exactly the task's own eval set. Each batch is generated
// whole and held on the host, 8 bytes a token with its targets (8
// sequences of 2^20 tokens: 64 MiB); pieces hold at most batch_size
// sequences. The task's own eval set always runs in parallel mode (training
// ran its lengths), split into pieces within the same limits.

// Segment statuses in summary.json and metrics.jsonl.
const (
	SegmentOK      = "ok"
	SegmentOOM     = "oom"     // over eval_memory_mb, or too long without a step mode
	SegmentSkipped = "skipped" // not evaluable by this model (learned positions), or not evaluated
	SegmentFailed  = "failed"  // the evaluation panicked
)

// Evaluation modes.
const (
	ModeParallel = "parallel"
	ModeStep     = "step"
)

// SegmentMetrics is one segment's result in a metrics.jsonl line: loss and
// accuracy when it was evaluated, its status otherwise.
type SegmentMetrics struct {
	Loss     *Num     `json:"loss,omitempty"`
	Accuracy *float64 `json:"accuracy,omitempty"`
	Status   string   `json:"status,omitempty"` // omitted when ok
}

// SegmentSummary is one segment's record in summary.json.
type SegmentSummary struct {
	Name   string `json:"name"`
	SeqLen int    `json:"seq_len"`
	Status string `json:"status"` // ok | oom | skipped | failed
	Reason string `json:"reason,omitempty"`
	Mode   string `json:"mode,omitempty"`  // parallel | step
	Batch  int    `json:"batch,omitempty"` // sequences evaluated together
	// Sequences is the size of the segment's eval set (eval_batches ×
	// batch_size sequences).
	Sequences int `json:"sequences"`
	// NeedBytes is, for an oom in step mode, the state the batch would
	// need at the end of the sequence.
	NeedBytes     int64   `json:"need_bytes,omitempty"`
	FinalLoss     Num     `json:"final_loss"`
	FinalAccuracy float64 `json:"final_accuracy"`
	BestLoss      Num     `json:"best_loss"`
	BestAccuracy  float64 `json:"best_accuracy"`
	EvalSeconds   float64 `json:"eval_seconds"` // the last evaluation's wall time
}

// newSegmentSummaries lists the segments before the first evaluation.
func newSegmentSummaries(segs []tasks.Segment, sequences int) []SegmentSummary {
	out := make([]SegmentSummary, len(segs))
	for i, s := range segs {
		out[i] = SegmentSummary{Name: s.Name, SeqLen: s.Task.SeqLen(), Status: SegmentSkipped,
			Reason: "not evaluated: the run ended before its first evaluation", Sequences: sequences,
			FinalLoss: Num(math.NaN()), BestLoss: Num(math.NaN())}
	}
	return out
}

// evalAt runs the evaluation of the current step and records it in m and
// the summary. It returns an error only when ctx was cancelled during it.
func (r *runner) evalAt(ctx context.Context, m *Metrics) error {
	// The weights do not change during an evaluation: its tapes copy them
	// to the activation type once between them, not once per batch.
	r.casts = nn.NewCasts(r.be)
	defer func() {
		r.casts.Free()
		r.casts = nil
	}()
	acc := r.evaluate()
	el, ea := acc.mean()
	macro, perEx := acc.macro(), acc.perExample()
	m.EvalLoss, m.EvalAccuracy = (*Num)(&el), &ea
	m.EvalMacroAccuracy, m.EvalExampleAccuracy = &macro, &perEx
	r.sum.FinalLoss, r.sum.FinalAccuracy = Num(el), ea
	if math.IsNaN(float64(r.sum.BestLoss)) || el < float64(r.sum.BestLoss) {
		r.sum.BestLoss = Num(el)
	}
	r.sum.BestAccuracy = max(r.sum.BestAccuracy, ea)
	if len(r.segments) == 0 {
		r.selectAt(m)
		return nil
	}
	m.Segments = map[string]SegmentMetrics{}
	for i, seg := range r.segments {
		s := &r.sum.Segments[i]
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while evaluating segment %s at step %d", seg.Name, m.Step)
		}
		if s.Status == SegmentOOM && s.Mode == ModeStep {
			// The model and the length do not change: it would run out
			// again, after two chunks of work.
			m.Segments[seg.Name] = SegmentMetrics{Status: SegmentOOM}
			continue
		}
		start := time.Now()
		res := r.evalSegment(ctx, seg)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while evaluating segment %s at step %d", seg.Name, m.Step)
		}
		s.Status, s.Reason, s.Mode, s.Batch, s.NeedBytes = res.status, res.reason, res.mode, res.batch, res.need
		s.EvalSeconds = time.Since(start).Seconds()
		if res.status != SegmentOK {
			m.Segments[seg.Name] = SegmentMetrics{Status: res.status}
			continue
		}
		loss, acc := res.acc.mean()
		s.FinalLoss, s.FinalAccuracy = Num(loss), acc
		if math.IsNaN(float64(s.BestLoss)) || loss < float64(s.BestLoss) {
			s.BestLoss = Num(loss)
		}
		s.BestAccuracy = max(s.BestAccuracy, acc)
		m.Segments[seg.Name] = SegmentMetrics{Loss: (*Num)(&loss), Accuracy: &acc}
	}
	r.logSegments()
	r.selectAt(m)
	return nil
}

// Selection is the evaluation a run is scored at, with every result of that
// one step: the eval set's and each segment's (so a run's best is never
// stitched together from different steps).
type Selection struct {
	// By is the criterion: accuracy (the highest mean of the eval
	// accuracy and the evaluated segments' accuracies; the earliest of
	// equals) or loss (the lowest mean loss over the same sets, MAD's
	// checkpoint of lowest test loss).
	By              string                    `json:"by"`
	Step            int                       `json:"step"`
	Loss            Num                       `json:"loss"`
	Accuracy        float64                   `json:"accuracy"`
	MacroAccuracy   float64                   `json:"macro_accuracy"`
	ExampleAccuracy float64                   `json:"example_accuracy"`
	Segments        map[string]SegmentMetrics `json:"segments,omitempty"`
}

// selectAt makes the evaluation in m the run's selection when it beats the
// one held (train.select). A non-finite score never does.
func (r *runner) selectAt(m *Metrics) {
	by := r.spec.Train.Select
	if by == "" {
		by = SelectAccuracy
	}
	score := func(loss Num, acc float64, segs map[string]SegmentMetrics) float64 {
		sum, n := float64(loss), 1
		if by == SelectAccuracy {
			sum = acc
		}
		for _, sg := range segs {
			if sg.Loss == nil || sg.Accuracy == nil {
				continue
			}
			n++
			if by == SelectAccuracy {
				sum += *sg.Accuracy
			} else {
				sum += float64(*sg.Loss)
			}
		}
		return sum / float64(n)
	}
	now := score(*m.EvalLoss, *m.EvalAccuracy, m.Segments)
	if math.IsNaN(now) || math.IsInf(now, 0) {
		return
	}
	if held := r.sum.Selected; held != nil {
		was := score(held.Loss, held.Accuracy, held.Segments)
		if (by == SelectAccuracy && now <= was) || (by == SelectLoss && now >= was) {
			return
		}
	}
	sel := &Selection{By: by, Step: m.Step, Loss: *m.EvalLoss, Accuracy: *m.EvalAccuracy,
		MacroAccuracy: *m.EvalMacroAccuracy, ExampleAccuracy: *m.EvalExampleAccuracy}
	if len(m.Segments) > 0 {
		sel.Segments = make(map[string]SegmentMetrics, len(m.Segments))
		for k, v := range m.Segments {
			sel.Segments[k] = v
		}
	}
	r.sum.Selected = sel
}

// logSegments writes one line with every segment's accuracy (or status).
func (r *runner) logSegments() {
	if r.opt.Log == nil {
		return
	}
	parts := make([]string, len(r.sum.Segments))
	for i, s := range r.sum.Segments {
		if s.Status == SegmentOK {
			parts[i] = fmt.Sprintf("%s %.3f", s.Name, s.FinalAccuracy)
		} else {
			parts[i] = s.Name + " " + s.Status
		}
	}
	prefix := "  "
	if r.opt.Interactive {
		prefix = "\r\033[K  " // over the progress bar, which redraws below
	}
	fmt.Fprintf(r.opt.Log, "%ssegments: %s\n", prefix, strings.Join(parts, " | "))
}

// evalAccum sums the scored positions of an evaluation: loss and hits
// over all of them (micro accuracy), per target class (macro accuracy) and
// per sequence (accuracy averaged per example).
type evalAccum struct {
	lossSum, correct float64
	count            int
	// Per class c (token id): hits[c] scored positions predicted right
	// (tp), support[c] scored positions whose target is c (tp + fn),
	// predicted[c] scored positions predicted c (tp + fp).
	hits, support, predicted []int
	// Per sequence of the piece being scored: hits and scored positions;
	// endPiece folds them into exampleSum (the sum of the sequences'
	// accuracies) and examples (the sequences with a scored position).
	seqHits, seqCount []int
	exampleSum        float64
	examples          int
}

// mean is the loss and accuracy per scored position (0, 0 if none).
func (a evalAccum) mean() (loss, acc float64) {
	if a.count == 0 {
		return 0, 0
	}
	return a.lossSum / float64(a.count), a.correct / float64(a.count)
}

// macro is torchmetrics' macro-averaged multiclass accuracy (MAD's
// metric): the mean over classes of hits/support, counting the classes that
// occur as a target or a prediction (a class only predicted scores 0).
func (a evalAccum) macro() float64 {
	sum, n := 0.0, 0
	for c := range a.hits {
		if a.support[c] == 0 && a.predicted[c] == 0 {
			continue
		}
		n++
		if a.support[c] > 0 {
			sum += float64(a.hits[c]) / float64(a.support[c])
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// perExample is the accuracy averaged per sequence (Zoology's MQAR
// metric): each sequence's fraction of scored positions right, then the
// mean over the sequences with any.
func (a evalAccum) perExample() float64 {
	if a.examples == 0 {
		return 0
	}
	return a.exampleSum / float64(a.examples)
}

// tally adds the scored positions of one piece: targets and predictions
// row by row, T rows a sequence.
func (a *evalAccum) tally(targets, pred []int32, vocab, T int) {
	if len(a.hits) < vocab {
		grow := func(x []int) []int { return append(x, make([]int, vocab-len(x))...) }
		a.hits, a.support, a.predicted = grow(a.hits), grow(a.support), grow(a.predicted)
	}
	if B := len(targets) / T; len(a.seqHits) < B {
		a.seqHits = append(a.seqHits, make([]int, B-len(a.seqHits))...)
		a.seqCount = append(a.seqCount, make([]int, B-len(a.seqCount))...)
	}
	for i, t := range targets {
		if t == tasks.Ignore {
			continue
		}
		p := pred[i]
		a.support[t]++
		if p >= 0 && int(p) < vocab {
			a.predicted[p]++
		}
		a.seqCount[i/T]++
		if p == t {
			a.hits[t]++
			a.seqHits[i/T]++
		}
	}
}

// endPiece folds the per-sequence counts of the piece just scored into the
// per-example sum.
func (a *evalAccum) endPiece() {
	for b, n := range a.seqCount {
		if n > 0 {
			a.exampleSum += float64(a.seqHits[b]) / float64(n)
			a.examples++
		}
		a.seqHits[b], a.seqCount[b] = 0, 0
	}
}

// evalBatch is eval batch i of a task: batch_size sequences, or its first
// size when the eval set ends in a partial batch (eval_examples). The full
// batch is generated and cut, so that a task that places examples by batch
// index and size (a fixed test set) places the last batch's examples where
// a full one would be.
func evalBatch(task tasks.Task, c Config, i, size int) tasks.Batch {
	b := task.Batch(tasks.Eval, c.Seed, int64(i), c.BatchSize)
	if size < b.B {
		b.B, b.Inputs, b.Targets = size, b.Inputs[:size*b.L], b.Targets[:size*b.L]
	}
	return b
}

// evaluate scores the task's own fixed eval set, weighting each batch by
// its number of scored positions.
func (r *runner) evaluate() evalAccum {
	var a evalAccum
	for _, b := range r.evalSet {
		r.scoreParallel(&a, b.Inputs, b.Targets, b.B, b.L, max(1, r.parallelTokens()/b.L))
	}
	return a
}

// parallelTokens is the most tokens one parallel Forward of an evaluation
// takes: eval_parallel_tokens, lowered so that the logits fit in
// eval_memory_mb.
func (r *runner) parallelTokens() int {
	c := r.spec.Train
	perToken := int64(r.task.Vocab()) * r.elemBytes()
	return int(max(1, min(int64(c.EvalParallelTokens), r.memLimit()/perToken)))
}

func (r *runner) memLimit() int64 { return int64(r.spec.Train.EvalMemoryMB) << 20 }

func (r *runner) elemBytes() int64 {
	if r.be.DType() == nn.Float64 {
		return 8
	}
	return 4
}

// segmentResult is one evaluation of a segment.
type segmentResult struct {
	status, reason, mode string
	batch                int
	need                 int64
	acc                  evalAccum
}

// errOOM stops a step-mode evaluation whose state outgrows eval_memory_mb.
var errOOM = errors.New("step-mode state over eval_memory_mb")

// evalSegment scores a segment's eval set: the segment task's eval batches
// 0 .. eval_batches−1 of batch_size sequences, generated one at a time and
// evaluated in pieces of at most batch_size sequences. At the training
// length these are the task's own eval sequences.
func (r *runner) evalSegment(ctx context.Context, seg tasks.Segment) (res segmentResult) {
	c := r.spec.Train
	L, n := seg.Task.SeqLen(), c.BatchSize
	tokens := r.parallelTokens()
	stepper, canStep := r.model.(arch.Stepper)
	switch lim, ok := r.model.(interface{ MaxLen() int }); {
	case ok && lim.MaxLen() > 0 && L > lim.MaxLen():
		return segmentResult{status: SegmentSkipped,
			reason: fmt.Sprintf("%s takes sequences of at most %d tokens (learned positions); this segment has %d", r.spec.Arch, lim.MaxLen(), L)}
	case L <= tokens:
		res = segmentResult{mode: ModeParallel, batch: min(n, tokens/L)}
	case canStep:
		res = segmentResult{mode: ModeStep, batch: min(n, max(1, tokens/min(c.EvalChunk, L)))}
	default:
		return segmentResult{status: SegmentOOM, reason: fmt.Sprintf(
			"a sequence of %d tokens is over the %d tokens one parallel evaluation may hold (eval_parallel_tokens, eval_memory_mb for the logits) and %s has no step mode",
			L, tokens, r.spec.Arch)}
	}
	defer func() {
		if p := recover(); p != nil {
			res.status, res.reason = SegmentFailed, fmt.Sprintf("panic during %s evaluation: %v", res.mode, p)
		}
	}()
	for j, size := range c.evalBatchSizes() {
		b := evalBatch(seg.Task, c, j, size)
		if res.mode == ModeParallel {
			r.scoreParallel(&res.acc, b.Inputs, b.Targets, b.B, L, res.batch)
			continue
		}
		for s0 := 0; s0 < b.B; s0 += res.batch {
			B := min(res.batch, b.B-s0)
			need, err := r.scoreStep(ctx, &res.acc, stepper, b.Inputs[s0*L:(s0+B)*L], b.Targets[s0*L:(s0+B)*L], B, L)
			switch {
			case errors.Is(err, errOOM):
				res.status, res.need = SegmentOOM, need
				res.reason = fmt.Sprintf("the step-mode state of %d sequences of %d tokens would need %s, over eval_memory_mb = %d MiB",
					B, L, units.Bytes(need), c.EvalMemoryMB)
				return res
			case err != nil:
				res.status, res.reason = SegmentSkipped, err.Error()
				return res
			}
		}
	}
	res.status = SegmentOK
	return res
}

// evalTape is a tape for evaluation: it records nothing and shares the
// evaluation's casts.
func (r *runner) evalTape() *nn.Tape {
	tp := nn.NewTape(r.be, false)
	if r.casts != nil {
		tp.ShareCasts(r.casts)
	}
	return tp
}

// scoreParallel scores B sequences of length L (inputs and targets
// batch-major) in parallel Forwards of at most per sequences.
func (r *runner) scoreParallel(a *evalAccum, inputs, targets []int32, B, L, per int) {
	for b0 := 0; b0 < B; b0 += per {
		nb := min(per, B-b0)
		tg := targets[b0*L : (b0+nb)*L]
		if !anyScored(tg) {
			continue
		}
		func() {
			tp := r.evalTape()
			defer tp.Release()
			r.score(a, tp, r.model.Forward(tp, inputs[b0*L:(b0+nb)*L], nb, L), tg, L)
		}()
		a.endPiece()
	}
}

// scoreStep scores B sequences of length L in step mode, eval_chunk tokens
// a Step. After each chunk it extrapolates the state's size to the end of
// the sequence from its growth over that chunk (the first chunk only
// checks the size: a state may allocate its fixed buffers there) and stops
// with errOOM, returning the projection, when that is over eval_memory_mb.
func (r *runner) scoreStep(ctx context.Context, a *evalAccum, m arch.Stepper, inputs, targets []int32, B, L int) (need int64, err error) {
	T := min(r.spec.Train.EvalChunk, L)
	st := m.NewState(B)
	defer st.Free()
	defer a.endPiece()
	ids, tg := make([]int32, B*T), make([]int32, B*T)
	var prev int64
	for t0 := 0; t0 < L; t0 += T {
		n := min(T, L-t0)
		for b := range B {
			copy(ids[b*n:(b+1)*n], inputs[b*L+t0:b*L+t0+n])
			copy(tg[b*n:(b+1)*n], targets[b*L+t0:b*L+t0+n])
		}
		func() {
			tp := r.evalTape()
			defer tp.Release()
			logits := m.Step(tp, st, ids[:B*n], B, n)
			if anyScored(tg[:B*n]) {
				r.score(a, tp, logits, tg[:B*n], n)
			}
		}()
		bytes := st.Bytes()
		need = bytes
		if t0 > 0 {
			need += int64(float64(bytes-prev) / float64(n) * float64(L-t0-n))
		}
		if need > r.memLimit() {
			return need, errOOM
		}
		prev = bytes
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	return need, nil
}

// score adds the scored positions of logits (rows matching targets, T rows
// a sequence).
func (r *runner) score(a *evalAccum, tp *nn.Tape, logits *nn.Tensor, targets []int32, T int) {
	l, n := tp.CrossEntropy(logits, targets, tasks.Ignore)
	if n == 0 {
		return
	}
	pred := r.be.ArgmaxRows(logits.Data, len(targets), logits.Dim(-1))
	a.lossSum += r.be.Read(l.Data)[0] * float64(n)
	a.correct += hitRate(pred, targets) * float64(n)
	a.count += n
	a.tally(targets, pred, logits.Dim(-1), T)
}

func anyScored(targets []int32) bool {
	for _, t := range targets {
		if t != tasks.Ignore {
			return true
		}
	}
	return false
}

// hitRate is the fraction of scored positions whose prediction is the
// target.
func hitRate(pred, targets []int32) float64 {
	hit, n := 0, 0
	for i, t := range targets {
		if t == tasks.Ignore {
			continue
		}
		n++
		if pred[i] == t {
			hit++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(hit) / float64(n)
}
