package gpukernels

import (
	"fmt"

	"seqbench/nn"
)

// What a library that queues its own work on the backend's stream needs
// (NCCL, through package dist): the stream, the buffers' device
// addresses, and the backend's lock with the context current.

// Collective runs f with the backend's lock held (no op of the backend
// runs meanwhile) and its device's context current on the calling
// goroutine's OS thread, passing the backend's stream. f queues its work
// on that stream, so it is ordered after the ops queued before and
// before those queued after. f must not call the backend's methods: they
// take the same lock.
func (be *Backend) Collective(op string, f func(stream uintptr) error) error {
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.closed {
		return fmt.Errorf("gpukernels.%s: backend is closed", op)
	}
	if err := be.dev.Lock(); err != nil {
		return &OpError{Op: op, Err: err}
	}
	defer be.dev.Unlock()
	return f(be.stream)
}

// DeviceBuffer returns b as a live buffer of this backend (its Ptr, Len
// and DType are then what a collective passes), or an error naming op,
// the buffer's name and why not: another backend's, freed, not a CUDA
// buffer.
func (be *Backend) DeviceBuffer(b nn.Buffer, op, name string) (*Buffer, error) {
	return be.ownBuf(b, -1, op, name)
}
