package dist_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"seqbench/cpukernels"
	"seqbench/dist"
)

// env is a getenv over a fixed set of variables.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestLaunchFromEnv(t *testing.T) {
	l, ok, err := dist.LaunchFromEnv(env())
	if err != nil || ok {
		t.Fatalf("no variables: %+v, %v, %v; want a process of its own", l, ok, err)
	}
	// seqbench's own variables round-trip through RankEnv.
	l, ok, err = dist.LaunchFromEnv(env(dist.RankEnv("abc", 2, 4)...))
	if want := (dist.Launch{Rank: 2, Size: 4, LocalRank: 2, ID: "abc"}); err != nil || !ok || l != want {
		t.Fatalf("RankEnv: %+v, %v, %v; want %+v", l, ok, err, want)
	}
	// srun's.
	l, ok, err = dist.LaunchFromEnv(env("SLURM_PROCID=5", "SLURM_NTASKS=8", "SLURM_LOCALID=1", "SLURM_JOB_ID=77", "SLURM_STEP_ID=0"))
	if want := (dist.Launch{Rank: 5, Size: 8, LocalRank: 1, ID: "slurm-77.0"}); err != nil || !ok || l != want {
		t.Fatalf("Slurm: %+v, %v, %v; want %+v", l, ok, err, want)
	}
	// seqbench's variables win over Slurm's (seqbench run inside a job).
	l, _, err = dist.LaunchFromEnv(env(append(dist.RankEnv("x", 0, 2), "SLURM_PROCID=3", "SLURM_NTASKS=4", "SLURM_LOCALID=3", "SLURM_JOB_ID=1")...))
	if err != nil || l.Size != 2 || l.ID != "x" {
		t.Fatalf("both: %+v, %v", l, err)
	}
}

func TestLaunchFromEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		vars []string
		want string
	}{
		{[]string{"SEQBENCH_RANK=1", "SEQBENCH_WORLD_SIZE=two", "SEQBENCH_LOCAL_RANK=1", "SEQBENCH_LAUNCH=a"}, `SEQBENCH_WORLD_SIZE: "two" is not allowed`},
		{[]string{"SEQBENCH_RANK=2", "SEQBENCH_WORLD_SIZE=2", "SEQBENCH_LOCAL_RANK=0", "SEQBENCH_LAUNCH=a"}, "SEQBENCH_RANK: 2 is not allowed (below SEQBENCH_WORLD_SIZE = 2)"},
		{[]string{"SEQBENCH_RANK=0", "SEQBENCH_WORLD_SIZE=0", "SEQBENCH_LOCAL_RANK=0", "SEQBENCH_LAUNCH=a"}, "SEQBENCH_WORLD_SIZE: 0 is not allowed"},
		{[]string{"SEQBENCH_RANK=-1", "SEQBENCH_WORLD_SIZE=2", "SEQBENCH_LOCAL_RANK=0", "SEQBENCH_LAUNCH=a"}, `SEQBENCH_RANK: "-1" is not allowed`},
		{[]string{"SEQBENCH_RANK=1", "SEQBENCH_WORLD_SIZE=2", "SEQBENCH_LAUNCH=a"}, `SEQBENCH_LOCAL_RANK: "" is not allowed`},
		{[]string{"SEQBENCH_RANK=1", "SEQBENCH_WORLD_SIZE=2", "SEQBENCH_LOCAL_RANK=1"}, "SEQBENCH_LAUNCH is not set"},
		{[]string{"SLURM_PROCID=1", "SLURM_NTASKS=4", "SLURM_LOCALID=2", "SLURM_JOB_ID=9"}, "SLURM_LOCALID: 2 is not allowed"},
		{[]string{"SLURM_PROCID=1", "SLURM_NTASKS=4", "SLURM_LOCALID=1"}, "SLURM_JOB_ID is not set"},
	} {
		_, ok, err := dist.LaunchFromEnv(env(tc.vars...))
		if err == nil || ok || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: ok %v, error %v; want one containing %q", tc.vars, ok, err, tc.want)
		}
	}
}

