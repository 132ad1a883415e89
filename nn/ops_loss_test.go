package nn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

// LinearCrossEntropy gives CrossEntropy(Linear(...))'s loss, argmax and
// gradients without holding the logits: with one chunk bit for bit, in
// float64 and on cpu-bfloat16 (activations and logits bfloat16, the head
// a tied float32 weight cast once), with a bias and an ignored row; with
// chunks of 3 or 4 rows the loss, argmax and dx are still the same bits
// (rows are independent) and dw and db differ by the rounding of adding
// the chunks' sums one after another.
func TestLinearCrossEntropyMatchesUnfused(t *testing.T) {
	const rows, d, V = 10, 6, 17
	rng := rand.New(rand.NewPCG(9, 10))
	xv, wv, bv := layerRandn(rng, rows*d), layerRandn(rng, V*d), layerRandn(rng, V)
	targets := make([]int32, rows)
	for i := range targets {
		targets[i] = int32(rng.IntN(V))
	}
	targets[4] = -100
	for _, bk := range []struct {
		name string
		be   func() nn.Backend
	}{{"float64", func() nn.Backend { return cpukernels.New[float64]() }}, {"bfloat16", func() nn.Backend { return cpukernels.NewBF16() }}} {
		for _, bias := range []bool{false, true} {
			type result struct {
				loss       float64
				argmax     []int32
				dx, dw, db []float64
			}
			run := func(fused bool, chunk int) result {
				live := &liveBackend{Backend: bk.be()}
				var be nn.Backend = live
				if m, ok := live.Backend.(nn.MixedBackend); ok {
					be = &liveMixed{live, m}
				}
				w, b := nn.NewParam(be, V, d), nn.NewParam(be, V)
				be.Write(w.Data, wv)
				be.Write(b.Data, bv)
				if !bias {
					b = nil
				}
				tp := nn.NewTape(be, true)
				x0 := nn.NewParam(be, rows, d)
				be.Write(x0.Data, xv)
				x := tp.Mul(x0, x0) // an activation (bfloat16 under bf16)
				var loss *nn.Tensor
				r := result{argmax: make([]int32, rows)}
				if fused {
					loss, _ = tp.LinearCrossEntropy(x, w, b, targets, -100, &nn.Argmax{Host: r.argmax}, chunk)
				} else {
					logits := tp.Linear(x, w, b)
					loss, _ = tp.CrossEntropy(logits, targets, -100)
					r.argmax = be.ArgmaxRows(logits.Data, rows, V)
				}
				tp.Backward(loss)
				r.loss = be.Read(loss.Data)[0]
				r.dx, r.dw = be.Read(x0.Grad()), be.Read(w.Grad())
				if b != nil {
					r.db = be.Read(b.Grad())
				}
				tp.Release()
				return r
			}
			want := run(false, 0)
			for _, chunk := range []int{0, rows, 3, 4} {
				t.Run(fmt.Sprintf("%s/bias=%v/chunk=%d", bk.name, bias, chunk), func(t *testing.T) {
					got := run(true, chunk)
					if got.loss != want.loss || !slices.Equal(got.argmax, want.argmax) || !slices.Equal(got.dx, want.dx) {
						t.Errorf("loss %v, argmax %v, dx[:3] %v; unfused %v, %v, %v", got.loss, got.argmax, got.dx[:3], want.loss, want.argmax, want.dx[:3])
					}
					tol := 0.0 // one chunk: the same GEMMs
					if chunk > 0 && chunk < rows {
						tol = 1e-12
						if bk.name == "bfloat16" {
							tol = 1e-5 // float32 sums of bfloat16 products
						}
					}
					for name, p := range map[string][2][]float64{"dw": {got.dw, want.dw}, "db": {got.db, want.db}} {
						for i := range p[1] {
							if e := math.Abs(p[0][i] - p[1][i]); e > tol*math.Max(1, math.Abs(p[1][i])) {
								t.Errorf("%s[%d] = %v, unfused %v", name, i, p[0][i], p[1][i])
								break
							}
						}
					}
				})
			}
		}
	}
}

// liveMixed is a liveBackend over a mixed-precision backend.
type liveMixed struct {
	*liveBackend
	m nn.MixedBackend
}

func (b *liveMixed) ActDType() nn.DType { return b.m.ActDType() }

func (b *liveMixed) AllocAs(n int, dt nn.DType) nn.Buffer {
	b.live += n
	b.peak = max(b.peak, b.live)
	return b.m.AllocAs(n, dt)
}

// The default chunk holds at most 2²⁶ logits, in whole 128-row tiles where
// there are at least 256 rows.
func TestLinearCEChunkRows(t *testing.T) {
	for V, want := range map[int]int{50280: 1280, 1 << 26: 1, 1 << 20: 64, 6: 11184768, 1 << 18: 256} {
		if got := nn.LinearCEChunkRows(V); got != want {
			t.Errorf("V %d: %d rows a chunk, want %d", V, got, want)
		}
	}
}

// Where rows outnumber the head's width, as in a language model (B·L rows
// of d ≪ V), the chunked head and loss peak far below the unfused ones,
// which hold every row's logits and then their gradient.
func TestLinearCrossEntropyMemory(t *testing.T) {
	const rows, d, V = 512, 4, 64
	rng := rand.New(rand.NewPCG(11, 12))
	peak := func(fused bool) int {
		live := &liveBackend{Backend: cpukernels.New[float64]()}
		w, x := nn.NewParam(live, V, d), nn.NewParam(live, rows, d)
		live.Write(w.Data, layerRandn(rng, V*d))
		live.Write(x.Data, layerRandn(rng, rows*d))
		targets := make([]int32, rows)
		tp := nn.NewTape(live, true)
		h := tp.Act(nn.Tanh, x)
		live.peak = live.live
		var loss *nn.Tensor
		if fused {
			loss, _ = tp.LinearCrossEntropy(h, w, nil, targets, -1, nil, 32)
		} else {
			loss, _ = tp.CrossEntropy(tp.Linear(h, w, nil), targets, -1)
		}
		tp.Backward(loss)
		tp.Release()
		return live.peak - 2*V*d - 2*rows*d // over the parameters
	}
	unfused, fused := peak(false), peak(true)
	if fused*4 > unfused {
		t.Errorf("chunks of 32 rows peaked at %d elements over the parameters, the unfused head at %d: want under a quarter", fused, unfused)
	}
}
