// Package bench times seqbench's kernels and models and compares timings
// against a stored baseline: the engine behind `seqbench bench` and
// `seqbench regress`.
//
// Four suites:
//   - kernels: every fused op and the ops around them (Kernels lists
//     them) forward and, where the op has a backward, forward+backward
//     over a grid of shapes, called directly on an
//     nn.Backend (no tape), with bytes, FLOPs and the fraction of the
//     device's own ceilings (a large Backend.Copy, a large Backend.Gemm,
//     measured in the same run);
//   - train: tokens/s of a full training step (forward, backward, clipping,
//     AdamW) per registered architecture, and its peak memory;
//   - generate: step-mode generation (a prompt, then new tokens one at a
//     time) per architecture and batch size, with the state / KV-cache size;
//   - memory: peak memory of a training step against L per architecture.
//
// Timing follows one method on every device: warm up (module load, run-time
// compilation and allocator growth stay out), size each sample to last at
// least Options.MinSample, take Options.Repeat samples and keep every one;
// rotate among several input sets when the inputs fit in the cache; never
// time on zeros (every input is random). On a device with a Timer (device
// events), samples are device time; otherwise wall-clock time, which is
// exact on the CPU backend because its ops are synchronous.
package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"seqbench/internal/buildinfo"
	"seqbench/nn"
)

// Suites lists the suites in the order `seqbench bench` documents them.
var Suites = []string{"kernels", "train", "generate", "memory"}

// Passes a benchmark times (the names reports.BenchResult reads).
const (
	PassForward         = "fwd"
	PassForwardBackward = "fwdbwd"
)

// Options choose what runs and how long it is timed. Zero values take the
// defaults of the device (smaller shapes on the CPU).
type Options struct {
	Suite   string   // kernels (default), train, generate, memory
	Ops     []string // kernels: op names (Kernels); empty: all
	Archs   []string // model suites: architectures; empty: arch.Names()
	Lengths []int    // sequence lengths; empty: the suite's default grid
	Batches []int    // batch sizes; empty: the suite's default grid

	Repeat    int           // timed samples per benchmark (default 10)
	Warmup    time.Duration // untimed running after the first call (default 20 ms CPU, 100 ms GPU; at least 1 call)
	MinSample time.Duration // a sample repeats the call until it lasts this long (default 2 ms CPU, 5 ms GPU)

	// Ceilings measures the copy bandwidth and GEMM rate (default true
	// through DefaultOptions; the kernels suite reports fractions of them).
	Ceilings  bool
	CopyElems int // elements of each buffer of the copy ceiling (0: 16 Mi CPU, 256 Mi GPU)
	GemmSize  int // M = N = K of the GEMM ceiling (0: 512 CPU, 8192 GPU)

	Model ModelOptions

	// Precision is what the suite computes in: "fp32" (or ""), "tf32" or
	// "bf16" (docs/PRECISION.md). The Device's backend must already
	// compute in it (cpu-bfloat16 for bf16; a CUDA backend with TF32 on
	// for tf32): under bf16 the kernels suite stores each op's activations
	// in bfloat16 and the rest in float32, as the table of PRECISION.md
	// says, and the model suites run the bf16 model path. It is part of
	// every benchmark's identity: File.Precision, and a "/dtype=bf16"
	// (or tf32) component of the names (fp32 names have none, as before
	// precisions existed, so older files still compare).
	Precision string

	// Profile times one more step of each train or memory benchmark, or
	// one more decoded token of each generate benchmark, operation by
	// operation, on a device that can (nn.Profiler: a GPU):
	// Result.Profile, and a time budget under the table.
	Profile bool

	// Eager runs every decoded token (generate) and every training step
	// (train, memory) with its own launches. Without it, on a backend that
	// captures graphs (nn.Capturer), an architecture whose step is
	// replayable (arch.ReplayStepper) decodes by replaying one captured
	// Step (a CUDA graph), which gives the same tokens bit for bit, and the
	// training step is captured and replayed (trainstep.Runner), with the
	// same results.
	Eager bool

	Seed     uint64
	Progress io.Writer // one line per finished benchmark; nil: quiet
}

// DefaultOptions are the options `seqbench bench` starts from.
func DefaultOptions() Options {
	return Options{Suite: "kernels", Repeat: 10, Ceilings: true, Seed: 1}
}