func TestRendezvous(t *testing.T) {
	dir := t.TempDir()
	id := bytes.Repeat([]byte{0xab, 0x01}, 64) // NCCL's ids are 128 bytes
	ctx := context.Background()

	// An earlier launch's file is waited past, and the wait times out
	// saying what it found.
	if err := dist.WriteRendezvous(dir, "old", []byte{1}); err != nil {
		t.Fatal(err)
	}
	_, err := dist.ReadRendezvous(ctx, dir, "new", 30*time.Millisecond, 5*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), `launch "old"`) || !strings.Contains(err.Error(), "did rank 0 start") {
		t.Fatalf("stale file: %v", err)
	}

	// A reader that starts first gets the id once rank 0 writes it.
	got := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		id, err := dist.ReadRendezvous(ctx, dir, "new", 10*time.Second, 2*time.Millisecond)
		errc <- err
		got <- id
	}()
	time.Sleep(20 * time.Millisecond)
	if err := dist.WriteRendezvous(dir, "new", id); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if g := <-got; !bytes.Equal(g, id) {
		t.Fatalf("read %x, wrote %x", g, id)
	}

	// Not a rendezvous: an error at once, not a wait.
	if err := os.WriteFile(filepath.Join(dir, dist.RendezvousFile), []byte("nonsense"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := dist.ReadRendezvous(ctx, dir, "new", 10*time.Second, time.Millisecond); err == nil || !strings.Contains(err.Error(), "not a rendezvous file") {
		t.Fatalf("garbage: %v", err)
	}

	// A cancelled context ends the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := dist.ReadRendezvous(cctx, t.TempDir(), "x", 10*time.Second, time.Millisecond); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
}

// Connect's ranks, started in any order (here rank 0 last), all open the
// communicator of the id rank 0 drew.
func TestConnect(t *testing.T) {
	const n = 3
	dir := t.TempDir()
	var mu sync.Mutex
	groups := map[string][]dist.Comm{} // by id: what NCCL's init would join
	open := func(id []byte, rank, size int) (dist.Comm, error) {
		mu.Lock()
		defer mu.Unlock()
		if groups[string(id)] == nil {
			groups[string(id)] = dist.NewLocal(size)
		}
		return groups[string(id)][rank], nil
	}
	draws := 0
	newID := func() ([]byte, error) { draws++; return []byte("id-of-launch-7"), nil }
	comms := make([]dist.Comm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := n - 1; r >= 0; r-- {
		wg.Go(func() {
			comms[r], errs[r] = dist.Connect(context.Background(), dist.Launch{Rank: r, Size: n, LocalRank: r, ID: "7"}, dir, 10*time.Second, newID, open)
		})
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	noErrors(t, errs)
	if draws != 1 || len(groups) != 1 {
		t.Fatalf("%d ids drawn, %d communicators: want 1 of each", draws, len(groups))
	}
	// The handles work together.
	noErrors(t, func() []error {
		out := make([]error, n)
		var wg sync.WaitGroup
		for r, c := range comms {
			wg.Go(func() {
				be := cpukernels.New[float32]()
				buf := be.Alloc(1)
				be.Write(buf, []float64{1})
				out[r] = c.AllReduce(be, buf, dist.Sum)
				if out[r] == nil && be.Read(buf)[0] != n {
					out[r] = errors.New("wrong sum")
				}
			})
		}
		wg.Wait()
		return out
	}())

	// A rank whose rank 0 never publishes gives up, saying so.
	_, err := dist.Connect(context.Background(), dist.Launch{Rank: 1, Size: 2, ID: "8"}, t.TempDir(), 50*time.Millisecond, newID, open)
	if err == nil || !strings.Contains(err.Error(), "rank 1: no id from rank 0") {
		t.Fatalf("no rank 0: %v", err)
	}
	// A communicator that opens as another rank is refused.
	_, err = dist.Connect(context.Background(), dist.Launch{Rank: 0, Size: 2, ID: "9"}, t.TempDir(), time.Second, newID,
		func([]byte, int, int) (dist.Comm, error) { return dist.NewLocal(3)[1], nil })
	if err == nil || !strings.Contains(err.Error(), "opened as rank 1 of 3") {
		t.Fatalf("wrong handle: %v", err)
	}
}
