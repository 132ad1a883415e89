package gpukernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"seqbench/nn"
)

// adamwChunk is the elements a block of adamw_each updates (32 a thread):
// a tensor is cut into chunks of it, and the launch's work list names each
// chunk. At 65,536 a tensor of 0.5M elements got 9 blocks, and one AdamW a
// tensor ran at 117 µs a call on an H100, about 20× its byte floor.
const adamwChunk = 8192

// adamwDesc is one tensor of adamw_each (the C struct AdamWDesc):
// its buffers, length, and its update's decay 1 − lr·wd and step size
// lr/(1 − β1^t), computed in float64 as AdamW's arguments are.
type adamwDesc struct {
	P        devPtr `cu:"real*"`
	G        devPtr `cu:"const real*"`
	M        devPtr `cu:"real*"`
	V        devPtr `cu:"real*"`
	Copy     devPtr `cu:"act_t*"`
	N        int64
	Decay    float64
	StepSize float64
}

// adamwStep is what a step's tensors share (the C struct AdamWStep): the
// gradient scale, β1, β2, √(1 − β2^t) and eps.
type adamwStep struct {
	GScale, B1, B2, Bc2Sqrt, Eps float64
}

// The slots of adamw_clip's control (AdamWClipped's stats): the first three
// are nn's StepStats.
const (
	adamwNorm    = nn.StatNorm
	adamwLoss    = nn.StatLoss
	adamwSkipped = nn.StatSkipped
	adamwFactor  = 3
	adamwCtl     = 4
)

var _ = defineContract("adamw", contract{
	consts: func(nn.DType) map[string]int {
		return map[string]int{"ADAMW_CHUNK": adamwChunk, "ADAMW_NORM": adamwNorm, "ADAMW_LOSS": adamwLoss,
			"ADAMW_SKIPPED": adamwSkipped, "ADAMW_FACTOR": adamwFactor}
	},
	structs: []cStruct{{"AdamWDesc", adamwDesc{}}, {"AdamWStep", adamwStep{}}},
})

var _ nn.ClippedAdamW = (*Backend)(nil)

// AdamW is one step of torch.optim.AdamW over n = p.Len() parameters:
//
//	bc1, bc2 := 1-β1^t, 1-β2^t
//	for i := range p {
//		p[i] *= 1 - lr*wd
//		m[i] = β1*m[i] + (1-β1)*g[i]
//		v[i] = β2*v[i] + (1-β2)*g[i]*g[i]
//		p[i] -= lr/bc1 * m[i] / (sqrt(v[i])/sqrt(bc2) + eps)
//	}
//
// Each element is computed in the backend's type (adamw.cu says why) and
// stored once; moments below the smallest normal number are stored as 0
// (as cpukernels). p, g, m and v are of the backend's type: under bf16 the
// masters, their gradients and the moments are float32 (docs/PRECISION.md),
// and a bfloat16 one panics. a.Copy, of the backend's type or bfloat16,
// gets each updated parameter rounded once (the bfloat16 build of the
// kernel writes it as cast_to_bf16 does).
func (be *Backend) AdamW(p, g, m, v nn.Buffer, a nn.AdamWArgs) {
	ts := []nn.AdamWTensor{{P: p, G: g, M: m, V: v, Copy: a.Copy, LR: a.LR, WeightDecay: a.WeightDecay}}
	u := be.adamwUpdate("AdamW", ts, &a, func(int) string { return "" })
	be.enter("AdamW")
	defer be.exit()
	u.queue(0)
}

// AdamWEach is AdamW on every tensor of ts (nn.ManyAdamW) in one launch:
// the tensors' descriptors and a work list of (tensor, first element) per
// chunk of adamwChunk elements go up in one upload, and a block updates one
// chunk with adamw's arithmetic, so each element is AdamW's bit for bit.
// The copies are all of one type (the backend's or bfloat16), or nil.
func (be *Backend) AdamWEach(ts []nn.AdamWTensor, a nn.AdamWArgs) {
	u := be.adamwUpdate("AdamWEach", ts, &a, tensorPrefix)
	be.enter("AdamWEach")
	defer be.exit()
	u.queue(0)
}

// tensorPrefix names tensor i of AdamWEach's and AdamWClipped's ts.
func tensorPrefix(i int) string { return fmt.Sprintf("ts[%d].", i) }

// NewStepStats allocates AdamWClipped's stats (nn.ClippedAdamW): float64,
// nn's StepStats then the clip factor, zeroed.
func (be *Backend) NewStepStats() nn.Buffer {
	be.enter("NewStepStats")
	defer be.exit()
	b := be.newBuffer(adamwCtl, nn.Float64)
	be.zeroDoubles("NewStepStats", b.ptr, adamwCtl)
	return b
}

