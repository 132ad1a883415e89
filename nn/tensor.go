package nn

import (
	"fmt"
	"strings"
)

// Tensor is a shape over backend-owned storage, plus (for tensors that take
// part in differentiation) a gradient buffer of the same size. Reshape views
// share both storage and gradient.
type Tensor struct {
	Shape []int
	Data  Buffer
	grad  *gradSlot // nil for tensors that need no gradient
	st    *storage  // nil for data the tape did not allocate
}

// storage is what a tape knows of a tensor's data, shared by the tensor
// and its Reshape views: its index in the tape's temps plus one, how many
// recorded adjoints read it, and whether Drop freed it.
type storage struct {
	temp  int
	saves int
	freed bool
}

// gradSlot is a gradient buffer, shared by a tensor and its Reshape views.
// temp is, for a gradient the tape allocated, its index in the tape's temps
// plus one (0: not the tape's, a parameter's).
type gradSlot struct {
	buf  Buffer
	temp int
}

// NumElems is the product of a shape's dimensions.
func NumElems(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Len is the number of elements.
func (t *Tensor) Len() int { return NumElems(t.Shape) }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// RequiresGrad reports whether gradients flow into t.
func (t *Tensor) RequiresGrad() bool { return t.grad != nil }

// Grad is t's gradient buffer (nil if not yet allocated or not needed).
func (t *Tensor) Grad() Buffer {
	if t.grad == nil {
		return nil
	}
	return t.grad.buf
}

func (t *Tensor) String() string {
	s := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		s[i] = fmt.Sprint(d)
	}
	return "Tensor(" + strings.Join(s, "×") + ")"
}

// NewParam allocates a tensor that carries a gradient buffer from the start.
func NewParam(b Backend, shape ...int) *Tensor {
	n := NumElems(shape)
	return &Tensor{Shape: append([]int(nil), shape...), Data: b.Alloc(n), grad: &gradSlot{buf: b.Alloc(n)}}
}

// NewParamAs is NewParam with its values and gradient in type dt: b's
// DType, or a type of a MixedBackend's AllocAs (a bfloat16 input of one
// op, as `seqbench op` feeds activations under bf16).
func NewParamAs(b Backend, dt DType, shape ...int) *Tensor {
	if dt == b.DType() {
		return NewParam(b, shape...)
	}
	m, ok := b.(MixedBackend)
	if !ok {
		panic(fmt.Sprintf("nn.NewParamAs: %s has only %v buffers, not %v", b.Name(), b.DType(), dt))
	}
	n := NumElems(shape)
	return &Tensor{Shape: append([]int(nil), shape...), Data: m.AllocAs(n, dt), grad: &gradSlot{buf: m.AllocAs(n, dt)}}
}

// NewConst allocates a tensor that takes no gradient, filled from host values
// (or zeros when values is nil).
func NewConst(b Backend, values []float64, shape ...int) *Tensor {
	t := &Tensor{Shape: append([]int(nil), shape...), Data: b.Alloc(NumElems(shape))}
	if values != nil {
		if len(values) != t.Len() {
			panic(fmt.Sprintf("nn.NewConst: %d values for shape %v", len(values), shape))
		}
		b.Write(t.Data, values)
	}
	return t
}

// Param is a named trainable tensor. Decay says whether AdamW applies weight
// decay to it under its default policy (by convention: matrices yes; norms,
// biases, embeddings and SSM dynamics no). Group, when not nil, gives it an
// optimizer setting of its own (see ParamGroup).
type Param struct {
	Name  string
	T     *Tensor
	Decay bool
	Group *ParamGroup
}

// CountParams sums the element counts of ps, counting a tensor shared under
// two names (tied weights) once.
func CountParams(ps []Param) int {
	seen := map[*Tensor]bool{}
	n := 0
	for _, p := range ps {
		if !seen[p.T] {
			seen[p.T] = true
			n += p.T.Len()
		}
	}
	return n
}

// ZeroGrads zeroes the gradient buffers of ps.
func ZeroGrads(b Backend, ps []Param) {
	for _, p := range ps {
		if p.T.grad != nil && p.T.grad.buf != nil {
			b.Fill(p.T.grad.buf, 0)
		}
	}
}

// FreeParams returns the storage of ps (values and gradients) to b; a
// tensor listed twice (tied weights) is freed once.
func FreeParams(b Backend, ps []Param) {
	seen := map[*Tensor]bool{}
	for _, p := range ps {
		if seen[p.T] {
			continue
		}
		seen[p.T] = true
		b.Free(p.T.Data)
		if p.T.grad != nil && p.T.grad.buf != nil {
			b.Free(p.T.grad.buf)
		}
	}
}

// ElemBytes is the size of one element of b's buffers of its DType.
func ElemBytes(b Backend) int64 { return b.DType().Size() }

// BufferBytes is the memory held by bufs (nil entries count 0): what a
// step-mode state reports as its size.
func BufferBytes(b Backend, bufs ...Buffer) int64 {
	n := int64(0)
	for _, buf := range bufs {
		if buf != nil {
			n += int64(buf.Len()) * DTypeOf(b, buf).Size()
		}
	}
	return n
}

// AllocLike allocates n zeroed elements of like's type on b: a buffer that
// holds copies of like's values (a KV cache of activations) keeps their
// type under mixed precision.
func AllocLike(b Backend, like Buffer, n int) Buffer {
	if dt := DTypeOf(b, like); dt != b.DType() {
		if m, ok := b.(MixedBackend); ok {
			return m.AllocAs(n, dt)
		}
	}
	return b.Alloc(n)
}

// FreeBuffers frees the non-nil bufs.
func FreeBuffers(b Backend, bufs ...Buffer) {
	for _, buf := range bufs {
		if buf != nil {
			b.Free(buf)
		}
	}
}
