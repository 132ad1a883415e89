package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"seqbench/arch"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// typesBF16 is cpu-bfloat16 recording the types of RMSNorm's and Gemm's
// buffers as the kernels suite passes them.
type typesBF16 struct {
	*cpukernels.BF16
	seen map[string]nn.DType
}

func (b *typesBF16) RMSNorm(out, rstd, x, w nn.Buffer, rows, d int, eps float64) {
	for name, buf := range map[string]nn.Buffer{"out": out, "rstd": rstd, "x": x, "w": w} {
		b.seen["rmsnorm."+name] = nn.DTypeOf(b, buf)
	}
	b.BF16.RMSNorm(out, rstd, x, w, rows, d, eps)
}

// The kernels suite in bf16 on cpu-bfloat16: every name has a
// /dtype=bf16 component after the pass (and fp32 names none, exactly as
// before), the file records the precision, each op gets its activations
// in bfloat16 and its weights and statistics in float32 (the table of
// docs/PRECISION.md), and bytes count 2 an activation element, 4 a
// float32 one.
func TestBenchKernelsBF16(t *testing.T) {
	be := &typesBF16{cpukernels.NewBF16(), map[string]nn.DType{}}
	o := tiny("kernels")
	o.Lengths, o.Precision = []int{8}, PrecisionBF16
	f, err := Run(NewDevice(be, "", ""), o)
	require.NoError(t, err)
	require.Empty(t, f.Skipped)
	assert.Equal(t, PrecisionBF16, f.Precision)
	assert.Equal(t, "cpu-bfloat16", f.Backend)
	assert.Equal(t, "CeilingCopy/dtype=bf16/n=65536", f.Ceilings.Copy.Name)
	var rms *Result
	for i, r := range f.Results {
		k, _ := lookupKernel(r.Op)
		assert.True(t, strings.HasPrefix(r.Name, k.Bench+"/pass="+r.Pass+"/dtype=bf16/"), r.Name)
		if r.Name == "RMSNorm/pass=fwd/dtype=bf16/B=1/D=512/L=8" {
			rms = &f.Results[i]
		}
	}
	require.NotNil(t, rms)
	assert.Equal(t, map[string]nn.DType{"rmsnorm.out": nn.BFloat16, "rmsnorm.x": nn.BFloat16,
		"rmsnorm.rstd": nn.Float32, "rmsnorm.w": nn.Float32}, be.seen)
	// x read and out written at 2 bytes (8·512 each), w and rstd at 4.
	assert.Equal(t, 2*2*8*512+4*(512+8.0), rms.Bytes)

	f32, err := Run(NewDevice(cpukernels.New[float32](), "", ""), Options{Suite: "kernels", Ops: []string{"rmsnorm"},
		Lengths: []int{8}, Repeat: 1, Warmup: 1, MinSample: 1})
	require.NoError(t, err)
	assert.Equal(t, PrecisionFP32, f32.Precision)
	assert.Equal(t, "RMSNorm/pass=fwd/B=1/D=512/L=8", f32.Results[0].Name, "fp32 names as before precisions")
	assert.Equal(t, 4*(2*8*512+512+8.0), f32.Results[0].Bytes)
}

// The train suite in bf16 runs the bf16 model path: its activations are
// bfloat16, so the live buffers at the peak (counted 2 bytes a bfloat16
// element) are far fewer bytes than fp32's, and the names say bf16.
func TestBenchTrainBF16(t *testing.T) {
	run := func(be nn.Backend, precision string) Result {
		o := tiny("train")
		o.Archs, o.Lengths, o.Batches, o.Ceilings, o.Precision = []string{"transformer"}, []int{64}, []int{4}, false, precision
		o.Model = ModelOptions{DModel: 32, NLayers: 1, Vocab: 64}
		f, err := Run(NewDevice(be, "", ""), o)
		require.NoError(t, err)
		require.Len(t, f.Results, 1, f.Skipped)
		return f.Results[0]
	}
	fp32 := run(cpukernels.New[float32](), PrecisionFP32)
	bf16 := run(cpukernels.NewBF16(), PrecisionBF16)
	assert.Equal(t, "TrainStep/arch=transformer/d_model=32/n_layers=1/B=4/L=64", fp32.Name)
	assert.Equal(t, "TrainStep/arch=transformer/d_model=32/n_layers=1/dtype=bf16/B=4/L=64", bf16.Name)
	assert.Equal(t, "cpu-bfloat16", bf16.Impl)
	assert.Equal(t, fp32.Params, bf16.Params)
	assert.Less(t, float64(bf16.PeakBytes), 0.8*float64(fp32.PeakBytes),
		"peak %d bytes in bf16 against %d in fp32", bf16.PeakBytes, fp32.PeakBytes)
}

