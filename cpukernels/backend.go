// Package cpukernels is the reference Backend: pure Go, generic over float32
// and float64 (the float64 instantiation backs every gradient check), and
// goroutine-parallel where the work is large. One file per op family; the
// same file names in gpukernels hold the CUDA versions of the same ops.
package cpukernels

import (
	"fmt"
	"runtime"
	"sync"

	"seqbench/nn"
)

// GemmPath says how this build multiplies matrices on the CPU.
const GemmPath = "pure Go, packed, register-blocked, goroutine-parallel"

// Float is the element type of a CPU backend.
type Float interface{ float32 | float64 }

// Buf is a CPU buffer: a plain slice.
type Buf[T Float] []T

// Len is the number of elements.
func (b Buf[T]) Len() int { return len(b) }

// Backend is the CPU backend for element type T.
type Backend[T Float] struct {
	workers int
}

// New returns a CPU backend using every core (GOMAXPROCS).
func New[T Float]() *Backend[T] { return &Backend[T]{workers: runtime.GOMAXPROCS(0)} }

// ForDType returns the CPU backend of the given element type.
func ForDType(d nn.DType) nn.Backend {
	if d == nn.Float64 {
		return New[float64]()
	}
	return New[float32]()
}

// Name says which backend and precision this is.
func (be *Backend[T]) Name() string { return "cpu-" + be.DType().String() }

// DType is the element type.
func (be *Backend[T]) DType() nn.DType {
	var z T
	if _, ok := any(z).(float64); ok {
		return nn.Float64
	}
	return nn.Float32
}

// check panics with a failed contract check of nn, naming the op.
func check(op string, err error) {
	if err != nil {
		panic(fmt.Sprintf("cpukernels.%s: %v", op, err))
	}
}

// data unwraps a buffer of this backend, checking it holds at least n
// elements (n < 0: any length).
func data[T Float](b nn.Buffer, n int, op, name string) []T {
	s, ok := b.(Buf[T])
	if !ok {
		panic(fmt.Sprintf("cpukernels.%s: %s is a %T, not a buffer of this backend", op, name, b))
	}
	if n >= 0 && len(s) < n {
		panic(fmt.Sprintf("cpukernels.%s: %s holds %d elements, needs %d", op, name, len(s), n))
	}
	return s
}

// parallelFor splits [0, n) into contiguous chunks of at least grain items
// and runs body on them concurrently, returning when all are done.
func (be *Backend[T]) parallelFor(n, grain int, body func(lo, hi int)) {
	if grain < 1 {
		grain = 1
	}
	chunks := min(be.workers, (n+grain-1)/grain)
	if chunks <= 1 {
		if n > 0 {
			body(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	step := (n + chunks - 1) / chunks
	for lo := 0; lo < n; lo += step {
		hi := min(lo+step, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(lo, hi)
		}()
	}
	wg.Wait()
}
