package attention_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/attention"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny returns a small config with the given options.
func tiny(pos, mlp, norm string, bias, tie bool) *attention.Config {
	c := attention.DefaultConfig()
	c.DModel, c.NLayers, c.NHeads, c.MLPRatio = 8, 2, 2, 2
	c.Pos, c.MLP, c.Norm, c.Bias, c.TieEmbeddings = pos, mlp, norm, bias, tie
	return c
}

func name(c *attention.Config) string {
	return fmt.Sprintf("%s/%s/%s/bias=%v/tie=%v", c.Pos, c.MLP, c.Norm, c.Bias, c.TieEmbeddings)
}

func build(t *testing.T, c *attention.Config, b nn.Backend, vocab, maxLen int, seed uint64) *attention.Model {
	t.Helper()
	m, err := c.Build(arch.Env{Backend: b, Vocab: vocab, MaxLen: maxLen, RNG: rand.New(rand.NewPCG(seed, 1))})
	if err != nil {
		t.Fatalf("%s: %v", name(c), err)
	}
	return m.(*attention.Model)
}

// The closed form must equal what Build allocates, for every option
// combination; names are unique and decay follows the convention (only
// Linear weights, which are the only 2-D params besides embeddings).
func TestNumParamsMatchesBuild(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, maxLen = 7, 5
	for _, pos := range []string{"rope", "learned", "none"} {
		for _, mlp := range []string{"gelu", "swiglu"} {
			for _, norm := range []string{"rmsnorm", "layernorm"} {
				for _, bias := range []bool{false, true} {
					for _, tie := range []bool{false, true} {
						c := tiny(pos, mlp, norm, bias, tie)
						c.MLPRatio = 2.5 // hidden 20: not a multiple of d
						m := build(t, c, b, vocab, maxLen, 1)
						ps := m.Params()
						if got, want := nn.CountParams(ps), c.NumParams(vocab, maxLen); got != want {
							t.Errorf("%s: built %d params, NumParams says %d", name(c), got, want)
						}
						seen := map[string]bool{}
						for _, p := range ps {
							if seen[p.Name] {
								t.Errorf("%s: duplicate name %s", name(c), p.Name)
							}
							seen[p.Name] = true
							isLinearW := strings.HasSuffix(p.Name, ".weight") && len(p.T.Shape) == 2 && !strings.Contains(p.Name, "embed")
							if p.Decay != isLinearW {
								t.Errorf("%s: %s %v decay %v", name(c), p.Name, p.T.Shape, p.Decay)
							}
						}
					}
				}
			}
		}
	}
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny("learned", "gelu", "layernorm", true, false), b, 7, 5, 1)
	var names []string
	for _, p := range m.Params() {
		names = append(names, fmt.Sprintf("%s%v", p.Name, p.T.Shape))
	}
	want := "embed.weight[7 8] pos_embed.weight[5 8] " +
		"layers.0.norm1.weight[8] layers.0.norm1.bias[8] layers.0.attn.qkv.weight[24 8] layers.0.attn.qkv.bias[24] " +
		"layers.0.attn.proj.weight[8 8] layers.0.attn.proj.bias[8] layers.0.norm2.weight[8] layers.0.norm2.bias[8] " +
		"layers.0.mlp.fc.weight[16 8] layers.0.mlp.fc.bias[16] layers.0.mlp.proj.weight[8 16] layers.0.mlp.proj.bias[8]"
	if got := strings.Join(names[:14], " "); got != want {
		t.Errorf("names:\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(names[len(names)-3:], " "); got != "norm_f.weight[8] norm_f.bias[8] lm_head.weight[7 8]" {
		t.Errorf("last names: %s", got)
	}
}

func TestFLOPsPerToken(t *testing.T) {
	b := cpukernels.New[float64]()
	c := tiny("rope", "gelu", "rmsnorm", false, true)
	c.MLPRatio = 4
	m := build(t, c, b, 7, 5, 1)
	// matmuls 2·(2·(4·64 + 2·8·32) + 8·7) = 3184; attention 2·4·((5+1)/2)·8 = 192.
	if got := m.FLOPsPerToken(5); got != 3376 {
		t.Errorf("FLOPsPerToken(5) = %g, want 3376", got)
	}
}

