package cpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"seqbench/nn"
)

// refAttention is Attention written out in float64 with the full score
// matrix of each (b, h).
func refAttention(q, k, v []float64, B, H, Lq, Lk, Dh int, scale float64, causal bool) (out, lse []float64) {
	out, lse = make([]float64, B*H*Lq*Dh), make([]float64, B*H*Lq)
	for bh := range B * H {
		S := make([][]float64, Lq)
		for i := range Lq {
			S[i] = make([]float64, Lk)
			for j := range Lk {
				S[i][j] = math.Inf(-1)
				if !causal || j <= i+Lk-Lq {
					S[i][j] = scale * refDot(q[(bh*Lq+i)*Dh:], k[(bh*Lk+j)*Dh:(bh*Lk+j+1)*Dh])
				}
			}
		}
		for i, s := range S {
			m := math.Inf(-1)
			for _, x := range s {
				m = max(m, x)
			}
			sum := 0.0
			for _, x := range s {
				sum += math.Exp(x - m)
			}
			row := bh*Lq + i
			lse[row] = m + math.Log(sum)
			for j, x := range s {
				p := math.Exp(x - lse[row])
				for c := range Dh {
					out[row*Dh+c] += p * v[(bh*Lk+j)*Dh+c]
				}
			}
		}
	}
	return out, lse
}

type attnCase struct {
	B, H, Lq, Lk, Dh int
	causal           bool
}

var attnCases = []attnCase{
	{1, 1, 1, 1, 2, true},
	{1, 1, 5, 5, 6, true},
	{2, 3, 5, 17, 6, true}, // a query block continuing a KV cache
	{2, 3, 5, 17, 6, false},
	{1, 3, 17, 17, 2, true},
	{2, 1, 1, 17, 6, true}, // one decoding step
	{1, 2, 17, 5, 6, false},
}

