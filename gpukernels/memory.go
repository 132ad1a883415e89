package gpukernels

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"

	"seqbench/nn"
)

// Buffer is device memory of Len() elements of type DType(): the
// backend's type, or bfloat16 (BF16Backend.AllocAs).
type Buffer struct {
	ptr   uint64 // 0 for an empty buffer
	n     int
	dt    nn.DType
	class int64      // allocator size class in bytes
	pool  *graphPool // the graph whose capture allocated it, or nil
	be    *Backend
	freed bool
}

// Len is the number of elements.
func (b *Buffer) Len() int { return b.n }

// DType is the element type (nn.TypedBuffer).
func (b *Buffer) DType() nn.DType { return b.dt }

// esize is the bytes of one element.
func (b *Buffer) esize() int { return int(b.dt.Size()) }

// Ptr is the device address (a CUdeviceptr).
func (b *Buffer) Ptr() uint64 { return b.ptr }

// buf unwraps a buffer of this backend, checking that it is live and holds
// at least n elements (n < 0: any length).
func (be *Backend) buf(b nn.Buffer, n int, op, name string) *Buffer {
	g, err := be.ownBuf(b, n, op, name)
	if err != nil {
		panic(err.Error())
	}
	return g
}

// ownBuf is buf returning its complaint as an error.
func (be *Backend) ownBuf(b nn.Buffer, n int, op, name string) (*Buffer, error) {
	g, ok := b.(*Buffer)
	if !ok || g == nil {
		return nil, fmt.Errorf("gpukernels.%s: %s is a %T, not a buffer of this backend", op, name, b)
	}
	if g.be != be {
		return nil, fmt.Errorf("gpukernels.%s: %s belongs to another backend", op, name)
	}
	if g.freed {
		return nil, fmt.Errorf("gpukernels.%s: %s was freed", op, name)
	}
	if n >= 0 && g.n < n {
		return nil, fmt.Errorf("gpukernels.%s: %s holds %d elements, needs %d", op, name, g.n, n)
	}
	return g, nil
}

// optBuf is buf for an optional buffer: nil stays nil.
func (be *Backend) optBuf(b nn.Buffer, n int, op, name string) *Buffer {
	if b == nil {
		return nil
	}
	if g, ok := b.(*Buffer); ok && g == nil {
		return nil
	}
	return be.buf(b, n, op, name)
}

// newBuffer takes n elements of type dt from the allocator (no fill).
// Scratch of int32 values is typed float32 (same size; no op reads it as
// a Buffer).
func (be *Backend) newBuffer(n int, dt nn.DType) *Buffer {
	b := &Buffer{n: n, dt: dt, be: be}
	if n > 0 {
		b.ptr, b.class, b.pool = be.alloc.get(int64(n) * dt.Size())
	}
	return b
}

func (be *Backend) release(b *Buffer) {
	if b.ptr != 0 {
		be.alloc.put(b.ptr, b.class, b.pool)
	}
	b.freed, b.ptr = true, 0
}

// Alloc returns a zero-filled buffer of n elements. It panics with an
// *OOMError when the device has no room (see OOMError).
func (be *Backend) Alloc(n int) nn.Buffer {
	if n < 0 {
		panic(fmt.Sprintf("gpukernels.Alloc: negative length %d", n))
	}
	be.enter("Alloc")
	defer be.exit()
	return be.allocAs("Alloc", n, be.dtype)
}

// allocAs returns a zero-filled buffer of n elements of type dt.
func (be *Backend) allocAs(op string, n int, dt nn.DType) *Buffer {
	b := be.newBuffer(n, dt)
	if bytes := int64(n) * dt.Size(); bytes > 0 {
		// Allocations are whole 4-byte words (the allocator rounds up).
		be.profStart(op)
		be.queued(op, be.drv.MemsetD32Async(b.ptr, 0, uint64((bytes+3)/4), be.stream))
	}
	return b
}

var _ nn.UninitAllocator = (*Backend)(nil)

// AllocUninit returns n elements of the backend's type that are not
// zero-filled (nn.UninitAllocator): no memset launch.
func (be *Backend) AllocUninit(n int, dt nn.DType) nn.Buffer {
	if dt != be.dtype {
		panic(fmt.Sprintf("gpukernels.AllocUninit: %s has only %v buffers, not %v", be.Name(), be.dtype, dt))
	}
	return be.allocUninit(n, dt)
}

