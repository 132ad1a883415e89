package gpukernels

import (
	"testing"

	"seqbench/nn"
	"seqbench/nn/backendtest"
)

// The whole conformance suite, fused sequence ops included, in both
// element types.

func TestGPUConformanceFloat32(t *testing.T) {
	backendtest.Run(t, gpu(t, nn.Float32))
}

func TestGPUConformanceFloat64(t *testing.T) {
	backendtest.Run(t, gpu(t, nn.Float64))
}
