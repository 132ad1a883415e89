package nn

import "fmt"

// Tape records differentiable ops as they run (eager forward) and replays
// their adjoints in reverse on Backward. A Tape built with record=false runs
// the same forward without keeping anything for a backward (evaluation).
//
// Every buffer a tape allocates (activations, saved statistics, gradients of
// intermediates) is freed by Release, so one training step owns its memory
// and hands it back to the backend's allocator at the end.
type Tape struct {
	B      Backend
	record bool
	steps  []func()
	temps  []Buffer
}

// NewTape starts a tape on b.
func NewTape(b Backend, record bool) *Tape { return &Tape{B: b, record: record} }

// Recording reports whether ops are recorded for a backward pass.
func (tp *Tape) Recording() bool { return tp.record }

// Alloc returns a zeroed scratch buffer freed by Release.
func (tp *Tape) Alloc(n int) Buffer {
	b := tp.B.Alloc(n)
	tp.temps = append(tp.temps, b)
	return b
}

// out allocates an op's result; it takes a gradient when any input does and
// the tape records.
func (tp *Tape) out(shape []int, inputs ...*Tensor) *Tensor {
	t := &Tensor{Shape: append([]int(nil), shape...), Data: tp.Alloc(NumElems(shape))}
	if tp.record {
		for _, in := range inputs {
			if in != nil && in.grad != nil {
				t.grad = &gradSlot{}
				break
			}
		}
	}
	return t
}

// grad returns t's gradient buffer, allocating a zeroed one on first use, or
// nil when t takes no gradient.
func (tp *Tape) grad(t *Tensor) Buffer {
	if t == nil || t.grad == nil {
		return nil
	}
	if t.grad.buf == nil {
		t.grad.buf = tp.Alloc(t.Len())
	}
	return t.grad.buf
}

// onBackward records the adjoint of an op producing out. It runs only when
// some gradient reached out.
func (tp *Tape) onBackward(out *Tensor, f func(dout Buffer)) {
	if out.grad == nil {
		return
	}
	tp.steps = append(tp.steps, func() {
		if out.grad.buf != nil {
			f(out.grad.buf)
		}
	})
}

// Backward seeds d(loss)/d(loss) = 1 for a one-element loss and runs every
// recorded adjoint in reverse order. Parameter gradients accumulate into
// their buffers (zero them before, see ZeroGrads).
func (tp *Tape) Backward(loss *Tensor) {
	if !tp.record {
		panic("nn: Backward on a tape that does not record")
	}
	if loss.Len() != 1 {
		panic(fmt.Sprintf("nn: Backward needs a scalar loss, got %v", loss))
	}
	if loss.grad == nil {
		return // nothing in the graph takes a gradient
	}
	tp.B.Fill(tp.grad(loss), 1)
	for i := len(tp.steps) - 1; i >= 0; i-- {
		tp.steps[i]()
	}
	tp.steps = nil
}

// Release frees every buffer the tape allocated. Tensors produced on the
// tape must not be used afterwards.
func (tp *Tape) Release() {
	for _, b := range tp.temps {
		tp.B.Free(b)
	}
	tp.temps, tp.steps = nil, nil
}
