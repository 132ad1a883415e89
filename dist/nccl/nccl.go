package nccl

import (
	"encoding/hex"
	"errors"
	"fmt"
	"seqbench/dist"
	"strings"

	"seqbench/gpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

// The dist.Comm of the CUDA backend: NCCL (cuda.LoadNCCL says where the
// library is looked for), one rank per process and GPU. Every call queues
// NCCL's work on the rank backend's stream with the backend's lock held,
// so it is ordered with the backend's ops as one of them. Arguments are
// checked in Go before NCCL is called: a mismatch between ranks NCCL
// cannot see (it would hang), but one within a call it would report
// without naming the buffer.

// IDBytes is the size of a communicator id (an ncclUniqueId).
const IDBytes = cuda.NCCLUniqueIDBytes

// NewUniqueID asks NCCL for the id of a new communicator, which every
// rank then passes to NewNCCL (through a rendezvous file:
// EncodeUniqueID). The calling process hosts NCCL's bootstrap root: it
// must keep running until every rank has joined.
func NewUniqueID() ([IDBytes]byte, error) {
	lib, err := cuda.LoadNCCL()
	if err != nil {
		return [IDBytes]byte{}, err
	}
	return lib.UniqueID()
}

// EncodeUniqueID writes id as 256 lowercase hexadecimal digits.
func EncodeUniqueID(id [IDBytes]byte) string { return hex.EncodeToString(id[:]) }

// DecodeUniqueID reads the text of EncodeUniqueID; white space around it
// (a file's final newline) is ignored.
func DecodeUniqueID(s string) ([IDBytes]byte, error) {
	var id [IDBytes]byte
	s = strings.TrimSpace(s)
	if len(s) != 2*IDBytes {
		return id, fmt.Errorf("dist: communicator id has %d characters, must be %d hexadecimal digits", len(s), 2*IDBytes)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("dist: communicator id is not hexadecimal: %v", err)
	}
	return id, nil
}

// ncclComm is one rank's NCCL communicator on one CUDA backend.
type ncclComm struct {
	be         *gpukernels.Backend
	comm       *cuda.NCCLComm
	version    int // NCCL_VERSION_CODE
	device     int // CUDA ordinal of be
	rank, size int
	closed     bool
}

// NewNCCL joins communicator id as rank of size on be's device. It
// returns once all size ranks have joined (each from its own process, or
// goroutine). NCCL_NVLS_ENABLE=0 is set before NCCL starts unless the
// environment has it (cuda.NVLSEnv).
func NewNCCL(be *gpukernels.Backend, rank, size int, id [IDBytes]byte) (dist.Comm, error) {
	if size < 1 {
		return nil, fmt.Errorf("dist.NewNCCL: size %d: must be at least 1", size)
	}
	if rank < 0 || rank >= size {
		return nil, fmt.Errorf("dist.NewNCCL: rank %d: must be in 0..%d (size %d)", rank, size-1, size)
	}
	if be == nil {
		return nil, errors.New("dist.NewNCCL: backend is nil")
	}
	lib, err := cuda.LoadNCCL()
	if err != nil {
		return nil, err
	}
	c := &ncclComm{be: be, version: lib.Version, device: be.Device().Ordinal, rank: rank, size: size}
	err = be.Collective("NewNCCL", func(uintptr) error {
		var err error
		c.comm, err = lib.InitRank(size, rank, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dist.NewNCCL: rank %d of %d with NCCL %s (%s): %w", rank, size, cuda.NCCLVersionString(lib.Version), lib.Path, err)
	}
	// NCCL may install signal handlers the Go runtime cannot share.
	cuda.KeepGoSignalStacks()
	return c, nil
}

// NCCLGroup runs f, whose collectives NCCL then issues together
// (ncclGroupStart/ncclGroupEnd): how one goroutine drives the ranks of
// several GPUs, whose calls would otherwise each wait for the others.
// The group's work is queued on the backends' streams when f returns, not
// at each call: queue nothing else on those backends until NCCLGroup
// returns.
func NCCLGroup(f func() error) error {
	lib, err := cuda.LoadNCCL()
	if err != nil {
		return err
	}
	if err := lib.GroupStart(); err != nil {
		return err
	}
	ferr := f()
	return errors.Join(ferr, lib.GroupEnd())
}

func (c *ncclComm) Rank() int { return c.rank }
func (c *ncclComm) Size() int { return c.size }

// ncclType is NCCL's type for dt in a library of version code v.
func ncclType(dt nn.DType, v int) (cuda.NCCLDataType, error) {
	switch dt {
	case nn.Float32:
		return cuda.NCCLFloat32, nil
	case nn.Float64:
		return cuda.NCCLFloat64, nil
	case nn.BFloat16:
		if v < cuda.NCCLVersion210 {
			return 0, fmt.Errorf("bfloat16 needs NCCL 2.10 or later, this is %s", cuda.NCCLVersionString(v))
		}
		return cuda.NCCLBfloat16, nil
	}
	return 0, fmt.Errorf("element type %d has no NCCL type (allowed: float32, float64, bfloat16)", int(dt))
}

// ncclOp is NCCL's reduction for op in a library of version code v.
func ncclOp(op dist.Op, v int) (cuda.NCCLRedOp, error) {
	switch op {
	case dist.Sum:
		return cuda.NCCLSum, nil
	case dist.Avg:
		if v < cuda.NCCLVersion210 {
			return 0, fmt.Errorf("op dist.Avg needs NCCL 2.10 or later, this is %s", cuda.NCCLVersionString(v))
		}
		return cuda.NCCLAvg, nil
	}
	return 0, fmt.Errorf("op %d: allowed dist.Sum (%d), dist.Avg (%d)", int(op), int(dist.Sum), int(dist.Avg))
}

// operand is a buffer argument as the checks see it.
type operand struct {
	name string
	n    int
	dt   nn.DType
}

// checkPair checks out and in of AllGather or ReduceScatter: one element
// type, and out (AllGather) or in (ReduceScatter) size times the other.
func checkPair(call string, size int, out, in operand) error {
	if out.dt != in.dt {
		return fmt.Errorf("dist.%s: out is %v but in is %v: both must be of one type", call, out.dt, in.dt)
	}
	big, small := out, in
	if call == "ReduceScatter" {
		big, small = in, out
	}
	if big.n != size*small.n {
		return fmt.Errorf("dist.%s: %s holds %d elements, must hold size·%s.Len() = %d·%d = %d",
			call, big.name, big.n, small.name, size, small.n, size*small.n)
	}
	return nil
}

// operands returns be as the comm's CUDA backend and bufs as its device
// buffers, or an error naming call and what is wrong.
func (c *ncclComm) operands(call string, be nn.Backend, names []string, bufs ...nn.Buffer) ([]*gpukernels.Buffer, error) {
	if c.closed {
		return nil, fmt.Errorf("dist.%s: communicator is closed", call)
	}
	var g *gpukernels.Backend
	switch b := be.(type) {
	case *gpukernels.Backend:
		g = b
	case *gpukernels.BF16Backend:
		if b != nil {
			g = b.Backend
		}
	}
	if g == nil || g != c.be {
		return nil, fmt.Errorf("dist.%s: backend %T is not the CUDA backend of this communicator (rank %d, device %d)",
			call, be, c.rank, c.device)
	}
	out := make([]*gpukernels.Buffer, len(bufs))
	for i, b := range bufs {
		d, err := g.DeviceBuffer(b, call, names[i])
		if err != nil {
			return nil, fmt.Errorf("dist.%s: %w", call, err)
		}
		out[i] = d
	}
	return out, nil
}

// types maps a reduction's element type and op to NCCL's, or returns an
// error naming call.
func (c *ncclComm) types(call string, dt nn.DType, op dist.Op) (cuda.NCCLDataType, cuda.NCCLRedOp, error) {
	ndt, err := ncclType(dt, c.version)
	if err != nil {
		return 0, 0, fmt.Errorf("dist.%s: %w", call, err)
	}
	rop, err := ncclOp(op, c.version)
	if err != nil {
		return 0, 0, fmt.Errorf("dist.%s: %w", call, err)
	}
	return ndt, rop, nil
}

// run queues f on the backend's stream, then reports any error NCCL
// recorded on the communicator meanwhile.
func (c *ncclComm) run(call string, f func(stream uintptr) error) error {
	err := c.be.Collective(call, func(s uintptr) error {
		if err := f(s); err != nil {
			return err
		}
		return c.comm.AsyncError()
	})
	if err != nil {
		return fmt.Errorf("dist.%s (rank %d of %d): %w", call, c.rank, c.size, err)
	}
	return nil
}

func (c *ncclComm) AllReduce(be nn.Backend, buf nn.Buffer, op dist.Op) error {
	const call = "AllReduce"
	bufs, err := c.operands(call, be, []string{"buf"}, buf)
	if err != nil {
		return err
	}
	b := bufs[0]
	dt, rop, err := c.types(call, b.DType(), op)
	if err != nil || b.Len() == 0 {
		return err
	}
	return c.run(call, func(s uintptr) error { return c.comm.AllReduce(b.Ptr(), b.Ptr(), b.Len(), dt, rop, s) })
}

func (c *ncclComm) Broadcast(be nn.Backend, buf nn.Buffer, root int) error {
	const call = "Broadcast"
	if root < 0 || root >= c.size {
		return fmt.Errorf("dist.%s: root %d: must be a rank, 0..%d", call, root, c.size-1)
	}
	bufs, err := c.operands(call, be, []string{"buf"}, buf)
	if err != nil {
		return err
	}
	b := bufs[0]
	dt, err := ncclType(b.DType(), c.version)
	if err != nil {
		return fmt.Errorf("dist.%s: %w", call, err)
	}
	if b.Len() == 0 {
		return nil
	}
	return c.run(call, func(s uintptr) error { return c.comm.Broadcast(b.Ptr(), b.Ptr(), b.Len(), dt, root, s) })
}

func (c *ncclComm) AllGather(be nn.Backend, out, in nn.Buffer) error {
	const call = "AllGather"
	bufs, err := c.operands(call, be, []string{"out", "in"}, out, in)
	if err != nil {
		return err
	}
	o, i := bufs[0], bufs[1]
	if err := checkPair(call, c.size, operand{"out", o.Len(), o.DType()}, operand{"in", i.Len(), i.DType()}); err != nil {
		return err
	}
	dt, err := ncclType(i.DType(), c.version)
	if err != nil {
		return fmt.Errorf("dist.%s: %w", call, err)
	}
	if i.Len() == 0 {
		return nil
	}
	return c.run(call, func(s uintptr) error { return c.comm.AllGather(i.Ptr(), o.Ptr(), i.Len(), dt, s) })
}

func (c *ncclComm) ReduceScatter(be nn.Backend, out, in nn.Buffer, op dist.Op) error {
	const call = "ReduceScatter"
	bufs, err := c.operands(call, be, []string{"out", "in"}, out, in)
	if err != nil {
		return err
	}
	o, i := bufs[0], bufs[1]
	if err := checkPair(call, c.size, operand{"out", o.Len(), o.DType()}, operand{"in", i.Len(), i.DType()}); err != nil {
		return err
	}
	dt, rop, err := c.types(call, i.DType(), op)
	if err != nil || o.Len() == 0 {
		return err
	}
	return c.run(call, func(s uintptr) error { return c.comm.ReduceScatter(i.Ptr(), o.Ptr(), o.Len(), dt, rop, s) })
}

// Close destroys the communicator after its queued work, or aborts it
// when NCCL recorded an error on it (its work may never finish).
func (c *ncclComm) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.be.Collective("Close", func(uintptr) error {
		if c.comm.AsyncError() != nil {
			return c.comm.Abort()
		}
		return c.comm.Destroy()
	})
}
