package gpukernels

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
	"seqbench/nn/backendtest"
)

type attnCase struct {
	B, H, Lq, Lk, Dh int
	causal           bool
	scale            float64 // 0: 1/sqrt(Dh)
	noDQ, noDKV      bool
	big              float64 // input scale (0: 1); large scores test the max subtraction
}

func attnCases() []attnCase {
	var cases []attnCase
	for _, causal := range []bool{true, false} {
		cases = append(cases,
			attnCase{B: 1, H: 1, Lq: 1, Lk: 1, Dh: 1, causal: causal},
			attnCase{B: 1, H: 3, Lq: 5, Lk: 5, Dh: 6, causal: causal},
			attnCase{B: 2, H: 3, Lq: 33, Lk: 33, Dh: 16, causal: causal}, // one past a 32-row tile
			attnCase{B: 1, H: 2, Lq: 100, Lk: 100, Dh: 64, causal: causal},
			attnCase{B: 2, H: 2, Lq: 31, Lk: 70, Dh: 64, causal: causal}, // a block continuing a KV cache
			attnCase{B: 1, H: 2, Lq: 1, Lk: 513, Dh: 64, causal: causal}, // one decode step
			attnCase{B: 1, H: 1, Lq: 257, Lk: 257, Dh: 128, causal: causal},
			attnCase{B: 1, H: 2, Lq: 64, Lk: 64, Dh: 96, causal: causal, scale: 0.05},
			attnCase{B: 1, H: 1, Lq: 40, Lk: 40, Dh: 256, causal: causal},
			attnCase{B: 1, H: 2, Lq: 50, Lk: 50, Dh: 7, causal: causal, big: 8},
		)
	}
	return append(cases,
		attnCase{B: 1, H: 2, Lq: 45, Lk: 77, Dh: 32, causal: true, noDQ: true},
		attnCase{B: 1, H: 2, Lq: 45, Lk: 77, Dh: 32, causal: true, noDKV: true},
		attnCase{B: 1, H: 2, Lq: 45, Lk: 77, Dh: 64, causal: true, noDQ: true},
		attnCase{B: 1, H: 2, Lq: 45, Lk: 77, Dh: 64, causal: true, noDKV: true},
		attnCase{B: 2, H: 3, Lq: 77, Lk: 130, Dh: 128, causal: true},
		attnCase{B: 2, H: 3, Lq: 130, Lk: 77, Dh: 128, causal: false},
		attnCase{B: 1, H: 2, Lq: 64, Lk: 64, Dh: 64, causal: true, big: 6},
		attnCase{B: 4, H: 8, Lq: 512, Lk: 512, Dh: 64, causal: true},
	)
}

// TestGPUAttention runs every case in both element types, and in float32
// also with the register-tiled kernels turned off (at Dh 64 and 128 the two
// paths differ; elsewhere both runs take the generic kernels).
func TestGPUAttention(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, generic := range []bool{false, true} {
			if generic && dt == nn.Float64 {
				continue
			}
			path := "fast"
			if generic {
				path = "generic"
			}
			for i, c := range attnCases() {
				name := fmt.Sprintf("%s/%s/%02d_B%d_H%d_Lq%d_Lk%d_Dh%d_causal%v", dt, path, i, c.B, c.H, c.Lq, c.Lk, c.Dh, c.causal)
				t.Run(name, func(t *testing.T) {
					be := gpu(t, dt)
					be.attnGeneric = generic
					defer func() { be.attnGeneric = false }()
					testAttentionCase(t, dt, i, c, path)
				})
			}
		}
	}
}

func testAttentionCase(t *testing.T, dt nn.DType, i int, c attnCase, path string) {
	ck := newChecker(t, dt, "Attention/"+path, uint64(i))
	scale := c.scale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(c.Dh))
	}
	s := c.big
	if s == 0 {
		s = 1
	}
	nq, nk, nl := c.B*c.H*c.Lq*c.Dh, c.B*c.H*c.Lk*c.Dh, c.B*c.H*c.Lq
	q, k, v := ck.in(ck.randn(nq, s)), ck.in(ck.randn(nk, s)), ck.in(ck.randn(nk, 1))
	out, lse := ck.out(nq, false), ck.out(nl, false)
	ck.g.Attention(out.g, lse.g, q.g, k.g, v.g, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	ck.c.Attention(out.c, lse.c, q.c, k.c, v.c, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	ck.fwd("out", out)
	ck.fwd("lse", lse)

	// Each backend's backward reads its own saved out and lse.
	dout := ck.in(ck.randn(nq, 1))
	var dq, dk, dv pair
	if !c.noDQ {
		dq = ck.acc(nq, false)
	}
	if !c.noDKV {
		dk, dv = ck.acc(nk, false), ck.acc(nk, false)
	}
	ck.g.AttentionBackward(dq.g, dk.g, dv.g, q.g, k.g, v.g, out.g, lse.g, dout.g, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	ck.c.AttentionBackward(dq.c, dk.c, dv.c, q.c, k.c, v.c, out.c, lse.c, dout.c, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	if !c.noDQ {
		ck.grad("dq", dq)
	}
	if !c.noDKV {
		ck.grad("dk", dk)
		ck.grad("dv", dv)
	}
}

// TestGPUAttentionBF16 runs the bfloat16 cases at the head dims of the
// register-tiled kernels (backendtest.RunBF16AttentionTiles) on those
// kernels and again on the generic ones, with the tensor-core kernels
// switched off (flash_attn_test.go tests those).
func TestGPUAttentionBF16(t *testing.T) {
	be := gpu(t, nn.Float32)
	m, err := newBF16(be)
	if err != nil {
		t.Fatal(err)
	}
	flashTo(t, be, false)
	for _, generic := range []bool{false, true} {
		path := "fast"
		if generic {
			path = "generic"
		}
		t.Run(path, func(t *testing.T) {
			be.attnGeneric = generic
			defer func() { be.attnGeneric = false }()
			backendtest.RunBF16AttentionTiles(t, m)
		})
	}
}

// TestGPUAttentionDeterministic runs the backward twice on the same inputs:
// the kernels own their output rows, so the results must match bit for bit.
func TestGPUAttentionDeterministic(t *testing.T) {
	ck := newChecker(t, nn.Float32, "Attention", 7)
	B, H, L, Dh := 2, 4, 300, 64
	n := B * H * L * Dh
	q, k, v, dout := ck.in(ck.randn(n, 1)), ck.in(ck.randn(n, 1)), ck.in(ck.randn(n, 1)), ck.in(ck.randn(n, 1))
	out, lse := ck.alloc(n), ck.alloc(B*H*L)
	ck.g.Attention(out, lse, q.g, k.g, v.g, B, H, L, L, Dh, 0.125, true)
	var first [][]float64
	for run := 0; run < 2; run++ {
		dq, dk, dv := ck.alloc(n), ck.alloc(n), ck.alloc(n)
		ck.g.AttentionBackward(dq, dk, dv, q.g, k.g, v.g, out, lse, dout.g, B, H, L, L, Dh, 0.125, true)
		got := [][]float64{ck.g.Read(dq), ck.g.Read(dk), ck.g.Read(dv)}
		if run == 0 {
			first = got
			continue
		}
		for j := range got {
			for i := range got[j] {
				if got[j][i] != first[j][i] {
					t.Fatalf("gradient %d element %d: %v then %v", j, i, first[j][i], got[j][i])
				}
			}
		}
	}
}
