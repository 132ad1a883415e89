package cpukernels_test

import (
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn/backendtest"
)

func TestConformanceFloat64(t *testing.T) { backendtest.Run(t, cpukernels.New[float64]()) }

func TestConformanceFloat32(t *testing.T) { backendtest.Run(t, cpukernels.New[float32]()) }
