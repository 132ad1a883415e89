package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"

	_ "seqbench/arch/attention" // registers transformer
	_ "seqbench/arch/ssm"       // registers s4d
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny are options that run a suite in well under a second on the CPU.
func tiny(suite string) Options {
	o := DefaultOptions()
	o.Suite, o.Repeat = suite, 3
	o.Warmup, o.MinSample = time.Millisecond, 50*time.Microsecond
	o.CopyElems, o.GemmSize = 1<<16, 64
	return o
}

func TestBenchKernelsSuite(t *testing.T) {
	d := NewDevice(cpukernels.New[float32](), "", "")
	o := tiny("kernels")
	o.Lengths = []int{8, 24} // L not a multiple of any chunk
	f, err := Run(d, o)
	require.NoError(t, err)
	require.Empty(t, f.Skipped)
	require.NotNil(t, f.Ceilings)
	assert.Greater(t, f.Ceilings.CopyBytesPerS, 0.0)
	assert.Greater(t, f.Ceilings.GemmFLOPsPerS, 0.0)
	// Every op × length forward, and forward+backward but for the ops
	// without a backward.
	fwdOnly := []string{"add", "axpy", "fill", "sum_squares", "adamw", "argmax", "s4d_step"}
	assert.Equal(t, (2*len(kernels)-len(fwdOnly))*2, len(f.Results), "every op × pass × length")
	for _, r := range f.Results {
		assert.False(t, r.Pass == PassForwardBackward && slices.Contains(fwdOnly, r.Op), r.Name)
	}
	assert.Equal(t, "cpu-float32", f.Backend)
	assert.Contains(t, f.Device, "cores")
	seen := map[string]bool{}
	for _, r := range f.Results {
		assert.False(t, seen[r.Name], "name %s twice", r.Name)
		seen[r.Name] = true
		k, ok := lookupKernel(r.Op)
		require.True(t, ok, r.Op)
		assert.True(t, strings.HasPrefix(r.Name, k.Bench+"/pass="+r.Pass+"/"), r.Name)
		assert.True(t, strings.HasSuffix(r.Name, fmt.Sprintf("/L=%d", r.L)), r.Name)
		assert.Len(t, r.Samples, 3, r.Name)
		assert.Greater(t, r.Median, 0.0, r.Name)
		assert.LessOrEqual(t, r.Min, r.Q1, r.Name)
		assert.LessOrEqual(t, r.Q1, r.Median, r.Name)
		assert.LessOrEqual(t, r.Median, r.Q3, r.Name)
		assert.LessOrEqual(t, r.Q3, r.Max, r.Name)
		assert.Greater(t, r.Bytes, 0.0, r.Name)
		if !slices.Contains([]string{"fill", "permute", "copy_block", "embedding"}, r.Op) || r.Pass == PassForwardBackward && r.Op == "embedding" {
			assert.Greater(t, r.FLOPs, 0.0, r.Name) // the layout ops compute nothing
		}
		assert.InDelta(t, r.Bytes/r.Median, r.BytesPerS, 1e-9*r.BytesPerS, r.Name)
		assert.InDelta(t, math.Max(r.FracBandwidth, r.FracFLOPs), r.FracCeiling, 1e-12, r.Name)
		assert.Contains(t, []string{"memory", "compute"}, r.Bound)
		assert.GreaterOrEqual(t, r.Reps, 1)
		assert.NotEmpty(t, r.Variant)
		assert.NotContains(t, r.Variant, "L=")
	}
	// The forward+backward moves more and computes more than the forward.
	for _, r := range f.Results {
		if r.Pass != PassForwardBackward {
			continue
		}
		fwd := strings.Replace(r.Name, "pass=fwdbwd", "pass=fwd", 1)
		i := slices.IndexFunc(f.Results, func(x Result) bool { return x.Name == fwd })
		require.GreaterOrEqual(t, i, 0, fwd)
		assert.Greater(t, r.Bytes, f.Results[i].Bytes, r.Name)
		assert.GreaterOrEqual(t, r.FLOPs, f.Results[i].FLOPs, r.Name)
	}

	// The files: JSON that ReadFile accepts, benchfmt lines benchstat reads
	// (one per sample, with units). reports' TestBenchRunReport draws them.
	dir := t.TempDir()
	path := filepath.Join(dir, "cpu.bench.json")
	text, err := WriteFiles(f, path)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "cpu.bench.txt"), text)
	back, err := ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, f.Results[3].Samples, back.Results[3].Samples)
	assert.Equal(t, f.Results[3].Shape, back.Results[3].Shape)

	tf, err := os.Open(text)
	require.NoError(t, err)
	defer tf.Close()
	rd := benchfmt.NewReader(tf, text)
	n, units, better := 0, map[string]bool{}, map[string]string{}
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.Result:
			n++
			assert.Equal(t, "cpu-float32", rec.GetConfig("backend"))
			for _, v := range rec.Values {
				units[v.Unit] = true
			}
		case *benchfmt.UnitMetadata:
			better[rec.Unit] = rec.Value
		case *benchfmt.SyntaxError:
			t.Errorf("benchfmt: %v", rec)
		}
	}
	require.NoError(t, rd.Err())
	assert.Len(t, f.Ceilings.Copy.Samples, 6, "ceilings measured before and after")
	assert.Equal(t, 3*len(f.Results)+12, n, "one line per sample, ceilings included")
	assert.Equal(t, map[string]bool{"sec/op": true, "B/s": true, "FLOP/s": true}, units)
	assert.Equal(t, map[string]string{"B/s": "higher", "FLOP/s": "higher", "tokens/s": "higher"}, better)

	var tab bytes.Buffer
	require.NoError(t, WriteTable(&tab, f))
	assert.Contains(t, tab.String(), "% copy BW")
	assert.Contains(t, tab.String(), "selective_scan")
}

