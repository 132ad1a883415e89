package gpukernels

import (
	"testing"

	"seqbench/nn"
)

// A float64 backend has no bfloat16 mode, and says so before touching the
// device (no GPU needed).
func TestBF16NeedsFloat32(t *testing.T) {
	m, err := (&Backend{dtype: nn.Float64}).BF16()
	if m != nil || err == nil || err.Error() != "bf16 needs the float32 CUDA backend, not cuda-float64" {
		t.Fatalf("BF16() = %v, %v; want the float32 backend named", m, err)
	}
}
