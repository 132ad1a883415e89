package gpukernels

import (
	"errors"
	"testing"
)

// A bf16 run on CUDA must fail, naming why, until the kernels exist (no
// GPU needed: BF16 answers before touching the device).
func TestBF16NotYet(t *testing.T) {
	m, err := (&Backend{}).BF16()
	if m != nil || !errors.Is(err, ErrNoBF16) {
		t.Fatalf("BF16() = %v, %v; want nil, %v", m, err, ErrNoBF16)
	}
}
