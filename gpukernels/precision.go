package gpukernels

import (
	"fmt"

	"seqbench/nn"
)

// BF16 returns this device's bfloat16 mixed-precision backend
// (docs/PRECISION.md), sharing be's device, stream and allocator. A
// float64 backend has none.
func (be *Backend) BF16() (nn.MixedBackend, error) {
	m, err := newBF16(be)
	if err != nil {
		return nil, err
	}
	return m, nil
}

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

// AllocUninit is AllocAs without the zero fill (nn.UninitAllocator).
func (m *BF16Backend) AllocUninit(n int, dt nn.DType) nn.Buffer {
	if dt != nn.Float32 && dt != nn.BFloat16 {
		panic(fmt.Sprintf("gpukernels.AllocUninit: %v buffers are not offered; the types are float32, bfloat16", dt))
	}
	return m.allocUninit(n, dt)
}

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