// allocUninit is AllocUninit once the type is checked.
func (be *Backend) allocUninit(n int, dt nn.DType) *Buffer {
	if n < 0 {
		panic(fmt.Sprintf("gpukernels.AllocUninit: negative length %d", n))
	}
	be.enter("AllocUninit")
	defer be.exit()
	return be.newBuffer(n, dt)
}

// Free returns b's memory to the allocator's cache; b must not be used
// again.
func (be *Backend) Free(b nn.Buffer) {
	be.enter("Free")
	defer be.exit()
	be.release(be.buf(b, -1, "Free", "b"))
}

// MemStats returns the allocator's counters.
func (be *Backend) MemStats() MemStats {
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.alloc.stats
}

// ResetPeak sets the peak counter to the bytes in use now.
func (be *Backend) ResetPeak() {
	be.mu.Lock()
	defer be.mu.Unlock()
	be.alloc.stats.Peak = be.alloc.stats.InUse
}

// ReleaseCached gives the allocator's cached blocks back to the driver.
func (be *Backend) ReleaseCached() error {
	be.mu.Lock()
	defer be.mu.Unlock()
	if err := be.dev.Lock(); err != nil {
		return err
	}
	defer be.dev.Unlock()
	return be.alloc.releaseCached()
}

// hostBytes is the host image of vals in element type dt, each value
// rounded once (bfloat16: nn.BF16FromFloat64).
func hostBytes(vals []float64, dt nn.DType) []byte {
	switch dt {
	case nn.Float64:
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vals))), len(vals)*8)
	case nn.BFloat16:
		h := make([]uint16, len(vals))
		for i, v := range vals {
			h[i] = nn.BF16FromFloat64(v)
		}
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(h))), len(h)*2)
	}
	f := make([]float32, len(vals))
	for i, v := range vals {
		f[i] = float32(v)
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), len(f)*4)
}

// upload copies host bytes to device address dst and waits for the copy,
// so the caller may reuse its slice at once.
func (be *Backend) upload(op string, dst uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	be.noWaitInCapture(op)
	var p runtime.Pinner
	defer p.Unpin()
	p.Pin(&data[0])
	be.profStart(op)
	be.queued(op, be.drv.MemcpyHtoDAsync(dst, unsafe.Pointer(&data[0]), uint64(len(data)), be.stream))
	be.wait(op)
}

// download copies device bytes to host after the work queued before it.
func (be *Backend) download(op string, data []byte, src uint64) {
	if len(data) == 0 {
		return
	}
	be.noWaitInCapture(op)
	var p runtime.Pinner
	defer p.Unpin()
	p.Pin(&data[0])
	be.profStart(op)
	be.queued(op, be.drv.MemcpyDtoHAsync(unsafe.Pointer(&data[0]), src, uint64(len(data)), be.stream))
	be.wait(op)
}

// stagingSlots is the depth of the ring of page-locked buffers that int32
// arguments (ids, targets) travel through.
const stagingSlots = 4

// stagingSlot is one page-locked host buffer and the event recorded after
// the last copy out of it.
type stagingSlot struct {
	host    unsafe.Pointer
	size    int
	event   uintptr
	pending bool
}

// uploadInt32 copies xs into a temporary device buffer (release it after
// the kernels that read it are queued). The bytes go through a ring of
// page-locked staging buffers, so the copy is queued without waiting for
// the stream: a slot is only rewritten after the event behind its previous
// copy has fired, and the caller may reuse xs at once.
//
// Inside a graph capture xs becomes an input of the graph, checked by
// check and copied again at each launch (nil check: xs is derived from
// the op's arguments on the host, which a graph cannot replay).
func (be *Backend) uploadInt32(op string, xs []int32, check func([]int32) error) *Buffer {
	b := be.newBuffer(len(xs), nn.Float32)
	n := len(xs) * 4
	if n == 0 {
		return b
	}
	if be.capture != nil {
		be.captureInput(op, b, xs, check)
		return b
	}
	s := &be.staging[be.stageNext]
	be.stageNext = (be.stageNext + 1) % stagingSlots
	if s.pending {
		be.counts.hostWaits++ // returns at once when the copy is done
		must(op, be.drv.EventSynchronize(s.event))
		s.pending = false
	}
	if s.size < n {
		if s.host != nil {
			must(op, be.drv.MemFreeHost(s.host))
			s.host, s.size = nil, 0
		}
		size := max(n, 64<<10)
		host, err := be.drv.MemAllocHost(uint64(size))
		must(op, err)
		s.host, s.size = host, size
	}
	if s.event == 0 {
		ev, err := be.drv.EventCreate()
		must(op, err)
		s.event = ev
	}
	copy(unsafe.Slice((*int32)(s.host), len(xs)), xs)
	be.profStart(op)
	be.queued(op, be.drv.MemcpyHtoDAsync(b.ptr, s.host, uint64(n), be.stream))
	must(op, be.drv.EventRecord(s.event, be.stream))
	s.pending = true
	return b
}

