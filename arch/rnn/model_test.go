package rnn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/rnn"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// tiny returns a small config with the given options.
func tiny(cell, norm string, bias, tie bool) *rnn.Config {
	c := rnn.DefaultConfig(cell)
	c.DModel, c.NLayers = 6, 2
	c.Norm, c.Bias, c.TieEmbeddings = norm, bias, tie
	return c
}

func name(c *rnn.Config) string {
	return fmt.Sprintf("%s/%s/bias=%v/tie=%v/layers=%d", c.Arch, c.Norm, c.Bias, c.TieEmbeddings, c.NLayers)
}

// variants are the option combinations most tests run over.
func variants() []*rnn.Config {
	var cs []*rnn.Config
	for _, cell := range []string{"lstm", "gru"} {
		cs = append(cs,
			tiny(cell, "rmsnorm", true, true),
			tiny(cell, "layernorm", true, false),
			tiny(cell, "none", false, false),
			tiny(cell, "layernorm", false, true),
		)
	}
	return cs
}

func build(t *testing.T, c *rnn.Config, b nn.Backend, vocab int, seed uint64) *rnn.Model {
	t.Helper()
	m, err := c.Build(arch.Env{Backend: b, Vocab: vocab, RNG: rand.New(rand.NewPCG(seed, 1))})
	if err != nil {
		t.Fatalf("%s: %v", name(c), err)
	}
	return m.(*rnn.Model)
}

// The closed form must equal what Build allocates for every option
// combination; names are unique and only the matrices decay.
func TestNumParamsMatchesBuild(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab = 7
	for _, cell := range []string{"lstm", "gru"} {
		for _, norm := range []string{"rmsnorm", "layernorm", "none"} {
			for _, bias := range []bool{false, true} {
				for _, tie := range []bool{false, true} {
					for _, layers := range []int{1, 3} {
						c := tiny(cell, norm, bias, tie)
						c.NLayers = layers
						ps := build(t, c, b, vocab, 1).Params()
						if got, want := nn.CountParams(ps), c.NumParams(vocab, 0); got != want {
							t.Errorf("%s: built %d params, NumParams says %d", name(c), got, want)
						}
						seen := map[string]bool{}
						for _, p := range ps {
							if seen[p.Name] {
								t.Errorf("%s: duplicate name %s", name(c), p.Name)
							}
							seen[p.Name] = true
							matrix := strings.Contains(p.Name, "weight_") || p.Name == "lm_head.weight"
							if p.Decay != matrix || (matrix && len(p.T.Shape) != 2) {
								t.Errorf("%s: %s %v decay %v", name(c), p.Name, p.T.Shape, p.Decay)
							}
						}
					}
				}
			}
		}
	}
}

// torch.nn.LSTM(64, 64, num_layers=2) and torch.nn.GRU(64, 64,
// num_layers=2) hold 66 560 and 49 920 parameters (4H(I+H) + 8H and
// 3H(I+H) + 6H per layer); with a 100-token tied embedding and an RMSNorm
// the model adds 6400 + 64.
func TestNumParamsTorch(t *testing.T) {
	for cell, rnnParams := range map[string]int{"lstm": 66_560, "gru": 49_920} {
		c := rnn.DefaultConfig(cell)
		if got, want := c.NumParams(100, 0), rnnParams+6400+64; got != want {
			t.Errorf("%s: NumParams = %d, want %d", cell, got, want)
		}
		c.Bias = false
		if got, want := c.NumParams(100, 0), rnnParams-2*2*c.DModel*map[string]int{"lstm": 4, "gru": 3}[cell]+6400+64; got != want {
			t.Errorf("%s bias=false: NumParams = %d, want %d", cell, got, want)
		}
	}
}

func TestParamNames(t *testing.T) {
	b := cpukernels.New[float64]()
	for cell, G := range map[string]int{"lstm": 4, "gru": 3} {
		m := build(t, tiny(cell, "layernorm", true, false), b, 7, 1)
		var names []string
		for _, p := range m.Params() {
			names = append(names, fmt.Sprintf("%s%v", p.Name, p.T.Shape))
		}
		g := G * 6
		want := fmt.Sprintf("embed.weight[7 6] "+
			"layers.weight_ih_l0[%d 6] layers.weight_hh_l0[%d 6] layers.bias_ih_l0[%d] layers.bias_hh_l0[%d] "+
			"layers.weight_ih_l1[%d 6] layers.weight_hh_l1[%d 6] layers.bias_ih_l1[%d] layers.bias_hh_l1[%d] "+
			"norm_f.weight[6] norm_f.bias[6] lm_head.weight[7 6]", g, g, g, g, g, g, g, g)
		if got := strings.Join(names, " "); got != want {
			t.Errorf("%s names:\n got %s\nwant %s", cell, got, want)
		}
	}
}

