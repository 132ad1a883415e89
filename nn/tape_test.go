package nn_test

import (
	"math/rand/v2"
	"slices"
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

// Drop frees a tensor's data at once when no recorded adjoint reads it
// (a Slice's input, an Add's operands), keeps it when one does (a Mul's
// operands) until Release, frees anything on a tape that does not record,
// and an op reading a dropped tensor panics.
func TestTapeDrop(t *testing.T) {
	const n = 100
	be := &liveBackend{Backend: cpukernels.New[float64]()}
	x := nn.NewParam(be, 4, n/4)
	tp := nn.NewTape(be, true)
	a := tp.Act(nn.Tanh, x)
	s := tp.Slice(a, 0, n/4-1) // reads a; Slice's adjoint does not
	m := tp.Mul(s, s)          // Mul's adjoint reads s
	live := be.live
	tp.Drop(a)
	if be.live != live-n {
		t.Errorf("dropping a tensor no adjoint reads freed %d elements, want %d", live-be.live, n)
	}
	live = be.live
	tp.Drop(s)
	if be.live != live {
		t.Errorf("dropping a tensor Mul's adjoint reads freed %d elements", live-be.live)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("an op on a dropped tensor did not panic")
			}
		}()
		tp.Act(nn.Tanh, tp.Reshape(a, n))
	}()
	loss, _ := tp.CrossEntropy(m, make([]int32, 4), -1)
	tp.Backward(loss)
	tp.Release()
	if be.live != 2*n {
		t.Errorf("after Release %d elements live, want the parameter's %d", be.live, 2*n)
	}

	eval := nn.NewTape(be, false)
	e := eval.Act(nn.Tanh, x)
	live = be.live
	eval.Drop(e)
	if be.live != live-n {
		t.Errorf("on a tape that does not record, Drop freed %d elements, want %d", live-be.live, n)
	}
}

// ckptBackend is a ScanCheckpointer whose forward fills the Ckpt buffer
// it gets with 7s and whose backward records what its Ckpt holds.
type ckptBackend struct {
	nn.Backend
	fwd nn.Buffer
	bwd []float64
}

func (b *ckptBackend) ScanCheckpointLen(a nn.ScanArgs) int { return 3 * a.L }

func (b *ckptBackend) SelectiveScan(out, hT nn.Buffer, a nn.ScanArgs) {
	b.fwd = a.Ckpt
	if a.Ckpt != nil {
		b.Fill(a.Ckpt, 7)
	}
	b.Backend.SelectiveScan(out, hT, a)
}

func (b *ckptBackend) SelectiveScanBackward(g nn.ScanGrads, a nn.ScanArgs, dout nn.Buffer) {
	if a.Ckpt != nil {
		b.bwd = b.Read(a.Ckpt)
	}
	b.Backend.SelectiveScanBackward(g, a, dout)
}

// A recording tape gives the selective scan a checkpoint buffer of the
// length the backend asks for, the same one to the forward and the
// backward; an evaluation tape gives none.
func TestTapeScanCheckpoints(t *testing.T) {
	const B, D, L, N = 1, 2, 5, 3
	be := &ckptBackend{Backend: cpukernels.New[float64]()}
	rng := rand.New(rand.NewPCG(7, 8))
	param := func(shape ...int) *nn.Tensor {
		p := nn.NewParam(be, shape...)
		be.Write(p.Data, layerRandn(rng, p.Len()))
		return p
	}
	u, delta, A := param(B, D, L), param(B, D, L), param(D, N)
	bm, cm := param(B, N, L), param(B, N, L)
	for _, record := range []bool{true, false} {
		be.fwd, be.bwd = nil, nil
		tp := nn.NewTape(be, record)
		y := tp.SelectiveScan(nn.ScanInputs{U: u, Delta: delta, A: A, Bm: bm, Cm: cm, DeltaSoftplus: true})
		if !record {
			if be.fwd != nil {
				t.Error("an evaluation tape gave the scan a checkpoint buffer")
			}
			continue
		}
		loss, _ := tp.CrossEntropy(tp.Reshape(y, B*D, L), make([]int32, B*D), -1)
		tp.Backward(loss)
		if be.fwd == nil || be.fwd.Len() != 3*L {
			t.Fatalf("the forward's checkpoint buffer is %v, want %d elements", be.fwd, 3*L)
		}
		if len(be.bwd) != 3*L || slices.ContainsFunc(be.bwd, func(v float64) bool { return v != 7 }) {
			t.Errorf("the backward's checkpoints are %v, want the forward's %d 7s", be.bwd, 3*L)
		}
		tp.Release()
	}
}