// A run refuses a backend that does not compute in its precision, and
// options refuse an unknown one.
func TestBenchPrecisionChecks(t *testing.T) {
	o := tiny("kernels")
	o.Ops, o.Lengths = []string{"add"}, []int{8}
	o.Precision = PrecisionBF16
	_, err := Run(NewDevice(cpukernels.New[float32](), "", ""), o)
	assert.ErrorContains(t, err, "precision bf16 needs a backend with bfloat16 activations (cpu-bfloat16), not cpu-float32")
	o.Precision = PrecisionFP32
	_, err = Run(NewDevice(cpukernels.NewBF16(), "", ""), o)
	assert.ErrorContains(t, err, "precision fp32 needs a backend without bfloat16 activations, not cpu-bfloat16")
	o.Precision = "fp16"
	assert.ErrorContains(t, o.Check(), `--dtype "fp16" is not allowed (one of fp32, tf32, bf16)`)
}

// A file without a precision (written before precisions existed) reads
// as fp32; an unknown precision is an error naming the file and value.
func TestBenchParsePrecision(t *testing.T) {
	dir := t.TempDir()
	write := func(name, precision string) string {
		p := filepath.Join(dir, name)
		field := ""
		if precision != "" {
			field = fmt.Sprintf(`"precision": %q,`, precision)
		}
		require.NoError(t, os.WriteFile(p, []byte(`{"schema": "seqbench-bench/1", `+field+
			`"results": [{"name": "X", "samples_s": [1]}]}`), 0o644))
		return p
	}
	f, err := ReadFile(write("old.json", ""))
	require.NoError(t, err)
	assert.Equal(t, PrecisionFP32, f.Precision)
	f, err = ReadFile(write("bf.json", "bf16"))
	require.NoError(t, err)
	assert.Equal(t, PrecisionBF16, f.Precision)
	_, err = ReadFile(write("bad.json", "fp8"))
	assert.ErrorContains(t, err, `bad.json: precision "fp8" is not allowed (one of fp32, tf32, bf16)`)
}

// regress compares a precision with itself only: files of different
// precisions are refused, --allow-device-change or not; an fp32 file and
// one that records no precision compare.
func TestRegressRefusesPrecisionChange(t *testing.T) {
	mk := func(precision string) *File {
		return &File{Device: "d", Backend: "cpu-float32", Precision: precision,
			Results: []Result{{Name: "X", Samples: []float64{1, 1.1, 1.2, 1.3}}}}
	}
	for _, allow := range []bool{false, true} {
		_, err := Compare(mk("fp32"), mk("tf32"), CompareOptions{Threshold: 0.05, Alpha: 0.05, AllowDeviceChange: allow})
		assert.ErrorContains(t, err, "the files time different precisions: baseline fp32, current tf32")
	}
	c, err := Compare(mk(""), mk("fp32"), CompareOptions{Threshold: 0.05, Alpha: 0.05})
	require.NoError(t, err)
	assert.Equal(t, PrecisionFP32, c.Precision)
	c, err = Compare(mk("bf16"), mk("bf16"), CompareOptions{Threshold: 0.05, Alpha: 0.05})
	require.NoError(t, err)
	var out strings.Builder
	require.NoError(t, c.WriteTable(&out))
	assert.Contains(t, out.String(), "device d, backend cpu-float32, precision bf16")
}

