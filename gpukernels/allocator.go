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
//
// While a graph is captured, pool is the graph's: every block allocated or
// freed then belongs to it (see graphPool).
type allocator struct {
	drv    *cuda.Driver
	stream uintptr
	free   map[int64][]uint64
	stats  MemStats
	pool   *graphPool
}

// graphPool is the memory of a captured graph. Its replays write, at the
// addresses fixed at capture, every block the capture allocated and read
// every block it freed (a block from before the capture, freed in it, may
// still be read by a captured kernel), so none of them may go to other
// work until the graph is freed: a block freed in the capture, or freed
// afterwards by the buffer the capture returned, returns to the pool's
// free lists, which only a capture draws on. The pool's blocks count as
// in use until the graph is freed.
type graphPool struct {
	free map[int64][]uint64
	dead bool // the graph was freed: its blocks go to the shared cache
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

// get returns a block of at least bytes, and the graph pool it belongs to
// (nil outside a capture): inside a capture the pool's free blocks come
// first. When the driver has no memory left it synchronises, frees every
// cached block and tries once more, then panics with an *OOMError.
func (a *allocator) get(bytes int64) (uint64, int64, *graphPool) {
	class := sizeClass(bytes)
	gp := a.pool
	if gp != nil {
		if l := gp.free[class]; len(l) > 0 {
			p := l[len(l)-1]
			gp.free[class] = l[:len(l)-1]
			a.stats.Reuses++
			return p, class, gp
		}
	}
	p, class := a.getShared(class)
	return p, class, gp
}

// getShared returns a block of size class from the shared cache or the
// driver.
func (a *allocator) getShared(class int64) (uint64, int64) {
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

// put returns a block to its class's free list: its graph pool's (gp, or
// the capture's for a block freed inside one), else the shared cache's.
func (a *allocator) put(p uint64, class int64, gp *graphPool) {
	if gp == nil {
		gp = a.pool
	}
	if gp != nil && !gp.dead {
		gp.free[class] = append(gp.free[class], p)
		return
	}
	a.free[class] = append(a.free[class], p)
	a.stats.InUse -= class
	a.stats.Cached += class
}

// releasePool gives a freed graph's free blocks to the shared cache; the
// ones still held by buffers follow when those are freed.
func (a *allocator) releasePool(gp *graphPool) {
	gp.dead = true
	for class, l := range gp.free {
		for _, p := range l {
			a.put(p, class, gp)
		}
	}
	gp.free = nil
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
