package gpukernels

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

func adamArgs(step int) nn.AdamWArgs {
	return nn.AdamWArgs{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: step}
}

func TestGPUAdamW(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, n := range []int{1, 1000, 1<<20 + 7} {
			t.Run(fmt.Sprintf("%s/n%d", dt, n), func(t *testing.T) {
				ck := newChecker(t, dt, "AdamW", uint64(n))
				p := ck.in(ck.randn(n, 1))
				m, v := ck.in(make([]float64, n)), ck.in(make([]float64, n))
				for step := 1; step <= 3; step++ {
					g := ck.in(ck.randn(n, 0.1))
					a := adamArgs(step)
					ck.g.AdamW(p.g, g.g, m.g, v.g, a)
					ck.c.AdamW(p.c, g.c, m.c, v.c, a)
				}
				for _, b := range []struct {
					name string
					p    pair
				}{{"p", p}, {"m", m}, {"v", v}} {
					got, want := ck.g.Read(b.p.g), ck.c.Read(b.p.c)
					ck.close(b.name, got, want, ck.fwdTol)
				}
			})
		}
	}
}

// AdamW's p, g, m and v are float32 under any precision: a bfloat16 one
// panics naming it, before the device is touched (testBF16Contracts'
// AdamW cases on a GPU); float32 ones pass the checks.
func TestAdamWTypes(t *testing.T) {
	be := devicelessBackend()
	const n = 3
	for bad := range 4 {
		bufs := make([]*Buffer, 4)
		for i := range bufs {
			dt := nn.Float32
			if i == bad {
				dt = nn.BFloat16
			}
			bufs[i] = devicelessBuf(be, n, dt)
		}
		want := fmt.Sprintf("AdamW: %s is bfloat16, must be float32", []string{"p", "g", "m", "v"}[bad])
		expectPanic(t, want, func() { be.AdamW(bufs[0], bufs[1], bufs[2], bufs[3], adamArgs(1)) })
	}
	f := func() *Buffer { return devicelessBuf(be, n, nn.Float32) }
	expectPanic(t, "AdamW: backend is closed", func() { be.AdamW(f(), f(), f(), f(), adamArgs(1)) })
}