func TestBenchModelSuites(t *testing.T) {
	d := NewDevice(cpukernels.New[float32](), "", "")
	for _, suite := range []string{"train", "generate", "memory"} {
		t.Run(suite, func(t *testing.T) {
			o := tiny(suite)
			o.Ceilings = suite == "train"
			o.Model = ModelOptions{DModel: 16, NLayers: 1, Vocab: 32, Prompt: 8, NewTokens: 3}
			o.Lengths, o.Batches = []int{8}, []int{2}
			f, err := Run(d, o)
			require.NoError(t, err)
			require.Empty(t, f.Skipped)
			require.Len(t, f.Results, 2) // transformer, s4d (the archs this test binary registers)
			for _, r := range f.Results {
				assert.Contains(t, []string{"s4d", "transformer"}, r.Arch)
				assert.Greater(t, r.Params, 0)
				assert.Greater(t, r.Median, 0.0)
				assert.Greater(t, r.PeakBytes, int64(4*r.Params), "parameters alone take 4 bytes each")
				assert.Greater(t, r.TokensPerS, 0.0)
				switch suite {
				case "generate":
					assert.Equal(t, "Generate/arch="+r.Arch+"/d_model=16/n_layers=1/B=2/prompt=8/new=3", r.Name)
					assert.Equal(t, 11, r.L)
					assert.Equal(t, 6, r.Tokens)
					assert.Greater(t, r.StateBytes, int64(0))
					assert.Greater(t, r.PrefillS, 0.0)
					assert.Greater(t, r.DecodeS, 0.0)
				default:
					assert.Equal(t, 16, r.Tokens)
					assert.Greater(t, r.FLOPs, 0.0)
					assert.Equal(t, PassForwardBackward, r.Pass)
				}
			}
			if suite == "train" {
				assert.Greater(t, f.Results[0].FracFLOPs, 0.0)
			}
			var tab bytes.Buffer
			require.NoError(t, WriteTable(&tab, f))
			assert.Contains(t, tab.String(), "transformer")
		})
	}
}

func TestBenchOptionsCheck(t *testing.T) {
	for i, c := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Suite = "speed" }, `--suite "speed"`},
		{func(o *Options) { o.Ops = []string{"scan"} }, `unknown op "scan"`},
		{func(o *Options) { o.Lengths = []int{0} }, "--lengths: 0"},
		{func(o *Options) { o.Batches = []int{-1} }, "--batch: -1"},
		{func(o *Options) { o.Model.DModel = -4 }, "--d-model: -4"},
	} {
		o := DefaultOptions()
		c.mod(&o)
		err := o.Check()
		if assert.Error(t, err, "case %d", i) {
			assert.Contains(t, err.Error(), c.want, "case %d", i)
		}
	}
	assert.NoError(t, DefaultOptions().Check())
}

