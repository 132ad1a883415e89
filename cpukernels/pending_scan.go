package cpukernels

import "seqbench/nn"

// TEMPORARY: ops being written now; this file is deleted when they land.
func (be *Backend[T]) SelectiveScan(out, hT nn.Buffer, a nn.ScanArgs) {
	panic("cpukernels: not implemented yet")
}
func (be *Backend[T]) SelectiveScanBackward(g nn.ScanGrads, a nn.ScanArgs, dout nn.Buffer) {
	panic("cpukernels: not implemented yet")
}