// A device's memory meter (a GPU's allocator) is shared by every model of
// a run: each model's peak is its own, not the peak of a larger model
// measured before it (the bug: the first step read the meter before it
// was reset, so a run of mamba2 then s4d gave s4d mamba2's peak).
func TestBenchTrainPeakIsPerModel(t *testing.T) {
	peaks := func(archs ...string) map[string]int64 {
		be := track(cpukernels.New[float32]())
		d := NewDevice(be, "", "")
		d.Memory = be
		o := tiny("train")
		o.Archs, o.Lengths, o.Batches, o.Ceilings = archs, []int{32}, []int{2}, false
		o.Model = ModelOptions{DModel: 16, NLayers: 1, Vocab: 64}
		f, err := Run(d, o)
		require.NoError(t, err)
		require.Len(t, f.Results, len(archs), f.Skipped)
		out := map[string]int64{}
		for _, r := range f.Results {
			out[r.Arch] = r.PeakBytes
		}
		return out
	}
	both, alone := peaks("transformer", "s4d"), peaks("s4d")
	require.Greater(t, both["transformer"], alone["s4d"], "the test needs the first model to be the larger")
	assert.Equal(t, alone["s4d"], both["s4d"])
}

// countingBackend counts, as a GPU backend does (StreamCounter), one device
// operation per GEMM and one host wait per read-back; its SumSquaresEach
// is one wait for all the buffers.
type countingBackend struct {
	nn.Backend
	ops, waits, each int64
}

func (c *countingBackend) StreamCounts() (int64, int64) { return c.ops, c.waits }

func (c *countingBackend) Gemm(a, b, out nn.Buffer, g nn.GemmArgs) {
	c.ops++
	c.Backend.Gemm(a, b, out, g)
}

func (c *countingBackend) Read(b nn.Buffer) []float64 {
	c.waits++
	return c.Backend.Read(b)
}

func (c *countingBackend) ArgmaxRows(x nn.Buffer, rows, cols int) []int32 {
	c.waits++
	return c.Backend.ArgmaxRows(x, rows, cols)
}

func (c *countingBackend) SumSquares(x nn.Buffer) float64 {
	c.waits++
	return c.Backend.SumSquares(x)
}

func (c *countingBackend) SumSquaresEach(xs []nn.Buffer) []float64 {
	c.waits++
	c.each++
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = c.Backend.SumSquares(x)
	}
	return out
}

// The train suite records one step's device operations and host waits
// where the device counts them, and shows them in its table; the step's
// clip reaches the backend's one-round-trip reduction through bench's
// memory-tracking wrapper.
func TestBenchTrainCountsLaunchesAndWaits(t *testing.T) {
	be := &countingBackend{Backend: cpukernels.New[float32]()}
	d := NewDevice(be, "", "")
	require.NotNil(t, d.Counter)
	o := tiny("train")
	o.Archs, o.Lengths, o.Batches, o.Ceilings, o.Repeat = []string{"transformer"}, []int{16}, []int{2}, false, 2
	o.Model = ModelOptions{DModel: 16, NLayers: 2, Vocab: 32}
	f, err := Run(d, o)
	require.NoError(t, err)
	require.Len(t, f.Results, 1, f.Skipped)
	r := f.Results[0]
	steps := be.each // one clip a step
	require.Positive(t, steps)
	assert.Equal(t, be.ops/steps, r.StreamOps, "every step queues the same operations")
	assert.Greater(t, r.StreamOps, int64(2*2), "each layer has GEMMs forward and backward")
	// The loss and the grad norm (one wait for all the parameters).
	assert.Equal(t, be.waits/steps, r.HostWaits)
	assert.Less(t, r.HostWaits, int64(5), "the clip waits once, not once per parameter")
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, f))
	assert.Contains(t, buf.String(), "launches")
	assert.Contains(t, buf.String(), fmt.Sprintf(" %d ", r.StreamOps))

	cpu := NewDevice(cpukernels.New[float32](), "", "")
	assert.Nil(t, cpu.Counter)
	g, err := Run(cpu, o)
	require.NoError(t, err)
	buf.Reset()
	require.NoError(t, WriteTable(&buf, g))
	assert.NotContains(t, buf.String(), "launches", "no counts, no columns")
}