// A kernel that panics (an op a backend lacks) is skipped with the reason;
// the others still run.
type lackingBackend struct{ nn.Backend }

func (lackingBackend) SelectiveScan(out, hT nn.Buffer, a nn.ScanArgs) { panic("not implemented") }

func TestBenchSkipsFailingOps(t *testing.T) {
	d := NewDevice(lackingBackend{cpukernels.New[float32]()}, "test", "")
	o := tiny("kernels")
	o.Ceilings = false
	o.Ops, o.Lengths = []string{"selective_scan", "rmsnorm"}, []int{8}
	f, err := Run(d, o)
	require.NoError(t, err)
	require.Len(t, f.Skipped, 2)
	assert.Contains(t, f.Skipped[0].Reason, "not implemented")
	require.Len(t, f.Results, 2)
	assert.Equal(t, "rmsnorm", f.Results[0].Op)
	assert.Zero(t, f.Results[0].FracCeiling, "no ceilings measured")
}

// fakeTimer returns the given per-call times and counts the calls.
type fakeTimer struct {
	ms    float64
	calls int
}

func (f *fakeTimer) Time(reps int, fn func()) (float64, error) {
	for range reps {
		fn()
	}
	f.calls += reps
	return f.ms, nil
}

func TestBenchMeasureWithDeviceTimer(t *testing.T) {
	ft := &fakeTimer{ms: 0.5}
	d := &Device{Backend: cpukernels.New[float32](), Timer: ft}
	o := Options{Repeat: 4, Warmup: 3 * time.Millisecond, MinSample: 2 * time.Millisecond}
	runs := 0
	samples, reps, err := d.measure(func() { runs++ }, o)
	require.NoError(t, err)
	assert.Equal(t, 4, reps, "2 ms samples of 0.5 ms calls")
	assert.Equal(t, []float64{0.0005, 0.0005, 0.0005, 0.0005}, samples)
	// The first call, then warm-up calls until 3 ms are spent, then 4 samples of 4.
	assert.Equal(t, 1+6+4*4, runs)
	assert.Equal(t, runs, ft.calls)

	_, _, err = d.measure(func() { panic("device lost") }, o)
	assert.ErrorContains(t, err, "device lost")
}

func TestBenchInputsAreRandom(t *testing.T) {
	be := cpukernels.New[float32]()
	rng := rand.New(rand.NewPCG(1, 2))
	in := newInputs(be, newPools(rng), rng, 1<<20)
	defer in.free()
	n := fillChunk + 1000 // through the staging buffer
	a, b := be.Read(in.normal(n, 0, 1)), be.Read(in.normal(n, 0, 1))
	zeros, same := 0, 0
	sum, sq := 0.0, 0.0
	for i := range a {
		if a[i] == 0 {
			zeros++
		}
		if a[i] == b[i] {
			same++
		}
		sum += a[i]
		sq += a[i] * a[i]
	}
	assert.Zero(t, zeros, "never zeros")
	assert.Less(t, same, n/1000, "two fills differ")
	assert.InDelta(t, 0, sum/float64(n), 0.01)
	assert.InDelta(t, 1, sq/float64(n), 0.01)
	u := be.Read(in.uniform(1000, -16, -1))
	assert.Equal(t, -1.0, math.Max(-1, slices.Max(u)))
	assert.GreaterOrEqual(t, slices.Min(u), -16.0)

	assert.Equal(t, 1, in.sets(2<<20), "larger than the cache: one set")
	assert.Equal(t, 4, in.sets(512<<10))
	assert.Equal(t, 16, in.sets(10), "at most 16")
}

func TestBenchDeriveStatistics(t *testing.T) {
	r := Result{Samples: []float64{4, 1, 3, 2, 5}, Bytes: 30, FLOPs: 300, Tokens: 6}
	r.derive(&Ceilings{CopyBytesPerS: 100, GemmFLOPsPerS: 200})
	assert.Equal(t, []float64{4, 1, 3, 2, 5}, r.Samples, "samples stay in measured order")
	assert.Equal(t, [5]float64{1, 2, 3, 4, 5}, [5]float64{r.Min, r.Q1, r.Median, r.Q3, r.Max})
	assert.Equal(t, 10.0, r.BytesPerS)
	assert.Equal(t, 100.0, r.FLOPsPerS)
	assert.Equal(t, 2.0, r.TokensPerS)
	assert.Equal(t, 0.1, r.FracBandwidth)
	assert.Equal(t, 0.5, r.FracFLOPs)
	assert.Equal(t, 0.5, r.FracCeiling)
	assert.Equal(t, "compute", r.Bound)
	assert.Equal(t, 2.5, quantile([]float64{1, 2, 3, 4}, 0.5))
}

