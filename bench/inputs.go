package bench

import (
	"math"
	"math/rand/v2"

	"seqbench/nn"
)

// inputs allocates the buffers of one benchmark on a backend, fills the
// inputs with random values (never zeros: they hide unwritten outputs and
// can run faster than real data) and frees everything together.
//
// The H methods (allocH, normalH, uniformH) allocate activations: in the
// activation type of a mixed-precision backend (bfloat16 on cpu-bfloat16,
// the types of docs/PRECISION.md's table), in the backend's DType
// otherwise, where they are the plain methods. The plain ones allocate
// what stays in the DType under any precision: parameters, statistics,
// saved states.
type inputs struct {
	be    nn.Backend
	act   nn.DType // the activations' type
	rng   *rand.Rand
	pools *pools
	cache int64
	bufs  []nn.Buffer
}

// pools hold random values drawn once per run: a buffer is filled from a
// pool read at a random offset with a random odd stride (a permutation of
// the pool), which costs about a nanosecond a value where drawing fresh
// normals would take seconds for the GPU grid's largest tensors.
type pools struct {
	normal, uniform []float64
}

const poolLen = 1 << 20 // a power of two: every odd stride visits every entry

func newPools(rng *rand.Rand) *pools {
	p := &pools{normal: make([]float64, poolLen), uniform: make([]float64, poolLen)}
	for i := range p.normal {
		p.normal[i] = rng.NormFloat64()
		p.uniform[i] = rng.Float64()
	}
	return p
}

func newInputs(be nn.Backend, p *pools, rng *rand.Rand, cache int64) *inputs {
	return &inputs{be: be, act: actDType(be), rng: rng, pools: p, cache: cache}
}

// actDType is the type be's tapes store activations in.
func actDType(be nn.Backend) nn.DType {
	if m, ok := be.(nn.MixedBackend); ok {
		return m.ActDType()
	}
	return be.DType()
}

// eh and ef are the element sizes of activations and of the DType's
// buffers (equal unless the backend is mixed).
func (in *inputs) eh() float64 { return float64(in.act.Size()) }
func (in *inputs) ef() float64 { return elemBytes(in.be) }

// sets is how many input sets to rotate among: one when an input set is
// larger than the cache, else enough sets to fill twice the cache (at
// most 16), so each call finds its inputs in memory, not in the cache.
func (in *inputs) sets(setBytes float64) int {
	if setBytes <= 0 || setBytes >= float64(in.cache) {
		return 1
	}
	return max(1, min(16, int(math.Ceil(2*float64(in.cache)/setBytes))))
}

// alloc returns a zeroed buffer (outputs, accumulated gradients).
func (in *inputs) alloc(n int) nn.Buffer { return in.allocAs(n, in.be.DType()) }

// allocH is alloc for an activation.
func (in *inputs) allocH(n int) nn.Buffer { return in.allocAs(n, in.act) }

func (in *inputs) allocAs(n int, dt nn.DType) nn.Buffer {
	var b nn.Buffer
	if dt == in.be.DType() {
		b = in.be.Alloc(n)
	} else {
		b = in.be.(nn.MixedBackend).AllocAs(n, dt)
	}
	in.bufs = append(in.bufs, b)
	return b
}

// normal returns n values mean + std·N(0,1).
func (in *inputs) normal(n int, mean, std float64) nn.Buffer {
	return in.fill(in.be.DType(), n, in.pools.normal, func(z float64) float64 { return mean + std*z })
}

// normalH is normal for an activation.
func (in *inputs) normalH(n int, mean, std float64) nn.Buffer {
	return in.fill(in.act, n, in.pools.normal, func(z float64) float64 { return mean + std*z })
}

// uniform returns n values uniform in [lo, hi).
func (in *inputs) uniform(n int, lo, hi float64) nn.Buffer {
	return in.fill(in.be.DType(), n, in.pools.uniform, func(u float64) float64 { return lo + (hi-lo)*u })
}

// uniformH is uniform for an activation.
func (in *inputs) uniformH(n int, lo, hi float64) nn.Buffer {
	return in.fill(in.act, n, in.pools.uniform, func(u float64) float64 { return lo + (hi-lo)*u })
}

// fillChunk bounds the host memory a fill uses; larger buffers are written
// through a staging buffer and CopyBlock.
const fillChunk = 1 << 22

func (in *inputs) fill(dt nn.DType, n int, pool []float64, f func(float64) float64) nn.Buffer {
	dst := in.allocAs(n, dt)
	off := in.rng.IntN(poolLen)
	stride := 2*in.rng.IntN(poolLen/2) + 1
	host := make([]float64, min(n, fillChunk))
	var stage nn.Buffer
	if n > fillChunk {
		stage = in.allocAs(fillChunk, dt) // dst's type: the copy does not round again
		in.bufs = in.bufs[:len(in.bufs)-1]
		defer in.be.Free(stage)
	}
	for start := 0; start < n; start += fillChunk {
		m := min(fillChunk, n-start)
		for i := range m {
			host[i] = f(pool[(off+(start+i)*stride)&(poolLen-1)])
		}
		if stage == nil {
			in.be.Write(dst, host[:m])
			continue
		}
		in.be.Write(stage, host[:m])
		in.be.CopyBlock(dst, start, m, stage, 0, m, 1, m, false)
	}
	return dst
}

// ids returns n token ids uniform in [0, V).
func (in *inputs) ids(n, V int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(in.rng.IntN(V))
	}
	return ids
}

func (in *inputs) free() {
	for _, b := range in.bufs {
		in.be.Free(b)
	}
	in.bufs = nil
}
