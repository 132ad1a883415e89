package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

func testRoPE(t *testing.T, b nn.Backend) {
	type ropeCase struct {
		B, H, L, Dh, pos0 int
		base              float64
	}
	cases := []ropeCase{
		{1, 1, 1, 2, 0, 10000},
		{1, 3, 5, 6, 0, 10000},
		{2, 3, 17, 8, 7, 10000},
		{1, 2, 9, 4, 100, 500000},
		{2, 1, 3, 16, 3, 10},
		{1, 1, 33, 10, 1, 10000},
	}
	desc := func(c ropeCase) string {
		return fmt.Sprintf("B%d_H%d_L%d_Dh%d_pos%d_base%g", c.B, c.H, c.L, c.Dh, c.pos0, c.base)
	}
	runCases(t, b, "RoPE", cases, desc, func(tt *tester, c ropeCase) {
		n := c.B * c.H * c.L * c.Dh
		x, xs := tt.input(tt.randn(n))
		out := tt.output(n)
		tt.b.RoPE(out, x, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
		f := func() []float64 { return refRoPE(xs, c.B, c.H, c.L, c.Dh, c.pos0, c.base) }
		tt.fwd("out", tt.result("out", out, n), f())

		dout, douts := tt.input(tt.randn(n))
		dx := tt.accum(n, true)
		tt.b.RoPEBackward(dx.buf, dout, c.B, c.H, c.L, c.Dh, c.pos0, c.base)
		tt.grad("dx", tt.delta("dx", dx), vjp(f, xs, douts))
	})
}

type attnCase struct {
	B, H, Lq, Lk, Dh int
	causal           bool
	scale            float64 // 0: 1/sqrt(Dh)
	noDQ, noDKV      bool    // nil gradients: not wanted
	large            bool    // scores far past exp's overflow; forward only
	drop             float64 // AttentionDropout's P (the bfloat16 cases)
}

func testAttention(t *testing.T, b nn.Backend) {
	var cases []attnCase
	for _, causal := range []bool{true, false} {
		for _, L := range []int{1, 5, 17} {
			cases = append(cases, attnCase{B: 1, H: 3, Lq: L, Lk: L, Dh: 6, causal: causal})
		}
		cases = append(cases,
			attnCase{B: 1, H: 3, Lq: 3, Lk: 8, Dh: 6, causal: causal}, // a block continuing a KV cache
			attnCase{B: 1, H: 3, Lq: 1, Lk: 9, Dh: 6, causal: causal}, // one decode step
			attnCase{B: 2, H: 2, Lq: 7, Lk: 11, Dh: 5, causal: causal},
			attnCase{B: 2, H: 1, Lq: 6, Lk: 6, Dh: 1, causal: causal},
			attnCase{B: 1, H: 2, Lq: 33, Lk: 33, Dh: 8, causal: causal},
			attnCase{B: 1, H: 2, Lq: 5, Lk: 5, Dh: 4, causal: causal, scale: 0.3},
			attnCase{B: 1, H: 3, Lq: 17, Lk: 17, Dh: 6, causal: causal, large: true},
		)
	}
	cases = append(cases,
		attnCase{B: 1, H: 2, Lq: 5, Lk: 7, Dh: 6, causal: true, noDQ: true},
		attnCase{B: 1, H: 2, Lq: 5, Lk: 7, Dh: 6, causal: true, noDKV: true},
	)
	desc := func(c attnCase) string {
		s := fmt.Sprintf("B%d_H%d_Lq%d_Lk%d_Dh%d_causal%v", c.B, c.H, c.Lq, c.Lk, c.Dh, c.causal)
		if c.scale != 0 {
			s += fmt.Sprintf("_scale%g", c.scale)
		}
		if c.noDQ {
			s += "_noDQ"
		}
		if c.noDKV {
			s += "_noDKV"
		}
		if c.large {
			s += "_large_scores"
		}
		return s
	}
	runCases(t, b, "Attention", cases, desc, func(tt *tester, c attnCase) {
		scale := c.scale
		if scale == 0 {
			scale = 1 / math.Sqrt(float64(c.Dh))
		}
		nq, nk := c.B*c.H*c.Lq*c.Dh, c.B*c.H*c.Lk*c.Dh
		qv, kv := tt.randn(nq), tt.randn(nk)
		if c.large {
			// Scores past 88.7 (float32) or 709.8 (float64): a softmax
			// without its maximum subtracted overflows.
			s := 20.0
			if tt.b.DType() == nn.Float32 {
				s = 8
			}
			for i := range qv {
				qv[i] *= s
			}
			for i := range kv {
				kv[i] *= s
			}
		}
		q, qs := tt.input(qv)
		k, ks := tt.input(kv)
		v, vs := tt.input(tt.randn(nk))
		out, lse := tt.output(nq), tt.output(c.B*c.H*c.Lq)
		tt.b.Attention(out, lse, q, k, v, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
		wantOut, wantLse := refAttention(qs, ks, vs, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
		tt.fwd("out", tt.result("out", out, nq), wantOut)
		tt.fwd("lse", tt.result("lse", lse, c.B*c.H*c.Lq), wantLse)
		if c.large {
			return
		}

		dout, douts := tt.input(tt.randn(nq))
		dq, dqBuf := tt.optAccum(nq, c.noDQ)
		dk, dkBuf := tt.optAccum(nk, c.noDKV)
		dv, dvBuf := tt.optAccum(nk, c.noDKV)
		tt.b.AttentionBackward(dqBuf, dkBuf, dvBuf, q, k, v, out, lse, dout, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
		f := func() []float64 {
			o, _ := refAttention(qs, ks, vs, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
			return o
		}
		if !c.noDQ {
			tt.grad("dq", tt.delta("dq", dq), vjp(f, qs, douts))
		}
		if !c.noDKV {
			tt.grad("dk", tt.delta("dk", dk), vjp(f, ks, douts))
			tt.grad("dv", tt.delta("dv", dv), vjp(f, vs, douts))
		}
	})
}

// testAttentionDropout checks AttentionDropout and its backward against
// refAttentionDropout and finite differences of it (the mask is a function
// of the seed, so the forward is differentiable), and that a zero drop is
// Attention bit for bit.
func testAttentionDropout(t *testing.T, b nn.Backend) {
	type dropCase struct {
		attnCase
		p float64
	}
	var cases []dropCase
	for _, p := range []float64{0.1, 0.5} {
		for _, causal := range []bool{true, false} {
			cases = append(cases,
				dropCase{attnCase{B: 1, H: 3, Lq: 17, Lk: 17, Dh: 6, causal: causal}, p},
				dropCase{attnCase{B: 2, H: 2, Lq: 7, Lk: 11, Dh: 5, causal: causal}, p},
				dropCase{attnCase{B: 1, H: 2, Lq: 40, Lk: 40, Dh: 8, causal: causal}, p}, // several tiles
				dropCase{attnCase{B: 1, H: 1, Lq: 23, Lk: 23, Dh: 4, causal: causal}, p}, // one pair: the CPU's row-parallel backward
			)
		}
	}
	desc := func(c dropCase) string {
		return fmt.Sprintf("B%d_H%d_Lq%d_Lk%d_Dh%d_causal%v_p%g", c.B, c.H, c.Lq, c.Lk, c.Dh, c.causal, c.p)
	}
	runCases(t, b, "AttentionDropout", cases, desc, func(tt *tester, c dropCase) {
		scale := 1 / math.Sqrt(float64(c.Dh))
		nq, nk := c.B*c.H*c.Lq*c.Dh, c.B*c.H*c.Lk*c.Dh
		q, qs := tt.input(tt.randn(nq))
		k, ks := tt.input(tt.randn(nk))
		v, vs := tt.input(tt.randn(nk))
		drop := nn.AttnDrop{P: c.p, Seed: tt.rng.Uint64()}
		out, lse := tt.output(nq), tt.output(c.B*c.H*c.Lq)
		tt.b.AttentionDropout(out, lse, q, k, v, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
		wantOut, wantLse := refAttentionDropout(qs, ks, vs, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
		tt.fwd("out", tt.result("out", out, nq), wantOut)
		tt.fwd("lse", tt.result("lse", lse, c.B*c.H*c.Lq), wantLse)

		dout, douts := tt.input(tt.randn(nq))
		dq, dk, dv := tt.accum(nq, true), tt.accum(nk, true), tt.accum(nk, true)
		tt.b.AttentionDropoutBackward(dq.buf, dk.buf, dv.buf, q, k, v, out, lse, dout, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
		f := func() []float64 {
			o, _ := refAttentionDropout(qs, ks, vs, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
			return o
		}
		tt.grad("dq", tt.delta("dq", dq), vjp(f, qs, douts))
		tt.grad("dk", tt.delta("dk", dk), vjp(f, ks, douts))
		tt.grad("dv", tt.delta("dv", dv), vjp(f, vs, douts))

		// A zero drop is Attention, bit for bit.
		out0, lse0 := tt.output(nq), tt.output(c.B*c.H*c.Lq)
		tt.b.AttentionDropout(out0, lse0, q, k, v, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, nn.AttnDrop{})
		out1, lse1 := tt.output(nq), tt.output(c.B*c.H*c.Lq)
		tt.b.Attention(out1, lse1, q, k, v, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
		bitEqual(tt, "zero drop: out against Attention's", tt.b.Read(out0), tt.b.Read(out1))
		bitEqual(tt, "zero drop: lse against Attention's", tt.b.Read(lse0), tt.b.Read(lse1))
	})
}

// RunAttentionCached is testAttentionCached for a backend's tests outside
// Run and RunBF16AttentionTiles (cpu-bfloat16's activations).
func RunAttentionCached(t *testing.T, b nn.Backend, act nn.DType) {
	testAttentionCached(t, b, act)
	testStepPositions(t, b, act)
}

// testAttentionCached checks AttentionCached against Attention on the same
// backend: a cache of kvRows ≥ Lk rows per (b, h), NaN past the first Lk,
// with Lk in a position buffer (filled), gives the output and log-sum-exp
// of the contiguous first Lk rows bit for bit (the same kernels, told the
// rows a block holds); activations of type act (the backend's, or
// bfloat16 on a mixed backend), at the small head dims and at 64 and 128
// (the CUDA backend's tiled and tensor-core paths).
func testAttentionCached(t *testing.T, b nn.Backend, act nn.DType) {
	type cachedCase struct{ B, H, Lq, Lk, kvRows, Dh int }
	cases := []cachedCase{
		{1, 3, 1, 9, 16, 6},   // one decode step
		{2, 2, 3, 8, 8, 5},    // a full cache
		{1, 2, 4, 12, 20, 64}, // a block continuing the prompt
		{2, 1, 1, 70, 96, 64}, // past one 64-key tile
		{1, 2, 1, 129, 200, 128},
	}
	desc := func(c cachedCase) string {
		return fmt.Sprintf("B%d_H%d_Lq%d_Lk%d_rows%d_Dh%d", c.B, c.H, c.Lq, c.Lk, c.kvRows, c.Dh)
	}
	upload := func(tt *tester, vals []float64) nn.Buffer {
		buf := tt.allocAs(len(vals), act)
		tt.b.Write(buf, vals)
		return buf
	}
	runCases(t, b, "AttentionCached", cases, desc, func(tt *tester, c cachedCase) {
		scale := 1 / math.Sqrt(float64(c.Dh))
		BH, nq := c.B*c.H, c.B*c.H*c.Lq*c.Dh
		q := upload(tt, tt.randn(nq))
		packed := [2][]float64{tt.randn(BH * c.Lk * c.Dh), tt.randn(BH * c.Lk * c.Dh)}
		var cache, contiguous [2]nn.Buffer
		for i, p := range packed {
			full := nans(BH * c.kvRows * c.Dh)
			for bh := range BH {
				copy(full[bh*c.kvRows*c.Dh:], p[bh*c.Lk*c.Dh:(bh+1)*c.Lk*c.Dh])
			}
			cache[i], contiguous[i] = upload(tt, full), upload(tt, p)
		}
		out, lse := tt.allocAs(nq, act), tt.alloc(BH*c.Lq)
		wantOut, wantLse := tt.allocAs(nq, act), tt.alloc(BH*c.Lq)
		filled := tt.alloc(1)
		tt.b.Fill(filled, float64(c.Lk))
		tt.b.AttentionCached(out, lse, q, cache[0], cache[1], c.B, c.H, c.Lq, filled, c.kvRows, c.Dh, scale)
		tt.b.Attention(wantOut, wantLse, q, contiguous[0], contiguous[1], c.B, c.H, c.Lq, c.Lk, c.Dh, scale, true)
		bitEqual(tt, "out from the cache against the contiguous keys", tt.b.Read(out), tt.b.Read(wantOut))
		bitEqual(tt, "lse from the cache against the contiguous keys", tt.b.Read(lse), tt.b.Read(wantLse))
	})
}

// testStepPositions checks the ops that take step mode's position from the
// device: RoPEAt is RoPE from position pos[0], and AppendRows is CopyBlock
// at column pos[0]·unit of each row, writing nothing where that would pass
// the row's end; bit for bit, on activations of type act.
func testStepPositions(t *testing.T, b nn.Backend, act nn.DType) {
	type posCase struct{ B, H, L, Dh, pos int }
	cases := []posCase{{1, 2, 1, 8, 0}, {2, 3, 1, 64, 37}, {1, 2, 5, 6, 1000}}
	desc := func(c posCase) string { return fmt.Sprintf("B%d_H%d_L%d_Dh%d_pos%d", c.B, c.H, c.L, c.Dh, c.pos) }
	runCases(t, b, "StepPositions", cases, desc, func(tt *tester, c posCase) {
		n := c.B * c.H * c.L * c.Dh
		x := tt.allocAs(n, act)
		tt.b.Write(x, tt.randn(n))
		pos := tt.alloc(1)
		tt.b.Fill(pos, float64(c.pos))
		got, want := tt.allocAs(n, act), tt.allocAs(n, act)
		tt.b.RoPEAt(got, x, c.B, c.H, c.L, c.Dh, pos, 10000)
		tt.b.RoPE(want, x, c.B, c.H, c.L, c.Dh, c.pos, 10000)
		bitEqual(tt, "RoPEAt", tt.b.Read(got), tt.b.Read(want))

		// Rows of 3 slots of L·Dh: the slot at pos%3 takes src; at slot 3
		// the write would pass the row's end and nothing changes.
		rows, cols := c.B*c.H, c.L*c.Dh
		stride := 3 * cols
		before := tt.randn(rows * stride)
		for _, slot := range []int{c.pos % 3, 3} {
			tt.b.Fill(pos, float64(slot*c.L))
			got, want := tt.allocAs(rows*stride, act), tt.allocAs(rows*stride, act)
			tt.b.Write(got, before)
			tt.b.Write(want, before)
			tt.b.AppendRows(got, stride, x, rows, cols, pos, c.Dh)
			if slot < 3 {
				tt.b.CopyBlock(want, slot*cols, stride, x, 0, cols, rows, cols, false)
			}
			bitEqual(tt, fmt.Sprintf("AppendRows at slot %d", slot), tt.b.Read(got), tt.b.Read(want))
		}
	})
}

// bitEqual fails tt where got and want differ in any bit.
func bitEqual(tt *tester, name string, got, want []float64) {
	tt.Helper()
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			tt.Fatalf("%s: [%d] is %v, want %v", name, i, got[i], want[i])
		}
	}
}