func (o *Options) fill(gpu bool) {
	if o.Suite == "" {
		o.Suite = "kernels"
	}
	if o.Precision == "" {
		o.Precision = PrecisionFP32
	}
	if o.Repeat <= 0 {
		o.Repeat = 10
	}
	if o.Warmup <= 0 {
		o.Warmup = pick(gpu, 100*time.Millisecond, 20*time.Millisecond)
	}
	if o.MinSample <= 0 {
		o.MinSample = pick(gpu, 5*time.Millisecond, 2*time.Millisecond)
	}
	if o.CopyElems <= 0 {
		o.CopyElems = pick(gpu, 1<<28, 1<<24)
	}
	if o.GemmSize <= 0 {
		o.GemmSize = pick(gpu, 8192, 512)
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	o.Model.fill(gpu, o.Suite)
}

func pick[T any](gpu bool, g, c T) T {
	if gpu {
		return g
	}
	return c
}

// Precisions a suite computes in (Options.Precision).
const (
	PrecisionFP32 = "fp32"
	PrecisionTF32 = "tf32"
	PrecisionBF16 = "bf16"
)

// Precisions lists them in the order `seqbench bench --dtype` documents.
var Precisions = []string{PrecisionFP32, PrecisionTF32, PrecisionBF16}

// dtypeName is the name component of a precision: "" for fp32 (names as
// before precisions existed), "/dtype=bf16" otherwise.
func dtypeName(precision string) string {
	if precision == "" || precision == PrecisionFP32 {
		return ""
	}
	return "/dtype=" + precision
}

// implName is Result.Impl: the backend's name, which says bfloat16 for
// bf16 (cpu-bfloat16), with "-tf32" for tf32 (same backend, another
// GEMM mode), so that a report tells the precisions apart.
func implName(be nn.Backend, precision string) string {
	if precision == PrecisionTF32 {
		return be.Name() + "-tf32"
	}
	return be.Name()
}

// Check validates the options before anything runs; errors name the option.
func (o Options) Check() error {
	if !slices.Contains(Suites, o.Suite) && o.Suite != "" {
		return fmt.Errorf("--suite %q is not allowed (one of %s)", o.Suite, strings.Join(Suites, ", "))
	}
	if o.Precision != "" && !slices.Contains(Precisions, o.Precision) {
		return fmt.Errorf("--dtype %q is not allowed (one of %s)", o.Precision, strings.Join(Precisions, ", "))
	}
	for _, op := range o.Ops {
		if _, ok := lookupKernel(op); !ok {
			return fmt.Errorf("--ops: unknown op %q (known: %s)", op, strings.Join(KernelOps(), ", "))
		}
	}
	for _, l := range o.Lengths {
		if l < 1 {
			return fmt.Errorf("--lengths: %d is not allowed (lengths are ≥ 1)", l)
		}
	}
	for _, b := range o.Batches {
		if b < 1 {
			return fmt.Errorf("--batch: %d is not allowed (batch sizes are ≥ 1)", b)
		}
	}
	if o.Profile && o.Suite != "train" && o.Suite != "memory" && o.Suite != "generate" {
		return fmt.Errorf("--profile is not allowed with --suite %s (it profiles the train and memory suites' steps and generate's decoded token)", o.Suite)
	}
	if o.Repeat < 0 {
		return fmt.Errorf("--repeat: %d is not allowed (≥ 1; regress needs ≥ 4 per side to see a difference at alpha 0.05)", o.Repeat)
	}
	return o.Model.check()
}

// Run runs the suite of o on d and returns the full record.
func Run(d *Device, o Options) (*File, error) {
	return RunContext(context.Background(), d, o)
}

// RunContext runs the suite of o on d and returns the full record. When
// ctx is cancelled it stops after the benchmark in progress: it starts no
// other (the closing ceilings measurement included) and returns the
// results so far, their statistics derived, in a File marked Interrupted
// (with a nil error).
func RunContext(ctx context.Context, d *Device, o Options) (*File, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	o.fill(d.GPU)
	if err := checkPrecision(d.Backend, o.Precision); err != nil {
		return nil, err
	}
	f := newFile(d, o)
	defer func() { f.Host.Load1End = load1() }()
	if o.Ceilings {
		if stopped(ctx, f) {
			return f, nil
		}
		c, err := measureCeilings(d, o)
		if err != nil {
			return nil, fmt.Errorf("measuring the device ceilings: %w", err)
		}
		f.Ceilings = c
		o.progress("ceilings at the start: copy %.3g GB/s, GEMM %d³ %.3g GFLOP/s\n",
			c.CopyBytesPerS/1e9, o.GemmSize, c.GemmFLOPsPerS/1e9)
	}
	var err error
	switch o.Suite {
	case "kernels":
		err = runKernels(ctx, d, o, f)
		f.KernelResources = kernelResources(d.Backend)
	case "train":
		err = runTrain(ctx, d, o, f)
	case "generate":
		err = runGenerate(ctx, d, o, f)
	case "memory":
		err = runMemory(ctx, d, o, f)
	}
	if err != nil {
		return nil, err
	}
	if o.Ceilings && !stopped(ctx, f) {
		c, err := measureCeilings(d, o)
		if err != nil {
			return nil, fmt.Errorf("measuring the device ceilings: %w", err)
		}
		f.Ceilings.merge(c)
		o.progress("ceilings, best of the start and the end: copy %.3g GB/s, GEMM %.3g GFLOP/s\n",
			f.Ceilings.CopyBytesPerS/1e9, f.Ceilings.GemmFLOPsPerS/1e9)
	}
	for i := range f.Results {
		f.Results[i].derive(f.Ceilings)
	}
	return f, nil
}

// checkPrecision refuses a backend that cannot compute in precision: bf16
// needs bfloat16 activations (a MixedBackend such as cpu-bfloat16), and
// fp32 or tf32 a backend without them, so that a file never records one
// precision and times another.
func checkPrecision(be nn.Backend, precision string) error {
	bf16 := actDType(be) == nn.BFloat16
	switch {
	case precision == PrecisionBF16 && !bf16:
		return fmt.Errorf("precision bf16 needs a backend with bfloat16 activations (cpu-bfloat16), not %s", be.Name())
	case precision != PrecisionBF16 && bf16:
		return fmt.Errorf("precision %s needs a backend without bfloat16 activations, not %s", precision, be.Name())
	}
	return nil
}

// stopped reports whether ctx is cancelled, and marks f Interrupted when
// it is: the suites call it before each benchmark.
func stopped(ctx context.Context, f *File) bool {
	if ctx.Err() == nil {
		return false
	}
	f.Interrupted = true
	return true
}

// loadavgPath is where load1 reads the load (a variable for the tests).
var loadavgPath = "/proc/loadavg"

// load1 is the host's 1-minute load average (the first field of
// /proc/loadavg), 0 where that file is absent or unreadable.
func load1() float64 {
	data, err := os.ReadFile(loadavgPath)
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || !(v >= 0) {
		return 0
	}
	return v
}

func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format, args...)
	}
}

