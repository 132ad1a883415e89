package gpukernels

import (
	"errors"
	"fmt"

	"seqbench/nn"
)

// ErrNoBF16 is what BF16 returns until every op has its bfloat16 kernels.
var ErrNoBF16 = errors.New("bf16 is not implemented on the CUDA backend yet")

// BF16 would return this device's bfloat16 mixed-precision backend
// (docs/PRECISION.md says what it must do); until every op passes the
// bfloat16 conformance suite on a GPU, a bf16 run on CUDA fails with
// ErrNoBF16 instead of running in fp32.
func (be *Backend) BF16() (nn.MixedBackend, error) { return nil, ErrNoBF16 }

// BF16Backend is the bfloat16 mixed-precision backend, "cuda-bfloat16": a
// float32 Backend whose AllocAs also makes bfloat16 buffers (2 bytes an
// element), the type its tapes store activations in. It shares the
// float32 backend's device, stream, allocator and kernels; each op picks
// its kernels' bfloat16 build when its activations are bfloat16
// (dtypes.go), so the same backend runs float32 and bfloat16 ops side by
// side, as the mixed-precision tape needs.
type BF16Backend struct{ *Backend }

var _ nn.MixedBackend = (*BF16Backend)(nil)

// newBF16 wraps a float32 backend.
func newBF16(be *Backend) (*BF16Backend, error) {
	if be.dtype != nn.Float32 {
		return nil, fmt.Errorf("bf16 needs the float32 CUDA backend, not %s", be.Name())
	}
	return &BF16Backend{be}, nil
}

// Name says which backend and precision this is.
func (m *BF16Backend) Name() string { return "cuda-bfloat16" }

// ActDType is bfloat16.
func (m *BF16Backend) ActDType() nn.DType { return nn.BFloat16 }

// AllocAs returns a zero-filled buffer of n elements of type dt (float32
// or bfloat16).
func (m *BF16Backend) AllocAs(n int, dt nn.DType) nn.Buffer {
	if n < 0 {
		panic(fmt.Sprintf("gpukernels.AllocAs: negative length %d", n))
	}
	if dt != nn.Float32 && dt != nn.BFloat16 {
		panic(fmt.Sprintf("gpukernels.AllocAs: %v buffers are not offered; the types are float32, bfloat16", dt))
	}
	m.enter("AllocAs")
	defer m.exit()
	return m.allocAs("AllocAs", n, dt)
}
