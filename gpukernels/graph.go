package gpukernels

import (
	"errors"
	"fmt"
	"unsafe"

	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

var _ nn.Capturer = (*Backend)(nil)

// Graph is device work captured from the backend's stream (nn.Graph): a
// CUDA graph, the memory pool its buffers came from, and the host int32
// slices its uploads read again at each Launch.
type Graph struct {
	be          *Backend
	graph, exec uintptr
	pool        *graphPool
	inputs      []graphInput
	ops         int
	// done is recorded after each launch: the next one rewrites the
	// page-locked inputs only after the last one's copies read them.
	done    uintptr
	pending bool
	freed   bool
}

// graphInput is one upload of host int32 values in the graph: the slice
// the op was given, copied again at each Launch into the page-locked
// buffer the graph's copy reads, after check (the op's own check of ids
// or targets: the kernels index with them).
type graphInput struct {
	op    string
	src   []int32
	host  unsafe.Pointer
	check func([]int32) error
}

// Capture records the device work fn queues on the backend's stream as a
// graph (nn.Capturer); nothing runs until Launch. The stream is captured
// in relaxed mode: the allocator may still call cuMemAlloc, and every
// block fn allocates or frees is reserved for the graph (graphPool).
// Capture refuses to start while a profile runs (its events cannot be
// read back from a graph) or when every launch is synchronised
// (SyncEachLaunch); a wait for the device inside fn panics, naming the op,
// and Capture returns that as its error.
func (be *Backend) Capture(fn func()) (nn.Graph, error) {
	be.enter("Capture")
	var err error
	switch {
	case be.capture != nil:
		err = errors.New("gpukernels.Capture: a capture is already running")
	case be.prof.on:
		err = errors.New("gpukernels.Capture: not while a profile runs (StopProfile first)")
	case be.syncEach:
		err = errors.New("gpukernels.Capture: not with SyncEachLaunch (SEQBENCH_CUDA_SYNC=1): a graph cannot wait for each kernel")
	}
	if err != nil {
		be.exit()
		return nil, err
	}
	g := &Graph{be: be, pool: &graphPool{free: map[int64][]uint64{}}}
	if err := be.drv.StreamBeginCapture(be.stream, cuda.CaptureRelaxed); err != nil {
		be.exit()
		return nil, &OpError{Op: "Capture", Err: err}
	}
	be.capture, be.alloc.pool = g, g.pool
	ops0 := be.counts.ops
	be.exit()

	fnErr := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%v", p)
			}
		}()
		fn()
		return nil
	}()

	be.enter("Capture")
	defer be.exit()
	be.capture, be.alloc.pool = nil, nil
	g.ops = int(be.counts.ops - ops0)
	be.counts.ops = ops0 // captured, not queued: Launch counts them
	graph, endErr := be.drv.StreamEndCapture(be.stream)
	g.graph = graph
	err = errors.Join(fnErr, endErr)
	if err == nil {
		g.exec, err = be.drv.GraphInstantiate(graph)
	}
	if err == nil {
		g.done, err = be.drv.EventCreate()
	}
	if err != nil {
		g.release()
		return nil, fmt.Errorf("gpukernels.Capture: %w", err)
	}
	return g, nil
}

// Launch replays the graph after the work queued before it: it checks and
// copies the host inputs (the slices the capture's ops were given, as they
// hold now), then queues the graph as one operation.
func (g *Graph) Launch() error {
	be := g.be
	be.enter("Graph.Launch")
	defer be.exit()
	if g.freed {
		return errors.New("gpukernels.Graph.Launch: the graph was freed")
	}
	if g.pending {
		be.counts.hostWaits++ // returns at once when the last launch's copies are done
		if err := be.drv.EventSynchronize(g.done); err != nil {
			return &OpError{Op: "Graph.Launch", Err: err}
		}
		g.pending = false
	}
	for _, in := range g.inputs {
		if err := in.check(in.src); err != nil {
			return fmt.Errorf("gpukernels.Graph.Launch: input of %s: %w", in.op, err)
		}
		copy(unsafe.Slice((*int32)(in.host), len(in.src)), in.src)
	}
	be.profStart("Graph")
	if err := be.drv.GraphLaunch(g.exec, be.stream); err != nil {
		return &OpError{Op: "Graph.Launch", Err: err}
	}
	be.counts.ops += int64(g.ops)
	be.profEnd("Graph", "")
	if err := be.drv.EventRecord(g.done, be.stream); err != nil {
		return &OpError{Op: "Graph.Launch", Err: err}
	}
	g.pending = true
	return nil
}

// Ops is the number of operations one Launch replays.
func (g *Graph) Ops() int { return g.ops }

// Free waits for the graph's last launch, destroys it, and gives its
// reserved blocks back to the allocator's cache (buffers the capture
// returned and the caller still holds go there when freed).
func (g *Graph) Free() error {
	be := g.be
	be.enter("Graph.Free")
	defer be.exit()
	if g.freed {
		return nil
	}
	if err := be.drv.StreamSynchronize(be.stream); err != nil {
		return &OpError{Op: "Graph.Free", Err: err}
	}
	return g.release()
}

// release destroys what the graph holds (the stream is idle or never ran
// it).
func (g *Graph) release() error {
	be := g.be
	g.freed = true
	var errs []error
	for _, in := range g.inputs {
		errs = append(errs, be.drv.MemFreeHost(in.host))
	}
	g.inputs = nil
	if g.exec != 0 {
		errs = append(errs, be.drv.GraphExecDestroy(g.exec))
	}
	if g.graph != 0 {
		errs = append(errs, be.drv.GraphDestroy(g.graph))
	}
	if g.done != 0 {
		errs = append(errs, be.drv.EventDestroy(g.done))
	}
	be.alloc.releasePool(g.pool)
	return errors.Join(errs...)
}

// captureInput is uploadInt32 inside a capture: xs goes through a
// page-locked buffer of the graph's own, which each Launch refills from xs
// after check.
func (be *Backend) captureInput(op string, b *Buffer, xs []int32, check func([]int32) error) {
	if check == nil {
		panic(fmt.Sprintf("gpukernels.%s: its int32 upload is derived on the host from its arguments' values, so a graph could not replay it with new ones", op))
	}
	n := uint64(len(xs) * 4)
	host, err := be.drv.MemAllocHost(n)
	must(op, err)
	g := be.capture
	g.inputs = append(g.inputs, graphInput{op: op, src: xs, host: host, check: check})
	copy(unsafe.Slice((*int32)(host), len(xs)), xs)
	be.profStart(op)
	be.queued(op, be.drv.MemcpyHtoDAsync(b.ptr, host, n, be.stream))
}

// noWaitInCapture panics when a capture is running: the host cannot wait
// for work that has not run, nor read back what it has not computed.
func (be *Backend) noWaitInCapture(op string) {
	if be.capture != nil {
		panic(fmt.Sprintf("gpukernels.%s: waits for the device (a read-back or a synchronous copy), which a graph capture cannot record", op))
	}
}
