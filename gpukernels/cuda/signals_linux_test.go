//go:build linux && (amd64 || arm64)

package cuda

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"
)

// A handler that lost SA_ONSTACK (as the CUDA libraries leave SIGTERM's)
// is found, re-flagged with everything else kept, and the signal is then
// delivered normally.
func TestKeepGoSignalStacks(t *testing.T) {
	const sig = int(syscall.SIGUSR2)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2) // Go's handler, with SA_ONSTACK
	defer signal.Stop(ch)
	var orig kernelSigaction
	if e := sigaction(sig, nil, &orig); e != 0 {
		t.Fatalf("reading the SIGUSR2 action: %v", e)
	}
	if orig.flags&saOnStack == 0 {
		t.Fatalf("Go's own SIGUSR2 handler has no SA_ONSTACK (flags %#x)", orig.flags)
	}
	stripped := orig
	stripped.flags &^= saOnStack
	if e := sigaction(sig, &stripped, nil); e != 0 {
		t.Fatalf("installing the stripped action: %v", e)
	}
	defer sigaction(sig, &orig, nil)

	if bad := handlersWithoutOnStack(); !slices.Contains(bad, sig) {
		t.Fatalf("handlersWithoutOnStack() = %v, want it to list %d", bad, sig)
	}
	if fixed := KeepGoSignalStacks(); !slices.Contains(fixed, sig) {
		t.Fatalf("KeepGoSignalStacks() = %v, want it to list %d", fixed, sig)
	}
	var now kernelSigaction
	sigaction(sig, nil, &now)
	if now != orig {
		t.Fatalf("after the fix the action is %+v, want the original %+v", now, orig)
	}
	if bad := handlersWithoutOnStack(); len(bad) != 0 {
		t.Fatalf("after the fix, handlers without SA_ONSTACK remain: %v", bad)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGUSR2 was not delivered")
	}
}