// File is the JSON record `seqbench bench` writes (a *.bench.json file;
// reports.BenchFile reads the fields it draws: device, results[].op, impl,
// variant, seq_len, pass, median_s, frac_ceiling).
type File struct {
	Schema  string `json:"schema"` // SchemaVersion
	Suite   string `json:"suite"`
	Device  string `json:"device"`  // "AMD EPYC (2 cores)", "NVIDIA H200"
	Backend string `json:"backend"` // nn.Backend.Name(): "cpu-float32", "cuda-float32"
	// Precision is what the suite computed in: fp32, tf32 or bf16
	// (Options.Precision). A file written before precisions existed has
	// none: it is fp32 (Parse fills it in).
	Precision string    `json:"precision"`
	Driver    string    `json:"driver,omitempty"` // GPU driver and library versions
	GoVersion string    `json:"go_version"`
	Revision  string    `json:"revision"` // vcs.revision of the binary, "+modified" when dirty
	Time      time.Time `json:"time"`
	Host      Host      `json:"host"`
	Settings  Settings  `json:"settings"`
	Ceilings  *Ceilings `json:"ceilings,omitempty"`
	Results   []Result  `json:"results"`
	// Skipped lists benchmarks that could not run, with the reason (an op
	// a backend lacks, an architecture without a step mode, out of memory).
	Skipped []Skip `json:"skipped,omitempty"`
	// KernelResources are the registers and spilled bytes a thread of
	// each GPU kernel the kernels suite loaded (from the backend, when it
	// reports them).
	KernelResources []KernelResource `json:"kernel_resources,omitempty"`
	// Interrupted: the run was stopped (SIGINT, SIGTERM) before the end;
	// Results hold the benchmarks it finished, the others did not run (nor
	// the closing ceilings measurement).
	Interrupted bool `json:"interrupted,omitempty"`
}

// SchemaVersion names the layout of File.
const SchemaVersion = "seqbench-bench/1"

// Host is where the binary ran.
type Host struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	// Load1Start and Load1End are the 1-minute load average of the host
	// (/proc/loadavg) when the run started and ended; 0 where unknown. A
	// busy host slows ops whose time the host CPU sets (kernel launches
	// every time step: LSTM and GRU on a GPU where their persistent kernel
	// does not fit, and the model suites' small steps).
	Load1Start float64 `json:"load1_start"`
	Load1End   float64 `json:"load1_end"`
}

