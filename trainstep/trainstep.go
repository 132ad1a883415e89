// Package trainstep runs one training step of a model (forward, loss,
// backward, gradient clip, AdamW) the way train.Run and bench's train
// suite both need it: with nothing read back before the step's end, and,
// where the backend captures graphs, captured once and replayed.
package trainstep

import (
	"io"
	"math"

	"seqbench/arch"
	"seqbench/nn"
)

// Options say how the steps run.
type Options struct {
	// GradClip is the global-norm clip (0: none).
	GradClip float64
	// Ignore is the target value that no loss counts.
	Ignore int32
	// Graph captures the step as a graph and replays it where the backend
	// can (see graph.go); false runs every step eagerly.
	Graph bool
	// Capturer captures be's work where be wraps a backend that can (a
	// meter around a CUDA backend); nil: be itself, where it is one.
	Capturer nn.Capturer
	// Log receives the one line saying why graphs stopped, if they do.
	Log io.Writer
}

// Batch is one step's inputs and targets, B sequences of L.
type Batch struct {
	Inputs, Targets []int32
	B, L            int
}

// Result is what a step leaves for the host.
type Result struct {
	Loss, GradNorm float64
	// Skipped: the loss or the gradient norm was not finite, and nothing
	// was updated.
	Skipped bool
	// Pred is each row's predicted token, when asked for.
	Pred []int32
	// Replayed: the step ran as a launch of the captured graph.
	Replayed bool
}

// Runner runs the training steps of one model and optimizer.
type Runner struct {
	be     nn.Backend
	model  arch.Model
	params []nn.Param
	optim  *nn.AdamW
	opt    Options
	stats  nn.Buffer // the step's norm, loss and skipped (nn.StepStats)
	graph  *graph    // nil where every step runs eagerly
}

// New returns a Runner of model's params updated by optim on be.
func New(be nn.Backend, model arch.Model, params []nn.Param, optim *nn.AdamW, opt Options) *Runner {
	s := &Runner{be: be, model: model, params: params, optim: optim, opt: opt, stats: nn.NewStepStats(be)}
	s.graph = newGraph(s)
	return s
}

// Step trains on b at learning rate lr; withPred asks for each row's
// predicted token. The step reads nothing back before its end (the mean
// loss, the clip and the divergence guard stay on the device where the
// backend can: nn.DeviceStep), then reads the loss, the gradient norm and
// whether the update was skipped in one round trip.
func (s *Runner) Step(b Batch, lr float64, withPred bool) Result {
	return s.step(b, lr, withPred, s.graph != nil)
}

// StepEager is Step with the step's own launches, whatever the graph: a
// profile's step (a profile cannot see into a replayed graph). A graph
// already captured stays, and the next Step replays it.
func (s *Runner) StepEager(b Batch, lr float64, withPred bool) Result {
	return s.step(b, lr, withPred, false)
}

func (s *Runner) step(b Batch, lr float64, withPred, byGraph bool) Result {
	var res Result
	if byGraph && s.graph.run(b, lr) {
		res.Replayed = true
		if withPred {
			res.Pred = s.graph.argmax()
		}
	} else {
		res.Pred = s.eager(b, lr, withPred)
	}
	res.GradNorm, res.Loss, res.Skipped = nn.ReadStats(s.be, s.stats)
	return res
}

// eager runs one step op by op.
func (s *Runner) eager(b Batch, lr float64, withPred bool) []int32 {
	var am *nn.Argmax
	if withPred {
		am = &nn.Argmax{Host: make([]int32, len(b.Targets))}
	}
	s.record(b, lr, am)
	if am == nil {
		return nil
	}
	return am.Host
}

// record queues one step: the forward and the loss on a step tape (the
// head and the loss in chunks of rows: arch.LossModel), the backward, and
// the clipped, guarded update.
func (s *Runner) record(b Batch, lr float64, am *nn.Argmax) {
	tp := s.optim.StepTape()
	defer tp.Release()
	lossT, _ := arch.LossAndArgmax(tp, s.model, b.Inputs, b.Targets, b.B, b.L, s.opt.Ignore, am)
	nn.ZeroGrads(s.be, s.params)
	tp.Backward(lossT)
	s.optim.StepClipped(lr, s.opt.GradClip, lossT.Data, s.stats)
}

// Graphed reports whether the steps are being replayed from a graph.
func (s *Runner) Graphed() bool { return s.graph != nil && s.graph.g != nil }

// Free releases the graph and the stats (not the model or optimizer).
func (s *Runner) Free() {
	if s.graph != nil {
		s.graph.free()
	}
	nn.FreeStepStats(s.be, s.stats)
}

// Finite reports whether v is neither NaN nor infinite.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
