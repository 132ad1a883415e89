package dist

import (
	"errors"
	"fmt"
	"sync"

	"seqbench/nn"
)

// NewLocal returns the n handles of an in-process communicator: one Comm
// per rank, each to be used from its own goroutine (tests, and CPU runs of
// several ranks). A collective waits until every rank has made it, then
// reduces the host values of the ranks' buffers (read with Backend.Read)
// in float64, summing in rank order so that results do not depend on
// which goroutine came first, and writes each rank's result back with its
// Backend.Write. Calls that do not match across ranks (another collective,
// length, element type, op or root) fail on every rank instead of hanging;
// so does a collective that a closed rank can no longer join.
func NewLocal(n int) []Comm {
	if n < 1 {
		panic(fmt.Sprintf("dist.NewLocal: %d ranks (need at least 1)", n))
	}
	g := &group{n: n, closed: make([]bool, n)}
	g.cond = sync.NewCond(&g.mu)
	g.cur = g.newRound()
	comms := make([]Comm, n)
	for r := range comms {
		comms[r] = &local{g: g, rank: r}
	}
	return comms
}

// ErrClosed is the error of a collective on, or waiting for, a closed rank.
var ErrClosed = errors.New("dist: communicator closed")

type local struct {
	g    *group
	rank int
}

// call is what one rank brings to a collective.
type call struct {
	kind    string // "AllReduce", "Broadcast", ...
	op      Op
	root    int
	dtype   nn.DType
	in      []float64
	outLen  int
	present bool
}

// round is one collective: the ranks' calls, and once every rank has
// arrived, each rank's result.
type round struct {
	calls   []call
	arrived int
	done    bool
	out     [][]float64
	err     error
}

type group struct {
	n      int
	mu     sync.Mutex
	cond   *sync.Cond
	cur    *round
	closed []bool
}

func (g *group) newRound() *round { return &round{calls: make([]call, g.n)} }

func (c *local) Rank() int { return c.rank }
func (c *local) Size() int { return c.g.n }

func (c *local) AllReduce(be nn.Backend, buf nn.Buffer, op Op) error {
	return c.do(be, buf, call{kind: "AllReduce", op: op, dtype: nn.DTypeOf(be, buf), in: be.Read(buf), outLen: buf.Len()})
}

func (c *local) Broadcast(be nn.Backend, buf nn.Buffer, root int) error {
	return c.do(be, buf, call{kind: "Broadcast", root: root, dtype: nn.DTypeOf(be, buf), in: be.Read(buf), outLen: buf.Len()})
}

func (c *local) AllGather(be nn.Backend, out, in nn.Buffer) error {
	if dt, odt := nn.DTypeOf(be, in), nn.DTypeOf(be, out); dt != odt {
		return fmt.Errorf("dist: AllGather on rank %d: in is %v, out is %v", c.rank, dt, odt)
	}
	return c.do(be, out, call{kind: "AllGather", dtype: nn.DTypeOf(be, in), in: be.Read(in), outLen: out.Len()})
}

func (c *local) ReduceScatter(be nn.Backend, out, in nn.Buffer, op Op) error {
	if dt, odt := nn.DTypeOf(be, in), nn.DTypeOf(be, out); dt != odt {
		return fmt.Errorf("dist: ReduceScatter on rank %d: in is %v, out is %v", c.rank, dt, odt)
	}
	return c.do(be, out, call{kind: "ReduceScatter", op: op, dtype: nn.DTypeOf(be, in), in: be.Read(in), outLen: out.Len()})
}

// Close leaves the communicator: a collective the other ranks are waiting
// in, or start later, fails with ErrClosed.
func (c *local) Close() error {
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed[c.rank] {
		return ErrClosed
	}
	g.closed[c.rank] = true
	if g.cur.arrived > 0 {
		g.finish(ErrClosed)
	}
	return nil
}

