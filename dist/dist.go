// Package dist is data-parallel training's view of its ranks (issue #23):
// a communicator over the processes of one run, one per GPU, whatever
// carries the bytes (NCCL on GPUs; an in-process fake in tests). Training
// calls it to average gradients and to broadcast parameters; nothing here
// knows about models.
package dist

import "seqbench/nn"

// Op is a reduction.
type Op int

const (
	Sum Op = iota
	Avg    // the sum divided by the number of ranks
)

// Comm is one rank's handle on a communicator of Size ranks. Every call is
// collective: all ranks make the same calls in the same order with
// buffers of the same length and type (a mismatch is an error, or a hang
// on NCCL, which cannot tell). Buffers belong to be, the rank's backend;
// each call returns when its result may be read on that backend's stream
// (on a GPU: queued on the stream, not necessarily finished).
type Comm interface {
	Rank() int
	Size() int
	// AllReduce reduces buf over the ranks in place: every rank ends with
	// the reduction of all ranks' buf.
	AllReduce(be nn.Backend, buf nn.Buffer, op Op) error
	// Broadcast copies root's buf into every other rank's buf.
	Broadcast(be nn.Backend, buf nn.Buffer, root int) error
	// AllGather concatenates every rank's in (n elements each, rank order)
	// into out (Size·n elements) on every rank.
	AllGather(be nn.Backend, out, in nn.Buffer) error
	// ReduceScatter reduces in (Size·n elements) over the ranks and leaves
	// block r (n elements) of the result in rank r's out.
	ReduceScatter(be nn.Backend, out, in nn.Buffer, op Op) error
	// Close releases the communicator; the handle must not be used again.
	Close() error
}
