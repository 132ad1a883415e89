package trainstep

import (
	"fmt"
	"slices"

	"seqbench/nn"
)

// graph is the training step captured as a graph (nn.Capturer) and
// replayed, so that the host's per-op work (argument checks, launches,
// the allocator) is paid once instead of every step. The step must read
// nothing back before its end, so it is captured only where the backend
// keeps the loss, the clip and the guard on the device (nn.DeviceStep).
//
// At each shape of batch the first step runs eagerly (it makes the
// weights' activation-type copies and warms the allocator's cache); the
// next is captured and launched, and every later one of that shape
// replays it: the host copies the batch into the slices the capture was
// given and rewrites the update's learning rates and step count
// (AdamW.ReplayStep), which the launch reads again. A batch of another
// shape frees the graph and starts over. A capture that fails (an op that
// waits for the device) ends the graphs of the Runner, whose steps then
// run eagerly; the reason is logged once.
type graph struct {
	s     *Runner
	cp    nn.Capturer
	g     nn.Graph // the captured step, or nil
	warm  bool     // a step of shape (B, L) ran eagerly
	B, L  int
	in    Batch     // the batch as the graph reads it
	pred  nn.Buffer // each row's argmax, written by every launch
	ended bool      // a capture failed: no more graphs
}

// newGraph is s's step graph, or nil where its steps run eagerly.
func newGraph(s *Runner) *graph {
	cp := s.opt.Capturer
	if c, ok := s.be.(nn.Capturer); ok && cp == nil {
		cp = c
	}
	if cp == nil || !s.opt.Graph || !nn.DeviceStep(s.be) {
		return nil
	}
	return &graph{s: s, cp: cp}
}

// run trains on b by the graph and reports true, or reports false when
// the caller must run the step eagerly.
func (g *graph) run(b Batch, lr float64) bool {
	if g.ended {
		return false
	}
	if b.B != g.B || b.L != g.L {
		g.free() // a new shape: warm up again
	}
	if g.g == nil {
		if !g.warm {
			g.warm, g.B, g.L = true, b.B, b.L
			return false
		}
		return g.capture(b, lr)
	}
	copy(g.in.Inputs, b.Inputs)
	copy(g.in.Targets, b.Targets)
	g.s.optim.ReplayStep(lr)
	if err := g.g.Launch(); err != nil {
		panic(fmt.Sprintf("replaying the training step: %v", err))
	}
	return true
}

// capture records the step on b (the update at lr included) and launches
// it; after a failed capture nothing has run and the optimizer is as it
// was.
func (g *graph) capture(b Batch, lr float64) bool {
	s := g.s
	g.in = Batch{Inputs: slices.Clone(b.Inputs), Targets: slices.Clone(b.Targets), B: b.B, L: b.L}
	g.pred = s.be.Alloc(len(b.Targets))
	steps := s.optim.Steps
	gr, err := g.cp.Capture(func() { s.record(g.in, lr, &nn.Argmax{Dev: g.pred}) })
	if err != nil {
		s.optim.Steps = steps
		g.free()
		g.ended = true
		if s.opt.Log != nil {
			fmt.Fprintf(s.opt.Log, "training step graph: the capture failed, so the steps run eagerly: %v\n", err)
		}
		return false
	}
	g.g = gr
	if err := gr.Launch(); err != nil {
		panic(fmt.Sprintf("launching the captured training step: %v", err))
	}
	return true
}

// argmax reads each row's argmax of the last launch.
func (g *graph) argmax() []int32 {
	v := g.s.be.Read(g.pred)
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// free releases the graph and what only it uses; the next step, of any
// shape, starts over with an eager one.
func (g *graph) free() {
	if g.g != nil {
		if err := g.g.Free(); err != nil {
			panic(fmt.Sprintf("freeing the training step graph: %v", err))
		}
		g.g = nil
	}
	if g.pred != nil {
		g.s.be.Free(g.pred)
		g.pred = nil
	}
	g.warm = false
}