// do joins the current round with cl, waits for the others, and writes
// this rank's result into dst.
func (c *local) do(be nn.Backend, dst nn.Buffer, cl call) error {
	g := c.g
	g.mu.Lock()
	if g.closed[c.rank] {
		g.mu.Unlock()
		return ErrClosed
	}
	r := g.cur
	cl.present = true
	r.calls[c.rank] = cl
	r.arrived++
	switch {
	case g.anyClosed():
		g.finish(ErrClosed)
	case r.arrived == g.n:
		out, err := reduce(r.calls)
		r.out = out
		g.finish(err)
	}
	for !r.done {
		g.cond.Wait()
	}
	g.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	be.Write(dst, r.out[c.rank])
	return nil
}

func (g *group) anyClosed() bool {
	for _, c := range g.closed {
		if c {
			return true
		}
	}
	return false
}

// finish ends the current round with err (nil: its results are set) and
// opens the next. g.mu is held.
func (g *group) finish(err error) {
	r := g.cur
	r.err, r.done = err, true
	g.cur = g.newRound()
	g.cond.Broadcast()
}

// reduce checks that the ranks' calls match and computes each rank's
// result.
func reduce(calls []call) ([][]float64, error) {
	n := len(calls)
	first := calls[0]
	for r, c := range calls {
		switch {
		case c.kind != first.kind:
			return nil, fmt.Errorf("dist: rank 0 called %s, rank %d %s", first.kind, r, c.kind)
		case c.dtype != first.dtype:
			return nil, fmt.Errorf("dist: %s: rank 0 has %v elements, rank %d %v", c.kind, first.dtype, r, c.dtype)
		case len(c.in) != len(first.in) || c.outLen != first.outLen:
			return nil, fmt.Errorf("dist: %s: rank 0 has %d elements in, %d out; rank %d %d in, %d out",
				c.kind, len(first.in), first.outLen, r, len(c.in), c.outLen)
		case c.op != first.op:
			return nil, fmt.Errorf("dist: %s: rank 0 asked for op %d, rank %d op %d", c.kind, first.op, r, c.op)
		case c.root != first.root:
			return nil, fmt.Errorf("dist: Broadcast: rank 0 names root %d, rank %d root %d", first.root, r, c.root)
		}
	}
	if first.op != Sum && first.op != Avg {
		return nil, fmt.Errorf("dist: %s: op %d is not allowed (Sum or Avg)", first.kind, first.op)
	}
	out := make([][]float64, n)
	switch first.kind {
	case "AllReduce":
		red := reduceSum(calls, 0, len(first.in), first.op)
		for r := range out {
			out[r] = red
		}
	case "Broadcast":
		if first.root < 0 || first.root >= n {
			return nil, fmt.Errorf("dist: Broadcast: root %d is not a rank (0 to %d)", first.root, n-1)
		}
		for r := range out {
			out[r] = calls[first.root].in
		}
	case "AllGather":
		if first.outLen != n*len(first.in) {
			return nil, fmt.Errorf("dist: AllGather: out has %d elements, not %d ranks × %d", first.outLen, n, len(first.in))
		}
		all := make([]float64, 0, first.outLen)
		for _, c := range calls {
			all = append(all, c.in...)
		}
		for r := range out {
			out[r] = all
		}
	case "ReduceScatter":
		if len(first.in) != n*first.outLen {
			return nil, fmt.Errorf("dist: ReduceScatter: in has %d elements, not %d ranks × %d", len(first.in), n, first.outLen)
		}
		for r := range out {
			out[r] = reduceSum(calls, r*first.outLen, first.outLen, first.op)
		}
	}
	return out, nil
}

// reduceSum sums elements [off, off+m) of the calls' inputs in rank order,
// dividing by the rank count for Avg.
func reduceSum(calls []call, off, m int, op Op) []float64 {
	s := make([]float64, m)
	for _, c := range calls {
		for i := range s {
			s[i] += c.in[off+i]
		}
	}
	if op == Avg {
		for i := range s {
			s[i] /= float64(len(calls))
		}
	}
	return s
}
