package cpukernels

import "seqbench/nn"

// TEMPORARY: ops being written now; this file is deleted when they land.
func (be *Backend[T]) Conv1D(out, x, w, bias, state nn.Buffer, B, C, L, W int, act nn.Activation) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) Conv1DBackward(dx, dw, dbias, x, w, bias, dout nn.Buffer, B, C, L, W int, act nn.Activation) {
	panic("cpukernels: not implemented yet")
}
