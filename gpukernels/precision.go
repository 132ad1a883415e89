package gpukernels

import (
	"errors"

	"seqbench/nn"
)

// ErrNoBF16 is what BF16 returns until the bfloat16 kernels exist.
var ErrNoBF16 = errors.New("bf16 is not implemented on the CUDA backend yet")

// BF16 would return this device's bfloat16 mixed-precision backend
// (docs/PRECISION.md says what it must do); its kernels do not exist yet,
// so a bf16 run on CUDA fails with ErrNoBF16 instead of running in fp32.
func (be *Backend) BF16() (nn.MixedBackend, error) { return nil, ErrNoBF16 }
