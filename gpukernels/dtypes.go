package gpukernels

import (
	"fmt"

	"seqbench/nn"
)

// The element types an op accepts (docs/PRECISION.md, "Type combinations
// of the ops"). An op's buffers are of two kinds: activations, which are
// all of one type, the backend's or bfloat16, and pick the build of the
// op's kernels (fnAs); and the others (parameters, statistics, states),
// always of the backend's own type. Each op names its buffers of each
// kind; any other combination panics naming the op and the buffer.

// arg is an op's buffer and its parameter name; a nil buffer is skipped.
type arg struct {
	name string
	b    *Buffer
}

// actType returns the type of the activation buffers acts, panicking
// unless they are all of one type, the backend's or bfloat16. With none
// given it is the backend's type.
func (be *Backend) actType(op string, acts ...arg) nn.DType {
	var first arg
	for _, a := range acts {
		if a.b == nil {
			continue
		}
		if a.b.dt != be.dtype && a.b.dt != nn.BFloat16 {
			panic(fmt.Sprintf("gpukernels.%s: %s is %v, must be %v or bfloat16", op, a.name, a.b.dt, be.dtype))
		}
		if first.b == nil {
			first = a
			continue
		}
		if a.b.dt != first.b.dt {
			panic(fmt.Sprintf("gpukernels.%s: %s is %v but %s is %v: the activations of %s must be all %v or all bfloat16",
				op, a.name, a.b.dt, first.name, first.b.dt, op, be.dtype))
		}
	}
	if first.b == nil {
		return be.dtype
	}
	return first.b.dt
}

// wantOwn panics unless every buffer of bufs is of the backend's own type:
// the parameters, statistics and states that stay float32 under bf16.
func (be *Backend) wantOwn(op string, bufs ...arg) {
	for _, a := range bufs {
		if a.b != nil && a.b.dt != be.dtype {
			panic(fmt.Sprintf("gpukernels.%s: %s is %v, must be %v", op, a.name, a.b.dt, be.dtype))
		}
	}
}

// stateType checks a carried state's buffers (H0 and hT, a conv's state):
// all of the backend's type or, with bfloat16 activations (at), all
// bfloat16, a mixed backend's decode state (nn.SeqOps). It reports whether
// they are bfloat16, the kernels' stbf.
func (be *Backend) stateType(op string, at nn.DType, bufs ...arg) bool {
	var first arg
	for _, a := range bufs {
		if a.b == nil {
			continue
		}
		if a.b.dt != be.dtype && (a.b.dt != nn.BFloat16 || at != nn.BFloat16) {
			panic(fmt.Sprintf("gpukernels.%s: %s is %v, must be %v, or bfloat16 where the activations are", op, a.name,
				a.b.dt, be.dtype))
		}
		if first.b == nil {
			first = a
		} else if a.b.dt != first.b.dt {
			panic(fmt.Sprintf("gpukernels.%s: %s is %v but %s is %v: a state's buffers must be of one type", op, a.name,
				a.b.dt, first.name, first.b.dt))
		}
	}
	return first.b != nil && first.b.dt == nn.BFloat16
}
