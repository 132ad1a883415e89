package nn

import "fmt"

// Tape records differentiable ops as they run (eager forward) and replays
// their adjoints in reverse on Backward. A Tape built with record=false runs
// the same forward without keeping anything for a backward (evaluation).
//
// Every buffer a tape allocates (activations, saved statistics, gradients of
// intermediates) is freed by Release, so one training step owns its memory
// and hands it back to the backend's allocator at the end.
//
// On a MixedBackend whose ActDType differs from its DType (cpu-bfloat16),
// the tape runs the mixed-precision model path of docs/PRECISION.md: the
// float32 operands of GEMMs and gathers (the weights) are read through a
// copy in the activation type made once per tape, whose gradient is the
// float32 tensor's own; the output of an op with an activation among its
// inputs is an activation (and so is its gradient); statistics, losses,
// Alloc's scratch and ops on float32 tensors alone stay in the backend's
// DType.
type Tape struct {
	B      Backend
	record bool
	steps  []func()
	temps  []Buffer
	act    DType        // the type of activations
	mixed  MixedBackend // B, when activations are in a type of their own
	casts  map[*Tensor]*Tensor
	shared *Casts // casts kept across tapes (ShareCasts), or nil
	// root is the tensor Backward seeded with a gradient of 1, while the
	// backward runs.
	root *Tensor
}

// isRoot reports whether t is the loss Backward started from, whose
// gradient is exactly 1 (an op may use that instead of reading it back).
func (tp *Tape) isRoot(t *Tensor) bool { return t == tp.root }

// Casts keeps the activation-type copies of the weights that every tape
// on a mixed-precision backend would otherwise make for itself, for tapes
// over weights that do not change while it lives: generation and
// evaluation, where a tape runs per decoded token or per batch and would
// copy every weight again each time (130M parameters at 6 bytes read and
// written per decoded token). Training's tapes share them only when the
// optimizer keeps them current (AdamW.KeepCopies); else each step's tape
// keeps its own, as the optimizer changes the weights between steps.
type Casts struct {
	b Backend
	m map[*Tensor]*Tensor
	// derived are values computed from weights alone (Tape.Derived), by
	// the weight and a name.
	derived map[derivedKey]*Tensor
	// train marks copies that an optimizer keeps equal to their weights
	// (AdamW.KeepCopies): recording tapes may share them, and a copy
	// carries its weight's gradient slot, so that the backward accumulates
	// into the weight's float32 gradient as a tape's own cast does.
	// Derived values are not kept: every update changes them.
	train bool
}

type derivedKey struct {
	of   *Tensor
	name string
}

// NewCasts starts an empty cache on b.
func NewCasts(b Backend) *Casts {
	return &Casts{b: b, m: map[*Tensor]*Tensor{}, derived: map[derivedKey]*Tensor{}}
}

// Bytes is the device memory the copies hold.
func (c *Casts) Bytes() int64 {
	var n int64
	for _, t := range c.m {
		n += BufferBytes(c.b, t.Data)
	}
	for _, t := range c.derived {
		n += BufferBytes(c.b, t.Data)
	}
	return n
}

// Free returns the copies to the backend; tapes must not share c after.
func (c *Casts) Free() {
	c.freeAll()
	c.m, c.derived = nil, nil
}

// clear returns the copies to the backend and starts c empty again.
func (c *Casts) clear() {
	c.freeAll()
	c.m, c.derived = map[*Tensor]*Tensor{}, map[derivedKey]*Tensor{}
}

func (c *Casts) freeAll() {
	for _, t := range c.m {
		c.b.Free(t.Data)
	}
	for _, t := range c.derived {
		c.b.Free(t.Data)
	}
}

// ShareCasts makes tp read its weights' copies from c, and add the ones it
// makes there, instead of keeping its own until Release. It returns tp.
// The weights must not change while c lives, which is what inference
// promises, unless an optimizer keeps c's copies current
// (AdamW.KeepCopies): only such copies may be shared by a tape that
// records.
func (tp *Tape) ShareCasts(c *Casts) *Tape {
	switch {
	case tp.record && !c.train:
		panic("nn.Tape.ShareCasts: a recording tape (training) shares only copies its optimizer keeps current (AdamW.KeepCopies): the optimizer changes the weights between steps")
	case c.b != tp.B:
		panic(fmt.Sprintf("nn.Tape.ShareCasts: casts of backend %s on a tape of %s", c.b.Name(), tp.B.Name()))
	case c.m == nil:
		panic("nn.Tape.ShareCasts: the casts were freed")
	}
	tp.shared = c
	return tp
}

// NewTape starts a tape on b.
func NewTape(b Backend, record bool) *Tape {
	tp := &Tape{B: b, record: record, act: b.DType()}
	if m, ok := b.(MixedBackend); ok && m.ActDType() != b.DType() {
		tp.mixed, tp.act = m, m.ActDType()
	}
	return tp
}