// profilingBackend is a countingBackend that profiles as a GPU backend
// does (nn.Profiler): each GEMM is 1 ms busy, each read-back 0.5 ms idle.
type profilingBackend struct {
	countingBackend
	on     bool
	p      nn.Profile
	starts int
}

func (b *profilingBackend) StartProfile() { b.on, b.p = true, nn.Profile{}; b.starts++ }

func (b *profilingBackend) StopProfile() (nn.Profile, error) {
	b.on = false
	if b.p.Ops > 0 {
		b.p.Rows = []nn.ProfileRow{{Label: "Gemm", Calls: b.p.Ops, Seconds: b.p.Busy}}
	}
	return b.p, nil
}

func (b *profilingBackend) Gemm(a, x, out nn.Buffer, g nn.GemmArgs) {
	if b.on {
		b.p.Ops++
		b.p.Busy += 1e-3
		b.p.Span += 1e-3
	}
	b.countingBackend.Gemm(a, x, out, g)
}

func (b *profilingBackend) Read(x nn.Buffer) []float64 {
	if b.on {
		b.p.Span += 0.5e-3
	}
	return b.countingBackend.Read(x)
}

// --profile profiles one more step of each train benchmark on a device
// that can (its operations and their time in Result.Profile, a time budget
// under the table), says why not on one that cannot, and is refused for
// the suites without steps.
func TestBenchTrainProfile(t *testing.T) {
	o := tiny("train")
	o.Archs, o.Lengths, o.Batches, o.Ceilings, o.Repeat = []string{"transformer"}, []int{16}, []int{2}, false, 2
	o.Model = ModelOptions{DModel: 16, NLayers: 2, Vocab: 32}
	f, r := runProfiled(t, o, "step")
	assert.InDelta(t, float64(r.Profile.Ops)*1e-3, r.Profile.Busy, 1e-9)
	assert.Greater(t, r.Profile.Gaps(), 0.0, "the step reads its loss back")
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, f))
	assert.Contains(t, buf.String(), "step time budget, transformer")
	assert.Contains(t, buf.String(), fmt.Sprintf("%d operations", r.Profile.Ops))
	assert.Regexp(t, `Gemm\s*│?\s*\|?\s*\d+`, buf.String())

	var progress bytes.Buffer
	o.Progress, o.Profile = &progress, true
	g, err := Run(NewDevice(cpukernels.New[float32](), "", ""), o)
	require.NoError(t, err)
	assert.Nil(t, g.Results[0].Profile)
	assert.Contains(t, progress.String(), "not profiled: backend cpu-float32 cannot time its operations")

	k := tiny("kernels")
	k.Profile = true
	assert.ErrorContains(t, k.Check(), "--profile is not allowed with --suite kernels")
}

// runProfiled runs o (one benchmark) with --profile on a backend that
// profiles, and checks that one more call (what) was profiled and queued
// what a counted call does.
func runProfiled(t *testing.T, o Options, what string) (*File, Result) {
	t.Helper()
	be := &profilingBackend{countingBackend: countingBackend{Backend: cpukernels.New[float32]()}}
	d := NewDevice(be, "", "")
	require.NotNil(t, d.Profiler)
	o.Profile = true
	require.NoError(t, o.Check())
	f, err := Run(d, o)
	require.NoError(t, err)
	require.Len(t, f.Results, 1, f.Skipped)
	r := f.Results[0]
	require.NotNil(t, r.Profile)
	assert.Equal(t, 1, be.starts, "one profiled "+what)
	assert.Equal(t, r.StreamOps, int64(r.Profile.Ops), "the profiled "+what+" queues what a counted one does")
	return f, r
}

