// Package gpukernels is the CUDA backend: the ops of nn.Backend as CUDA
// kernels (one .cu file per op family, mirroring cpukernels file by file),
// compiled at run time by NVRTC for the device's own architecture and cached
// on disk, GEMMs through cuBLAS, and a caching device allocator. Everything
// is reached through purego bindings (package cuda): the package builds with
// CGO_ENABLED=0 and finds the GPU at run time.
//
// Errors: nn.Backend's ops return no error, so a failed CUDA call panics with
// an *OpError naming the op and the call (train.Run recovers panics into a
// failed run), and an allocation the device cannot satisfy panics with an
// *OOMError. Argument mistakes (lengths, shapes) panic with a message, as in
// cpukernels.
//
// The fused sequence ops of nn.SeqOps (conv1d, selective scan, SSD, LSTM,
// GRU, S4D, FFT convolution) are here too: *Backend is a complete
// nn.Backend.
package gpukernels

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

var _ nn.Backend = (*Backend)(nil)

// Options configure a Backend beyond its element type.
type Options struct {
	Device int // CUDA device ordinal
	// CacheDir holds compiled kernels; "" means os.UserCacheDir()/seqbench/cubin,
	// and "-" turns the disk cache off.
	CacheDir string
	// SyncEachLaunch waits for every kernel to finish and checks its result,
	// so an asynchronous fault names the op that caused it (tests and
	// debugging; also set by SEQBENCH_CUDA_SYNC=1).
	SyncEachLaunch bool
	// TF32 lets float32 GEMMs use the tensor cores' TF32 mode (rel err
	// ~1e-3 instead of ~1e-7).
	TF32 bool
}

// Backend is the CUDA backend for one element type (float32, or float64 for
// tight checks), on one device. It is safe for use by several goroutines;
// their ops are serialised.
type Backend struct {
	mu       sync.Mutex
	dtype    nn.DType
	dev      *cuda.Device
	drv      *cuda.Driver
	nvrtc    *cuda.NVRTC
	blas     *cuda.Handle
	stream   uintptr
	alloc    allocator
	mods     map[modKey]*module
	cacheDir string
	syncEach bool
	tf32     bool
	maxGrid  int // blocks of a grid-stride launch
	// attnGeneric turns the register-tiled attention kernels off (tests
	// compare both paths).
	attnGeneric bool
	// scanSequential runs every selective scan on the one-step kernels
	// instead of the chunked ones (tests compare both).
	scanSequential bool
	// scanCkpt makes the chunked scan's forward save the states its
	// backward starts its chunks from (nn.ScanArgs.Ckpt), so the backward
	// skips scan_chunk_states; on unless SEQBENCH_SCAN_CKPT=0 (tests run
	// both).
	scanCkpt bool
	// scanBwdV2 runs the chunked scan's backward as scan_chunk_bwd_v2
	// (selective_scan.cu; SEQBENCH_SCAN_BWD_V2=1).
	scanBwdV2 bool
	// ssdChunked runs SSD and SSDBackward in the chunked form
	// (ssd_chunk.cu) instead of the recurrence (ssd.cu); on unless
	// SEQBENCH_SSD_CHUNKED=0 (tests run both).
	ssdChunked bool
	// flashAttn runs Attention and AttentionBackward with bfloat16
	// activations at head dims 64 and 128 on the tensor-core kernels
	// (flash_attn.cu); on unless SEQBENCH_FLASH_ATTN=0 (tests run both).
	flashAttn    bool
	flashRuns    int // forwards run on flash_attn.cu (tests)
	flashBwdRuns int // backwards run on flash_attn.cu (tests)
	// conv1dTiled runs Conv1D and its backward at W ≤ 4 on the tiled
	// kernels (a thread per 8 positions, the backward in one pass); on
	// unless SEQBENCH_CONV1D_TILED=0 (tests run both).
	conv1dTiled bool
	conv1dTiles int // calls run on the tiled kernels (tests)
	// rnnPersistent runs LSTM and GRU recurrences as one persistent kernel
	// where it fits instead of two launches a step (rnn.go); on unless
	// SEQBENCH_RNN_PERSISTENT=0. The tests run both ways.
	rnnPersistent bool
	rnnPersisted  int // recurrences run as one persistent kernel (tests)
	stats         KernelStats
	counts        streamCounts
	prof          profiler // StartProfile's state
	closed        bool
	// capture is the graph being captured (Capture), or nil.
	capture *Graph
	// staging is the ring of page-locked buffers of uploadInt32.
	staging   [stagingSlots]stagingSlot
	stageNext int
	// signalsFixed are the signals whose handlers the CUDA libraries left
	// without SA_ONSTACK (see cuda.KeepGoSignalStacks), for the tests' log.
	signalsFixed []int
}

