package nccl

// GPU tests of the NCCL communicator. Without a CUDA driver, a GPU or
// libnccl.so.2 they skip with the reason; with SEQBENCH_REQUIRE_GPU=1 (set
// on the GPU hosts) they fail instead, so a broken setup cannot pass as
// "skipped". The two-rank test needs two GPUs and skips with fewer.

import (
	"fmt"
	"os"
	"seqbench/dist"
	"slices"
	"strings"
	"sync"
	"testing"

	"seqbench/gpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

func noGPU(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("SEQBENCH_REQUIRE_GPU") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// ncclBackend returns a CUDA backend of type dt on device (every launch
// checked), closed at the end of t, once NCCL has loaded.
func ncclBackend(t *testing.T, device int, dt nn.DType) *gpukernels.Backend {
	t.Helper()
	if _, err := cuda.LoadDriver(); err != nil {
		noGPU(t, "no CUDA driver: %v", err)
	}
	lib, err := cuda.LoadNCCL()
	if err != nil {
		noGPU(t, "no NCCL: %v", err)
	}
	be, err := gpukernels.NewWithOptions(dt, gpukernels.Options{Device: device, SyncEachLaunch: true, CacheDir: "-"})
	if err != nil {
		noGPU(t, "a CUDA driver loads but the backend does not start: %v", err)
	}
	t.Cleanup(func() {
		if err := be.Close(); err != nil {
			t.Errorf("closing the backend of device %d: %v", device, err)
		}
	})
	if device == 0 && dt == nn.Float32 {
		nvls, _ := os.LookupEnv(cuda.NVLSEnv)
		t.Logf("NCCL %s from %s; %s=%q; %s", cuda.NCCLVersionString(lib.Version), lib.Path, cuda.NVLSEnv, nvls, be.Versions())
	}
	return be
}

// closeAtEnd closes c when t ends (before the backends, registered
// earlier).
func closeAtEnd(t *testing.T, c dist.Comm) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close of rank %d: %v", c.Rank(), err)
		}
	})
}