func TestHumanSeconds(t *testing.T) {
	cases := map[float64]string{4.2e-7: "420 ns", 0.000412: "412 µs", 0.0123: "12.3 ms", 1.5: "1.5 s", 86400: "8.64e+04 s",
		0: "-", -1: "-", math.NaN(): "-", math.Inf(1): "-"}
	for s, want := range cases {
		assert.Equal(t, want, HumanSeconds(s), "%v", s)
	}
}

func TestBenchCeilingsTakeTheFastestSample(t *testing.T) {
	c := &Ceilings{Copy: Result{Samples: []float64{4, 2}, Bytes: 8}, Gemm: Result{Samples: []float64{1}, FLOPs: 10}}
	c.merge(&Ceilings{Copy: Result{Samples: []float64{1, 3}}, Gemm: Result{Samples: []float64{5}}})
	assert.Equal(t, 8.0, c.CopyBytesPerS)
	assert.Equal(t, 10.0, c.GemmFLOPsPerS)
	assert.Equal(t, []float64{4, 2, 1, 3}, c.Copy.Samples)
	assert.Equal(t, 2.5, c.Copy.Median)
}

func TestRegressMinimumPValue(t *testing.T) {
	assert.InDelta(t, 2.0/70, minUTestP(4, 4), 1e-12)
	assert.InDelta(t, 2.0/20, minUTestP(3, 3), 1e-12)
	assert.InDelta(t, 2.0/184756, minUTestP(10, 10), 1e-15)
	assert.Equal(t, 1.0, minUTestP(1, 1))
	assert.Equal(t, 1.0, minUTestP(0, 5))
}

func TestRegressCompareVerdicts(t *testing.T) {
	mk := func(dev string, samples ...[]float64) *File {
		f := &File{Device: dev, Backend: "cpu-float32"}
		for i, s := range samples {
			f.Results = append(f.Results, Result{Name: fmt.Sprint("B", i), Samples: s})
		}
		return f
	}
	ten := func(c float64) []float64 {
		s := make([]float64, 10)
		for i := range s {
			s[i] = c * (1 + 0.001*float64(i))
		}
		return s
	}
	old := mk("d", ten(1), ten(1), ten(1), ten(1))
	cur := mk("d", ten(1.2), ten(0.8), ten(1.03), ten(1))
	c, err := Compare(old, cur, CompareOptions{Threshold: 0.05, Alpha: 0.05})
	require.NoError(t, err)
	var got []string
	for _, d := range c.Deltas {
		got = append(got, d.Verdict)
	}
	assert.Equal(t, []string{Slower, Faster, Same, Same}, got, "the +3% is significant but under the threshold")
	assert.Equal(t, 1, c.Regressions)
	assert.InDelta(t, 0.2, c.Deltas[0].Change, 1e-9)
	assert.Less(t, c.Deltas[0].P, 1e-4)

	cur.Results = append(cur.Results, Result{Name: "new", Samples: []float64{1}})
	old.Results = append(old.Results, Result{Name: "gone", Samples: []float64{1}})
	c, err = Compare(old, cur, CompareOptions{Threshold: 0.05, Alpha: 0.05})
	require.NoError(t, err)
	assert.Equal(t, []string{"new"}, c.OnlyNew)
	assert.Equal(t, []string{"gone"}, c.OnlyOld)

	_, err = Compare(old, mk("other", ten(1)), CompareOptions{Threshold: 0.05, Alpha: 0.05})
	assert.ErrorContains(t, err, "different devices")
	_, err = Compare(old, mk("d"), CompareOptions{Threshold: 0.05, Alpha: 0.05})
	assert.ErrorContains(t, err, "no benchmark in common")
}

// cancelAfter is a Progress writer that cancels the run's context when the
// n-th benchmark line is written (the ceilings lines do not count), as a
// SIGINT during the next benchmark would.
type cancelAfter struct {
	n      int
	lines  int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if !strings.HasPrefix(string(p), "ceilings") {
		if c.lines++; c.lines == c.n {
			c.cancel()
		}
	}
	return len(p), nil
}