// ActDType is the type the tape stores activations in.
func (tp *Tape) ActDType() DType { return tp.act }

// Recording reports whether ops are recorded for a backward pass.
func (tp *Tape) Recording() bool { return tp.record }

// Alloc returns a zeroed scratch buffer freed by Release.
func (tp *Tape) Alloc(n int) Buffer {
	b := tp.B.Alloc(n)
	tp.temps = append(tp.temps, b)
	return b
}

// AllocOut returns a scratch buffer, freed by Release, that an op
// overwrites whole (its saved statistics, a state it writes): not
// zero-filled where the backend can skip it (UninitAllocator).
func (tp *Tape) AllocOut(n int) Buffer { return tp.allocResult(n, tp.B.DType()) }

// AllocAs returns a zeroed scratch buffer of type dt freed by Release (dt
// must be B's DType unless B is a MixedBackend that has dt).
func (tp *Tape) AllocAs(n int, dt DType) Buffer {
	b := tp.scratch(n, dt)
	tp.temps = append(tp.temps, b)
	return b
}

// scratch is a zeroed buffer of n elements of type dt that the caller
// frees (not the tape's: AllocAs records it, an op's own scratch does not).
func (tp *Tape) scratch(n int, dt DType) Buffer {
	if dt == tp.B.DType() {
		return tp.B.Alloc(n)
	}
	if tp.mixed == nil {
		panic(fmt.Sprintf("nn.Tape.AllocAs: %s has only %v buffers, not %v", tp.B.Name(), tp.B.DType(), dt))
	}
	return tp.mixed.AllocAs(n, dt)
}

// out allocates an op's result; it takes a gradient when any input does and
// the tape records. Under mixed precision the result is an activation (in
// the activation type) when any input is one; an op on float32 tensors
// alone (parameters, and what is computed from them alone, such as
// Mamba's A = −exp(A_log)) stays float32, as autocast leaves float32 ops
// on float32 tensors.
func (tp *Tape) out(shape []int, inputs ...*Tensor) *Tensor {
	return tp.outAs(tp.resultType(inputs...), shape, inputs...)
}

// resultType is the type of an op's result by out's rule.
func (tp *Tape) resultType(inputs ...*Tensor) DType {
	if tp.mixed != nil {
		for _, in := range inputs {
			if in != nil && DTypeOf(tp.B, in.Data) == tp.act {
				return tp.act
			}
		}
	}
	return tp.B.DType()
}

// out32 allocates an op's result that stays in the backend's DType under
// mixed precision (a loss, a convolution kernel computed from parameters).
func (tp *Tape) out32(shape []int, inputs ...*Tensor) *Tensor {
	return tp.outAs(tp.B.DType(), shape, inputs...)
}

// allocResult is AllocAs for an op's result, which the op overwrites
// whole: not zero-filled where the backend can skip it (UninitAllocator).
func (tp *Tape) allocResult(n int, dt DType) Buffer {
	u, ok := tp.B.(UninitAllocator)
	if !ok {
		return tp.AllocAs(n, dt)
	}
	if dt != tp.B.DType() && tp.mixed == nil {
		panic(fmt.Sprintf("nn.Tape: an op's result of type %v on %s, which has only %v buffers", dt, tp.B.Name(), tp.B.DType()))
	}
	b := u.AllocUninit(n, dt)
	tp.temps = append(tp.temps, b)
	return b
}

// outAs allocates an op's result in type dt. Until the op says otherwise
// (readsNot), its adjoint is taken to read the data of every input and of
// the result: Drop frees none of them.
func (tp *Tape) outAs(dt DType, shape []int, inputs ...*Tensor) *Tensor {
	for _, in := range inputs {
		if in != nil && in.st != nil && in.st.freed {
			panic(fmt.Sprintf("nn: an op reads a %v tensor after Drop freed it", in.Shape))
		}
	}
	t := &Tensor{Shape: append([]int(nil), shape...), Data: tp.allocResult(NumElems(shape), dt)}
	t.st = &storage{temp: len(tp.temps)}
	if tp.record {
		for _, in := range inputs {
			if in != nil && in.grad != nil {
				t.grad = &gradSlot{}
				break
			}
		}
	}
	if t.grad != nil {
		for _, in := range inputs {
			if in != nil && in.st != nil {
				in.st.saves++
			}
		}
		t.st.saves++
	}
	return t
}

// readsNot tells the tape that the adjoint recorded for out does not read
// the data of ts (inputs of the op, or out itself), undoing what outAs
// assumed.
func (tp *Tape) readsNot(out *Tensor, ts ...*Tensor) {
	if out.grad == nil {
		return
	}
	for _, t := range ts {
		if t != nil && t.st != nil {
			t.st.saves--
		}
	}
}