// --profile profiles one more decoded token of each generate benchmark,
// and the table shows the launches and host waits of a token.
func TestBenchGenerateProfile(t *testing.T) {
	o := tiny("generate")
	o.Archs, o.Batches, o.Ceilings, o.Repeat = []string{"transformer"}, []int{2}, false, 2
	o.Model = ModelOptions{DModel: 16, NLayers: 2, Vocab: 32, Prompt: 8, NewTokens: 4}
	f, r := runProfiled(t, o, "token")
	assert.Equal(t, int64(1), r.HostWaits, "a token reads its argmax back, nothing else")
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, f))
	assert.Contains(t, buf.String(), "ops/token")
	assert.Contains(t, buf.String(), "decoded-token time budget, transformer fp32 B=2 after a prompt of 8")
	assert.Contains(t, buf.String(), fmt.Sprintf("%d operations", r.Profile.Ops))
}

// notReplayable is a Stepper whose step depends on the position.
type notReplayable struct{ arch.Stepper }

func (notReplayable) StepReplayable() bool { return false }

// replayingBackend captures by keeping fn and replays by running it again:
// the contract of nn.Capturer on the CPU, for the bench's plumbing.
type replayingBackend struct {
	countingBackend
	captures, launches int
	opsAtCapture       []int64 // the GEMMs run before each capture (countingBackend.ops)
}

type replayGraph struct {
	b  *replayingBackend
	fn func()
}

func (b *replayingBackend) Capture(fn func()) (nn.Graph, error) {
	b.captures++
	b.opsAtCapture = append(b.opsAtCapture, b.ops)
	return &replayGraph{b, fn}, nil
}

func (g *replayGraph) Launch() error { g.b.launches++; g.fn(); return nil }
func (g *replayGraph) Ops() int      { return 7 }
func (g *replayGraph) Free() error   { return nil }

// A replayable architecture's tokens are decoded by launching one
// captured step per token (named decode=graph, marked in the table); one
// whose step depends on the position decodes eagerly, saying why; so does
// a backend that cannot capture; Eager (--graph=false) turns it off.
func TestBenchGenerateGraph(t *testing.T) {
	be := &replayingBackend{countingBackend: countingBackend{Backend: cpukernels.New[float32]()}}
	o := tiny("generate")
	o.Archs, o.Batches, o.Ceilings, o.Repeat = []string{"s4d", "transformer"}, []int{2}, false, 2
	o.Warmup = time.Nanosecond // one warm-up generation
	o.Model = ModelOptions{DModel: 16, NLayers: 2, Vocab: 32, Prompt: 8, NewTokens: 4}
	var progress bytes.Buffer
	o.Progress = &progress
	require.NoError(t, o.Check())
	f, err := Run(NewDevice(be, "", ""), o)
	require.NoError(t, err)
	require.Len(t, f.Results, 2, f.Skipped)
	for _, r := range f.Results {
		assert.True(t, r.Graph, r.Name)
		assert.Equal(t, int64(7), r.GraphOps)
		assert.True(t, strings.HasSuffix(r.Name, "/decode=graph"), r.Name)
	}
	// A capture per generation (one warm-up and two samples, then the
	// counted token's), a launch per token, for each arch.
	assert.Equal(t, 2*4, be.captures)
	assert.Equal(t, 2*(3*4+1), be.launches)
	// Each capture follows its prompt (whose GEMMs run first): the
	// Transformer's cache and position exist by then.
	assert.Positive(t, be.opsAtCapture[0], "the first capture follows its prompt")
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, f))
	assert.Contains(t, buf.String(), "s4d (graph)")
	assert.Contains(t, buf.String(), "transformer (graph)")
	_, why := graphFor(NewDevice(be, "", ""), o, notReplayable{})
	assert.Contains(t, why, "its step depends on the position")

	eager := NewDevice(cpukernels.New[float32](), "", "")
	progress.Reset()
	o.Archs = []string{"s4d"}
	g, err := Run(eager, o)
	require.NoError(t, err)
	assert.False(t, g.Results[0].Graph)
	assert.Contains(t, progress.String(), "decodes eagerly: backend cpu-float32 cannot capture graphs")

	o.Eager = true
	be.captures, be.launches = 0, 0
	h, err := Run(NewDevice(be, "", ""), o)
	require.NoError(t, err)
	assert.False(t, h.Results[0].Graph)
	assert.Zero(t, be.captures+be.launches, "eager decoding captures nothing")
}

