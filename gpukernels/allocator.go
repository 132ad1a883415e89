package gpukernels

import (
	"fmt"
	"math/bits"

	"seqbench/gpukernels/cuda"
)

// OOMError is the panic value of an allocation the device cannot satisfy
// even after the allocator returned its cached blocks. nn.Backend.Alloc has
// no error result; train.Run recovers the panic and records a failed run
// whose reason is this message.
type OOMError struct {
	Asked       int64  // bytes asked for (after rounding to the size class)
	Free, Total uint64 // device memory as cuMemGetInfo reports it
	InUse       int64  // bytes this backend's buffers hold
	Err         error  // the driver's error
}

func (e *OOMError) Error() string {
	return fmt.Sprintf("out of device memory (asked %d bytes, free %d of %d; this backend holds %d in use): %v",
		e.Asked, e.Free, e.Total, e.InUse, e.Err)
}

func (e *OOMError) Unwrap() error { return e.Err }

// MemStats are the allocator's counters in bytes (size classes, not the
// lengths asked for).
type MemStats struct {
	InUse, Peak, Cached int64
	Allocs, Reuses      int64 // cuMemAlloc calls, and allocations served from the cache
}

// allocator caches device memory in size classes so that a training loop,
// which frees and allocates the same sizes every step, stops calling
// cuMemAlloc after its first step. Blocks go back to a free list of their
// class; all work runs on one stream, so a block freed by one op and handed
// to the next is only touched after the earlier op's kernels (stream order).
type allocator struct {
	drv    *cuda.Driver
	stream uintptr
	free   map[int64][]uint64
	stats  MemStats
}

// minClass is the smallest block: cuMemAlloc aligns to 256 bytes anyway.
const minClass = 512

// sizeClass rounds bytes up to its class: multiples of a quarter of the
// largest power of two at or below bytes (at least 128 bytes), so no more
// than 25% is wasted (minClass below that).
func sizeClass(bytes int64) int64 {
	if bytes <= minClass {
		return minClass
	}
	e := bits.Len64(uint64(bytes)) - 1 // 2^e ≤ bytes < 2^(e+1)
	step := int64(1) << max(e-2, 7)
	return (bytes + step - 1) / step * step
}

// get returns a block of at least bytes. When the driver has no memory left
// it synchronises, frees every cached block and tries once more, then
// panics with an *OOMError.
func (a *allocator) get(bytes int64) (uint64, int64) {
	class := sizeClass(bytes)
	if l := a.free[class]; len(l) > 0 {
		p := l[len(l)-1]
		a.free[class] = l[:len(l)-1]
		a.stats.Cached -= class
		a.stats.Reuses++
		a.use(class)
		return p, class
	}
	p, err := a.drv.MemAlloc(uint64(class))
	if err != nil && cuda.IsOutOfMemory(err) && a.stats.Cached > 0 {
		if rerr := a.releaseCached(); rerr != nil {
			panic(&OpError{Op: "Alloc", Err: rerr})
		}
		p, err = a.drv.MemAlloc(uint64(class))
	}
	if err != nil {
		if cuda.IsOutOfMemory(err) {
			free, total, _ := a.drv.MemGetInfo()
			panic(&OOMError{Asked: class, Free: free, Total: total, InUse: a.stats.InUse, Err: err})
		}
		panic(&OpError{Op: "Alloc", Err: err})
	}
	a.stats.Allocs++
	a.use(class)
	return p, class
}

func (a *allocator) use(class int64) {
	a.stats.InUse += class
	a.stats.Peak = max(a.stats.Peak, a.stats.InUse)
}

// put returns a block to its class's free list.
func (a *allocator) put(p uint64, class int64) {
	a.free[class] = append(a.free[class], p)
	a.stats.InUse -= class
	a.stats.Cached += class
}

// releaseCached waits for the stream (a cached block may still be read by
// queued work) and gives every cached block back to the driver.
func (a *allocator) releaseCached() error {
	if err := a.drv.StreamSynchronize(a.stream); err != nil {
		return err
	}
	for class, l := range a.free {
		for _, p := range l {
			if err := a.drv.MemFree(p); err != nil {
				return err
			}
			a.stats.Cached -= class
		}
		delete(a.free, class)
	}
	return nil
}

// train checks a run's memory estimate through this method.
var _ interface {
	MemInfo() (free, total uint64, err error)
} = (*Backend)(nil)

// MemInfo is the device memory a new allocation can get, in bytes: what
// the driver reports free plus the blocks this backend has cached for
// reuse, and the device's total (train checks a run's estimate against it).
func (be *Backend) MemInfo() (free, total uint64, err error) {
	be.enter("MemInfo")
	defer be.exit()
	free, total, err = be.drv.MemGetInfo()
	return free + uint64(be.alloc.stats.Cached), total, err
}
