package cpukernels

import "seqbench/nn"

// TEMPORARY: ops being written now; this file is deleted when they land.
func (be *Backend[T]) S4DKernel(K nn.Buffer, a nn.S4DArgs) { panic("cpukernels: not implemented yet") }
func (be *Backend[T]) S4DKernelBackward(g nn.S4DGrads, a nn.S4DArgs, dK nn.Buffer) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) FFTConv(out, u, K, Dskip nn.Buffer, B, H, L int) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) FFTConvBackward(du, dK, dDskip, u, K, Dskip, dout nn.Buffer, B, H, L int) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) S4DRecurrent(out, state, u, Dskip nn.Buffer, a nn.S4DArgs, B int) {
	panic("cpukernels: not implemented yet")
}