// mixed returns be's bfloat16 backend, which allocates float32 and
// bfloat16 buffers.
func mixed(t *testing.T, be *gpukernels.Backend) nn.MixedBackend {
	t.Helper()
	m, err := be.BF16()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// upload returns a buffer of type dt holding vals (exact in bfloat16).
func upload(m nn.MixedBackend, dt nn.DType, vals []float64) nn.Buffer {
	b := m.AllocAs(len(vals), dt)
	m.Write(b, vals)
	return b
}

// poisoned returns a buffer of n elements of type dt, all 99: a result
// must overwrite each.
func poisoned(m nn.MixedBackend, dt nn.DType, n int) nn.Buffer {
	b := m.AllocAs(n, dt)
	m.Fill(b, 99)
	return b
}

func wantValues(t *testing.T, what string, m nn.MixedBackend, b nn.Buffer, want []float64) {
	t.Helper()
	if got := m.Read(b); !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// A world of one rank through real NCCL: every collective leaves the
// rank's own values (the average of one is itself), in float32 and in
// bfloat16, passed as NCCL's types with the buffers' device addresses on
// the backend's stream; and mismatched arguments are refused in Go.
func TestGPUNCCLOneRank(t *testing.T) {
	be := ncclBackend(t, 0, nn.Float32)
	id, err := NewUniqueID()
	must(t, "NewUniqueID", err)
	if id == ([IDBytes]byte{}) {
		t.Fatal("NewUniqueID returned an id of zeros")
	}
	back, err := DecodeUniqueID(EncodeUniqueID(id) + "\n")
	must(t, "id through its text", err)
	c, err := NewNCCL(be, 0, 1, back)
	must(t, "NewNCCL", err)
	closeAtEnd(t, c)
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("rank %d of %d, want 0 of 1", c.Rank(), c.Size())
	}
	if n, err := c.(*ncclComm).comm.Count(); n != 1 || err != nil {
		t.Fatalf("ncclCommCount = %d, %v; want 1", n, err)
	}
	m := mixed(t, be)
	x := []float64{1.5, -2.25, 3, 0.125, 7, -0.5}
	for _, dt := range []nn.DType{nn.Float32, nn.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			// A float32 buffer goes with the float32 backend, a bfloat16
			// one with the mixed backend that made it.
			var onBe nn.Backend = be
			if dt == nn.BFloat16 {
				onBe = m
			}
			buf := upload(m, dt, x)
			must(t, "AllReduce dist.Sum", c.AllReduce(onBe, buf, dist.Sum))
			wantValues(t, "AllReduce dist.Sum", m, buf, x)
			must(t, "AllReduce dist.Avg", c.AllReduce(onBe, buf, dist.Avg))
			wantValues(t, "AllReduce dist.Avg", m, buf, x)
			must(t, "Broadcast", c.Broadcast(onBe, buf, 0))
			wantValues(t, "Broadcast", m, buf, x)

			out := poisoned(m, dt, len(x))
			must(t, "AllGather", c.AllGather(onBe, out, buf))
			wantValues(t, "AllGather", m, out, x)
			out = poisoned(m, dt, len(x))
			must(t, "ReduceScatter", c.ReduceScatter(onBe, out, buf, dist.Sum))
			wantValues(t, "ReduceScatter", m, out, x)

			// Refused before NCCL, naming the op and the field.
			other := nn.Float32
			if dt == nn.Float32 {
				other = nn.BFloat16
			}
			for _, e := range []struct {
				err  error
				want string
			}{
				{c.AllGather(m, m.AllocAs(len(x)+1, dt), buf), "dist.AllGather: out holds 7 elements, must hold size·in.Len() = 1·6 = 6"},
				{c.ReduceScatter(m, m.AllocAs(len(x), other), buf, dist.Sum), fmt.Sprintf("dist.ReduceScatter: out is %v but in is %v", other, dt)},
				{c.AllReduce(m, buf, dist.Op(9)), "dist.AllReduce: op 9: allowed dist.Sum (0), dist.Avg (1)"},
				{c.Broadcast(m, buf, 1), "dist.Broadcast: root 1: must be a rank, 0..0"},
			} {
				if e.err == nil || !strings.HasPrefix(e.err.Error(), e.want) {
					t.Errorf("got %v, want %q", e.err, e.want)
				}
			}
			wantValues(t, "buf after the refused calls", m, buf, x)
		})
	}
}

// float64 goes as NCCL's float64: a world of one on a float64 backend
// (a second communicator on device 0).
func TestGPUNCCLOneRankFloat64(t *testing.T) {
	be := ncclBackend(t, 0, nn.Float64)
	id, err := NewUniqueID()
	must(t, "NewUniqueID", err)
	c, err := NewNCCL(be, 0, 1, id)
	must(t, "NewNCCL", err)
	closeAtEnd(t, c)
	x := []float64{1.0 / 3, -2e-300, 7}
	buf := be.Alloc(len(x))
	be.Write(buf, x)
	must(t, "AllReduce dist.Avg", c.AllReduce(be, buf, dist.Avg))
	if got := be.Read(buf); !slices.Equal(got, x) {
		t.Errorf("AllReduce dist.Avg = %v, want %v", got, x)
	}
	out := be.Alloc(len(x))
	be.Write(out, []float64{99, 99, 99}) // (Fill would compile a kernel)
	must(t, "AllGather", c.AllGather(be, out, buf))
	if got := be.Read(out); !slices.Equal(got, x) {
		t.Errorf("AllGather = %v, want %v (float64 values that float32 cannot hold)", got, x)
	}
}

