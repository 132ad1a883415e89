package nn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/nn/backendtest"
)

// The tape ops are checked end to end on the float64 CPU backend: a tiny
// graph ending in a scalar, its leaves' gradients after tp.Backward against
// central finite differences of the whole forward.

const opsGradTol = 1e-6

type opsEnv struct {
	t   *testing.T
	be  nn.Backend
	rng *rand.Rand
}

func newOpsEnv(t *testing.T, seed uint64) *opsEnv {
	return &opsEnv{t: t, be: cpukernels.New[float64](), rng: rand.New(rand.NewPCG(seed, 7))}
}

func (e *opsEnv) randn(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = e.rng.NormFloat64()
	}
	return s
}

// param is a leaf with N(0,1) values (shifted |x| ≥ away from 0 when away > 0).
func (e *opsEnv) param(away float64, shape ...int) *nn.Tensor {
	p := nn.NewParam(e.be, shape...)
	v := e.randn(p.Len())
	for i := range v {
		v[i] = math.Copysign(math.Abs(v[i])+away, v[i])
	}
	e.be.Write(p.Data, v)
	return p
}

func (e *opsEnv) constLike(t *nn.Tensor) *nn.Tensor {
	return nn.NewConst(e.be, e.randn(t.Len()), t.Shape...)
}

// dotLoss is Σ y⊙c as a one-element tensor: (1, n)·(1, n)ᵀ.
func dotLoss(tp *nn.Tape, y, c *nn.Tensor) *nn.Tensor {
	n := y.Len()
	s := tp.MatMul(tp.Reshape(y, 1, n), tp.Reshape(c, 1, n), false, true)
	return tp.Reshape(s, 1)
}

// check runs build on a recording tape and backpropagates into the leaves,
// whose gradient buffers start at random values (the tape accumulates), and
// compares each leaf's gradient change with central differences of the
// scalar build returns, h = 1e-6·max(1, |x|).
func (e *opsEnv) check(leaves []*nn.Tensor, build func(tp *nn.Tape) *nn.Tensor) {
	e.t.Helper()
	before := make([][]float64, len(leaves))
	for i, p := range leaves {
		before[i] = e.randn(p.Len())
		e.be.Write(p.Grad(), before[i])
	}
	tp := nn.NewTape(e.be, true)
	tp.Backward(build(tp))
	tp.Release()

	eval := func() float64 {
		tp := nn.NewTape(e.be, false)
		defer tp.Release()
		return e.be.Read(build(tp).Data)[0]
	}
	for i, p := range leaves {
		after := e.be.Read(p.Grad())
		got := make([]float64, p.Len())
		for j := range got {
			got[j] = after[j] - before[i][j]
		}
		x := e.be.Read(p.Data)
		want := make([]float64, len(x))
		for j, xj := range x {
			h := 1e-6 * max(1, math.Abs(xj))
			hi, lo := xj+h, xj-h
			x[j] = hi
			e.be.Write(p.Data, x)
			fp := eval()
			x[j] = lo
			e.be.Write(p.Data, x)
			fm := eval()
			x[j] = xj
			e.be.Write(p.Data, x)
			want[j] = (fp - fm) / (hi - lo)
		}
		backendtest.AssertClose(e.t, fmt.Sprintf("d(leaf %d %v)", i, p.Shape), got, want, opsGradTol)
	}
}

func TestOpsReshape(t *testing.T) {
	e := newOpsEnv(t, 1)
	x, y := e.param(0, 2, 3, 4), e.param(0, 6, 4)
	c1, c2 := e.constLike(y), nn.NewConst(e.be, e.randn(24), 4, 6)
	e.check([]*nn.Tensor{x, y}, func(tp *nn.Tape) *nn.Tensor {
		a := dotLoss(tp, tp.Mul(tp.Reshape(x, 6, 4), y), c1)
		b := dotLoss(tp, tp.Reshape(tp.Act(nn.Tanh, x), 4, 6), c2) // a view of an intermediate
		return tp.Add(a, b)
	})
}