// AdamWClipped is AdamWEach with the clip and the guard on the device
// (nn.ClippedAdamW): the gradients' sums of squares are SumSquaresEach's
// reductions, left on the device; adamw_clip adds them in order, takes the
// norm and the clip factor as the host's GradNorm and ClipFactor would,
// and decides the skip from the norm and loss[0]; adamw_each reads the
// factor and the skip. Nothing is read back, and a graph that captured
// the call rereads ts' learning rates and weight decays and *a at each
// launch (the descriptors are an upload derived from them). loss is of
// the backend's type; stats is NewStepStats'.
func (be *Backend) AdamWClipped(ts []nn.AdamWTensor, a *nn.AdamWArgs, maxNorm float64, loss, stats nn.Buffer) {
	const op = "AdamWClipped"
	st, lb := be.buf(stats, adamwCtl, op, "stats"), be.buf(loss, 1, op, "loss")
	if st.dt != nn.Float64 {
		panic(fmt.Sprintf("gpukernels.%s: stats is %v, not NewStepStats' float64", op, st.dt))
	}
	be.wantOwn(op, arg{"loss", lb})
	u := be.adamwUpdate(op, ts, a, tensorPrefix)
	maxBlocks := 0
	grads := make([]*Buffer, len(ts))
	for i, t := range ts {
		grads[i] = be.buf(t.G, -1, op, fmt.Sprintf("ts[%d].g", i))
		maxBlocks = max(maxBlocks, reduceBlocks(grads[i].n))
	}
	be.enter(op)
	defer be.exit()
	ss := be.newBuffer(len(ts)+maxBlocks, nn.Float64)
	defer be.release(ss)
	be.zeroDoubles(op, ss.ptr, len(ts)) // an empty gradient's slot is never written
	part := pArg(ss) + 8*uint64(len(ts))
	for i, g := range grads {
		if g.n > 0 {
			be.actType(op, arg{"g", g})
			be.queueReduce(op, g, true, pArg(ss)+8*uint64(i), part)
		}
	}
	k := be.fn(op, "adamw", "adamw_clip")
	be.launch(op, k, dim(1), dim(1), 0, pArg(st), pArg(ss), iArg(len(ts)), pArg(lb), fArg(maxNorm))
	u.queue(pArg(st))
}

// adamwUpdate is one update of AdamW, AdamWEach or AdamWClipped, its
// arguments checked: ts and *a (which a graph's launch reads again), each
// tensor's descriptor and the work list of chunks.
type adamwUpdate struct {
	be     *Backend
	op     string
	ts     []nn.AdamWTensor
	a      *nn.AdamWArgs
	descs  []adamwDesc
	chunks []int64
	at     nn.DType // the copies' type
}

// adamwUpdate checks an update's arguments; prefix(i) starts the names of
// tensor i's buffers in messages (AdamW's are its arguments' names).
func (be *Backend) adamwUpdate(op string, ts []nn.AdamWTensor, a *nn.AdamWArgs, prefix func(i int) string) *adamwUpdate {
	check(op, a.Check())
	descs := make([]adamwDesc, len(ts))
	var chunks []int64
	at := be.dtype
	for i, t := range ts {
		nm := func(field string) string { return prefix(i) + field }
		pd := be.buf(t.P, -1, op, nm("p"))
		n := pd.n
		gd, md, vd := be.buf(t.G, n, op, nm("g")), be.buf(t.M, n, op, nm("m")), be.buf(t.V, n, op, nm("v"))
		be.wantOwn(op, arg{nm("p"), pd}, arg{nm("g"), gd}, arg{nm("m"), md}, arg{nm("v"), vd})
		cd := be.optBuf(t.Copy, n, op, nm("copy"))
		if cd != nil {
			if cd.dt != be.dtype && cd.dt != nn.BFloat16 || at != be.dtype && cd.dt != at {
				panic(fmt.Sprintf("gpukernels.%s: %s is %v; the copies must all be %v or all bfloat16", op, nm("copy"), cd.dt, be.dtype))
			}
			at = cd.dt
		}
		descs[i] = adamwDesc{P: ptr(pd), G: ptr(gd), M: ptr(md), V: ptr(vd), Copy: ptr(cd), N: int64(n)}
		for s := 0; s < n; s += adamwChunk {
			chunks = append(chunks, int64(i), int64(s))
		}
	}
	return &adamwUpdate{be: be, op: op, ts: ts, a: a, descs: descs, chunks: chunks, at: at}
}

// queue queues the update (inside enter); ctl is adamw_clip's control,
// or 0.
func (u *adamwUpdate) queue(ctl uint64) {
	be, op, ts, a, descs, chunks, at := u.be, u.op, u.ts, u.a, u.descs, u.chunks, u.at
	if len(chunks) == 0 {
		return
	}
	// One upload, derived from ts and *a (a graph's launch derives it
	// again): the step's scalars, the descriptors, then the work list.
	stepWords, descWords := len(packStruct(adamwStep{})), len(packStruct(adamwDesc{}))
	nd := stepWords + descWords*len(descs)
	words := nd + len(chunks)
	table := be.uploadDerived(op, 2*words, func(dst []int32) error {
		if err := a.Check(); err != nil {
			return err
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst))
		put := func(at int, ws []uint64) {
			for j, w := range ws {
				binary.LittleEndian.PutUint64(raw[8*(at+j):], w)
			}
		}
		gscale := a.GradScale
		if gscale == 0 {
			gscale = 1
		}
		t := float64(a.Step)
		put(0, packStruct(adamwStep{GScale: gscale, B1: a.Beta1, B2: a.Beta2, Bc2Sqrt: math.Sqrt(1 - math.Pow(a.Beta2, t)), Eps: a.Eps}))
		bc1 := 1 - math.Pow(a.Beta1, t)
		for i, d := range descs {
			d.Decay, d.StepSize = 1-ts[i].LR*ts[i].WeightDecay, ts[i].LR/bc1
			put(stepWords+descWords*i, packStruct(d))
		}
		for j, c := range chunks {
			binary.LittleEndian.PutUint64(raw[8*(nd+j):], uint64(c))
		}
		return nil
	})
	defer be.release(table)
	base := pArg(table)
	k := be.fnAs(op, at, "adamw", "adamw_each")
	be.launch(op, k, dim(len(chunks)/2), dim(256), 0, base+8*uint64(stepWords), base+8*uint64(nd), base, ctl)
}

// zeroDoubles queues a zero fill of n doubles at p (whatever the backend's
// type: fill's kernel writes the backend's).
func (be *Backend) zeroDoubles(op string, p uint64, n int) {
	if n == 0 {
		return
	}
	be.profStart(op)
	be.queued(op, be.drv.MemsetD32Async(p, 0, uint64(2*n), be.stream))
}