// A run cancelled after its first benchmark stops there: an Interrupted
// file with that benchmark alone, its statistics derived, and no closing
// ceilings measurement; in every suite.
func TestBenchInterruptKeepsFinishedBenchmarks(t *testing.T) {
	d := NewDevice(cpukernels.New[float32](), "", "")
	for _, suite := range Suites {
		t.Run(suite, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := tiny(suite)
			o.Progress = &cancelAfter{n: 1, cancel: cancel}
			o.Model = ModelOptions{DModel: 16, NLayers: 1, Vocab: 32, Prompt: 8, NewTokens: 3}
			o.Lengths, o.Batches, o.Archs = []int{8, 16}, []int{2}, []string{"s4d", "transformer"}
			if suite == "kernels" {
				o.Ops = []string{"rmsnorm", "conv1d"}
			}
			f, err := RunContext(ctx, d, o)
			require.NoError(t, err)
			assert.True(t, f.Interrupted)
			require.Len(t, f.Results, 1, "the benchmark in progress finishes, no other starts")
			r := f.Results[0]
			switch suite {
			case "kernels":
				assert.Equal(t, "RMSNorm/pass=fwd/B=2/D=512/L=8", r.Name)
			case "generate":
				assert.Equal(t, "Generate/arch=s4d/d_model=16/n_layers=1/B=2/prompt=8/new=3", r.Name)
			default:
				assert.Regexp(t, `^Train(Step|Memory)/arch=s4d/d_model=16/n_layers=1/B=2/L=8$`, r.Name)
			}
			assert.Len(t, r.Samples, 3)
			assert.Greater(t, r.Median, 0.0)
			assert.LessOrEqual(t, r.Min, r.Median)
			assert.LessOrEqual(t, r.Median, r.Max)
			require.NotNil(t, f.Ceilings)
			assert.Len(t, f.Ceilings.Copy.Samples, 3, "the closing ceilings did not run")
			if suite == "kernels" || suite == "train" {
				assert.Greater(t, r.FracCeiling, 0.0, "fractions of the starting ceilings")
			}

			// The partial file round-trips with its mark.
			path := filepath.Join(t.TempDir(), "part.bench.json")
			_, err = WriteFiles(f, path)
			require.NoError(t, err)
			back, err := ReadFile(path)
			require.NoError(t, err)
			assert.True(t, back.Interrupted)
			assert.Len(t, back.Results, 1)
			var tab bytes.Buffer
			require.NoError(t, WriteTable(&tab, f))
			assert.Contains(t, tab.String(), "interrupted: 1 benchmarks finished")
		})
	}

	// Cancelled before the start: nothing runs, not even the ceilings.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := RunContext(ctx, d, tiny("kernels"))
	require.NoError(t, err)
	assert.True(t, f.Interrupted)
	assert.Empty(t, f.Results)
	assert.Nil(t, f.Ceilings)

	// A run to the end is not marked.
	o := tiny("kernels")
	o.Ops, o.Lengths, o.Ceilings = []string{"rmsnorm"}, []int{8}, false
	f, err = RunContext(context.Background(), d, o)
	require.NoError(t, err)
	assert.False(t, f.Interrupted)
	assert.Len(t, f.Results, 2)
	data, err := json.Marshal(f)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "interrupted")
}