// releaseStaging frees the staging buffers and their events (at Close, after
// the stream is idle).
func (be *Backend) releaseStaging() error {
	for i := range be.staging {
		s := &be.staging[i]
		if s.host != nil {
			if err := be.drv.MemFreeHost(s.host); err != nil {
				return err
			}
		}
		if s.event != 0 {
			if err := be.drv.EventDestroy(s.event); err != nil {
				return err
			}
		}
		*s = stagingSlot{}
	}
	return nil
}

// Write stores src into the first len(src) elements of dst, rounding to the
// element type.
func (be *Backend) Write(dst nn.Buffer, src []float64) {
	d := be.buf(dst, len(src), "Write", "dst")
	be.enter("Write")
	defer be.exit()
	be.upload("Write", d.ptr, hostBytes(src, d.dt))
}

// Read returns every element of src as float64.
func (be *Backend) Read(src nn.Buffer) []float64 {
	s := be.buf(src, -1, "Read", "src")
	be.enter("Read")
	defer be.exit()
	out := make([]float64, s.n)
	switch s.dt {
	case nn.Float64:
		be.download("Read", unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(out)*8), s.ptr)
		return out
	case nn.BFloat16:
		h := make([]uint16, s.n)
		be.download("Read", unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(h))), len(h)*2), s.ptr)
		for i, v := range h {
			out[i] = float64(nn.BF16ToFloat32(v))
		}
		return out
	}
	f := make([]float32, s.n)
	be.download("Read", unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), len(f)*4), s.ptr)
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// Fill sets every element of dst to v.
func (be *Backend) Fill(dst nn.Buffer, v float64) {
	d := be.buf(dst, -1, "Fill", "dst")
	be.enter("Fill")
	defer be.exit()
	be.fill("Fill", d, d.n, v)
}

// fill sets the first n elements of d to v (rounded once to d's type).
func (be *Backend) fill(op string, d *Buffer, n int, v float64) {
	if n == 0 {
		return
	}
	if d.dt == nn.BFloat16 {
		be.profStart(op)
		be.queued(op, be.drv.MemsetD16Async(d.ptr, nn.BF16FromFloat64(v), uint64(n), be.stream))
		return
	}
	if d.dt == nn.Float32 {
		be.profStart(op)
		be.queued(op, be.drv.MemsetD32Async(d.ptr, math.Float32bits(float32(v)), uint64(n), be.stream))
		return
	}
	k := be.fn(op, "elementwise", "fill")
	be.launch(op, k, dim(be.blocksFor(n, 256)), dim(256), 0, pArg(d), fArg(v), iArg(n))
}

// Copy copies the first dst.Len() elements of src into dst. Between a
// float32 and a bfloat16 buffer it is the cast: exact into float32,
// rounding to nearest (ties to even) into bfloat16.
func (be *Backend) Copy(dst, src nn.Buffer) {
	d := be.buf(dst, -1, "Copy", "dst")
	s := be.buf(src, d.n, "Copy", "src")
	be.enter("Copy")
	defer be.exit()
	be.copy("Copy", d, s, d.n)
}

func (be *Backend) copy(op string, d, s *Buffer, n int) {
	if n == 0 || d.ptr == s.ptr && d.dt == s.dt {
		return
	}
	if d.dt == s.dt {
		be.profStart(op)
		be.queued(op, be.drv.MemcpyDtoDAsync(d.ptr, s.ptr, uint64(n*d.esize()), be.stream))
		return
	}
	var name string
	switch {
	case d.dt == nn.BFloat16 && s.dt == nn.Float32:
		name = "cast_to_bf16"
	case d.dt == nn.Float32 && s.dt == nn.BFloat16:
		name = "cast_from_bf16"
	default:
		panic(fmt.Sprintf("gpukernels.%s: no cast from %v to %v (float32 ↔ bfloat16 only)", op, s.dt, d.dt))
	}
	k := be.fn(op, "memory", name)
	be.launch(op, k, dim(be.blocksFor(n, 256)), dim(256), 0, pArg(d), pArg(s), iArg(n))
}

