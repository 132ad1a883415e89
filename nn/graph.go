package nn

// Capturer is a Backend that can record the device work of a function once
// and replay it with one launch (a CUDA graph): what the host does per
// operation (argument checks, launch calls, the allocator) is paid once at
// capture instead of at every replay, which is most of the time of a step
// whose kernels are short, as a decoded token's are.
//
// Capture runs fn with the backend recording instead of computing: nothing
// fn queues runs until Launch. A replay repeats exactly the captured work,
// on the same buffers with the same arguments, so what fn did may depend
// only on what stays fixed between launches. The one input that may change
// is the host's int32 arguments (token ids, targets): each Launch copies
// again, from the same host slices fn passed (by address), whatever they
// hold then, so the caller rewrites those slices in place between launches.
// Reading the device back or waiting for it inside fn (Read, ArgmaxRows,
// Sum, a host Write) cannot be replayed and makes Capture fail, naming the
// op.
//
// The buffers fn allocates stay reserved for the graph, with the
// addresses the replays write, until Graph.Free, even those fn freed; a
// tensor fn returns can be read after each Launch and is freed after the
// graph.
type Capturer interface {
	Capture(fn func()) (Graph, error)
}

// Graph is a captured sequence of device work (Capturer).
type Graph interface {
	// Launch replays the work after everything queued before it, with the
	// host int32 inputs as they are now.
	Launch() error
	// Ops is the number of device operations (kernel launches, GEMMs,
	// copies and memsets) one Launch replays.
	Ops() int
	// Free releases the graph and its reserved memory; the graph must not
	// be launched again.
	Free() error
}