// KernelStats counts how kernel families were obtained.
type KernelStats struct {
	Compiles, CacheHits, CacheBad int
}

// streamCounts count, since the backend was opened, the operations it
// queued on its stream (kernel launches, cuBLAS calls, copies and memsets)
// and the times the host waited for the stream (a download, an upload, a
// Synchronize).
type streamCounts struct {
	ops, hostWaits int64
}

// StreamCounts are the operations queued on the stream and the host's
// waits for it since the backend was opened (shared with its BF16 backend,
// which queues on the same stream): bench's launches and host waits per
// training step are their differences over one step.
func (be *Backend) StreamCounts() (ops, hostWaits int64) {
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.counts.ops, be.counts.hostWaits
}

// envSwitch reads the environment switch name of a code path, on unless
// it is "0".
func envSwitch(name string) bool { return os.Getenv(name) != "0" }

// queued counts one operation queued on the stream, panicking with the
// driver's error if queuing it failed.
func (be *Backend) queued(op string, err error) { be.queuedKernel(op, "", err) }

// queuedKernel is queued for a launch of the named kernel.
func (be *Backend) queuedKernel(op, kernel string, err error) {
	must(op, err)
	be.counts.ops++
	be.profEnd(op, kernel)
}

// wait blocks until the stream's work is done (a host wait).
func (be *Backend) wait(op string) {
	be.noWaitInCapture(op)
	be.counts.hostWaits++
	must(op, be.drv.StreamSynchronize(be.stream))
}

// OpError is a failed CUDA call inside an op.
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return "gpukernels." + e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// New returns a CUDA backend of element type dt on device 0 with default
// options. Its error says why no GPU is usable: no driver library, no
// device, or a missing NVRTC or cuBLAS.
func New(dt nn.DType) (*Backend, error) { return NewWithOptions(dt, Options{}) }

// NewWithOptions is New with options.
func NewWithOptions(dt nn.DType, opt Options) (*Backend, error) {
	drv, err := cuda.LoadDriver()
	if err != nil {
		return nil, err
	}
	nv, err := cuda.LoadNVRTC()
	if err != nil {
		return nil, err
	}
	bl, err := cuda.LoadBLAS()
	if err != nil {
		return nil, err
	}
	dev, err := drv.OpenDevice(opt.Device)
	if err != nil {
		return nil, err
	}
	be := &Backend{
		dtype: dt, dev: dev, drv: drv, nvrtc: nv, mods: map[modKey]*module{},
		syncEach: opt.SyncEachLaunch || os.Getenv("SEQBENCH_CUDA_SYNC") == "1",
		tf32:     opt.TF32, maxGrid: max(1, dev.SMs) * 16, rnnPersistent: rnnPersistentFromEnv(),
		ssdChunked: ssdChunkedFromEnv(), flashAttn: flashAttnFromEnv(), conv1dTiled: conv1dTiledFromEnv(),
		scanCkpt: scanCkptFromEnv(), scanBwdV2: scanBwdV2FromEnv(),
	}
	switch opt.CacheDir {
	case "":
		if dir, err := os.UserCacheDir(); err == nil {
			be.cacheDir = filepath.Join(dir, "seqbench", "cubin")
		}
	case "-":
	default:
		be.cacheDir = opt.CacheDir
	}
	if err := dev.Lock(); err != nil {
		return nil, err
	}
	defer dev.Unlock()
	if be.stream, err = drv.StreamCreate(0); err != nil {
		dev.Close()
		return nil, err
	}
	be.alloc = allocator{drv: drv, stream: be.stream, free: map[int64][]uint64{}}
	if be.blas, err = bl.NewHandle(be.stream); err == nil {
		err = be.blas.SetMathMode(mathMode(opt.TF32))
	}
	if err != nil {
		drv.StreamDestroy(be.stream)
		dev.Close()
		return nil, err
	}
	be.signalsFixed = cuda.KeepGoSignalStacks()
	return be, nil
}