// The host's 1-minute load is read at the start and the end of a run from
// /proc/loadavg, and left 0 where that file is absent.
func TestBenchHostLoad(t *testing.T) {
	if runtime.GOOS == "linux" {
		// The load changes at most every 5 s: one of two reads around the call.
		first := func() float64 {
			data, err := os.ReadFile("/proc/loadavg")
			require.NoError(t, err)
			v, err := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
			require.NoError(t, err)
			return v
		}
		before := first()
		got := load1()
		after := first()
		assert.Contains(t, []float64{before, after}, got)
	}
	defer func(p string) { loadavgPath = p }(loadavgPath)
	dir := t.TempDir()
	loadavgPath = filepath.Join(dir, "loadavg")
	require.NoError(t, os.WriteFile(loadavgPath, []byte("20.31 18.02 12.50 21/1875 4242\n"), 0o644))
	d := NewDevice(cpukernels.New[float32](), "", "")
	o := tiny("kernels")
	o.Ops, o.Lengths, o.Ceilings = []string{"rmsnorm"}, []int{8}, false
	f, err := Run(d, o)
	require.NoError(t, err)
	assert.Equal(t, 20.31, f.Host.Load1Start)
	assert.Equal(t, 20.31, f.Host.Load1End)
	data, err := json.Marshal(f.Host)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"load1_start":20.31,"load1_end":20.31`)
	var tab bytes.Buffer
	require.NoError(t, WriteTable(&tab, f))
	assert.Contains(t, tab.String(), "host load (1 min) 20.31 → 20.31 on ")

	loadavgPath = filepath.Join(dir, "absent")
	f, err = Run(d, o)
	require.NoError(t, err)
	assert.Zero(t, f.Host.Load1Start)
	assert.Zero(t, f.Host.Load1End)
	tab.Reset()
	require.NoError(t, WriteTable(&tab, f))
	assert.NotContains(t, tab.String(), "host load")
}

// The header of a comparison shows both files' host load and says when a
// file was interrupted.
func TestRegressHeaderLoadAndInterrupted(t *testing.T) {
	mk := func(l0, l1 float64, interrupted bool) *File {
		return &File{Device: "d", Backend: "cpu-float32", Interrupted: interrupted,
			Host:    Host{CPUs: 192, Load1Start: l0, Load1End: l1},
			Results: []Result{{Name: "B0", Samples: []float64{1, 1.01, 1.02, 1.03}}}}
	}
	header := func(old, cur *File) string {
		c, err := Compare(old, cur, CompareOptions{Threshold: 0.05, Alpha: 0.05})
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, c.WriteTable(&b))
		return b.String()
	}
	out := header(mk(0.5, 0.75, true), mk(20.31, 21, false))
	assert.Contains(t, out, "host load (1 min) baseline 0.50 → 0.75, current 20.31 → 21.00 on 192 CPUs\n")
	assert.Contains(t, out, "baseline was interrupted: only the benchmarks it finished are compared\n")
	assert.NotContains(t, out, "current was interrupted")

	out = header(mk(0, 0, false), mk(0, 0, true))
	assert.NotContains(t, out, "host load", "no load recorded (an older file, no /proc/loadavg)")
	assert.NotContains(t, out, "baseline was interrupted")
	assert.Contains(t, out, "current was interrupted: only the benchmarks it finished are compared\n")
}

// resourceBackend is a CPU backend that reports kernel resources, as
// gpukernels does.
type resourceBackend struct{ nn.Backend }

func (resourceBackend) KernelResources() map[string][2]int {
	return map[string][2]int{"norm/rmsnorm_fwd_warp": {91, 0}, "attention/attn_fwd": {56, 8}}
}

func TestBenchRecordsKernelResources(t *testing.T) {
	o := tiny("kernels")
	o.Ops, o.Lengths, o.Ceilings = []string{"add"}, []int{8}, false
	f, err := Run(NewDevice(resourceBackend{cpukernels.New[float32]()}, "", ""), o)
	require.NoError(t, err)
	assert.Equal(t, []KernelResource{{"attention/attn_fwd", 56, 8}, {"norm/rmsnorm_fwd_warp", 91, 0}}, f.KernelResources)
	data, err := json.Marshal(f)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"kernel_resources":[{"kernel":"attention/attn_fwd","registers":56,"local_bytes":8}`)

	f, err = Run(NewDevice(cpukernels.New[float32](), "", ""), o)
	require.NoError(t, err)
	assert.Nil(t, f.KernelResources, "the CPU backend reports none")
}

// Generation's prefill never holds the prompt's logits (B·P, V): only each
// sequence's last row (arch.LastStepper). At B 2, P 256, V 512 those
// logits alone would take 1 MiB, far more than this small model's peak.
func TestBenchGeneratePrefillHoldsLastLogitsOnly(t *testing.T) {
	o := tiny("generate")
	o.Archs, o.Batches = []string{"s4d"}, []int{2}
	o.Model = ModelOptions{DModel: 8, NLayers: 1, Vocab: 512, Prompt: 256, NewTokens: 2}
	f, err := Run(NewDevice(cpukernels.New[float32](), "", ""), o)
	require.NoError(t, err)
	require.Len(t, f.Results, 1, f.Skipped)
	logits := int64(2 * 256 * 512 * 4)
	assert.Less(t, f.Results[0].PeakBytes, logits/2, "peak %d bytes; the prompt's logits take %d", f.Results[0].PeakBytes, logits)
}
