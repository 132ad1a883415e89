package bench

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"seqbench/nn"
)

// Timer times work queued on a device with the device's own clock (CUDA
// events on the backend's stream). gpukernels.Backend has this method:
//
//	// Time runs f reps times between two events recorded on the backend's
//	// stream and returns the mean device time of one run in milliseconds.
//	Time(reps int, f func()) (float64, error)
//
// f only queues work; Time records an event before the first call and after
// the last, waits for the second and returns the elapsed time over reps.
// Queuing reps calls back to back keeps launch gaps out of the mean the way
// a real training step does.
type Timer interface {
	Time(reps int, f func()) (ms float64, err error)
}

// Synchronizer is a backend whose ops run asynchronously: Synchronize
// waits for all queued work and returns any error it raised.
// gpukernels.Backend has it.
type Synchronizer interface {
	Synchronize() error
}

// MemoryMeter reports the peak of a device allocator: ResetPeak sets the
// peak to the bytes in use now, PeakBytes returns the peak since. For
// gpukernels.Backend: ResetPeak exists; PeakBytes is MemStats().Peak.
type MemoryMeter interface {
	ResetPeak()
	PeakBytes() int64
}

// Device is what the benchmarks run on: a backend and, for a GPU, the
// optional timing, synchronisation and memory hooks. NewDevice fills the
// hooks the backend itself implements.
type Device struct {
	Backend nn.Backend
	Name    string // the device as a user knows it: "NVIDIA H200", "AMD EPYC (2 cores)"
	Driver  string // driver and library versions, if any
	GPU     bool   // selects the GPU default grids
	// CacheBytes is the size of the last cache before device memory (L3
	// on a CPU, L2 on a GPU): inputs smaller than it are rotated among
	// several sets, so samples measure memory and not the cache.
	CacheBytes int64
	Timer      Timer         // nil: the host wall clock
	Sync       Synchronizer  // nil: ops are synchronous
	Memory     MemoryMeter   // nil: the live backend buffers are counted
	Counter    StreamCounter // nil: launches and host waits are not counted
	Profiler   nn.Profiler   // nil: steps cannot be profiled
}

// NewDevice describes be, taking Timer, Synchronizer and MemoryMeter from
// the backend when it implements them, and the name and driver, when not
// given, from DeviceName() and Versions() methods. A backend whose name
// starts with "cuda" is a GPU.
func NewDevice(be nn.Backend, name, driver string) *Device {
	if n, ok := be.(interface{ DeviceName() string }); ok && name == "" {
		name = n.DeviceName()
	}
	if v, ok := be.(interface{ Versions() string }); ok && driver == "" {
		driver = v.Versions()
	}
	d := &Device{Backend: be, Name: name, Driver: driver, GPU: strings.HasPrefix(be.Name(), "cuda")}
	if t, ok := be.(Timer); ok {
		d.Timer = t
	}
	if s, ok := be.(Synchronizer); ok {
		d.Sync = s
	}
	if c, ok := be.(StreamCounter); ok {
		d.Counter = c
	}
	if p, ok := be.(nn.Profiler); ok {
		d.Profiler = p
	}
	if m, ok := be.(MemoryMeter); ok {
		d.Memory = m
	}
	if d.GPU {
		d.CacheBytes = 64 << 20 // H100/H200 L2 is 50–60 MiB
	} else {
		d.CacheBytes = cpuCacheBytes()
	}
	if d.Name == "" {
		d.Name = pick(d.GPU, "GPU", CPUName())
	}
	return d
}

// CPUName is the CPU model with the core count, e.g. "AMD EPYC (2 cores)".
func CPUName() string {
	model := runtime.GOARCH
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s (%d cores)", model, runtime.NumCPU())
}

// cpuCacheBytes reads the size of the largest CPU cache from sysfs (32 MiB
// when it cannot).
func cpuCacheBytes() int64 {
	best := int64(0)
	for i := range 6 {
		b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu0/cache/index%d/size", i))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		mult := int64(1)
		switch {
		case strings.HasSuffix(s, "K"):
			mult, s = 1<<10, strings.TrimSuffix(s, "K")
		case strings.HasSuffix(s, "M"):
			mult, s = 1<<20, strings.TrimSuffix(s, "M")
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			best = max(best, n*mult)
		}
	}
	if best == 0 {
		return 32 << 20
	}
	return best
}