func TestOpsAdd(t *testing.T) {
	e := newOpsEnv(t, 2)
	a, b := e.param(0, 3, 5), e.param(0, 3, 5)
	c := e.constLike(a)
	e.check([]*nn.Tensor{a, b}, func(tp *nn.Tape) *nn.Tensor {
		return dotLoss(tp, tp.Act(nn.Tanh, tp.Add(a, b)), c)
	})
}

func TestOpsMul(t *testing.T) {
	e := newOpsEnv(t, 3)
	a, b := e.param(0, 4, 7), e.param(0, 4, 7)
	c := e.constLike(a)
	e.check([]*nn.Tensor{a, b}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.Mul(a, b), c) })
}

func TestOpsAct(t *testing.T) {
	for _, k := range []nn.Activation{nn.Identity, nn.ReLU, nn.GELU, nn.GELUTanh, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Exp} {
		t.Run(k.String(), func(t *testing.T) {
			e := newOpsEnv(t, 4+uint64(k))
			x := e.param(0.05, 3, 5) // off ReLU's kink
			c := e.constLike(x)
			e.check([]*nn.Tensor{x}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.Act(k, x), c) })
		})
	}
}

func TestOpsLinear(t *testing.T) {
	for _, bias := range []bool{true, false} {
		t.Run(fmt.Sprintf("bias%v", bias), func(t *testing.T) {
			e := newOpsEnv(t, 20)
			x, w := e.param(0, 2, 3, 5), e.param(0, 4, 5)
			leaves := []*nn.Tensor{x, w}
			var b *nn.Tensor
			if bias {
				b = e.param(0, 4)
				leaves = append(leaves, b)
			}
			c := nn.NewConst(e.be, e.randn(24), 2, 3, 4)
			e.check(leaves, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.Linear(x, w, b), c) })
		})
	}
}

func TestOpsMatMul(t *testing.T) {
	const m, k, n = 4, 5, 3
	for _, lead := range [][]int{nil, {2, 3}} {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			ta, tb := tr[0], tr[1]
			t.Run(fmt.Sprintf("lead%v_transA%v_transB%v", lead, ta, tb), func(t *testing.T) {
				e := newOpsEnv(t, 30)
				as, bs := []int{m, k}, []int{k, n}
				if ta {
					as = []int{k, m}
				}
				if tb {
					bs = []int{n, k}
				}
				a := e.param(0, append(append([]int(nil), lead...), as...)...)
				b := e.param(0, append(append([]int(nil), lead...), bs...)...)
				c := nn.NewConst(e.be, e.randn(nn.NumElems(lead)*m*n), append(append([]int(nil), lead...), m, n)...)
				e.check([]*nn.Tensor{a, b}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.MatMul(a, b, ta, tb), c) })
			})
		}
	}
}

func TestOpsRMSNorm(t *testing.T) {
	e := newOpsEnv(t, 40)
	x, w := e.param(0, 3, 7), e.param(0.5, 7)
	c := e.constLike(x)
	e.check([]*nn.Tensor{x, w}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.RMSNorm(x, w, 1e-5), c) })
}

func TestOpsLayerNorm(t *testing.T) {
	for _, bias := range []bool{true, false} {
		t.Run(fmt.Sprintf("bias%v", bias), func(t *testing.T) {
			e := newOpsEnv(t, 41)
			x, w := e.param(0, 3, 7), e.param(0.5, 7)
			leaves := []*nn.Tensor{x, w}
			var b *nn.Tensor
			if bias {
				b = e.param(0, 7)
				leaves = append(leaves, b)
			}
			c := e.constLike(x)
			e.check(leaves, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.LayerNorm(x, w, b, 1e-5), c) })
		})
	}
}

func TestOpsEmbedding(t *testing.T) {
	e := newOpsEnv(t, 50)
	table := e.param(0, 6, 5)
	ids := []int32{1, 3, 1, 5, 0, 1}
	c := nn.NewConst(e.be, e.randn(len(ids)*5), len(ids), 5)
	e.check([]*nn.Tensor{table}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.Embedding(table, ids), c) })
}

