package cpukernels

import "seqbench/nn"

// TEMPORARY: ops being written now; this file is deleted when they land.
func (be *Backend[T]) LSTM(out, hT, cT, saved nn.Buffer, a nn.RNNArgs) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) LSTMBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) GRU(out, hT, saved nn.Buffer, a nn.RNNArgs) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) GRUBackward(g nn.RNNGrads, a nn.RNNArgs, out, saved, dout nn.Buffer) {
	panic("cpukernels: not implemented yet")
}