// wallTimer times with the host clock, synchronising before and after
// when the backend is asynchronous.
type wallTimer struct{ sync Synchronizer }

func (w wallTimer) Time(reps int, f func()) (float64, error) {
	if w.sync != nil {
		if err := w.sync.Synchronize(); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	for range reps {
		f()
	}
	if w.sync != nil {
		if err := w.sync.Synchronize(); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(t0).Nanoseconds()) / 1e6 / float64(max(reps, 1)), nil
}

func (d *Device) timer() Timer {
	if d.Timer != nil {
		return d.Timer
	}
	return wallTimer{d.Sync}
}

// measure warms f up, then takes o.Repeat samples of the mean time of one
// call (seconds), each sample repeating f enough times to last at least
// o.MinSample. A panic inside f (an op the backend lacks, out of memory)
// becomes the error.
func (d *Device) measure(f func(), o Options) (samples []float64, reps int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	t := d.timer()
	// The first call loads modules, compiles kernels and grows the
	// allocator: it is never a sample, only an estimate of one call.
	est, err := t.Time(1, f)
	if err != nil {
		return nil, 0, err
	}
	est = max(est, 1e-6)
	// Then warm up for o.Warmup (at least one call): clocks ramp up,
	// caches and allocator settle.
	for calls, spent := 0, 0.0; calls < 1 || spent < float64(o.Warmup.Microseconds())/1e3; calls++ {
		ms, err := t.Time(1, f)
		if err != nil {
			return nil, 0, err
		}
		spent += ms
		est = min(est, max(ms, 1e-6))
	}
	reps = int(math.Ceil(float64(o.MinSample.Microseconds()) / 1e3 / est))
	reps = max(1, min(reps, 100000))
	samples = make([]float64, 0, o.Repeat)
	for range o.Repeat {
		ms, err := t.Time(reps, f)
		if err != nil {
			return nil, 0, err
		}
		samples = append(samples, ms/1e3)
	}
	return samples, reps, nil
}

// tracked counts the bytes of the live buffers of a backend (in use and
// peak), for devices without an allocator of their own to ask. Buffers
// pass through unchanged. A buffer counts at its type's size (nn.DTypeOf):
// a bfloat16 one at 2 bytes, what it takes on a GPU, though cpu-bfloat16
// holds it in 4 (Result.HeapBytes is the Go heap).
type tracked struct {
	nn.Backend
	elem        int64
	mu          sync.Mutex
	inUse, peak int64
}

func track(be nn.Backend) *tracked { return &tracked{Backend: be, elem: int64(elemBytes(be))} }

func (t *tracked) Alloc(n int) nn.Buffer {
	b := t.Backend.Alloc(n)
	t.add(int64(n) * t.elem)
	return b
}

func (t *tracked) add(bytes int64) {
	t.mu.Lock()
	t.inUse += bytes
	t.peak = max(t.peak, t.inUse)
	t.mu.Unlock()
}

func (t *tracked) Free(b nn.Buffer) {
	t.add(-int64(b.Len()) * nn.DTypeOf(t.Backend, b).Size())
	t.Backend.Free(b)
}

// SumSquaresEach keeps the wrapped backend's one-round-trip reduction (the
// clip in a train step) visible through the wrapper.
func (t *tracked) SumSquaresEach(xs []nn.Buffer) []float64 { return nn.SumSquaresEach(t.Backend, xs) }

// AdamWEach keeps the wrapped backend's one-pass update of every tensor
// (nn.ManyAdamW: one launch on a GPU) visible through the wrapper; without
// it a step would fall back to one AdamW a tensor.
func (t *tracked) AdamWEach(ts []nn.AdamWTensor, a nn.AdamWArgs) { nn.AdamWEach(t.Backend, ts, a) }

// MeanLoss, MeanLossGrad, NewStepStats, AdamWClipped and ArgmaxRowsInto
// keep the wrapped backend's device-side step (nn.DeviceStep: a training
// step that reads nothing back before its end, which a graph can replay)
// visible through the wrapper; where it has none, nn's host way runs.
func (t *tracked) MeanLoss(out, loss nn.Buffer, targets []int32, ignore int32) {
	nn.MeanLoss(t.Backend, out, loss, targets, ignore)
}

func (t *tracked) MeanLossGrad(dloss, g nn.Buffer, targets []int32, ignore int32) {
	nn.MeanLossGrad(t.Backend, dloss, g, targets, ignore)
}

func (t *tracked) NewStepStats() nn.Buffer { return nn.NewStepStats(t.Backend) }

func (t *tracked) AdamWClipped(ts []nn.AdamWTensor, a *nn.AdamWArgs, maxNorm float64, loss, stats nn.Buffer) {
	nn.AdamWClipped(t.Backend, ts, a, maxNorm, loss, stats)
}

func (t *tracked) ArgmaxRowsInto(dst, x nn.Buffer, rows, cols int) {
	nn.ArgmaxRowsInto(t.Backend, dst, x, rows, cols)
}

// ScanCheckpointLen keeps the wrapped backend's saved scan states (the
// backward then skips recomputing them) visible through the wrapper.
func (t *tracked) ScanCheckpointLen(a nn.ScanArgs) int { return nn.ScanCheckpointLen(t.Backend, a) }

// AllocUninit keeps the wrapped backend's allocation without a zero fill
// (an op's result: nn.UninitAllocator) visible through the wrapper,
// tracked; where the backend has none, the buffer is filled.
func (t *tracked) AllocUninit(n int, dt nn.DType) nn.Buffer {
	var b nn.Buffer
	switch u, ok := t.Backend.(nn.UninitAllocator); {
	case ok:
		b = u.AllocUninit(n, dt)
	case dt == t.Backend.DType():
		b = t.Backend.Alloc(n)
	default:
		b = t.Backend.(nn.MixedBackend).AllocAs(n, dt)
	}
	t.add(int64(n) * dt.Size())
	return b
}

// StreamCounter is a backend that counts the operations it queued on its
// device (kernel launches, library calls, copies) and the times the host
// waited for the device, since it was opened. gpukernels.Backend has it.
type StreamCounter interface {
	StreamCounts() (ops, hostWaits int64)
}

// backend is what to compute on: t itself, or, when t's backend is a
// mixed-precision one, t with its AllocAs and ActDType (tracked too), so
// that tapes on it run the mixed-precision model path.
func (t *tracked) backend() nn.Backend {
	if m, ok := t.Backend.(nn.MixedBackend); ok && m.ActDType() != m.DType() {
		return &trackedMixed{t, m}
	}
	return t
}

// The wrappers keep the interfaces of the backend that a step uses.
var (
	_ nn.ManyAdamW        = (*trackedMixed)(nil)
	_ nn.ManySumSquarer   = (*trackedMixed)(nil)
	_ nn.ScanCheckpointer = (*trackedMixed)(nil)
	_ nn.UninitAllocator  = (*trackedMixed)(nil)
	_ nn.DeviceLoss       = (*trackedMixed)(nil)
	_ nn.ClippedAdamW     = (*trackedMixed)(nil)
	_ nn.ArgmaxSetter     = (*trackedMixed)(nil)
)

// trackedMixed is a tracked mixed-precision backend.
type trackedMixed struct {
	*tracked
	m nn.MixedBackend
}

func (t *trackedMixed) ActDType() nn.DType { return t.m.ActDType() }

func (t *trackedMixed) AllocAs(n int, dt nn.DType) nn.Buffer {
	b := t.m.AllocAs(n, dt)
	t.add(int64(n) * dt.Size())
	return b
}

func (t *tracked) ResetPeak() {
	t.mu.Lock()
	t.peak = t.inUse
	t.mu.Unlock()
}

func (t *tracked) PeakBytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peak
}

// meter is the device's allocator where it has one, else the tracker.
func (d *Device) meter(t *tracked) MemoryMeter {
	if d.Memory != nil {
		return d.Memory
	}
	return t
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