func TestOpsCrossEntropy(t *testing.T) {
	const ignore = -100
	targets := []int32{3, ignore, 0, 6, ignore}
	t.Run("logits", func(t *testing.T) {
		e := newOpsEnv(t, 60)
		logits := e.param(0, 5, 7)
		e.check([]*nn.Tensor{logits}, func(tp *nn.Tape) *nn.Tensor {
			loss, count := tp.CrossEntropy(logits, targets, ignore)
			if count != 3 {
				t.Fatalf("CrossEntropy counted %d rows, want 3", count)
			}
			return loss
		})
	})
	t.Run("linear_head", func(t *testing.T) {
		e := newOpsEnv(t, 61)
		x, w := e.param(0, 5, 4), e.param(0, 7, 4)
		e.check([]*nn.Tensor{x, w}, func(tp *nn.Tape) *nn.Tensor {
			loss, _ := tp.CrossEntropy(tp.Linear(x, w, nil), targets, ignore)
			return loss
		})
	})
	t.Run("all_ignored", func(t *testing.T) {
		e := newOpsEnv(t, 62)
		logits := e.param(0, 2, 3)
		e.check([]*nn.Tensor{logits}, func(tp *nn.Tape) *nn.Tensor {
			loss, count := tp.CrossEntropy(logits, []int32{ignore, ignore}, ignore)
			if v := e.be.Read(loss.Data)[0]; count != 0 || v != 0 {
				t.Fatalf("all rows ignored: loss %v over %d rows, want 0 over 0", v, count)
			}
			return loss
		})
	})
}

func TestOpsPermute(t *testing.T) {
	for _, perm := range [][]int{{0, 2, 1, 3}, {3, 1, 0, 2}, {0, 1, 2, 3}} {
		t.Run(fmt.Sprint(perm), func(t *testing.T) {
			e := newOpsEnv(t, 70)
			x := e.param(0, 2, 3, 4, 5)
			c := e.constLike(x) // same element count; the permuted shape does not matter to a dot
			e.check([]*nn.Tensor{x}, func(tp *nn.Tape) *nn.Tensor {
				return dotLoss(tp, tp.Act(nn.Tanh, tp.Permute(x, perm...)), c)
			})
		})
	}
}

func TestOpsSlice(t *testing.T) {
	e := newOpsEnv(t, 80)
	x := e.param(0, 3, 10)
	c1, c2 := nn.NewConst(e.be, e.randn(15), 3, 5), nn.NewConst(e.be, e.randn(9), 3, 3)
	e.check([]*nn.Tensor{x}, func(tp *nn.Tape) *nn.Tensor {
		// Overlapping slices: columns 4..6 receive from both.
		return tp.Add(dotLoss(tp, tp.Slice(x, 2, 5), c1), dotLoss(tp, tp.Act(nn.Tanh, tp.Slice(x, 4, 3)), c2))
	})
}

func TestOpsConcat(t *testing.T) {
	e := newOpsEnv(t, 90)
	a, b, c := e.param(0, 3, 2), e.param(0, 3, 4), e.param(0, 3, 1)
	k := nn.NewConst(e.be, e.randn(3*9), 3, 9)
	e.check([]*nn.Tensor{a, b, c}, func(tp *nn.Tape) *nn.Tensor {
		return dotLoss(tp, tp.Act(nn.Tanh, tp.Concat(a, b, c, a)), k) // a twice
	})
}

func TestOpsRoPE(t *testing.T) {
	e := newOpsEnv(t, 100)
	x := e.param(0, 2, 2, 5, 6)
	c := e.constLike(x)
	e.check([]*nn.Tensor{x}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.RoPE(x, 3, 10000), c) })
}