func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 1))
	for i, c := range attnCases {
		name := fmt.Sprintf("case %d (B=%d, H=%d, Lq=%d, Lk=%d, Dh=%d, causal=%v)", i, c.B, c.H, c.Lq, c.Lk, c.Dh, c.causal)
		nq, nk := c.B*c.H*c.Lq*c.Dh, c.B*c.H*c.Lk*c.Dh
		q, k, v := refRandn(rng, nq, 1), refRandn(rng, nk, 1), refRandn(rng, nk, 1)
		scale := 1 / math.Sqrt(float64(c.Dh))
		testAttentionForward[float64](t, name+" float64", q, k, v, c, scale, 1e-12)
		testAttentionForward[float32](t, name+" float32", q, k, v, c, scale, 1e-5)
		// Scores in the hundreds: the max shift must hold.
		testAttentionForward[float64](t, name+" float64 large scores", q, k, v, c, 60*scale, 1e-11)
		testAttentionForward[float32](t, name+" float32 large scores", q, k, v, c, 60*scale, 1e-5)

		g := refRandn(rng, nq, 1)
		qb, kb, vb, gb := refBuf[float64](q), refBuf[float64](k), refBuf[float64](v), refBuf[float64](g)
		out, lse := make(Buf[float64], nq), make(Buf[float64], c.B*c.H*c.Lq)
		be := New[float64]()
		loss := func() float64 {
			be.Attention(out, lse, qb, kb, vb, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
			return refDot(out, g)
		}
		want := [][]float64{refNumGrad(qb, loss), refNumGrad(kb, loss), refNumGrad(vb, loss)}
		loss()
		init := [][]float64{refRandn(rng, nq, 1), refRandn(rng, nk, 1), refRandn(rng, nk, 1)}
		// One worker takes the pass per (b, h) pair; many take the two
		// row-parallel passes.
		for _, workers := range []int{1, 64} {
			be := &Backend[float64]{workers: workers}
			name := fmt.Sprintf("%s, %d workers", name, workers)
			grads := make([]Buf[float64], 3)
			for a := range grads {
				grads[a] = refWithGuard[float64](init[a])
			}
			be.AttentionBackward(grads[0], grads[1], grads[2], qb, kb, vb, out, lse, gb,
				c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
			for a, wrt := range []string{"dq", "dk", "dv"} {
				refRel(t, name+" "+wrt, refSub(grads[a], init[a]), want[a], 1e-6)
				refCheckGuard(t, name+" "+wrt, grads[a], len(init[a]))

				// The same gradient alone.
				alone := make([]Buf[float64], 3)
				alone[a] = refBuf[float64](init[a])
				be.AttentionBackward(bufOrNil(alone[0]), bufOrNil(alone[1]), bufOrNil(alone[2]), qb, kb, vb, out, lse, gb,
					c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
				refRel(t, name+" "+wrt+" alone", alone[a], grads[a][:len(init[a])], 0)
			}
		}
	}
}

func testAttentionForward[T Float](t *testing.T, name string, q, k, v []float64, c attnCase, scale, tol float64) {
	t.Helper()
	q, k, v = refRound[T](q), refRound[T](k), refRound[T](v)
	wantOut, wantLse := refAttention(q, k, v, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	nq, nl := len(q), c.B*c.H*c.Lq
	out, lse := refPoisoned[T](nq), refPoisoned[T](nl)
	New[T]().Attention(out, lse, refBuf[T](q), refBuf[T](k), refBuf[T](v), c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	refRel(t, name+" out", refF64(out, nq), wantOut, tol)
	refRel(t, name+" lse", refF64(lse, nl), wantLse, tol)
	refCheckGuard(t, name+" out", out, nq)
	refCheckGuard(t, name+" lse", lse, nl)
}

// bufOrNil passes a nil Buf as a nil interface, as the tape does for a
// gradient that is not wanted.
func bufOrNil(b Buf[float64]) nn.Buffer {
	if b == nil {
		return nil
	}
	return b
}

func TestAttentionCausalShortKV(t *testing.T) {
	x := make(Buf[float32], 5*2)
	refPanics(t, "Attention", "Lk = 3 < Lq = 5", func() {
		New[float32]().Attention(x, x, x, x, x, 1, 1, 5, 3, 2, 1, true)
	})
	refPanics(t, "AttentionBackward", "Lk = 3 < Lq = 5", func() {
		New[float32]().AttentionBackward(x, x, x, x, x, x, x, x, x, 1, 1, 5, 3, 2, 1, true)
	})
}

// TestAttentionMemory checks that neither pass holds an Lq×Lk matrix.
func TestAttentionMemory(t *testing.T) {
	const L, Dh = 512, 4
	rng := rand.New(rand.NewPCG(5, 2))
	q, k, v, g := refBuf[float32](refRandn(rng, L*Dh, 1)), refBuf[float32](refRandn(rng, L*Dh, 1)),
		refBuf[float32](refRandn(rng, L*Dh, 1)), refBuf[float32](refRandn(rng, L*Dh, 1))
	out, lse := make(Buf[float32], L*Dh), make(Buf[float32], L)
	dq, dk, dv := make(Buf[float32], L*Dh), make(Buf[float32], L*Dh), make(Buf[float32], L*Dh)
	for _, workers := range []int{1, 4} {
		be := &Backend[float32]{workers: workers}
		for _, pass := range []struct {
			name string
			run  func()
		}{
			{"Attention", func() { be.Attention(out, lse, q, k, v, 1, 1, L, L, Dh, 0.5, true) }},
			{"AttentionBackward", func() {
				be.AttentionBackward(dq, dk, dv, q, k, v, out, lse, g, 1, 1, L, L, Dh, 0.5, true)
			}},
		} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			pass.run()
			runtime.ReadMemStats(&after)
			// The score matrix alone would be 8·L² bytes.
			if got := after.TotalAlloc - before.TotalAlloc; got > L*L {
				t.Errorf("%s with %d workers allocated %d bytes for L = %d", pass.name, workers, got, L)
			}
		}
	}
}

// TestAttentionGolden checks the PyTorch float64 reference of testdata/testvectors.
func TestAttentionGolden(t *testing.T) {
	v := refGolden(t, "03_attention.safetensors")
	const B, H, L, Dh = 1, 3, 55, 8 // the file's shapes
	if len(v["q"]) != B*H*L*Dh {
		t.Fatalf("q holds %d values, want (%d, %d, %d, %d)", len(v["q"]), B, H, L, Dh)
	}
	scale := 1 / math.Sqrt(Dh)
	q, k, vv := refBuf[float64](v["q"]), refBuf[float64](v["k"]), refBuf[float64](v["v"])
	for _, workers := range []int{1, 64} {
		be := &Backend[float64]{workers: workers}
		out, lse := make(Buf[float64], B*H*L*Dh), make(Buf[float64], B*H*L)
		be.Attention(out, lse, q, k, vv, B, H, L, L, Dh, scale, true)
		refRel(t, "out", out, v["out"], 1e-10)
		dq, dk, dv := make(Buf[float64], B*H*L*Dh), make(Buf[float64], B*H*L*Dh), make(Buf[float64], B*H*L*Dh)
		be.AttentionBackward(dq, dk, dv, q, k, vv, out, lse, refBuf[float64](v["dout"]), B, H, L, L, Dh, scale, true)
		refRel(t, fmt.Sprintf("dq, %d workers", workers), dq, v["dq"], 1e-10)
		refRel(t, fmt.Sprintf("dk, %d workers", workers), dk, v["dk"], 1e-10)
		refRel(t, fmt.Sprintf("dv, %d workers", workers), dv, v["dv"], 1e-10)
	}
}

// A position buffer must hold a whole number ≥ 0: RoPEAt, AppendRows and
// AttentionCached say which argument holds what instead.
func TestStepPositionChecked(t *testing.T) {
	b := New[float64]()
	x, pos := b.Alloc(8), b.Alloc(1)
	for _, v := range []float64{-1, 1.5, math.NaN()} {
		b.Fill(pos, v)
		for name, f := range map[string]func(){
			"RoPEAt":          func() { b.RoPEAt(x, x, 1, 1, 2, 4, pos, 10000) },
			"AppendRows":      func() { b.AppendRows(x, 8, x, 1, 2, pos, 2) },
			"AttentionCached": func() { b.AttentionCached(x, x, x, x, x, 1, 1, 1, pos, 2, 4, 1) },
		} {
			func() {
				defer func() {
					msg := fmt.Sprint(recover())
					if !strings.Contains(msg, "cpukernels."+name) || !strings.Contains(msg, "is not a whole number") {
						t.Errorf("%s at position %v: panic %q", name, v, msg)
					}
				}()
				f()
			}()
		}
	}
}