// randomize replaces the GPT-2 init with O(1) values (norm weights around 1)
// so every path — attention scores, gates, norm scales — carries gradient
// large enough to compare.
func randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	for _, p := range ps {
		v := make([]float64, p.T.Len())
		for i := range v {
			v[i] = 0.5 * rng.NormFloat64()
			if strings.Contains(p.Name, "norm") && strings.HasSuffix(p.Name, "weight") {
				v[i] += 1
			}
		}
		b.Write(p.T.Data, v)
	}
}

func loss(b nn.Backend, m arch.Model, ids, targets []int32, B, L int, record bool) (float64, *nn.Tape, *nn.Tensor) {
	tp := nn.NewTape(b, record)
	l, _ := tp.CrossEntropy(m.Forward(tp, ids, B, L), targets, -1)
	return b.Read(l.Data)[0], tp, l
}

// Every parameter's gradient against central finite differences in
// float64 (all elements of small tensors, 24 random ones of larger). The
// 4-point stencil's error is O(h⁴): at h = 1e-3 about 1e-8 absolute on the
// most curved element (it falls 16× per halving of h, so it is truncation,
// not a gradient bug) and ~1e-13 of rounding, which keeps relative errors
// under 1e-6; gradients below 1e-6 (e.g. the exactly-zero gradient of the
// key bias) are compared at that floor.
func TestGradCheck(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L, h = 7, 2, 5, 1e-3
	rng := rand.New(rand.NewPCG(11, 12))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i], targets[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
	}
	targets[3] = -1 // an ignored row must contribute nothing
	for _, c := range []*attention.Config{
		tiny("rope", "gelu", "rmsnorm", false, true),
		tiny("rope", "swiglu", "layernorm", true, false),
		tiny("learned", "swiglu", "layernorm", true, false),
		tiny("learned", "gelu", "rmsnorm", true, true),
		tiny("none", "gelu", "layernorm", false, true),
		tiny("none", "swiglu", "rmsnorm", false, false),
	} {
		m := build(t, c, b, vocab, L, 2)
		ps := m.Params()
		randomize(b, ps, rng)
		nn.ZeroGrads(b, ps)
		_, tp, l := loss(b, m, ids, targets, B, L, true)
		tp.Backward(l)
		tp.Release()
		worst, where := 0.0, ""
		for _, p := range ps {
			grad := b.Read(p.T.Grad())
			x := b.Read(p.T.Data)
			idx := rng.Perm(len(x))
			if len(idx) > 24 {
				idx = idx[:24]
			}
			at := func(i int, v float64) float64 {
				old := x[i]
				x[i] = v
				b.Write(p.T.Data, x)
				f, eval, _ := loss(b, m, ids, targets, B, L, false)
				eval.Release()
				x[i] = old
				b.Write(p.T.Data, x)
				return f
			}
			for _, i := range idx {
				x0 := x[i]
				num := (-at(i, x0+2*h) + 8*at(i, x0+h) - 8*at(i, x0-h) + at(i, x0-2*h)) / (12 * h)
				e := math.Abs(num-grad[i]) / math.Max(1e-6, math.Max(math.Abs(num), math.Abs(grad[i])))
				if !(e <= worst) {
					worst, where = e, fmt.Sprintf("%s[%d]: analytic %.12g, numeric %.12g", p.Name, i, grad[i], num)
				}
			}
		}
		t.Logf("%s: worst rel err %.2g at %s", name(c), worst, where)
		if !(worst < 1e-6) {
			t.Errorf("%s: gradient check failed, rel err %.3g at %s", name(c), worst, where)
		}
	}
}

// Changing token t may change logits only at positions ≥ t of that
// sequence.
func TestCausal(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L = 7, 2, 6
	for _, pos := range []string{"rope", "learned", "none"} {
		c := tiny(pos, "swiglu", "rmsnorm", true, true)
		m := build(t, c, b, vocab, L, 3)
		randomize(b, m.Params(), rand.New(rand.NewPCG(4, 4)))
		rng := rand.New(rand.NewPCG(5, 5))
		ids := make([]int32, B*L)
		for i := range ids {
			ids[i] = int32(rng.IntN(vocab))
		}
		logits := func(ids []int32) []float64 {
			tp := nn.NewTape(b, false)
			defer tp.Release()
			return b.Read(m.Forward(tp, ids, B, L).Data)
		}
		base := logits(ids)
		for tok := range L {
			alt := append([]int32(nil), ids...)
			alt[tok] = (alt[tok] + 1) % vocab // sequence 0 only
			got := logits(alt)
			for row := range B * L {
				diff := 0.0
				for v := range vocab {
					diff = math.Max(diff, math.Abs(got[row*vocab+v]-base[row*vocab+v]))
				}
				seq, p := row/L, row%L
				if affected := seq == 0 && p >= tok; !affected && diff > 1e-12 {
					t.Errorf("%s: token %d changed logits of sequence %d position %d by %g", pos, tok, seq, p, diff)
				} else if seq == 0 && p == tok && diff < 1e-6 {
					t.Errorf("%s: token %d did not change its own logits", pos, tok)
				}
			}
		}
	}
}