func TestOpsAttention(t *testing.T) {
	type attnCase struct {
		Lq, Lk int
		causal bool
	}
	for _, ac := range []attnCase{{5, 5, true}, {5, 5, false}, {3, 7, true}, {1, 4, true}} {
		t.Run(fmt.Sprintf("Lq%d_Lk%d_causal%v", ac.Lq, ac.Lk, ac.causal), func(t *testing.T) {
			e := newOpsEnv(t, 110)
			q, k, v := e.param(0, 1, 2, ac.Lq, 6), e.param(0, 1, 2, ac.Lk, 6), e.param(0, 1, 2, ac.Lk, 6)
			c := e.constLike(q)
			e.check([]*nn.Tensor{q, k, v}, func(tp *nn.Tape) *nn.Tensor {
				return dotLoss(tp, tp.Attention(q, k, v, 1/math.Sqrt(6), ac.causal), c)
			})
		})
	}
}

// TestOpsUsedTwice checks that a tensor read by two ops (or twice by one)
// receives both contributions.
func TestOpsUsedTwice(t *testing.T) {
	e := newOpsEnv(t, 120)
	x, y := e.param(0, 3, 4), e.param(0, 3, 4)
	c, c33 := e.constLike(x), nn.NewConst(e.be, e.randn(9), 3, 3)
	cases := []struct {
		name   string
		leaves []*nn.Tensor
		build  func(tp *nn.Tape) *nn.Tensor
	}{
		{"mul_x_x", []*nn.Tensor{x}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.Mul(x, x), c) }},
		{"add_x_x", []*nn.Tensor{x}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.Act(nn.Tanh, tp.Add(x, x)), c) }},
		{"branches", []*nn.Tensor{x, y}, func(tp *nn.Tape) *nn.Tensor {
			return dotLoss(tp, tp.Add(tp.Act(nn.Tanh, x), tp.Mul(x, y)), c)
		}},
		{"matmul_x_xT", []*nn.Tensor{x}, func(tp *nn.Tape) *nn.Tensor { return dotLoss(tp, tp.MatMul(x, x, false, true), c33) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.check(tc.leaves, tc.build)
		})
	}
}

// TestOpsTinyBlock runs a one-layer pre-norm transformer block into a
// cross-entropy: embedding, RMSNorm, q/k/v projections, heads by reshape and
// permute, RoPE, causal attention, output projection, residual, LayerNorm,
// LM head.
func TestOpsTinyBlock(t *testing.T) {
	const V, D, H, L = 7, 8, 2, 5
	const Dh = D / H
	e := newOpsEnv(t, 130)
	emb := e.param(0, V, D)
	norm1 := e.param(0.5, D)
	wq, wk, wv, wo := e.param(0, D, D), e.param(0, D, D), e.param(0, D, D), e.param(0, D, D)
	bo := e.param(0, D)
	norm2w, norm2b := e.param(0.5, D), e.param(0, D)
	head := e.param(0, V, D)
	ids := []int32{1, 4, 4, 0, 6}
	targets := []int32{4, 4, -100, 6, 2}
	heads := func(tp *nn.Tape, x *nn.Tensor) *nn.Tensor { // (L, D) -> (1, H, L, Dh)
		return tp.Permute(tp.Reshape(x, 1, L, H, Dh), 0, 2, 1, 3)
	}
	e.check([]*nn.Tensor{emb, norm1, wq, wk, wv, wo, bo, norm2w, norm2b, head}, func(tp *nn.Tape) *nn.Tensor {
		x := tp.Embedding(emb, ids)
		h := tp.RMSNorm(x, norm1, 1e-5)
		q := tp.RoPE(heads(tp, tp.Linear(h, wq, nil)), 0, 10000)
		k := tp.RoPE(heads(tp, tp.Linear(h, wk, nil)), 0, 10000)
		v := heads(tp, tp.Linear(h, wv, nil))
		a := tp.Attention(q, k, v, 1/math.Sqrt(Dh), true)
		a = tp.Reshape(tp.Permute(a, 0, 2, 1, 3), L, D)
		x = tp.Add(x, tp.Linear(a, wo, bo))
		logits := tp.Linear(tp.LayerNorm(x, norm2w, norm2b, 1e-5), head, nil)
		loss, _ := tp.CrossEntropy(logits, targets, -100)
		return loss
	})
}