// Matched gives the Transformer half the layers (its name and shape say
// so), and the generate table writes each arch's throughput against the
// Transformer's at the same batch.
func TestBenchGenerateMatchedRatio(t *testing.T) {
	o := tiny("generate")
	o.Archs, o.Batches, o.Ceilings, o.Repeat = []string{"s4d", "transformer"}, []int{2}, false, 2
	o.Model = ModelOptions{DModel: 16, NLayers: 4, Vocab: 32, Prompt: 8, NewTokens: 4, Matched: true}
	f, err := Run(NewDevice(cpukernels.New[float32](), "", ""), o)
	require.NoError(t, err)
	require.Len(t, f.Results, 2, f.Skipped)
	s, tf := f.Results[0], f.Results[1]
	assert.Equal(t, 4, s.Shape["n_layers"])
	assert.Equal(t, 2, tf.Shape["n_layers"])
	assert.Contains(t, tf.Name, "/n_layers=2/")
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, f))
	want := fmt.Sprintf("B=2: s4d %.4g tokens/s (%d params, 4 layers) = %.2f× transformer's", s.TokensPerS, s.Params, s.TokensPerS/tf.TokensPerS)
	assert.Contains(t, buf.String(), want)
}

// Generate names the bfloat16 decode states, and only where a model has
// them: the Transformer and S4D keep their names under bf16.
func TestGenerateStateName(t *testing.T) {
	assert.Equal(t, "/state=bf16", stateName(true))
	assert.Equal(t, "", stateName(false))
	d := NewDevice(cpukernels.NewBF16(), "", "")
	o := tiny("generate")
	o.Precision = PrecisionBF16
	o.Model = ModelOptions{DModel: 16, NLayers: 1, Vocab: 32, Prompt: 8, NewTokens: 3}
	o.Batches = []int{2}
	f, err := Run(d, o)
	require.NoError(t, err)
	require.NotEmpty(t, f.Results)
	for _, r := range f.Results {
		assert.NotContains(t, r.Name, "/state=", "%s keeps float32 states or a bfloat16 KV cache", r.Arch)
	}
}

// manyAdamW is a backend with a one-pass AdamW over many tensors
// (nn.ManyAdamW) that counts its calls.
type manyAdamW struct {
	nn.Backend
	calls int
}

func (m *manyAdamW) AdamWEach(ts []nn.AdamWTensor, a nn.AdamWArgs) {
	m.calls++
	for _, t := range ts {
		ai := a
		ai.LR, ai.WeightDecay, ai.Copy = t.LR, t.WeightDecay, t.Copy
		m.Backend.AdamW(t.P, t.G, t.M, t.V, ai)
	}
}

// The bench's memory-tracking wrapper keeps the backend's one-pass AdamW
// (a train step's update is then one launch on a GPU, not one a tensor).
func TestTrackedKeepsAdamWEach(t *testing.T) {
	m := &manyAdamW{Backend: cpukernels.New[float32]()}
	be := track(m).backend()
	var ts []nn.AdamWTensor
	for range 3 {
		ts = append(ts, nn.AdamWTensor{P: be.Alloc(4), G: be.Alloc(4), M: be.Alloc(4), V: be.Alloc(4), LR: 1e-3})
	}
	nn.AdamWEach(be, ts, nn.AdamWArgs{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Step: 1})
	assert.Equal(t, 1, m.calls, "AdamWEach calls")
}
