package cuda

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// NVRTC is the run-time CUDA C++ compiler (libnvrtc), bound at run time. It
// needs no GPU: it compiles for whatever architecture it is told.
type NVRTC struct {
	Path         string
	Major, Minor int

	nvrtcVersion           func(major, minor *int32) int32
	nvrtcGetErrorString    func(r int32) *byte
	nvrtcCreateProgram     func(prog *uintptr, src, name string, numHeaders int32, headers, includeNames unsafe.Pointer) int32
	nvrtcDestroyProgram    func(prog *uintptr) int32
	nvrtcCompileProgram    func(prog uintptr, numOptions int32, options unsafe.Pointer) int32
	nvrtcGetProgramLogSize func(prog uintptr, size *uint64) int32
	nvrtcGetProgramLog     func(prog uintptr, log *byte) int32
	nvrtcGetCUBINSize      func(prog uintptr, size *uint64) int32
	nvrtcGetCUBIN          func(prog uintptr, cubin *byte) int32
}

var (
	nvrtcOnce sync.Once
	nvrtcVal  *NVRTC
	nvrtcErr  error
)

// LoadNVRTC dlopens libnvrtc (CUDA 13, then 12, then the unversioned name).
func LoadNVRTC() (*NVRTC, error) {
	nvrtcOnce.Do(func() { nvrtcVal, nvrtcErr = loadNVRTC() })
	return nvrtcVal, nvrtcErr
}

func loadNVRTC() (*NVRTC, error) {
	h, path, err := openFirst("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")
	if err != nil {
		return nil, fmt.Errorf("NVRTC did not load: %w", err)
	}
	preloadBuiltins(path)
	n := &NVRTC{Path: path}
	syms := []symbol{
		sym(&n.nvrtcVersion, "nvrtcVersion"),
		sym(&n.nvrtcGetErrorString, "nvrtcGetErrorString"),
		sym(&n.nvrtcCreateProgram, "nvrtcCreateProgram"),
		sym(&n.nvrtcDestroyProgram, "nvrtcDestroyProgram"),
		sym(&n.nvrtcCompileProgram, "nvrtcCompileProgram"),
		sym(&n.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize"),
		sym(&n.nvrtcGetProgramLog, "nvrtcGetProgramLog"),
		sym(&n.nvrtcGetCUBINSize, "nvrtcGetCUBINSize"),
		sym(&n.nvrtcGetCUBIN, "nvrtcGetCUBIN"),
	}
	if _, err := bindAll(h, path, syms); err != nil {
		return nil, err
	}
	var major, minor int32
	if err := n.check("nvrtcVersion", n.nvrtcVersion(&major, &minor)); err != nil {
		return nil, err
	}
	n.Major, n.Minor = int(major), int(minor)
	return n, nil
}

// preloadBuiltins dlopens the libnvrtc-builtins beside the libnvrtc that
// loaded from path: NVRTC opens it by name at its first compile, and the
// loader does not search the folder of a library loaded by full path.
func preloadBuiltins(path string) {
	dir := filepath.Dir(path)
	if dir == "." {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "libnvrtc-builtins.so.*"))
	for _, m := range matches {
		purego.Dlopen(m, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	}
}

func (n *NVRTC) check(call string, r int32) error {
	if r == 0 {
		return nil
	}
	return &Error{Call: call, Code: int(r), Name: cString(n.nvrtcGetErrorString(r))}
}

// Version is "major.minor".
func (n *NVRTC) Version() string { return fmt.Sprintf("%d.%d", n.Major, n.Minor) }

// Compile compiles CUDA C++ source to a cubin for the architecture named in
// opts (--gpu-architecture=sm_XY). A failed compilation returns an *Error
// whose Detail is the compiler's log; a successful one returns the log too
// (warnings).
func (n *NVRTC) Compile(src, name string, opts []string) (cubin []byte, log string, err error) {
	var prog uintptr
	if err := n.check("nvrtcCreateProgram("+name+")", n.nvrtcCreateProgram(&prog, src, name, 0, nil, nil)); err != nil {
		return nil, "", err
	}
	defer n.nvrtcDestroyProgram(&prog)

	var pin runtime.Pinner
	copts := cStrings(&pin, opts)
	cerr := n.check("nvrtcCompileProgram("+name+")", n.nvrtcCompileProgram(prog, int32(len(opts)), copts))
	pin.Unpin()

	var size uint64
	if err := n.check("nvrtcGetProgramLogSize", n.nvrtcGetProgramLogSize(prog, &size)); err == nil && size > 1 {
		buf := make([]byte, size)
		if n.nvrtcGetProgramLog(prog, &buf[0]) == 0 {
			log = strings.TrimRight(cString(&buf[0]), "\n")
		}
	}
	if cerr != nil {
		cerr.(*Error).Detail = fmt.Sprintf("options %v\n%s", opts, log)
		return nil, log, cerr
	}
	if err := n.check("nvrtcGetCUBINSize", n.nvrtcGetCUBINSize(prog, &size)); err != nil {
		return nil, log, err
	}
	if size == 0 {
		return nil, log, &Error{Call: "nvrtcGetCUBINSize", Name: "empty cubin (was a virtual compute_XY architecture given?)"}
	}
	cubin = make([]byte, size)
	if err := n.check("nvrtcGetCUBIN", n.nvrtcGetCUBIN(prog, &cubin[0])); err != nil {
		return nil, log, err
	}
	return cubin, log, nil
}