// torch's init: every RNN weight and bias in U(−1/√d, 1/√d), filling it.
func TestInit(t *testing.T) {
	b := cpukernels.New[float64]()
	c := rnn.DefaultConfig("lstm")
	m := build(t, c, b, 11, 3)
	bound := 1 / math.Sqrt(float64(c.DModel))
	for _, p := range m.Params() {
		if !strings.HasPrefix(p.Name, "layers.") {
			continue
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range b.Read(p.T.Data) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if lo < -bound || hi > bound || hi-lo < bound {
			t.Errorf("%s: values in [%.3g, %.3g], want spread over U(±%.3g)", p.Name, lo, hi, bound)
		}
	}
}

func TestFLOPsPerToken(t *testing.T) {
	b := cpukernels.New[float64]()
	for cell, want := range map[string]float64{
		// 2·2·4·8·16 + 2·8·7 = 2048 + 112; GRU 2·2·3·8·16 + 112 = 1536 + 112.
		"lstm": 2160, "gru": 1648,
	} {
		c := rnn.DefaultConfig(cell)
		c.DModel = 8
		m := build(t, c, b, 7, 1)
		for _, L := range []int{1, 100} {
			if got := m.FLOPsPerToken(L); got != want {
				t.Errorf("%s: FLOPsPerToken(%d) = %g, want %g", cell, L, got, want)
			}
		}
	}
}

// randomize replaces the init with O(1) values (norm weights around 1) so
// that every gate is exercised away from its linear region.
func randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	for _, p := range ps {
		v := make([]float64, p.T.Len())
		for i := range v {
			v[i] = 0.5 * rng.NormFloat64()
			if strings.HasPrefix(p.Name, "norm") && strings.HasSuffix(p.Name, "weight") {
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

// Every parameter's gradient against 4-point central differences in
// float64 (every element of small tensors, 24 random ones of larger).
func TestGradCheck(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L, h = 7, 2, 5, 1e-3
	rng := rand.New(rand.NewPCG(11, 12))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i], targets[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
	}
	targets[3] = -1 // an ignored row must contribute nothing
	for _, c := range variants() {
		m := build(t, c, b, vocab, 2)
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
	for _, c := range variants()[:2] {
		m := build(t, c, b, vocab, 3)
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
					t.Errorf("%s: token %d changed logits of sequence %d position %d by %g", name(c), tok, seq, p, diff)
				} else if seq == 0 && p == tok && diff < 1e-6 {
					t.Errorf("%s: token %d did not change its own logits", name(c), tok)
				}
			}
		}
	}
}

// Step mode, one token at a time and in uneven chunks, gives the rows
// Forward gives on the whole sequence; the state does not grow.
func TestStepMatchesForward(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L = 7, 3, 7
	rng := rand.New(rand.NewPCG(31, 32))
	ids := make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	for _, c := range variants() {
		m := build(t, c, b, vocab, 7)
		randomize(b, m.Params(), rng)
		tp := nn.NewTape(b, false)
		want := b.Read(m.Forward(tp, ids, B, L).Data)
		tp.Release()

		for _, chunks := range [][]int{{1, 1, 1, 1, 1, 1, 1}, {1, 3, 1, 2}, {7}} {
			st := m.NewState(B)
			bytes := st.Bytes()
			pos, worst := 0, 0.0
			for _, T := range chunks {
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
						worst = math.Max(worst, math.Abs(g-w)/math.Max(1, math.Abs(w)))
					}
				}
				pos += T
				if st.Bytes() != bytes {
					t.Errorf("%s: state grew from %d to %d bytes", name(c), bytes, st.Bytes())
				}
			}
			if worst > 1e-12 {
				t.Errorf("%s chunks %v: step logits differ from Forward by %.3g", name(c), chunks, worst)
			}
			per := int64(4) // h twice, c twice
			if c.Arch == "gru" {
				per = 2
			}
			if want := per * int64(c.NLayers*B*c.DModel*8); bytes != want {
				t.Errorf("%s: state Bytes %d, want %d", name(c), bytes, want)
			}
			st.Free()
			if st.Bytes() != 0 {
				t.Errorf("%s: Bytes %d after Free", name(c), st.Bytes())
			}
		}
	}
}

// A freed state starts over from zeros; a recording tape and mismatched
// shapes are refused.
func TestStepStateReuse(t *testing.T) {
	b := cpukernels.New[float64]()
	m := build(t, tiny("lstm", "rmsnorm", true, true), b, 7, 1)
	ids := []int32{1, 2, 3, 4}
	run := func(st arch.State) []float64 {
		tp := nn.NewTape(b, false)
		defer tp.Release()
		return b.Read(m.Step(tp, st, ids, 2, 2).Data)
	}
	st := m.NewState(2)
	first := run(st)
	if again := run(st); again[len(again)-1] == first[len(first)-1] {
		t.Errorf("the second step did not see the carried state")
	}
	st.Free()
	if again := run(st); again[0] != first[0] || again[len(again)-1] != first[len(first)-1] {
		t.Errorf("a freed state did not restart from zeros")
	}
	panics := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", what)
			}
		}()
		f()
	}
	panics("recording tape", func() { m.Step(nn.NewTape(b, true), st, ids, 2, 2) })
	panics("batch mismatch", func() { m.Step(nn.NewTape(b, false), st, ids, 4, 1) })
	panics("ids mismatch", func() { m.Step(nn.NewTape(b, false), st, ids[:3], 2, 2) })
}

// A short run must learn to recall: each sequence is 4 random tokens, then
// the same 4 again, and the loss counts only the second copy (chance:
// log 8 ≈ 2.08), which the recurrence must carry in its state.
func TestLearnsToCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("training run")
	}
	for _, cell := range []string{"lstm", "gru"} {
		b := cpukernels.New[float32]()
		const vocab, B, half, steps = 8, 16, 4, 300
		const L = 2 * half
		c := rnn.DefaultConfig(cell)
		c.DModel, c.NLayers = 32, 1
		m := build(t, c, b, vocab, 1)
		ps := m.Params()
		opt := nn.NewAdamW(b, ps, 0.01)
		sched := nn.NewSchedule("cosine", 2e-2, 20, steps)
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
		t.Logf("%s: smoothed copy loss after %d steps: %.3f", cell, steps, last)
		if last > 0.5 {
			t.Errorf("%s: copy loss %.3f after %d steps, want < 0.5", cell, last, steps)
		}
	}
}
