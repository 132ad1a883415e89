//go:build linux

package gpukernels

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"seqbench/nn"
)

// SIGTERMs arriving while the GPU works (uploads, kernels, the synchronous
// download of a reduction: where a training was when SIGTERM killed it with
// "handler not on signal stack") are delivered to the program, which goes
// on: the backend re-flags the handlers the CUDA libraries install.
func TestGPUSignalsDuringWork(t *testing.T) {
	be := gpu(t, nn.Float32)
	x := be.Alloc(1 << 20)
	defer be.Free(x)
	t.Logf("handlers re-flagged with SA_ONSTACK: %v", be.signalsFixed)
	ch := make(chan os.Signal, 1024)
	signal.Notify(ch, syscall.SIGTERM)
	defer signal.Stop(ch)
	done := make(chan int)
	go func() {
		vals := make([]float64, 1<<20)
		n := 0
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); n++ {
			vals[n%len(vals)] = float64(n)
			be.Write(x, vals)
			be.SumSquares(x)
		}
		done <- n
	}()
	sent := 0
	for tick := time.NewTicker(2 * time.Millisecond); ; sent++ {
		select {
		case n := <-done:
			tick.Stop()
			t.Logf("%d SIGTERMs sent, %d received, during %d upload+reduce rounds", sent, len(ch), n)
			if len(ch) == 0 {
				t.Fatal("no SIGTERM reached the program")
			}
			return
		case <-tick.C:
			if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
	}
}