// Two ranks on two GPUs of one process, each rank's calls from its own
// goroutine as from its own process, then both from one goroutine in an
// NCCL group: the sums, averages, broadcast and gathered blocks are the
// host's (values exact in bfloat16).
func TestGPUNCCLTwoRanks(t *testing.T) {
	drv, err := cuda.LoadDriver()
	if err != nil {
		noGPU(t, "no CUDA driver: %v", err)
	}
	if n, err := drv.DeviceCount(); err != nil || n < 2 {
		t.Skipf("needs 2 GPUs, %d present (%v)", n, err)
	}
	bes := []*gpukernels.Backend{ncclBackend(t, 0, nn.Float32), ncclBackend(t, 1, nn.Float32)}
	id, err := NewUniqueID()
	must(t, "NewUniqueID", err)
	comms := make([]dist.Comm, 2)
	onEach := func(what string, f func(r int) error) {
		t.Helper()
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for r := range 2 {
			wg.Go(func() { errs[r] = f(r) })
		}
		wg.Wait()
		for r, err := range errs {
			must(t, fmt.Sprintf("%s on rank %d", what, r), err)
		}
	}
	onEach("NewNCCL", func(r int) error {
		var err error
		comms[r], err = NewNCCL(bes[r], r, 2, id)
		return err
	})
	for _, c := range comms {
		closeAtEnd(t, c)
	}
	ms := []nn.MixedBackend{mixed(t, bes[0]), mixed(t, bes[1])}
	base := []float64{1, -2, 0.5, 3}
	scaled := func(k float64) []float64 {
		out := make([]float64, len(base))
		for i, v := range base {
			out[i] = k * v
		}
		return out
	}
	for _, dt := range []nn.DType{nn.Float32, nn.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			// Rank r holds (r+1)·base.
			bufs := []nn.Buffer{upload(ms[0], dt, scaled(1)), upload(ms[1], dt, scaled(2))}
			onEach("AllReduce dist.Sum", func(r int) error { return comms[r].AllReduce(ms[r], bufs[r], dist.Sum) })
			for r := range 2 {
				wantValues(t, fmt.Sprintf("rank %d AllReduce dist.Sum", r), ms[r], bufs[r], scaled(3))
			}
			onEach("AllReduce dist.Avg", func(r int) error { return comms[r].AllReduce(ms[r], bufs[r], dist.Avg) })
			for r := range 2 {
				wantValues(t, fmt.Sprintf("rank %d AllReduce dist.Avg of 3·base twice", r), ms[r], bufs[r], scaled(3))
			}

			bufs = []nn.Buffer{upload(ms[0], dt, scaled(1)), upload(ms[1], dt, scaled(2))}
			onEach("Broadcast", func(r int) error { return comms[r].Broadcast(ms[r], bufs[r], 1) })
			for r := range 2 {
				wantValues(t, fmt.Sprintf("rank %d Broadcast from 1", r), ms[r], bufs[r], scaled(2))
			}

			ins := []nn.Buffer{upload(ms[0], dt, scaled(1)), upload(ms[1], dt, scaled(2))}
			outs := []nn.Buffer{poisoned(ms[0], dt, 2*len(base)), poisoned(ms[1], dt, 2*len(base))}
			onEach("AllGather", func(r int) error { return comms[r].AllGather(ms[r], outs[r], ins[r]) })
			for r := range 2 {
				wantValues(t, fmt.Sprintf("rank %d AllGather", r), ms[r], outs[r], append(scaled(1), scaled(2)...))
			}

			// Rank r holds [(r+1)·base, (r+1)·(-base)]; block b of the
			// sum is 3·base, then -3·base.
			ins = []nn.Buffer{upload(ms[0], dt, append(scaled(1), scaled(-1)...)), upload(ms[1], dt, append(scaled(2), scaled(-2)...))}
			outs = []nn.Buffer{poisoned(ms[0], dt, len(base)), poisoned(ms[1], dt, len(base))}
			onEach("ReduceScatter", func(r int) error { return comms[r].ReduceScatter(ms[r], outs[r], ins[r], dist.Sum) })
			wantValues(t, "rank 0 ReduceScatter", ms[0], outs[0], scaled(3))
			wantValues(t, "rank 1 ReduceScatter", ms[1], outs[1], scaled(-3))

			// Both ranks from one goroutine: the calls only queue inside
			// the group, and NCCL issues them together at its end.
			bufs = []nn.Buffer{upload(ms[0], dt, scaled(1)), upload(ms[1], dt, scaled(2))}
			must(t, "NCCLGroup", NCCLGroup(func() error {
				for r := range 2 {
					if err := comms[r].AllReduce(ms[r], bufs[r], dist.Avg); err != nil {
						return err
					}
				}
				return nil
			}))
			for r := range 2 {
				wantValues(t, fmt.Sprintf("rank %d AllReduce dist.Avg in a group", r), ms[r], bufs[r], scaled(1.5))
			}
		})
	}
}
