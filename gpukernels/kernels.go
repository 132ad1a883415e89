package gpukernels

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"seqbench/gpukernels/cuda"
	"seqbench/internal/atomicfile"
	"seqbench/nn"
)

// The CUDA C++ sources: common.cuh is prepended to each family.
//
//go:embed common.cuh *.cu
var sources embed.FS

// families lists the kernel families: the .cu files of the package,
// without .cu (one per op family).
var families = func() []string {
	names, err := fs.Glob(sources, "*.cu")
	if err != nil {
		panic(err)
	}
	for i, n := range names {
		names[i] = strings.TrimSuffix(n, ".cu")
	}
	return names
}()

// kernelSource returns the full source NVRTC compiles for one family and
// activation type dt (float64, float32, or bfloat16: float32 math and
// parameters with bfloat16 activations, common.cuh's act): the REAL and
// ACT_IS_BF16 definitions, common.cuh, the family's contract
// (contract.go: its constants and params structs), then the family's file
// (with a #line so the compiler's log names the right file and line).
func kernelSource(family string, dt nn.DType) (string, error) {
	common, err := sources.ReadFile("common.cuh")
	if err != nil {
		return "", err
	}
	body, err := sources.ReadFile(family + ".cu")
	if err != nil {
		return "", fmt.Errorf("gpukernels: no kernel source %s.cu: %w", family, err)
	}
	real, isDouble, isBF16 := "float", 0, 0
	switch dt {
	case nn.Float64:
		real, isDouble = "double", 1
	case nn.BFloat16:
		isBF16 = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#define REAL %s\n#define REAL_IS_DOUBLE %d\n#define ACT_IS_BF16 %d\n#line 1 \"common.cuh\"\n",
		real, isDouble, isBF16)
	b.Write(common)
	fmt.Fprintf(&b, "\n#line 1 \"%s contract (contract.go)\"\n", family)
	b.WriteString(contractSource(family, dt))
	fmt.Fprintf(&b, "#line 1 \"%s.cu\"\n", family)
	b.Write(body)
	return b.String(), nil
}

// compileOptions are NVRTC's flags for arch (e.g. "sm_90"). -ftz=true makes
// float32 arithmetic flush subnormals to zero, as the CPU kernels do by hand
// (docs/DESIGN.md "Subnormal floats"); it does not touch double.
func compileOptions(arch string) []string {
	return []string{"--gpu-architecture=" + arch, "--std=c++17", "-default-device", "-ftz=true"}
}

// kernel is one loaded function and the dynamic shared memory it has been
// allowed so far.
type kernel struct {
	name   string
	f      uintptr
	maxDyn int
	// resident caches, per dynamic shared-memory size, whether a block of
	// rnnThreads can be resident (the persistent RNN kernels ask every call).
	resident map[int]bool
	// params is the kernel's parameter list in its source (signature.go).
	params []string
}

// modKey names a loaded build: a family in one activation type.
type modKey struct {
	family string
	act    nn.DType
}

type module struct {
	h      uintptr
	funcs  map[string]*kernel
	params map[string][]string // each kernel's parameters, from the source
}

// cacheKey names a compiled family: the hash of everything that changes the
// cubin (source, target, compiler, driver and options).
func (be *Backend) cacheKey(src string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00driver %d\x00nvrtc %s\x00%v", src, be.dev.Arch(), be.dev.DriverVersion,
		be.nvrtc.Version(), compileOptions(be.dev.Arch()))
	return hex.EncodeToString(h.Sum(nil))
}

// loadModule compiles (or finds in the disk cache) and loads one family.
// A cache entry that does not load is compiled again and replaced; a cache
// that cannot be written only costs the next run a compile.
func (be *Backend) loadModule(family string, dt nn.DType) (*module, error) {
	src, err := kernelSource(family, dt)
	if err != nil {
		return nil, err
	}
	params, err := kernelParams(src)
	if err != nil {
		return nil, fmt.Errorf("reading the kernels' parameters of %s.cu: %w", family, err)
	}
	path := ""
	if be.cacheDir != "" {
		path = filepath.Join(be.cacheDir, be.cacheKey(src)+".cubin")
		if image, err := os.ReadFile(path); err == nil {
			if h, err := be.drv.ModuleLoadData(image); err == nil {
				be.stats.CacheHits++
				return &module{h: h, funcs: map[string]*kernel{}, params: params}, nil
			}
			be.stats.CacheBad++
		}
	}
	cubin, _, err := be.nvrtc.Compile(src, family+".cu", compileOptions(be.dev.Arch()))
	if err != nil {
		return nil, err
	}
	be.stats.Compiles++
	h, err := be.drv.ModuleLoadData(cubin)
	if err != nil {
		return nil, fmt.Errorf("loading the cubin NVRTC %s built for %s: %w", be.nvrtc.Version(), be.dev.Arch(), err)
	}
	if path != "" {
		// Errors are ignored: the cache is an optimisation.
		if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
			_ = atomicfile.WriteFile(path, cubin)
		}
	}
	return &module{h: h, funcs: map[string]*kernel{}, params: params}, nil
}

// fn returns kernel name of family in the backend's element type,
// compiling and loading the family on first use. It runs inside an op
// (context current) and panics with an *OpError on failure.
func (be *Backend) fn(op, family, name string) *kernel { return be.fnAs(op, be.dtype, family, name) }

// fnAs is fn for the build of family whose activations are of type act
// (an op's actType): the bfloat16 build for bfloat16 activations.
func (be *Backend) fnAs(op string, act nn.DType, family, name string) *kernel {
	key := modKey{family, act}
	m := be.mods[key]
	if m == nil {
		var err error
		if m, err = be.loadModule(family, act); err != nil {
			panic(&OpError{Op: op, Err: fmt.Errorf("kernels %s.cu (%v): %w", family, act, err)})
		}
		be.mods[key] = m
		// NVRTC and the module loader are loaded lazily, here.
		be.signalsFixed = append(be.signalsFixed, cuda.KeepGoSignalStacks()...)
	}
	k := m.funcs[name]
	if k == nil {
		f, err := be.drv.ModuleGetFunction(m.h, name)
		if err != nil {
			panic(&OpError{Op: op, Err: err})
		}
		k = &kernel{name: name, f: f, maxDyn: 48 << 10, params: m.params[name]}
		m.funcs[name] = k
	}
	return k
}
