package dist_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"seqbench/cpukernels"
	"seqbench/dist"
	"seqbench/nn"
)

// onRanks runs f on every rank of a fresh local communicator of n ranks,
// each on its own goroutine with its own float32 CPU backend, and returns
// the ranks' errors.
func onRanks(n int, f func(c dist.Comm, be nn.Backend) error) []error {
	comms := dist.NewLocal(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { errs[r] = f(c, cpukernels.New[float32]()) })
	}
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

func equal(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: [%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

func TestAllReduce(t *testing.T) {
	const n = 3
	for _, tc := range []struct {
		op   dist.Op
		want []float64
	}{
		// rank r holds {r+1, 10(r+1), 0.5}.
		{dist.Sum, []float64{6, 60, 1.5}},
		{dist.Avg, []float64{2, 20, 0.5}},
	} {
		got := make([][]float64, n)
		noErrors(t, onRanks(n, func(c dist.Comm, be nn.Backend) error {
			r := float64(c.Rank() + 1)
			buf := be.Alloc(3)
			be.Write(buf, []float64{r, 10 * r, 0.5})
			if err := c.AllReduce(be, buf, tc.op); err != nil {
				return err
			}
			got[c.Rank()] = be.Read(buf)
			return nil
		}))
		for r := range got {
			equal(t, "AllReduce", got[r], tc.want)
		}
	}
}

func TestBroadcast(t *testing.T) {
	const n = 4
	got := make([][]float64, n)
	noErrors(t, onRanks(n, func(c dist.Comm, be nn.Backend) error {
		buf := be.Alloc(2)
		be.Write(buf, []float64{float64(c.Rank()), -float64(c.Rank())})
		if err := c.Broadcast(be, buf, 2); err != nil {
			return err
		}
		got[c.Rank()] = be.Read(buf)
		return nil
	}))
	for r := range got {
		equal(t, "Broadcast", got[r], []float64{2, -2})
	}
}

func TestAllGatherAndReduceScatter(t *testing.T) {
	const n = 3
	gathered := make([][]float64, n)
	scattered := make([][]float64, n)
	noErrors(t, onRanks(n, func(c dist.Comm, be nn.Backend) error {
		r := float64(c.Rank())
		in, out := be.Alloc(2), be.Alloc(2*n)
		be.Write(in, []float64{r, r + 0.5})
		if err := c.AllGather(be, out, in); err != nil {
			return err
		}
		gathered[c.Rank()] = be.Read(out)
		// Rank r contributes {0, 1, ..., 5} + r; block k of the sum is
		// elements 2k, 2k+1 summed over ranks: 3·(2k) + 3, 3·(2k+1) + 3.
		big, blk := be.Alloc(2*n), be.Alloc(2)
		vals := make([]float64, 2*n)
		for i := range vals {
			vals[i] = float64(i) + r
		}
		be.Write(big, vals)
		if err := c.ReduceScatter(be, blk, big, dist.Sum); err != nil {
			return err
		}
		scattered[c.Rank()] = be.Read(blk)
		return nil
	}))
	for r := range n {
		equal(t, "AllGather", gathered[r], []float64{0, 0.5, 1, 1.5, 2, 2.5})
		k := float64(r)
		equal(t, "ReduceScatter", scattered[r], []float64{6*k + 3, 6*k + 6})
	}
}

// A bfloat16 buffer's sum is rounded to bfloat16 when written back: 1 +
// 2^-8 is not a bfloat16 value (8 significant bits) and rounds to even, 1.
func TestAllReduceBF16(t *testing.T) {
	const n = 2
	got := make([][]float64, n)
	errs := make([]error, n)
	comms := dist.NewLocal(n)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() {
			be := cpukernels.NewBF16()
			buf := be.AllocAs(3, nn.BFloat16)
			v := []float64{1, 0.5, 3}
			if r == 1 {
				v = []float64{math.Ldexp(1, -8), 0.25, 5}
			}
			be.Write(buf, v)
			errs[r] = c.AllReduce(be, buf, dist.Sum)
			got[r] = be.Read(buf)
		})
	}
	wg.Wait()
	noErrors(t, errs)
	for r := range got {
		equal(t, "bf16 AllReduce", got[r], []float64{1, 0.75, 8})
	}
}

// A mismatch is an error on every rank, naming what differs; none hangs.
func TestMismatchFailsEveryRank(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		f          func(c dist.Comm, be nn.Backend) error
	}{
		{"length", "elements", func(c dist.Comm, be nn.Backend) error {
			return c.AllReduce(be, be.Alloc(2+c.Rank()), dist.Sum)
		}},
		{"collective", "called", func(c dist.Comm, be nn.Backend) error {
			if c.Rank() == 1 {
				return c.Broadcast(be, be.Alloc(2), 0)
			}
			return c.AllReduce(be, be.Alloc(2), dist.Sum)
		}},
		{"type", "bfloat16", func(c dist.Comm, be nn.Backend) error {
			if c.Rank() == 1 {
				bf := cpukernels.NewBF16()
				return c.AllReduce(bf, bf.AllocAs(2, nn.BFloat16), dist.Sum)
			}
			return c.AllReduce(be, be.Alloc(2), dist.Sum)
		}},
		{"root", "root", func(c dist.Comm, be nn.Backend) error {
			return c.Broadcast(be, be.Alloc(2), c.Rank())
		}},
		{"root out of range", "not a rank", func(c dist.Comm, be nn.Backend) error {
			return c.Broadcast(be, be.Alloc(2), 5)
		}},
		{"gather size", "ranks ×", func(c dist.Comm, be nn.Backend) error {
			return c.AllGather(be, be.Alloc(3), be.Alloc(2))
		}},
		{"op", "op", func(c dist.Comm, be nn.Backend) error {
			return c.AllReduce(be, be.Alloc(2), dist.Op(c.Rank()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for r, err := range onRanks(3, tc.f) {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("rank %d: error %v, want one containing %q", r, err, tc.want)
				}
			}
		})
	}
}

// A rank that closes fails the collective the others wait in, and every
// later one.
func TestCloseFailsWaitingRanks(t *testing.T) {
	errs := onRanks(3, func(c dist.Comm, be nn.Backend) error {
		if c.Rank() == 2 {
			return c.Close()
		}
		err := c.AllReduce(be, be.Alloc(1), dist.Sum)
		if err2 := c.AllReduce(be, be.Alloc(1), dist.Sum); !errors.Is(err2, dist.ErrClosed) {
			return err2
		}
		return err
	})
	if errs[2] != nil {
		t.Fatalf("Close: %v", errs[2])
	}
	for r := range 2 {
		if !errors.Is(errs[r], dist.ErrClosed) {
			t.Errorf("rank %d: %v, want ErrClosed", r, errs[r])
		}
	}
}

// Many collectives in a row stay in step (no rank reads another round's
// result).
func TestManyRounds(t *testing.T) {
	const n, rounds = 4, 200
	noErrors(t, onRanks(n, func(c dist.Comm, be nn.Backend) error {
		buf := be.Alloc(1)
		for i := range rounds {
			be.Write(buf, []float64{float64(i*n + c.Rank())})
			if err := c.AllReduce(be, buf, dist.Sum); err != nil {
				return err
			}
			// Σ_r (i·n + r) = i·n² + n(n−1)/2.
			if got, want := be.Read(buf)[0], float64(i*n*n+n*(n-1)/2); got != want {
				return errors.New("wrong round result")
			}
		}
		return nil
	}))
}