// Settings are the timing settings of a run.
type Settings struct {
	Repeat     int           `json:"repeat"`
	WarmupS    float64       `json:"warmup_s"`
	MinSampleS float64       `json:"min_sample_s"`
	Timer      string        `json:"timer"` // "wall" or "device-events"
	Model      *ModelOptions `json:"model,omitempty"`
}

// KernelResource is what one compiled kernel takes a thread.
type KernelResource struct {
	Kernel     string `json:"kernel"` // "family/name": "attention/attn_fwd_fast64"
	Registers  int    `json:"registers"`
	LocalBytes int    `json:"local_bytes"` // local memory: registers spilled
}

// kernelResources reads the kernel resources of a backend that reports
// them (gpukernels), sorted by kernel; nil for one that does not.
func kernelResources(be nn.Backend) []KernelResource {
	r, ok := be.(interface{ KernelResources() map[string][2]int })
	if !ok {
		return nil
	}
	var out []KernelResource
	for k, v := range r.KernelResources() {
		out = append(out, KernelResource{Kernel: k, Registers: v[0], LocalBytes: v[1]})
	}
	slices.SortFunc(out, func(a, b KernelResource) int { return strings.Compare(a.Kernel, b.Kernel) })
	return out
}

// Skip is a benchmark that did not run.
type Skip struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Ceilings are the device's measured limits: a large Backend.Copy (bytes
// read + written per second) and a large square Backend.Gemm (FLOP/s),
// each measured before and after the suite (Copy and Gemm hold both sets
// of samples) and taken at its fastest sample.
type Ceilings struct {
	CopyBytesPerS float64 `json:"copy_bytes_per_s"`
	GemmFLOPsPerS float64 `json:"gemm_flops_per_s"`
	Copy          Result  `json:"copy"`
	Gemm          Result  `json:"gemm"`
}

// Result is one benchmark: one op (or model) at one shape and pass.
type Result struct {
	// Name is the Go benchmark name without "Benchmark": the op, the pass
	// and every shape parameter, L last, e.g.
	// "SelectiveScan/pass=fwd/B=2/D=1024/N=16/L=2048". regress matches
	// benchmarks by it.
	Name  string         `json:"name"`
	Suite string         `json:"suite"`
	Op    string         `json:"op"`   // "selective_scan", "train_step", ...
	Impl  string         `json:"impl"` // the backend's name ("-tf32" added under tf32: implName)
	Pass  string         `json:"pass"` // PassForward or PassForwardBackward
	L     int            `json:"seq_len"`
	Shape map[string]int `json:"shape"`
	// Variant is the shape without L ("B=2 D=1024 N=16"; "arch=mamba1 ..."
	// for models): one line of a report's time-vs-L plot.
	Variant string `json:"variant,omitempty"`

	Reps    int       `json:"reps_per_sample"` // calls averaged in one sample
	Samples []float64 `json:"samples_s"`       // seconds per call, in the order measured
	Median  float64   `json:"median_s"`
	Min     float64   `json:"min_s"`
	Max     float64   `json:"max_s"`
	Q1      float64   `json:"q1_s"` // quartiles: Q3 − Q1 is the spread
	Q3      float64   `json:"q3_s"`

	// Bytes is the fewest bytes the call must move (each input read once,
	// each output written once; accumulated gradients read and written);
	// FLOPs its floating-point operations (a multiply-add is 2). Each
	// kernel's doc comment gives the formulas.
	Bytes     float64 `json:"bytes"`
	FLOPs     float64 `json:"flops"`
	BytesPerS float64 `json:"bytes_per_s"`
	FLOPsPerS float64 `json:"flops_per_s"`
	// FracBandwidth and FracFLOPs are the achieved rates over the measured
	// ceilings; FracCeiling is the larger (the floor the op could reach
	// over its time) and Bound says which ceiling that is.
	FracBandwidth float64 `json:"frac_bandwidth,omitempty"`
	FracFLOPs     float64 `json:"frac_flops,omitempty"`
	FracCeiling   float64 `json:"frac_ceiling,omitempty"`
	Bound         string  `json:"bound,omitempty"` // "memory" or "compute"

	// Model suites.
	Arch       string  `json:"arch,omitempty"`
	Params     int     `json:"params,omitempty"`
	Tokens     int     `json:"tokens,omitempty"` // tokens per call (train: B·L; generate: B·new)
	TokensPerS float64 `json:"tokens_per_s,omitempty"`
	// PeakBytes is the most device memory in use during a call: the
	// device's allocator peak where it has one, else the live buffers of
	// the backend (parameters, gradients, optimizer moments, activations).
	PeakBytes int64 `json:"peak_bytes,omitempty"`
	// HeapBytes is the Go heap in use after the calls (runtime.MemStats
	// HeapInuse; CPU only: there backend buffers are Go memory).
	HeapBytes  uint64 `json:"heap_inuse_bytes,omitempty"`
	StateBytes int64  `json:"state_bytes,omitempty"` // generate: arch.State.Bytes() at the end
	// StreamOps and HostWaits are what one call queued on the device
	// (kernel launches, library calls, copies and memsets) and how often
	// the host waited for the device in it, where the device counts them
	// (Device.Counter): the host-side cost of a train step.
	StreamOps int64 `json:"stream_ops,omitempty"`
	HostWaits int64 `json:"host_waits,omitempty"`
	// Profile is one more call timed operation by operation (Options.Profile).
	Profile *nn.Profile `json:"profile,omitempty"`
	// Generate: the prompt (prefill) and the new tokens (decode) timed
	// apart in each sample, medians.
	PrefillS float64 `json:"prefill_median_s,omitempty"`
	DecodeS  float64 `json:"decode_median_s,omitempty"`
	// Graph: the tokens were decoded by replaying a captured Step
	// (unless Options.Eager), of GraphOps device operations.
	Graph    bool  `json:"graph,omitempty"`
	GraphOps int64 `json:"graph_ops,omitempty"`
}