// LinearToChannels, LinearBlock and LinearFromChannels: gradients against finite
// differences, and values against the ops they replace (Slice, Linear,
// Permute) on the same tape.
func TestOpsLinearChannels(t *testing.T) {
	const B, L = 2, 3
	t.Run("to", func(t *testing.T) {
		e := newOpsEnv(t, 40)
		// x (B·L, 7): columns [2, 6) in; W (5, 4): rows [1, 4) out.
		x, w := e.param(0, B*L, 7), e.param(0, 5, 4)
		c := nn.NewConst(e.be, e.randn(B*3*L), B, 3, L)
		e.check([]*nn.Tensor{x, w}, func(tp *nn.Tape) *nn.Tensor {
			return dotLoss(tp, tp.LinearToChannels(x, 2, 4, w, 1, 3, B, L), c)
		})
		tp := nn.NewTape(e.be, false)
		defer tp.Release()
		got := e.be.Read(tp.LinearToChannels(x, 2, 4, w, 1, 3, B, L).Data)
		lin := tp.Slice(tp.Linear(tp.Slice(x, 2, 4), w, nil), 1, 3)
		want := e.be.Read(tp.Permute(tp.Reshape(lin, B, L, 3), 0, 2, 1).Data)
		backendtest.AssertClose(t, "LinearToChannels against Slice, Linear, Permute", got, want, 1e-14)
	})
	t.Run("block", func(t *testing.T) {
		e := newOpsEnv(t, 45)
		x, w := e.param(0, B, L, 7), e.param(0, 5, 4)
		c := nn.NewConst(e.be, e.randn(B*L*3), B, L, 3)
		e.check([]*nn.Tensor{x, w}, func(tp *nn.Tape) *nn.Tensor {
			return dotLoss(tp, tp.LinearBlock(x, 2, 4, w, 1, 3), c)
		})
		tp := nn.NewTape(e.be, false)
		defer tp.Release()
		got := e.be.Read(tp.LinearBlock(x, 2, 4, w, 1, 3).Data)
		want := e.be.Read(tp.Slice(tp.Linear(tp.Slice(x, 2, 4), w, nil), 1, 3).Data)
		backendtest.AssertClose(t, "LinearBlock against Slice, Linear, Slice", got, want, 1e-14)
	})
	t.Run("from", func(t *testing.T) {
		e := newOpsEnv(t, 41)
		x, w := e.param(0, B, 4, L), e.param(0, 6, 4)
		c := nn.NewConst(e.be, e.randn(B*L*6), B*L, 6)
		e.check([]*nn.Tensor{x, w}, func(tp *nn.Tape) *nn.Tensor {
			return dotLoss(tp, tp.LinearFromChannels(x, w, B, L), c)
		})
		tp := nn.NewTape(e.be, false)
		defer tp.Release()
		got := e.be.Read(tp.LinearFromChannels(x, w, B, L).Data)
		want := e.be.Read(tp.Linear(tp.Reshape(tp.Permute(x, 0, 2, 1), B*L, 4), w, nil).Data)
		backendtest.AssertClose(t, "LinearFromChannels against Permute, Linear", got, want, 1e-14)
	})
	for name, f := range map[string]func(){
		"columns": func() {
			e := newOpsEnv(t, 42)
			nn.NewTape(e.be, false).LinearToChannels(e.param(0, B*L, 7), 5, 4, e.param(0, 5, 4), 0, 5, B, L)
		},
		"rows": func() {
			e := newOpsEnv(t, 43)
			nn.NewTape(e.be, false).LinearToChannels(e.param(0, B*L, 7), 0, 4, e.param(0, 5, 4), 3, 3, B, L)
		},
		"block": func() {
			e := newOpsEnv(t, 46)
			nn.NewTape(e.be, false).LinearBlock(e.param(0, B*L, 7), 4, 4, e.param(0, 5, 4), 0, 5)
		},
		"from": func() {
			e := newOpsEnv(t, 44)
			nn.NewTape(e.be, false).LinearFromChannels(e.param(0, B, 5, L), e.param(0, 6, 4), B, L)
		},
	} {
		t.Run("refuses/"+name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}
