package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
)

// symbol is one C function to bind: the Go function variable it fills and
// the exported names to try in order (the _v2 name first where the driver
// has one). Optional symbols may be missing; the variable then stays nil.
type symbol struct {
	fptr     any
	names    []string
	optional bool
}

func sym(fptr any, names ...string) symbol { return symbol{fptr: fptr, names: names} }

func optSym(fptr any, names ...string) symbol {
	return symbol{fptr: fptr, names: names, optional: true}
}

// bindAll resolves every symbol with Dlsym before registering it, because
// purego.RegisterLibFunc panics on a missing symbol. It returns the names of
// the optional symbols that were missing, and an error naming every missing
// required one.
func bindAll(handle uintptr, lib string, syms []symbol) (missingOptional []string, err error) {
	var missing []string
	for _, s := range syms {
		found := false
		for _, name := range s.names {
			addr, derr := purego.Dlsym(handle, name)
			if derr != nil || addr == 0 {
				continue
			}
			purego.RegisterFunc(s.fptr, addr)
			found = true
			break
		}
		if found {
			continue
		}
		if s.optional {
			missingOptional = append(missingOptional, s.names[0])
		} else {
			missing = append(missing, s.names[0])
		}
	}
	if len(missing) > 0 {
		return missingOptional, fmt.Errorf("%s lacks the symbols %v (too old a library?)", lib, missing)
	}
	return missingOptional, nil
}

// openFirst dlopens the first of names that loads (each through
// candidates) and returns its handle and path.
func openFirst(names ...string) (uintptr, string, error) {
	var errs []error
	for _, n := range names {
		h, path, err := Open(n)
		if err == nil {
			return h, path, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", n, err))
	}
	return 0, "", errors.Join(errs...)
}

// Error is a failed CUDA driver, NVRTC or cuBLAS call: the call's name, its
// numeric result and that result's name (as cuGetErrorName gives it), plus
// any detail such as the compiler's log.
type Error struct {
	Call   string
	Code   int
	Name   string
	Detail string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s failed: %s (%d)", e.Call, e.Name, e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// IsOutOfMemory reports whether err is a driver or cuBLAS out-of-memory
// result.
func IsOutOfMemory(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && (ce.Name == "CUDA_ERROR_OUT_OF_MEMORY" || ce.Name == "CUBLAS_STATUS_ALLOC_FAILED")
}

// cString reads a NUL-terminated C string.
func cString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cStrings returns a C array of NUL-terminated copies of ss (a char**) that
// stays valid while the pinner is pinned: C may hold pointers to Go memory
// only while it is pinned.
func cStrings(p *runtime.Pinner, ss []string) unsafe.Pointer {
	if len(ss) == 0 {
		return nil
	}
	ptrs := make([]*byte, len(ss))
	for i, s := range ss {
		b := append([]byte(s), 0)
		p.Pin(&b[0])
		ptrs[i] = &b[0]
	}
	p.Pin(&ptrs[0])
	return unsafe.Pointer(&ptrs[0])
}