// derive fills the statistics and rates from the samples.
func (r *Result) derive(c *Ceilings) {
	if len(r.Samples) == 0 {
		return
	}
	s := slices.Clone(r.Samples)
	slices.Sort(s)
	r.Median, r.Min, r.Max = quantile(s, 0.5), s[0], s[len(s)-1]
	r.Q1, r.Q3 = quantile(s, 0.25), quantile(s, 0.75)
	if r.Median <= 0 {
		return
	}
	r.BytesPerS, r.FLOPsPerS = r.Bytes/r.Median, r.FLOPs/r.Median
	if r.Tokens > 0 {
		r.TokensPerS = float64(r.Tokens) / r.Median
	}
	if c == nil || c.CopyBytesPerS <= 0 || c.GemmFLOPsPerS <= 0 {
		return
	}
	r.FracBandwidth = r.BytesPerS / c.CopyBytesPerS
	r.FracFLOPs = r.FLOPsPerS / c.GemmFLOPsPerS
	r.FracCeiling, r.Bound = r.FracBandwidth, "memory"
	if r.FracFLOPs > r.FracBandwidth {
		r.FracCeiling, r.Bound = r.FracFLOPs, "compute"
	}
}

// quantile of sorted values by linear interpolation (R type 7, numpy's
// default).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

func newFile(d *Device, o Options) *File {
	f := &File{
		Schema: SchemaVersion, Suite: o.Suite, Device: d.Name, Backend: d.Backend.Name(), Precision: o.Precision, Driver: d.Driver,
		GoVersion: runtime.Version(), Revision: buildinfo.Revision(), Time: time.Now().UTC().Truncate(time.Second),
		Host: Host{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
			Load1Start: load1()},
		Settings: Settings{Repeat: o.Repeat, WarmupS: o.Warmup.Seconds(), MinSampleS: o.MinSample.Seconds(),
			Timer: "wall"},
		Results: []Result{},
	}
	if d.Timer != nil {
		f.Settings.Timer = "device-events"
	}
	if o.Suite != "kernels" {
		m := o.Model
		f.Settings.Model = &m
	}
	return f
}

// elemBytes is the size of one element of the backend's dtype.
func elemBytes(be nn.Backend) float64 {
	if be.DType() == nn.Float64 {
		return 8
	}
	return 4
}

// HumanSeconds writes a duration with 3 significant digits (812 ns,
// 1.23 ms), and "-" for a time that is not positive and finite (none
// measured).
func HumanSeconds(s float64) string {
	switch {
	case !(s > 0) || math.IsInf(s, 1):
		return "-"
	case s < 1e-6:
		return fmt.Sprintf("%.3g ns", s*1e9)
	case s < 1e-3:
		return fmt.Sprintf("%.3g µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.3g ms", s*1e3)
	}
	return fmt.Sprintf("%.3g s", s)
}
