package gpukernels

// The harness of the GPU tests: one shared backend per element type, the
// CPU float64 reference (cpukernels.New[float64]()) fed the values exactly
// as the GPU stored them, NaN-poisoned outputs with NaN guard elements,
// gradient buffers pre-filled with random values and compared as
// after − before, and a record of the worst error seen per op for the
// summary printed at the end of the run.
//
// Without a CUDA driver every GPU test skips with the reason; with
// SEQBENCH_REQUIRE_GPU=1 (set on the GPU host) it fails instead, so a
// broken setup there cannot pass as "skipped".

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"seqbench/cpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
	"seqbench/nn/backendtest"
)

var (
	testMu       sync.Mutex
	testBackends = map[nn.DType]*Backend{}
	testCacheDir string
	worstMu      sync.Mutex
	worst        = map[string]float64{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "seqbench-cubin-test-")
	if err == nil {
		testCacheDir = dir
	}
	code := m.Run()
	for _, be := range testBackends {
		st := be.MemStats()
		fmt.Printf("%s: allocator peak %d bytes, %d cuMemAlloc, %d reuses; kernels: %+v\n", be.Name(), st.Peak, st.Allocs, st.Reuses, be.Stats())
		if err := be.Close(); err != nil {
			fmt.Printf("%s: Close: %v\n", be.Name(), err)
			code = 1
		}
	}
	printWorst()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// noGPU skips t (or fails it when SEQBENCH_REQUIRE_GPU=1).
func noGPU(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("SEQBENCH_REQUIRE_GPU") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// needGPU skips t when no GPU answers (fails it with
// SEQBENCH_REQUIRE_GPU=1): called by a parent test before its subtests, so
// that the parent reports SKIP rather than a PASS of skipped subtests.
func needGPU(t *testing.T) {
	t.Helper()
	gpu(t, nn.Float32)
}

// gpu returns the shared test backend of dt: every launch synchronised and
// checked, kernels cached in a temporary folder.
func gpu(t *testing.T, dt nn.DType) *Backend {
	t.Helper()
	testMu.Lock()
	defer testMu.Unlock()
	if be := testBackends[dt]; be != nil {
		return be
	}
	if _, err := cuda.LoadDriver(); err != nil {
		noGPU(t, "no CUDA driver: %v", err)
	}
	be, err := NewWithOptions(dt, Options{SyncEachLaunch: true, CacheDir: testCacheDir})
	if err != nil {
		noGPU(t, "a CUDA driver loads but the backend does not start: %v", err)
	}
	if len(testBackends) == 0 {
		d := be.Device()
		fmt.Printf("GPU: %s, %d SMs, CC %d.%d, %.1f GiB, L2 %d KiB, smem/block %d (opt-in %d), %s\n", d.Name, d.SMs,
			d.CCMajor, d.CCMinor, float64(d.TotalMem)/(1<<30), d.L2Bytes>>10, d.MaxSharedPerBlock, d.MaxSharedOptin, be.Versions())
	}
	testBackends[dt] = be
	return be
}

// dtypes are the element types every family test runs in.
var dtypes = []nn.DType{nn.Float32, nn.Float64}

// record notes the relative error of one comparison under key.
func record(key string, err float64) {
	worstMu.Lock()
	defer worstMu.Unlock()
	if e, ok := worst[key]; !ok || err > e || math.IsNaN(err) {
		worst[key] = err
	}
}

func printWorst() {
	worstMu.Lock()
	defer worstMu.Unlock()
	if len(worst) == 0 {
		return
	}
	keys := make([]string, 0, len(worst))
	for k := range worst {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("worst rel err vs the float64 CPU reference, per op and element type:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-40s %.3g\n", k, worst[k])
	}
	fmt.Print(b.String())
}

// guard is the number of NaN elements after every output buffer.
const guard = 3

// checker compares one GPU backend with the CPU float64 reference.
type checker struct {
	t               *testing.T
	g               *Backend
	c               *cpukernels.Backend[float64]
	rng             *rand.Rand
	fwdTol, gradTol float64
	family          string
}

func newChecker(t *testing.T, dt nn.DType, family string, seed uint64) *checker {
	be := gpu(t, dt)
	ck := &checker{t: t, g: be, c: cpukernels.New[float64](), rng: rand.New(rand.NewPCG(seed, uint64(dt))), family: family}
	ck.fwdTol, ck.gradTol = 1e-5, 1e-3
	if dt == nn.Float64 {
		ck.fwdTol, ck.gradTol = 1e-10, 1e-9
	}
	return ck
}

// pair is one tensor on both backends.
type pair struct {
	g      nn.Buffer
	c      nn.Buffer
	n      int       // elements that the op sees (a guard may follow)
	before []float64 // accumulators: the values before the op (as stored)
	acc    bool
}

func (ck *checker) alloc(n int) nn.Buffer {
	b := ck.g.Alloc(n)
	ck.t.Cleanup(func() { ck.g.Free(b) })
	return b
}

// in uploads vals; the CPU side gets the values as the GPU stored them.
func (ck *checker) in(vals []float64) pair {
	g := ck.alloc(len(vals))
	ck.g.Write(g, vals)
	stored := ck.g.Read(g)
	c := ck.c.Alloc(len(vals))
	ck.c.Write(c, stored)
	return pair{g: g, c: c, n: len(vals), before: stored}
}

// out is an output of n elements poisoned with NaN, followed by guard NaNs
// (exact: no guard, for ops whose length is the buffer's).
func (ck *checker) out(n int, exact bool) pair {
	m := n
	if !exact {
		m += guard
	}
	p := ck.in(nanSlice(m))
	p.n = n
	return p
}

// acc is a gradient buffer of n random elements (plus guard sentinels
// unless exact), compared as after − before.
func (ck *checker) acc(n int, exact bool) pair {
	vals := ck.randn(n, 1)
	if !exact {
		for range guard {
			vals = append(vals, 1234.5)
		}
	}
	p := ck.in(vals)
	p.n, p.acc = n, true
	return p
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

func (ck *checker) randn(n int, scale float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = scale * ck.rng.NormFloat64()
	}
	return s
}

// values reads both sides of p: the op's n elements (after − before for an
// accumulator), checking that the guard past them kept its value.
func (ck *checker) values(name string, p pair) (got, want []float64) {
	ck.t.Helper()
	gv, cv := ck.g.Read(p.g), ck.c.Read(p.c)
	for i := p.n; i < len(gv); i++ {
		if !same(gv[i], p.before[i]) {
			ck.t.Errorf("%s: guard element [%d] past the %d-element output changed from %v to %v", name, i, p.n, p.before[i], gv[i])
			break
		}
	}
	got, want = gv[:p.n], cv[:p.n]
	if p.acc {
		got, want = slices.Clone(got), slices.Clone(want)
		for i := range got {
			got[i] -= p.before[i]
			want[i] -= p.before[i]
		}
	}
	return got, want
}

func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// fwd and grad compare p on both backends with the forward or gradient
// tolerance, recording the error under the family and name.
func (ck *checker) fwd(name string, p pair) { ck.t.Helper(); ck.compare(name, p, ck.fwdTol) }

func (ck *checker) grad(name string, p pair) { ck.t.Helper(); ck.compare(name, p, ck.gradTol) }

func (ck *checker) compare(name string, p pair, tol float64) {
	ck.t.Helper()
	got, want := ck.values(name, p)
	ck.close(name, got, want, tol)
}

// close compares host slices with tol and records the error.
func (ck *checker) close(name string, got, want []float64, tol float64) {
	ck.t.Helper()
	err, _ := backendtest.RelErr(got, want)
	record(fmt.Sprintf("%s/%s %s", ck.family, name, ck.g.DType()), err)
	backendtest.AssertClose(ck.t, name, got, want, tol)
}

// expectPanic runs f and fails unless it panics with a message containing
// want.
func expectPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic, want one containing %q", want)
			return
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
			t.Errorf("panic %q, want one containing %q", msg, want)
		}
	}()
	f()
}

