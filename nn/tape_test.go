package nn_test

import (
	"math/rand/v2"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

// liveBackend counts the elements of the buffers it holds and their peak.
type liveBackend struct {
	nn.Backend
	live, peak int
}

func (b *liveBackend) Alloc(n int) nn.Buffer {
	b.live += n
	b.peak = max(b.peak, b.live)
	return b.Backend.Alloc(n)
}

func (b *liveBackend) Free(x nn.Buffer) {
	b.live -= x.Len()
	b.Backend.Free(x)
}

// The backward frees each intermediate gradient once the adjoint of the op
// that made its tensor has used it: along a chain of 12 activations it
// holds a few gradients at a time, not one per activation; the parameter's
// gradient is kept, and Release frees everything else exactly once.
func TestTapeBackwardFreesUsedGradients(t *testing.T) {
	const rows, V, depth = 8, 64, 12
	n := rows * V
	be := &liveBackend{Backend: cpukernels.New[float64]()}
	x := nn.NewParam(be, rows, V)
	be.Write(x.Data, layerRandn(rand.New(rand.NewPCG(5, 6)), n))
	targets := make([]int32, rows)
	tp := nn.NewTape(be, true)
	y := x
	for range depth {
		y = tp.Act(nn.Tanh, y)
	}
	loss, _ := tp.CrossEntropy(tp.Reshape(y, rows, V), targets, -1)
	before := be.live
	be.peak = before
	tp.Backward(loss)
	// The frontier: the gradient flowing in, the one flowing out, and the
	// cross-entropy's (rows, V) gradient at the start.
	if grew := be.peak - before; grew > 3*n {
		t.Errorf("the backward's gradients peaked at %d elements over the forward's, want ≤ %d (3 activations; %d activations were recorded)", grew, 3*n, depth)
	}
	if g := be.Read(x.Grad()); len(g) != n || g[0] == 0 && g[1] == 0 {
		t.Errorf("the parameter's gradient was not kept: %v", g[:2])
	}
	params := 2 * n // x and its gradient
	tp.Release()
	if be.live != params {
		t.Errorf("after Release %d elements live, want the parameter's %d (a buffer freed twice or not at all)", be.live, params)
	}
}