// CopyBlock copies (or with accumulate, adds) a rows×cols block between
// row-major matrices:
//
//	for r := 0; r < rows; r++ {
//		for c := 0; c < cols; c++ {
//			dst[dstOff+r*dstStride+c] (+)= src[srcOff+r*srcStride+c]
//		}
//	}
//
// Rows of dst must not overlap (dstStride ≥ cols); src rows may (a stride 0
// broadcasts one row). dst and src are each of the backend's type or
// bfloat16; between the two types it casts as Copy does (a sum into
// bfloat16 rounds once).
func (be *Backend) CopyBlock(dst nn.Buffer, dstOff, dstStride int, src nn.Buffer, srcOff, srcStride, rows, cols int, accumulate bool) {
	const op = "CopyBlock"
	check(op, nn.CheckCopyBlock(dstOff, dstStride, srcOff, srcStride, rows, cols))
	if rows == 0 || cols == 0 {
		return
	}
	d := be.buf(dst, dstOff+(rows-1)*dstStride+cols, op, "dst")
	s := be.buf(src, srcOff+(rows-1)*srcStride+cols, op, "src")
	at, mixed, _ := be.ewTypes(op, arg{"dst", d}, arg{"src", s})
	be.enter(op)
	defer be.exit()
	bx, by := be.copyGrid(at, mixed, rows, cols)
	if mixed {
		k := be.fnAs(op, at, "memory", "copy_block_mixed")
		be.launch(op, k, dim2(bx, by), dim(256), 0, pArg(d), iArg(dstOff), iArg(dstStride), pArg(s),
			iArg(srcOff), iArg(srcStride), iArg(rows), iArg(cols), bArg(accumulate), bArg(d.dt == nn.BFloat16))
		return
	}
	k := be.fnAs(op, at, "memory", "copy_block")
	be.launch(op, k, dim2(bx, by), dim(256), 0, pArg(d), iArg(dstOff), iArg(dstStride), pArg(s),
		iArg(srcOff), iArg(srcStride), iArg(rows), iArg(cols), bArg(accumulate), pArg(nil), iArg(0))
}

// AppendRows writes src (rows×cols) into each row of dst at column
// pos[0]·unit, nothing where that passes the row's end (nn.Backend): the
// copy_block kernel reads the offset from the device, so the same launch
// serves every position (a replayed graph). dst and src are both of the
// backend's type or both bfloat16; pos is of the backend's type.
func (be *Backend) AppendRows(dst nn.Buffer, dstStride int, src nn.Buffer, rows, cols int, pos nn.Buffer, unit int) {
	const op = "AppendRows"
	check(op, nn.CheckAppendRows(dstStride, rows, cols, unit))
	if rows == 0 || cols == 0 {
		return
	}
	d := be.buf(dst, (rows-1)*dstStride+cols, op, "dst")
	s := be.buf(src, rows*cols, op, "src")
	p := be.buf(pos, 1, op, "pos")
	be.wantOwn(op, arg{"pos", p})
	at := be.actType(op, arg{"dst", d}, arg{"src", s})
	be.enter(op)
	defer be.exit()
	bx, by := be.copyGrid(at, false, rows, cols)
	k := be.fnAs(op, at, "memory", "copy_block")
	// The kernel adds pos[0]·unit to dstOff before it checks the rows'
	// alignment for 8-element vectors.
	be.launch(op, k, dim2(bx, by), dim(256), 0, pArg(d), iArg(0), iArg(dstStride), pArg(s), iArg(0), iArg(cols),
		iArg(rows), iArg(cols), bArg(false), pArg(p), iArg(unit))
}

// copyGrid is the grid of copy_block and permute_rows for rows of cols
// elements of type at: enough blocks to fill the device, each walking many
// rows (a block per row would spend more on block starts than on a short
// row), with a thread per element of a row, or per 8 in the bfloat16 build
// of the one-type kernels (which move 8 at once when the rows allow).
func (be *Backend) copyGrid(at nn.DType, mixed bool, rows, cols int) (bx, by int) {
	if at == nn.BFloat16 && !mixed {
		cols = (cols + 7) / 8
	}
	bx = min((cols+255)/256, 1024)
	by = min(rows, max(1, be.maxGrid*8/bx), 65535)
	return bx, by
}
