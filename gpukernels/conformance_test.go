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

// The bfloat16 cases (docs/PRECISION.md) on cuda-bfloat16, and the whole
// float32 suite on its float32 buffers.
func TestGPUConformanceBFloat16(t *testing.T) {
	m, err := newBF16(gpu(t, nn.Float32))
	if err != nil {
		t.Fatal(err)
	}
	backendtest.RunBF16(t, m)
}