// Name says which backend and precision this is.
func (be *Backend) Name() string { return "cuda-" + be.dtype.String() }

// DType is the element type.
func (be *Backend) DType() nn.DType { return be.dtype }

// esize is the bytes of one element of the backend's type (of the real
// the kernels compute and stage in: float in the bfloat16 builds too).
func (be *Backend) esize() int { return int(be.dtype.Size()) }

// Device returns the facts read from the GPU.
func (be *Backend) Device() cuda.Device { return *be.dev }

// Versions names the libraries in use.
func (be *Backend) Versions() string {
	be.enter("Versions")
	v, _ := be.blas.Version()
	be.exit()
	return fmt.Sprintf("driver %s (CUDA %d.%d), NVRTC %s (%s), cuBLAS %d (%s)", be.drv.Path,
		be.dev.DriverVersion/1000, be.dev.DriverVersion%1000/10, be.nvrtc.Version(), be.nvrtc.Path, v, be.blasPath())
}

func (be *Backend) blasPath() string {
	b, err := cuda.LoadBLAS()
	if err != nil {
		return "?"
	}
	return b.Path
}

// Stats returns the kernel-loading counters.
func (be *Backend) Stats() KernelStats {
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.stats
}

// Synchronize waits for all queued work and reports any error it raised.
func (be *Backend) Synchronize() error {
	be.mu.Lock()
	defer be.mu.Unlock()
	if err := be.dev.Lock(); err != nil {
		return err
	}
	defer be.dev.Unlock()
	be.counts.hostWaits++
	return be.drv.StreamSynchronize(be.stream)
}

