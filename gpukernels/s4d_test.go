package gpukernels

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// s4dArgs uploads random S4D parameters (S4D-Lin-like: A_re in −[0.1, 1],
// A_im near π·n, log dt in [log 1e-3, log 0.1]) to both sides.
func s4dArgs(ck *checker, H, N2, L int) (ga, ca nn.S4DArgs) {
	ga = nn.S4DArgs{H: H, N2: N2, L: L}
	ca = ga
	set := func(p pair, g, c *nn.Buffer) { *g, *c = p.g, p.c }
	logDt := make([]float64, H)
	for i := range logDt {
		logDt[i] = math.Log(1e-3) + (math.Log(0.1)-math.Log(1e-3))*ck.rng.Float64()
	}
	are, aim := make([]float64, H*N2), make([]float64, H*N2)
	for i := range are {
		are[i] = -(0.1 + 0.9*ck.rng.Float64())
		aim[i] = math.Pi*float64(i%N2) + ck.rng.Float64() - 0.5
	}
	set(ck.in(logDt), &ga.LogDt, &ca.LogDt)
	set(ck.in(are), &ga.ARe, &ca.ARe)
	set(ck.in(aim), &ga.AIm, &ca.AIm)
	set(ck.in(ck.randn(H*N2, 1)), &ga.CRe, &ca.CRe)
	set(ck.in(ck.randn(H*N2, 1)), &ga.CIm, &ca.CIm)
	return ga, ca
}

func TestGPUS4D(t *testing.T) {
	needGPU(t)
	type shape struct{ B, H, N2, L int }
	shapes := seqShapes(t, []shape{{1, 1, 1, 1}, {2, 3, 4, 100}, {1, 2, 33, 31}},
		[]shape{{3, 8, 32, 300}, {2, 5, 64, 1000}})
	for _, dt := range dtypes {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%s/B%d_H%d_N2%d_L%d", dt, s.B, s.H, s.N2, s.L), func(t *testing.T) {
				B, H, N2, L := s.B, s.H, s.N2, s.L
				ck := newChecker(t, dt, "S4D", uint64(H*N2*L))
				ga, ca := s4dArgs(ck, H, N2, L)
				K := ck.out(H*L, false)
				ck.g.S4DKernel(K.g, ga)
				ck.c.S4DKernel(K.c, ca)
				ck.fwd("K", K)

				dK := ck.in(ck.randn(H*L, 1))
				// Small starting values: A's gradients are O(dt²), and float32
				// would round them away against O(1) ones (see backendtest's
				// smallAccum).
				small := func(n int) pair {
					vals := ck.randn(n, 1e-3)
					for range guard {
						vals = append(vals, 1234.5)
					}
					p := ck.in(vals)
					p.n, p.acc = n, true
					return p
				}
				gs := []pair{small(H), small(H * N2), small(H * N2), small(H * N2), small(H * N2)}
				ck.g.S4DKernelBackward(nn.S4DGrads{LogDt: gs[0].g, ARe: gs[1].g, AIm: gs[2].g, CRe: gs[3].g, CIm: gs[4].g}, ga, dK.g)
				ck.c.S4DKernelBackward(nn.S4DGrads{LogDt: gs[0].c, ARe: gs[1].c, AIm: gs[2].c, CRe: gs[3].c, CIm: gs[4].c}, ca, dK.c)
				for i, name := range []string{"dLogDt", "dARe", "dAIm", "dCRe", "dCIm"} {
					ck.grad(name, gs[i])
				}

				// The recurrent form from a random state, advanced in place.
				u, D := ck.in(ck.randn(B*H*L, 1)), ck.in(ck.randn(H, 1))
				st := ck.in(ck.randn(B*H*N2*2, 1))
				out := ck.out(B*H*L, false)
				ck.g.S4DRecurrent(out.g, st.g, u.g, D.g, ga, B)
				ck.c.S4DRecurrent(out.c, st.c, u.c, D.c, ca, B)
				ck.fwd("recurrent out", out)
				ck.fwd("recurrent state", st)
				out = ck.out(B*H*L, false)
				ck.g.S4DRecurrent(out.g, nil, u.g, nil, ga, B)
				ck.c.S4DRecurrent(out.c, nil, u.c, nil, ca, B)
				ck.fwd("recurrent out (no state)", out)
			})
		}
	}
}

