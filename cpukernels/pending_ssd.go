package cpukernels

import "seqbench/nn"

// TEMPORARY: ops being written now; this file is deleted when they land.
func (be *Backend[T]) SSD(out, hT nn.Buffer, a nn.SSDArgs) { panic("cpukernels: not implemented yet") }
func (be *Backend[T]) SSDBackward(g nn.SSDGrads, a nn.SSDArgs, dout nn.Buffer) {
	panic("cpukernels: not implemented yet")
}
