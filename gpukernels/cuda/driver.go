package cuda

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Result is a CUresult.
type Result int32

// Device attributes read by OpenDevice (CUdevice_attribute).
const (
	attrMaxThreadsPerBlock   = 1
	attrMaxSharedPerBlock    = 8
	attrClockRate            = 13
	attrMultiprocessorCount  = 16
	attrMemoryClockRate      = 36
	attrGlobalMemoryBusWidth = 37
	attrL2CacheSize          = 38
	attrCCMajor              = 75
	attrCCMinor              = 76
	attrMaxSharedOptin       = 97
)

// Function attributes (CUfunction_attribute).
const (
	FuncAttrSharedSizeBytes     = 1
	FuncAttrLocalSizeBytes      = 3
	FuncAttrNumRegs             = 4
	FuncAttrMaxDynamicSharedMem = 8
)

// Driver is the CUDA driver API (libcuda.so.1), bound at run time.
type Driver struct {
	Path string

	cuInit                                      func(flags uint32) Result
	cuDriverGetVersion                          func(v *int32) Result
	cuGetErrorName                              func(r Result, s **byte) Result
	cuGetErrorString                            func(r Result, s **byte) Result
	cuDeviceGetCount                            func(n *int32) Result
	cuDeviceGet                                 func(dev *int32, ordinal int32) Result
	cuDeviceGetName                             func(name *byte, n int32, dev int32) Result
	cuDeviceGetAttribute                        func(v *int32, attr int32, dev int32) Result
	cuDeviceTotalMem                            func(bytes *uint64, dev int32) Result
	cuDevicePrimaryCtxRetain                    func(ctx *uintptr, dev int32) Result
	cuDevicePrimaryCtxRelease                   func(dev int32) Result
	cuCtxSetCurrent                             func(ctx uintptr) Result
	cuCtxSynchronize                            func() Result
	cuStreamCreate                              func(s *uintptr, flags uint32) Result
	cuStreamDestroy                             func(s uintptr) Result
	cuStreamSynchronize                         func(s uintptr) Result
	cuEventCreate                               func(e *uintptr, flags uint32) Result
	cuEventDestroy                              func(e uintptr) Result
	cuEventRecord                               func(e, s uintptr) Result
	cuEventSynchronize                          func(e uintptr) Result
	cuEventElapsedTime                          func(ms *float32, start, end uintptr) Result
	cuMemAlloc                                  func(p *uint64, bytes uint64) Result
	cuMemFree                                   func(p uint64) Result
	cuMemGetInfo                                func(free, total *uint64) Result
	cuMemAllocHost                              func(p *unsafe.Pointer, bytes uint64) Result
	cuMemFreeHost                               func(p unsafe.Pointer) Result
	cuMemcpyHtoDAsync                           func(dst uint64, src unsafe.Pointer, bytes uint64, s uintptr) Result
	cuMemcpyDtoHAsync                           func(dst unsafe.Pointer, src uint64, bytes uint64, s uintptr) Result
	cuMemcpyDtoDAsync                           func(dst, src uint64, bytes uint64, s uintptr) Result
	cuMemsetD32Async                            func(dst uint64, v uint32, n uint64, s uintptr) Result
	cuMemsetD16Async                            func(dst uint64, v uint16, n uint64, s uintptr) Result
	cuModuleLoadData                            func(m *uintptr, image unsafe.Pointer) Result
	cuModuleUnload                              func(m uintptr) Result
	cuModuleGetFunction                         func(f *uintptr, m uintptr, name string) Result
	cuFuncSetAttribute                          func(f uintptr, attr int32, v int32) Result
	cuFuncGetAttribute                          func(v *int32, attr int32, f uintptr) Result
	cuLaunchKernel                              func(f uintptr, gx, gy, gz, bx, by, bz, smem uint32, s uintptr, params, extra unsafe.Pointer) Result
	cuLaunchCooperativeKernel                   func(f uintptr, gx, gy, gz, bx, by, bz, smem uint32, s uintptr, params unsafe.Pointer) Result
	cuOccupancyMaxActiveBlocksPerMultiprocessor func(n *int32, f uintptr, blockSize int32, smem uint64) Result
	cuStreamBeginCapture                        func(s uintptr, mode int32) Result
	cuStreamEndCapture                          func(s uintptr, g *uintptr) Result
	cuGraphInstantiateWithFlags                 func(exec *uintptr, g uintptr, flags uint64) Result
	cuGraphLaunch                               func(exec, s uintptr) Result
	cuGraphExecDestroy                          func(exec uintptr) Result
	cuGraphDestroy                              func(g uintptr) Result
	cuGraphGetNodes                             func(g uintptr, nodes unsafe.Pointer, n *uint64) Result
}