// A short run must learn to copy: each sequence is 4 random tokens repeated
// (x1..x4 x1..x4), and the loss counts only the second copy, which needs
// attention to earlier positions (chance: log 8 ≈ 2.08).
func TestLearnsToCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("training run")
	}
	b := cpukernels.New[float32]()
	const vocab, B, half, steps = 8, 16, 4, 200
	const L = 2 * half
	c := attention.DefaultConfig()
	c.DModel, c.NLayers, c.NHeads = 16, 2, 2
	m := build(t, c, b, vocab, L, 1)
	ps := m.Params()
	opt := nn.NewAdamW(b, ps, 0.01)
	sched := nn.NewSchedule("cosine", 1e-2, 20, steps)
	rng := rand.New(rand.NewPCG(9, 9))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	last := 0.0
	for step := range steps {
		for s := range B {
			for p := range half {
				tok := int32(rng.IntN(vocab))
				ids[s*L+p], ids[s*L+half+p] = tok, tok
			}
			for p := range L {
				targets[s*L+p] = -1
				if p >= half-1 && p < L-1 {
					targets[s*L+p] = ids[s*L+p+1]
				}
			}
		}
		nn.ZeroGrads(b, ps)
		f, tp, l := loss(b, m, ids, targets, B, L, true)
		tp.Backward(l)
		tp.Release()
		nn.ClipGradNorm(b, ps, 1)
		opt.Step(sched.At(step))
		last = 0.9*last + 0.1*f
		if step < 10 {
			last = f
		}
	}
	t.Logf("smoothed copy loss after %d steps: %.3f", steps, last)
	if last > 0.5 {
		t.Errorf("copy loss %.3f after %d steps, want < 0.5", last, steps)
	}
}

// Step mode (KV cache) in uneven chunks gives the rows Forward gives on the
// whole sequence.
func TestStepMatchesForward(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L = 7, 2, 7
	rng := rand.New(rand.NewPCG(31, 32))
	ids := make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	for _, c := range []*attention.Config{
		tiny("rope", "gelu", "rmsnorm", true, true),
		tiny("learned", "swiglu", "layernorm", false, false),
		tiny("none", "gelu", "layernorm", true, true),
	} {
		m := build(t, c, b, vocab, L, 7)
		randomize(b, m.Params(), rng)
		tp := nn.NewTape(b, false)
		want := b.Read(m.Forward(tp, ids, B, L).Data)
		tp.Release()

		st := m.NewState(B)
		pos := 0
		for _, T := range []int{1, 3, 1, 2} { // sums to L
			chunk := make([]int32, 0, B*T)
			for s := range B {
				chunk = append(chunk, ids[s*L+pos:s*L+pos+T]...)
			}
			tp := nn.NewTape(b, false)
			got := b.Read(m.Step(tp, st, chunk, B, T).Data)
			tp.Release()
			for s := range B {
				for j := range T * vocab {
					g, w := got[(s*T)*vocab+j], want[(s*L+pos)*vocab+j]
					if math.Abs(g-w) > 1e-12 {
						t.Fatalf("%s: seq %d pos %d: step logit %.15g, forward %.15g", name(c), s, pos+j/vocab, g, w)
					}
				}
			}
			pos += T
		}
		if got, want := st.Bytes(), int64(2*c.NLayers*B*L*c.DModel*8); got != want {
			t.Errorf("%s: state Bytes %d, want %d", name(c), got, want)
		}
		st.Free()
		if st.Bytes() != 0 {
			t.Errorf("%s: Bytes %d after Free", name(c), st.Bytes())
		}
	}
}