// Without a GPU, every TestGPU* test reports SKIP at the top level (none a
// PASS of skipped subtests), and with SEQBENCH_REQUIRE_GPU=1 none passes
// and some fail: the test binary runs itself to see the verdicts.
func TestSkipsWithoutGPU(t *testing.T) {
	if _, err := cuda.LoadDriver(); err == nil {
		t.Skip("a CUDA driver loads: the GPU tests run here")
	}
	verdicts := func(require bool) map[string]string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestGPU", "-test.v", "-test.count=1")
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SEQBENCH_REQUIRE_GPU=") })
		if require {
			cmd.Env = append(cmd.Env, "SEQBENCH_REQUIRE_GPU=1")
		}
		out, _ := cmd.CombinedOutput()
		v := map[string]string{}
		for line := range strings.Lines(string(out)) {
			// Top-level verdicts start the line; subtests are indented.
			f := strings.Fields(line)
			if strings.HasPrefix(line, "--- ") && len(f) >= 3 {
				v[f[2]] = strings.TrimSuffix(f[1], ":")
			}
		}
		if len(v) == 0 {
			t.Fatalf("no test verdicts in the output of %v:\n%s", cmd.Args, out)
		}
		return v
	}
	for name, verdict := range verdicts(false) {
		if verdict != "SKIP" {
			t.Errorf("without a GPU, %s reports %s, want SKIP", name, verdict)
		}
	}
	fails := 0
	for name, verdict := range verdicts(true) {
		if verdict == "PASS" {
			t.Errorf("with SEQBENCH_REQUIRE_GPU=1 and no GPU, %s passes", name)
		}
		if verdict == "FAIL" {
			fails++
		}
	}
	if fails == 0 {
		t.Error("with SEQBENCH_REQUIRE_GPU=1 and no GPU, no test fails")
	}
}