// S4D's types (docs/PRECISION.md): the parameters, K, the kernel's
// gradients, Dskip and the recurrence's state are float32 (a bfloat16 one
// panics naming it); the recurrence's u and out are activations, both
// float32 or both bfloat16. The allowed combinations pass the checks and
// reach the (closed) device.
func TestS4DTypes(t *testing.T) {
	be := devicelessBackend()
	f, h := nn.Float32, nn.BFloat16
	buf := func(n int, dt nn.DType) *Buffer { return devicelessBuf(be, n, dt) }
	const B, H, N2, L = 2, 3, 4, 5
	names := []string{"LogDt", "ARe", "AIm", "CRe", "CIm"}
	// six returns float32 buffers for LogDt, ARe, AIm, CRe and CIm (or
	// their gradients), the one named bf bfloat16.
	six := func(bf string) []nn.Buffer {
		var bs []nn.Buffer
		for i, name := range names {
			dt, size := f, H*N2
			if name == bf {
				dt = h
			}
			if i == 0 {
				size = H // LogDt
			}
			bs = append(bs, buf(size, dt))
		}
		return bs
	}
	args := func(bf string) nn.S4DArgs {
		p := six(bf)
		return nn.S4DArgs{H: H, N2: N2, L: L, LogDt: p[0], ARe: p[1], AIm: p[2], CRe: p[3], CIm: p[4]}
	}
	grads := func(bf string) nn.S4DGrads {
		g := six(bf)
		return nn.S4DGrads{LogDt: g[0], ARe: g[1], AIm: g[2], CRe: g[3], CIm: g[4]}
	}
	n := B * H * L
	for _, name := range names {
		want := name + " is bfloat16, must be float32"
		expectPanic(t, "S4DKernel: "+want, func() { be.S4DKernel(buf(H*L, f), args(name)) })
		expectPanic(t, "S4DKernelBackward: "+want, func() { be.S4DKernelBackward(grads(""), args(name), buf(H*L, f)) })
		expectPanic(t, "S4DKernelBackward: d"+want, func() { be.S4DKernelBackward(grads(name), args(""), buf(H*L, f)) })
		expectPanic(t, "S4DRecurrent: "+want, func() { be.S4DRecurrent(buf(n, h), nil, buf(n, h), nil, args(name), B) })
	}
	ok := args("")
	expectPanic(t, "S4DKernel: K is bfloat16, must be float32", func() { be.S4DKernel(buf(H*L, h), ok) })
	expectPanic(t, "S4DKernelBackward: dK is bfloat16, must be float32", func() {
		be.S4DKernelBackward(grads(""), ok, buf(H*L, h))
	})
	state := B * H * N2 * 2
	expectPanic(t, "S4DRecurrent: state is bfloat16, must be float32", func() {
		be.S4DRecurrent(buf(n, h), buf(state, h), buf(n, h), buf(H, f), ok, B)
	})
	expectPanic(t, "S4DRecurrent: Dskip is bfloat16, must be float32", func() {
		be.S4DRecurrent(buf(n, h), buf(state, f), buf(n, h), buf(H, h), ok, B)
	})
	expectPanic(t, "S4DRecurrent: u is bfloat16 but out is float32", func() {
		be.S4DRecurrent(buf(n, f), buf(state, f), buf(n, h), buf(H, f), ok, B)
	})
	expectPanic(t, "S4DRecurrent: out is float64, must be float32 or bfloat16", func() {
		be.S4DRecurrent(buf(n, nn.Float64), nil, buf(n, f), nil, ok, B)
	})

	expectPanic(t, "S4DKernel: backend is closed", func() { be.S4DKernel(buf(H*L, f), ok) })
	expectPanic(t, "S4DKernelBackward: backend is closed", func() { be.S4DKernelBackward(grads(""), ok, buf(H*L, f)) })
	for _, act := range []nn.DType{f, h} {
		expectPanic(t, "S4DRecurrent: backend is closed", func() {
			be.S4DRecurrent(buf(n, act), buf(state, f), buf(n, act), buf(H, f), ok, B)
		})
	}
}
