package cpukernels_test

import (
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/nn/backendtest"
)

func TestConformanceFloat64(t *testing.T) { backendtest.Run(t, cpukernels.New[float64]()) }

func TestConformanceFloat32(t *testing.T) { backendtest.Run(t, cpukernels.New[float32]()) }

// The cpu-bfloat16 backend with float32 buffers is the float32 backend:
// the whole suite runs on it unchanged.
func TestConformanceBF16BackendFloat32Buffers(t *testing.T) { backendtest.Run(t, cpukernels.NewBF16()) }

func TestConformanceBFloat16(t *testing.T) { backendtest.RunBF16(t, cpukernels.NewBF16()) }

// AttentionCached on bfloat16 activations (the step-mode cache of a bf16
// model).
func TestAttentionCachedBFloat16(t *testing.T) {
	backendtest.RunAttentionCached(t, cpukernels.NewBF16(), nn.BFloat16)
}