// Drop tells the tape that the forward will not read ts (or their views)
// again. The data of each is freed at once unless a recorded adjoint reads
// it; Release frees it then, as it frees everything else. An op that reads
// a dropped tensor panics. Models drop what their own later code never
// reads, so that the step's peak holds only what the backward needs.
func (tp *Tape) Drop(ts ...*Tensor) {
	for _, t := range ts {
		if t == nil || t.st == nil || t.st.freed || t.st.saves > 0 {
			continue
		}
		tp.freeTemp(t.st.temp)
		t.st.freed = true
	}
}

// grad returns t's gradient buffer, allocating a zeroed one on first use, or
// nil when t takes no gradient.
func (tp *Tape) grad(t *Tensor) Buffer {
	if t == nil || t.grad == nil {
		return nil
	}
	if t.grad.buf == nil {
		t.grad.buf = tp.AllocAs(t.Len(), DTypeOf(tp.B, t.Data))
		t.grad.temp = len(tp.temps)
	}
	return t.grad.buf
}

// Derived is f(tp), a value computed from the weight of alone (Mamba's
// A = −exp(A_log)), named name among of's derived values. On a tape that
// shares Casts it is computed once and kept there with the casts, since
// the weights do not change while they are shared (a decoded token then
// skips recomputing it); on any other tape it is f(tp), recorded as usual.
func (tp *Tape) Derived(of *Tensor, name string, f func(*Tape) *Tensor) *Tensor {
	sh := tp.shared
	if sh == nil || sh.train {
		return f(tp)
	}
	k := derivedKey{of, name}
	if d, ok := sh.derived[k]; ok {
		return d
	}
	v := f(tp)
	d := &Tensor{Shape: v.Shape, Data: AllocLike(tp.B, v.Data, v.Len())}
	tp.B.Copy(d.Data, v.Data)
	sh.derived[k] = d
	return d
}

// lowp is t as a GEMM or a gather reads it: t itself unless the tape is
// mixed and t is not stored in the activation type; then a copy of t in
// the activation type, made once per tape (weights do not change within a
// step, and a tied weight is cast once) and sharing t's gradient slot, so
// that the backward accumulates straight into t's float32 gradient. A
// tape sharing Casts takes the copy from there (made once for all of
// them; with no gradient, as such a tape does not record, unless an
// optimizer keeps the copies: then with t's, as a tape's own cast).
func (tp *Tape) lowp(t *Tensor) *Tensor {
	if tp.mixed == nil || t == nil || DTypeOf(tp.B, t.Data) == tp.act {
		return t
	}
	casts, alloc, grad := tp.casts, tp.AllocAs, t.grad
	if sh := tp.shared; sh != nil {
		casts, alloc = sh.m, tp.scratch // Casts keeps it past Release
		if !sh.train {
			grad = nil
		}
	} else if casts == nil {
		casts = map[*Tensor]*Tensor{}
		tp.casts = casts
	}
	if c, ok := casts[t]; ok {
		return c
	}
	c := &Tensor{Shape: t.Shape, Data: alloc(t.Len(), tp.act), grad: grad}
	tp.B.Copy(c.Data, t.Data)
	casts[t] = c
	return c
}

// onBackward records the adjoint of an op producing out. It runs only when
// some gradient reached out. Every op that reads out (or a view of it) was
// recorded later, so its adjoint has run and out's gradient is complete;
// once f has used it, nothing reads it again, and the tape frees it at
// once: the backward holds the gradients of its frontier only, not of
// every activation of the step.
func (tp *Tape) onBackward(out *Tensor, f func(dout Buffer)) {
	if out.grad == nil {
		return
	}
	tp.steps = append(tp.steps, func() {
		if out.grad.buf != nil {
			f(out.grad.buf)
			tp.freeGrad(out.grad)
		}
	})
}

// freeGrad frees a gradient the tape allocated before Release would.
func (tp *Tape) freeGrad(g *gradSlot) {
	if g.temp == 0 {
		return
	}
	tp.freeTemp(g.temp)
	g.buf, g.temp = nil, 0
}

// freeTemp frees the tape's buffer temps[i−1] before Release would.
func (tp *Tape) freeTemp(i int) {
	tp.B.Free(tp.temps[i-1])
	tp.temps[i-1] = nil
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
	tp.root = loss
	for i := len(tp.steps) - 1; i >= 0; i-- {
		tp.steps[i]()
	}
	tp.steps, tp.root = nil, nil
}

// Release frees every buffer the tape allocated. Tensors produced on the
// tape must not be used afterwards.
func (tp *Tape) Release() {
	for _, b := range tp.temps {
		if b != nil {
			tp.B.Free(b)
		}
	}
	tp.temps, tp.steps, tp.casts, tp.shared = nil, nil, nil, nil
}
