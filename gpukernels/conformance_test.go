package gpukernels

import (
	"testing"

	"seqbench/nn"
	"seqbench/nn/backendtest"
)

// conformant adapts *Backend to nn.Backend for the conformance suite while
// the fused sequence ops are not on the GPU yet: the embedded SeqOps is nil
// (never called) and Lacks tells backendtest.Run to skip every fused case,
// naming it, rather than run it on another device.
type conformant struct {
	*Backend
	nn.SeqOps
}

// Lacks reports every fused op as missing (Run asks only about those).
func (conformant) Lacks(op string) bool { return true }

func TestGPUConformanceFloat32(t *testing.T) {
	backendtest.Run(t, conformant{Backend: gpu(t, nn.Float32)})
}

func TestGPUConformanceFloat64(t *testing.T) {
	backendtest.Run(t, conformant{Backend: gpu(t, nn.Float64)})
}
