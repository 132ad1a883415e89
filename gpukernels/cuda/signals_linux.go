//go:build linux && (amd64 || arm64)

package cuda

import (
	"syscall"
	"unsafe"
)

// The Go runtime runs its signal handlers on a per-thread alternate stack
// and requires every handler in the process to be installed with
// SA_ONSTACK (os/signal, "Go programs that use cgo"). Something in the
// CUDA libraries installs handlers without it: a SIGTERM sent to a
// training on the H200 then killed it with "signal 15 received but handler
// not on signal stack" instead of letting it save its checkpoint (2 of 11
// processes, 2026-11-28). KeepGoSignalStacks adds the flag back.

const saOnStack = 0x08000000

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on
// amd64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

func sigaction(sig int, act, old *kernelSigaction) syscall.Errno {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)),
		uintptr(unsafe.Pointer(old)), 8, 0, 0)
	return e
}

// handlersWithoutOnStack lists the signals whose handler is a function
// installed without SA_ONSTACK.
func handlersWithoutOnStack() []int {
	var bad []int
	for sig := 1; sig <= 64; sig++ {
		var old kernelSigaction
		if sigaction(sig, nil, &old) != 0 {
			continue // SIGKILL, SIGSTOP, or reserved by the C library
		}
		if old.handler > 1 && old.flags&saOnStack == 0 { // not SIG_DFL (0) nor SIG_IGN (1)
			bad = append(bad, sig)
		}
	}
	return bad
}

// KeepGoSignalStacks re-installs every handler that lacks SA_ONSTACK with
// the flag added (same function, mask and other flags) and returns the
// signals it changed. Call it after loading or initialising CUDA
// libraries.
func KeepGoSignalStacks() []int {
	var fixed []int
	for _, sig := range handlersWithoutOnStack() {
		var act kernelSigaction
		if sigaction(sig, nil, &act) != 0 {
			continue
		}
		act.flags |= saOnStack
		if sigaction(sig, &act, nil) == 0 {
			fixed = append(fixed, sig)
		}
	}
	return fixed
}