var (
	driverOnce sync.Once
	driverVal  *Driver
	driverErr  error
)

// LoadDriver dlopens libcuda.so.1, binds the calls seqbench uses and runs
// cuInit once per process. The error says which step failed: the library
// did not load (no driver installed), a symbol is missing, or cuInit
// failed (a driver but no usable device).
func LoadDriver() (*Driver, error) {
	driverOnce.Do(func() { driverVal, driverErr = loadDriver() })
	return driverVal, driverErr
}

func loadDriver() (*Driver, error) {
	h, path, err := Open("libcuda.so.1")
	if err != nil {
		return nil, fmt.Errorf("libcuda.so.1 did not load: %w", err)
	}
	d := &Driver{Path: path}
	syms := []symbol{
		sym(&d.cuInit, "cuInit"),
		sym(&d.cuDriverGetVersion, "cuDriverGetVersion"),
		sym(&d.cuGetErrorName, "cuGetErrorName"),
		sym(&d.cuGetErrorString, "cuGetErrorString"),
		sym(&d.cuDeviceGetCount, "cuDeviceGetCount"),
		sym(&d.cuDeviceGet, "cuDeviceGet"),
		sym(&d.cuDeviceGetName, "cuDeviceGetName"),
		sym(&d.cuDeviceGetAttribute, "cuDeviceGetAttribute"),
		sym(&d.cuDeviceTotalMem, "cuDeviceTotalMem_v2"),
		sym(&d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
		sym(&d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
		sym(&d.cuCtxSetCurrent, "cuCtxSetCurrent"),
		sym(&d.cuCtxSynchronize, "cuCtxSynchronize"),
		sym(&d.cuStreamCreate, "cuStreamCreate"),
		sym(&d.cuStreamDestroy, "cuStreamDestroy_v2", "cuStreamDestroy"),
		sym(&d.cuStreamSynchronize, "cuStreamSynchronize"),
		sym(&d.cuEventCreate, "cuEventCreate"),
		sym(&d.cuEventDestroy, "cuEventDestroy_v2", "cuEventDestroy"),
		sym(&d.cuEventRecord, "cuEventRecord"),
		sym(&d.cuEventSynchronize, "cuEventSynchronize"),
		sym(&d.cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime"),
		sym(&d.cuMemAlloc, "cuMemAlloc_v2"),
		sym(&d.cuMemFree, "cuMemFree_v2"),
		sym(&d.cuMemGetInfo, "cuMemGetInfo_v2"),
		sym(&d.cuMemAllocHost, "cuMemAllocHost_v2"),
		sym(&d.cuMemFreeHost, "cuMemFreeHost"),
		sym(&d.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
		sym(&d.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
		sym(&d.cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
		sym(&d.cuMemsetD32Async, "cuMemsetD32Async"),
		sym(&d.cuMemsetD16Async, "cuMemsetD16Async"),
		sym(&d.cuModuleLoadData, "cuModuleLoadData"),
		sym(&d.cuModuleUnload, "cuModuleUnload"),
		sym(&d.cuModuleGetFunction, "cuModuleGetFunction"),
		sym(&d.cuFuncSetAttribute, "cuFuncSetAttribute"),
		sym(&d.cuFuncGetAttribute, "cuFuncGetAttribute"),
		sym(&d.cuLaunchKernel, "cuLaunchKernel"),
		sym(&d.cuLaunchCooperativeKernel, "cuLaunchCooperativeKernel"),
		sym(&d.cuOccupancyMaxActiveBlocksPerMultiprocessor, "cuOccupancyMaxActiveBlocksPerMultiprocessor"),
		sym(&d.cuStreamBeginCapture, "cuStreamBeginCapture_v2"),
		sym(&d.cuStreamEndCapture, "cuStreamEndCapture"),
		sym(&d.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"),
		sym(&d.cuGraphLaunch, "cuGraphLaunch"),
		sym(&d.cuGraphExecDestroy, "cuGraphExecDestroy"),
		sym(&d.cuGraphDestroy, "cuGraphDestroy"),
		sym(&d.cuGraphGetNodes, "cuGraphGetNodes"),
	}
	if _, err := bindAll(h, path, syms); err != nil {
		return nil, err
	}
	if err := d.check("cuInit", d.cuInit(0)); err != nil {
		return nil, err
	}
	return d, nil
}

// check turns a CUresult into an *Error naming the call and the result.
func (d *Driver) check(call string, r Result) error {
	if r == 0 {
		return nil
	}
	e := &Error{Call: call, Code: int(r), Name: fmt.Sprintf("CUresult %d", int(r))}
	var p *byte
	if d.cuGetErrorName(r, &p) == 0 {
		e.Name = cString(p)
	}
	if d.cuGetErrorString(r, &p) == 0 {
		e.Detail = cString(p)
	}
	return e
}

// Version is the driver's CUDA version, e.g. 13000 for 13.0.
func (d *Driver) Version() (int, error) {
	var v int32
	err := d.check("cuDriverGetVersion", d.cuDriverGetVersion(&v))
	return int(v), err
}

// DeviceCount is the number of CUDA devices.
func (d *Driver) DeviceCount() (int, error) {
	var n int32
	err := d.check("cuDeviceGetCount", d.cuDeviceGetCount(&n))
	return int(n), err
}

// Device is one GPU with its primary context retained, and the facts read
// from it.
type Device struct {
	Driver  *Driver
	Ordinal int
	Name    string
	// SMs is the multiprocessor count; CCMajor.CCMinor the compute capability.
	SMs, CCMajor, CCMinor int
	L2Bytes               int
	// MaxSharedPerBlock is the default limit, MaxSharedOptin the most a
	// kernel may ask for after raising its attribute.
	MaxSharedPerBlock, MaxSharedOptin int
	MaxThreadsPerBlock                int
	ClockKHz, MemClockKHz, BusBits    int
	TotalMem                          uint64
	DriverVersion                     int

	dev int32
	ctx uintptr
}

// OpenDevice retains the primary context of device ordinal (the context the
// CUDA runtime, and so cuBLAS, uses too) and reads its attributes.
func (d *Driver) OpenDevice(ordinal int) (*Device, error) {
	n, err := d.DeviceCount()
	if err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda: device %d asked for, %d present", ordinal, n)
	}
	dv := &Device{Driver: d, Ordinal: ordinal}
	if err := d.check("cuDeviceGet", d.cuDeviceGet(&dv.dev, int32(ordinal))); err != nil {
		return nil, err
	}
	name := make([]byte, 256)
	if err := d.check("cuDeviceGetName", d.cuDeviceGetName(&name[0], int32(len(name)), dv.dev)); err != nil {
		return nil, err
	}
	dv.Name = cString(&name[0])
	attrs := []struct {
		dst  *int
		attr int32
	}{
		{&dv.SMs, attrMultiprocessorCount}, {&dv.CCMajor, attrCCMajor}, {&dv.CCMinor, attrCCMinor},
		{&dv.L2Bytes, attrL2CacheSize}, {&dv.MaxSharedPerBlock, attrMaxSharedPerBlock},
		{&dv.MaxSharedOptin, attrMaxSharedOptin}, {&dv.MaxThreadsPerBlock, attrMaxThreadsPerBlock},
		{&dv.ClockKHz, attrClockRate}, {&dv.MemClockKHz, attrMemoryClockRate}, {&dv.BusBits, attrGlobalMemoryBusWidth},
	}
	for _, a := range attrs {
		var v int32
		if err := d.check(fmt.Sprintf("cuDeviceGetAttribute(%d)", a.attr), d.cuDeviceGetAttribute(&v, a.attr, dv.dev)); err != nil {
			return nil, err
		}
		*a.dst = int(v)
	}
	if err := d.check("cuDeviceTotalMem_v2", d.cuDeviceTotalMem(&dv.TotalMem, dv.dev)); err != nil {
		return nil, err
	}
	if dv.DriverVersion, err = d.Version(); err != nil {
		return nil, err
	}
	if err := d.check("cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain(&dv.ctx, dv.dev)); err != nil {
		return nil, err
	}
	return dv, nil
}

// Arch is the NVRTC target of the device, e.g. "sm_90".
func (dv *Device) Arch() string { return fmt.Sprintf("sm_%d%d", dv.CCMajor, dv.CCMinor) }

// Lock pins the calling goroutine to its OS thread and makes the device's
// context current there: CUDA contexts are per thread, and Go moves
// goroutines between threads, so every sequence of driver calls runs
// between Lock and Unlock.
func (dv *Device) Lock() error {
	runtime.LockOSThread()
	if err := dv.Driver.check("cuCtxSetCurrent", dv.Driver.cuCtxSetCurrent(dv.ctx)); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	return nil
}

// Unlock releases the thread pinned by Lock.
func (dv *Device) Unlock() { runtime.UnlockOSThread() }

// Close releases the primary context (call between Lock and Unlock).
func (dv *Device) Close() error {
	return dv.Driver.check("cuDevicePrimaryCtxRelease_v2", dv.Driver.cuDevicePrimaryCtxRelease(dv.dev))
}

// The calls below expect the device's context to be current (see Lock).

// Synchronize waits for all work of the context.
func (d *Driver) Synchronize() error { return d.check("cuCtxSynchronize", d.cuCtxSynchronize()) }

// StreamCreate creates a stream (flags 0: it orders with the legacy
// default stream).
func (d *Driver) StreamCreate(flags uint32) (uintptr, error) {
	var s uintptr
	err := d.check("cuStreamCreate", d.cuStreamCreate(&s, flags))
	return s, err
}

func (d *Driver) StreamDestroy(s uintptr) error {
	return d.check("cuStreamDestroy_v2", d.cuStreamDestroy(s))
}

func (d *Driver) StreamSynchronize(s uintptr) error {
	return d.check("cuStreamSynchronize", d.cuStreamSynchronize(s))
}

func (d *Driver) EventCreate() (uintptr, error) {
	var e uintptr
	err := d.check("cuEventCreate", d.cuEventCreate(&e, 0))
	return e, err
}

func (d *Driver) EventDestroy(e uintptr) error {
	return d.check("cuEventDestroy_v2", d.cuEventDestroy(e))
}

func (d *Driver) EventRecord(e, s uintptr) error {
	return d.check("cuEventRecord", d.cuEventRecord(e, s))
}

func (d *Driver) EventSynchronize(e uintptr) error {
	return d.check("cuEventSynchronize", d.cuEventSynchronize(e))
}

// EventElapsed is the time between two recorded events in milliseconds.
func (d *Driver) EventElapsed(start, end uintptr) (float64, error) {
	var ms float32
	err := d.check("cuEventElapsedTime", d.cuEventElapsedTime(&ms, start, end))
	return float64(ms), err
}

// MemAlloc allocates device memory.
func (d *Driver) MemAlloc(bytes uint64) (uint64, error) {
	var p uint64
	err := d.check(fmt.Sprintf("cuMemAlloc_v2(%d bytes)", bytes), d.cuMemAlloc(&p, bytes))
	return p, err
}

func (d *Driver) MemFree(p uint64) error { return d.check("cuMemFree_v2", d.cuMemFree(p)) }

// MemGetInfo returns the free and total device memory in bytes.
func (d *Driver) MemGetInfo() (free, total uint64, err error) {
	err = d.check("cuMemGetInfo_v2", d.cuMemGetInfo(&free, &total))
	return free, total, err
}

// MemAllocHost allocates page-locked host memory: copies from it are truly
// asynchronous.
func (d *Driver) MemAllocHost(bytes uint64) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	err := d.check(fmt.Sprintf("cuMemAllocHost_v2(%d bytes)", bytes), d.cuMemAllocHost(&p, bytes))
	return p, err
}

func (d *Driver) MemFreeHost(p unsafe.Pointer) error {
	return d.check("cuMemFreeHost", d.cuMemFreeHost(p))
}

// MemcpyHtoDAsync copies bytes from host memory src; src must stay valid
// (and pinned, if it is Go memory) until the copy completes.
func (d *Driver) MemcpyHtoDAsync(dst uint64, src unsafe.Pointer, bytes uint64, s uintptr) error {
	return d.check("cuMemcpyHtoDAsync_v2", d.cuMemcpyHtoDAsync(dst, src, bytes, s))
}

func (d *Driver) MemcpyDtoHAsync(dst unsafe.Pointer, src uint64, bytes uint64, s uintptr) error {
	return d.check("cuMemcpyDtoHAsync_v2", d.cuMemcpyDtoHAsync(dst, src, bytes, s))
}

func (d *Driver) MemcpyDtoDAsync(dst, src uint64, bytes uint64, s uintptr) error {
	return d.check("cuMemcpyDtoDAsync_v2", d.cuMemcpyDtoDAsync(dst, src, bytes, s))
}

// MemsetD32Async sets n 32-bit words to v.
func (d *Driver) MemsetD32Async(dst uint64, v uint32, n uint64, s uintptr) error {
	return d.check("cuMemsetD32Async", d.cuMemsetD32Async(dst, v, n, s))
}

// MemsetD16Async sets n 16-bit words to v.
func (d *Driver) MemsetD16Async(dst uint64, v uint16, n uint64, s uintptr) error {
	return d.check("cuMemsetD16Async", d.cuMemsetD16Async(dst, v, n, s))
}

// ModuleLoadData loads a cubin image.
func (d *Driver) ModuleLoadData(image []byte) (uintptr, error) {
	if len(image) == 0 {
		return 0, &Error{Call: "cuModuleLoadData", Name: "empty image"}
	}
	var p runtime.Pinner
	defer p.Unpin()
	p.Pin(&image[0])
	var m uintptr
	err := d.check("cuModuleLoadData", d.cuModuleLoadData(&m, unsafe.Pointer(&image[0])))
	return m, err
}

func (d *Driver) ModuleUnload(m uintptr) error { return d.check("cuModuleUnload", d.cuModuleUnload(m)) }

func (d *Driver) ModuleGetFunction(m uintptr, name string) (uintptr, error) {
	var f uintptr
	err := d.check("cuModuleGetFunction("+name+")", d.cuModuleGetFunction(&f, m, name))
	return f, err
}

func (d *Driver) FuncSetAttribute(f uintptr, attr, v int) error {
	return d.check(fmt.Sprintf("cuFuncSetAttribute(%d, %d)", attr, v), d.cuFuncSetAttribute(f, int32(attr), int32(v)))
}

func (d *Driver) FuncGetAttribute(f uintptr, attr int) (int, error) {
	var v int32
	err := d.check(fmt.Sprintf("cuFuncGetAttribute(%d)", attr), d.cuFuncGetAttribute(&v, int32(attr), f))
	return int(v), err
}

// Dim3 is a grid or block shape.
type Dim3 struct{ X, Y, Z uint32 }

// Launch runs kernel f with the given parameters. Every parameter is 8 bytes
// (a device pointer, a long long or a double, as the kernels of this project
// declare them); their storage and the pointer array that cuLaunchKernel
// reads stay pinned for the call.
func (d *Driver) Launch(f uintptr, grid, block Dim3, smem uint32, s uintptr, args []uint64) error {
	return withParams(args, func(params unsafe.Pointer) error {
		return d.check("cuLaunchKernel", d.cuLaunchKernel(f, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, smem, s, params, nil))
	})
}

// LaunchCooperative is Launch for a kernel whose blocks wait for each other
// (a grid-wide barrier): the driver refuses a grid whose blocks cannot all
// be resident at once, instead of letting it hang.
func (d *Driver) LaunchCooperative(f uintptr, grid, block Dim3, smem uint32, s uintptr, args []uint64) error {
	return withParams(args, func(params unsafe.Pointer) error {
		return d.check("cuLaunchCooperativeKernel", d.cuLaunchCooperativeKernel(f, grid.X, grid.Y, grid.Z, block.X, block.Y,
			block.Z, smem, s, params))
	})
}

// LaunchPacked is Launch for a kernel with one by-value parameter, a struct
// whose bytes are packed (8-byte fields, in order).
func (d *Driver) LaunchPacked(f uintptr, grid, block Dim3, smem uint32, s uintptr, packed []uint64) error {
	var p runtime.Pinner
	defer p.Unpin()
	p.Pin(&packed[0])
	ptrs := []unsafe.Pointer{unsafe.Pointer(&packed[0])}
	p.Pin(&ptrs[0])
	return d.check("cuLaunchKernel", d.cuLaunchKernel(f, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, smem, s,
		unsafe.Pointer(&ptrs[0]), nil))
}

// withParams calls launch with the kernel-parameter array of args, pinned.
func withParams(args []uint64, launch func(params unsafe.Pointer) error) error {
	var p runtime.Pinner
	defer p.Unpin()
	var params unsafe.Pointer
	if len(args) > 0 {
		ptrs := make([]unsafe.Pointer, len(args))
		p.Pin(&args[0])
		for i := range args {
			ptrs[i] = unsafe.Pointer(&args[i])
		}
		p.Pin(&ptrs[0])
		params = unsafe.Pointer(&ptrs[0])
	}
	return launch(params)
}

// CaptureRelaxed is CU_STREAM_CAPTURE_MODE_RELAXED: while a stream
// captures, other calls of the process (cuMemAlloc among them) are not
// refused; the work queued on the stream becomes the graph's nodes.
const CaptureRelaxed = 2

// StreamBeginCapture starts recording the work queued on s into a graph
// instead of running it.
func (d *Driver) StreamBeginCapture(s uintptr, mode int32) error {
	return d.check("cuStreamBeginCapture_v2", d.cuStreamBeginCapture(s, mode))
}

// StreamEndCapture ends the recording and returns the graph.
func (d *Driver) StreamEndCapture(s uintptr) (uintptr, error) {
	var g uintptr
	err := d.check("cuStreamEndCapture", d.cuStreamEndCapture(s, &g))
	return g, err
}

// GraphInstantiate makes an executable graph of g.
func (d *Driver) GraphInstantiate(g uintptr) (uintptr, error) {
	var exec uintptr
	err := d.check("cuGraphInstantiateWithFlags", d.cuGraphInstantiateWithFlags(&exec, g, 0))
	return exec, err
}

// GraphLaunch queues an executable graph on s.
func (d *Driver) GraphLaunch(exec, s uintptr) error {
	return d.check("cuGraphLaunch", d.cuGraphLaunch(exec, s))
}

func (d *Driver) GraphExecDestroy(exec uintptr) error {
	return d.check("cuGraphExecDestroy", d.cuGraphExecDestroy(exec))
}

func (d *Driver) GraphDestroy(g uintptr) error {
	return d.check("cuGraphDestroy", d.cuGraphDestroy(g))
}

// GraphNodes is the number of nodes of g.
func (d *Driver) GraphNodes(g uintptr) (int, error) {
	var n uint64
	err := d.check("cuGraphGetNodes", d.cuGraphGetNodes(g, nil, &n))
	return int(n), err
}

// MaxActiveBlocksPerSM is how many blocks of f, with block threads and smem
// bytes of dynamic shared memory each, fit on one multiprocessor at once.
func (d *Driver) MaxActiveBlocksPerSM(f uintptr, block, smem int) (int, error) {
	var n int32
	err := d.check("cuOccupancyMaxActiveBlocksPerMultiprocessor",
		d.cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, int32(block), uint64(smem)))
	return int(n), err
}
