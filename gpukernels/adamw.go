package gpukernels

import (
	"encoding/binary"
	"fmt"
	"math"

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

var _ = defineContract("adamw", contract{
	consts:  func(nn.DType) map[string]int { return map[string]int{"ADAMW_CHUNK": adamwChunk} },
	structs: []cStruct{{"AdamWDesc", adamwDesc{}}},
})

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
	be.adamw("AdamW", []nn.AdamWTensor{{P: p, G: g, M: m, V: v, Copy: a.Copy, LR: a.LR, WeightDecay: a.WeightDecay}}, a,
		func(int) string { return "" })
}

// AdamWEach is AdamW on every tensor of ts (nn.ManyAdamW) in one launch:
// the tensors' descriptors and a work list of (tensor, first element) per
// chunk of adamwChunk elements go up in one upload, and a block updates one
// chunk with adamw's arithmetic, so each element is AdamW's bit for bit.
// The copies are all of one type (the backend's or bfloat16), or nil.
func (be *Backend) AdamWEach(ts []nn.AdamWTensor, a nn.AdamWArgs) {
	be.adamw("AdamWEach", ts, a, func(i int) string { return fmt.Sprintf("ts[%d].", i) })
}

// adamw is AdamW's and AdamWEach's body; prefix(i) starts the names of
// tensor i's buffers in messages (AdamW's are its arguments' names).
func (be *Backend) adamw(op string, ts []nn.AdamWTensor, a nn.AdamWArgs, prefix func(i int) string) {
	check(op, a.Check())
	descs := make([]adamwDesc, len(ts))
	var chunks []int64
	at := be.dtype
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
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
		descs[i] = adamwDesc{P: ptr(pd), G: ptr(gd), M: ptr(md), V: ptr(vd), Copy: ptr(cd), N: int64(n),
			Decay: 1 - t.LR*t.WeightDecay, StepSize: t.LR / bc1}
		for s := 0; s < n; s += adamwChunk {
			chunks = append(chunks, int64(i), int64(s))
		}
	}
	if len(chunks) == 0 {
		return
	}
	gscale := a.GradScale
	if gscale == 0 {
		gscale = 1
	}
	be.enter(op)
	defer be.exit()
	// One upload: the descriptors, then the work list.
	var words []uint64
	for _, d := range descs {
		words = append(words, packStruct(d)...)
	}
	nd := len(words)
	for _, c := range chunks {
		words = append(words, uint64(c))
	}
	table := be.newBuffer(len(words), nn.Float64)
	defer be.release(table)
	raw := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(raw[8*i:], w)
	}
	be.upload(op, table.ptr, raw)
	k := be.fnAs(op, at, "adamw", "adamw_each")
	be.launch(op, k, dim(len(chunks)/2), dim(256), 0, pArg(table), pArg(table)+8*uint64(nd),
		fArg(gscale), fArg(a.Beta1), fArg(a.Beta2), fArg(math.Sqrt(1-math.Pow(a.Beta2, float64(a.Step)))), fArg(a.Eps))
}