// Close waits for queued work and releases the cached memory, the kernels,
// the stream and the context. Buffers still allocated become invalid.
func (be *Backend) Close() error {
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.closed {
		return nil
	}
	be.closed = true
	if err := be.dev.Lock(); err != nil {
		return err
	}
	defer be.dev.Unlock()
	errs := []error{be.drv.StreamSynchronize(be.stream), be.alloc.releaseCached(), be.releaseStaging(), be.releaseProfile(), be.blas.Destroy()}
	for _, m := range be.mods {
		errs = append(errs, be.drv.ModuleUnload(m.h))
	}
	errs = append(errs, be.drv.StreamDestroy(be.stream), be.dev.Close())
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// enter starts an op: it takes the backend's lock and makes the context
// current on this (locked) OS thread. exit undoes it; call it deferred, so a
// panicking op releases both.
func (be *Backend) enter(op string) {
	be.mu.Lock()
	if be.closed {
		be.mu.Unlock()
		panic(fmt.Sprintf("gpukernels.%s: backend is closed", op))
	}
	if err := be.dev.Lock(); err != nil {
		be.mu.Unlock()
		panic(&OpError{Op: op, Err: err})
	}
}

func (be *Backend) exit() {
	be.dev.Unlock()
	be.mu.Unlock()
}

// check panics with a failed contract check of nn, naming the op (an
// argument mistake, not a CUDA failure: a plain message, as cpukernels).
func check(op string, err error) {
	if err != nil {
		panic(fmt.Sprintf("gpukernels.%s: %v", op, err))
	}
}

// must panics with an *OpError when err is not nil.
func must(op string, err error) {
	if err != nil {
		panic(&OpError{Op: op, Err: err})
	}
}

// Kernel parameters are 8 bytes each (see common.cuh).
func pArg(b *Buffer) uint64 {
	if b == nil {
		return 0
	}
	return b.ptr
}
func iArg(v int) uint64     { return uint64(int64(v)) }
func fArg(v float64) uint64 { return math.Float64bits(v) }
func bArg(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}
func dim(x int) cuda.Dim3     { return cuda.Dim3{X: uint32(x), Y: 1, Z: 1} }
func dim2(x, y int) cuda.Dim3 { return cuda.Dim3{X: uint32(x), Y: uint32(y), Z: 1} }
func dim3(x, y, z int) cuda.Dim3 {
	return cuda.Dim3{X: uint32(x), Y: uint32(y), Z: uint32(z)}
}

// blocksFor is the grid of a grid-stride launch over n items with threads
// per block: enough blocks to cover n, at most maxGrid.
func (be *Backend) blocksFor(n, threads int) int {
	return max(1, min((n+threads-1)/threads, be.maxGrid))
}

// launch runs a kernel on the backend's stream with dynamic shared memory
// smem, raising the kernel's limit first when smem passes the default 48 KiB.
func (be *Backend) launch(op string, k *kernel, grid, block cuda.Dim3, smem int, args ...uint64) {
	checkArgs(op, k, len(args))
	be.allowSmem(op, k, smem)
	if grid.X == 0 || grid.Y == 0 || grid.Z == 0 {
		return
	}
	be.profStart(op)
	be.checkLaunch(op, k, be.drv.Launch(k.f, grid, block, uint32(smem), be.stream, args))
}

// launchCooperative is launch for a kernel with a grid-wide barrier: the
// driver runs it only if every block can be resident at once.
func (be *Backend) launchCooperative(op string, k *kernel, grid, block cuda.Dim3, smem int, args ...uint64) {
	checkArgs(op, k, len(args))
	be.allowSmem(op, k, smem)
	be.profStart(op)
	be.checkLaunch(op, k, be.drv.LaunchCooperative(k.f, grid, block, uint32(smem), be.stream, args))
}

// allowSmem raises k's dynamic shared-memory limit to smem when needed.
func (be *Backend) allowSmem(op string, k *kernel, smem int) {
	if smem <= k.maxDyn {
		return
	}
	if smem > be.dev.MaxSharedOptin {
		panic(fmt.Sprintf("gpukernels.%s: %s needs %d bytes of shared memory, the device allows %d", op, k.name, smem, be.dev.MaxSharedOptin))
	}
	must(op, be.drv.FuncSetAttribute(k.f, cuda.FuncAttrMaxDynamicSharedMem, smem))
	k.maxDyn = smem
}

// checkLaunch panics with a launch's error, or, when every launch is
// synchronised (tests), with the kernel's.
func (be *Backend) checkLaunch(op string, k *kernel, err error) {
	be.queuedKernel(op, k.name, err)
	if be.syncEach {
		be.counts.hostWaits++
		if err := be.drv.StreamSynchronize(be.stream); err != nil {
			panic(&OpError{Op: op, Err: fmt.Errorf("kernel %s: %w", k.name, err)})
		}
	}
}

// gridY caps a grid's y dimension (kernels loop over y with a grid stride).
func gridY(n int) int { return max(1, min(n, 65535)) }

// Time runs f reps times between two events recorded on the backend's
// stream and returns the mean device time of one run in milliseconds. f
// must only queue work on this backend (its ops do).
func (be *Backend) Time(reps int, f func()) (float64, error) {
	be.enter("Time")
	start, err := be.drv.EventCreate()
	if err != nil {
		be.exit()
		return 0, err
	}
	end, err := be.drv.EventCreate()
	if err == nil {
		err = be.drv.EventRecord(start, be.stream)
	}
	be.exit()
	defer func() {
		be.enter("Time")
		be.drv.EventDestroy(start)
		if end != 0 {
			be.drv.EventDestroy(end)
		}
		be.exit()
	}()
	if err != nil {
		return 0, err
	}
	for range reps {
		f()
	}
	be.enter("Time")
	defer be.exit()
	if err := be.drv.EventRecord(end, be.stream); err != nil {
		return 0, err
	}
	if err := be.drv.EventSynchronize(end); err != nil {
		return 0, err
	}
	ms, err := be.drv.EventElapsed(start, end)
	return ms / float64(max(reps, 1)), err
}
