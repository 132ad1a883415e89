package arch_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// convConfig is a whole architecture written against arch.LM: a residual
// causal depthwise conv block, x += conv(norm(x)), and its config. It is
// what a newcomer writes (plus a Register call), and the conformance suite
// holds it to the same contract as the shipped ones.
type convConfig struct {
	d, layers, width int
	tie, learned     bool
}

func (c *convConfig) Validate() error { return nil }

// NumParams: embedding V·d, positions maxLen·d, n·(norm d + conv d·W + d),
// final norm d, head V·d.
func (c *convConfig) NumParams(vocab, maxLen int) int {
	n := vocab*c.d + c.layers*(c.d+c.d*c.width+c.d) + c.d
	if c.learned {
		n += maxLen * c.d
	}
	if !c.tie {
		n += vocab * c.d
	}
	return n
}

func (c *convConfig) Build(env arch.Env) (arch.Model, error) {
	be, rng := env.Backend, env.RNG
	return arch.NewLM(env, arch.Trunk[*convBlock]{Name: "conv", DModel: c.d, NLayers: c.layers,
		LearnedPos: c.learned, Norm: func() nn.Layer { return nn.NewRMSNorm(be, c.d, 1e-5) }, Tie: c.tie,
		NewBlock: func(int) *convBlock {
			b := &convBlock{be: be, norm: nn.NewRMSNorm(be, c.d, 1e-5), w: nn.NewParam(be, c.d, c.width), b: nn.NewParam(be, c.d)}
			nn.Normal(be, b.w, 0.5, rng)
			return b
		}}), nil
}

type convBlock struct {
	be   nn.Backend
	norm *nn.RMSNorm
	w, b *nn.Tensor
}

type convState struct {
	be  nn.Backend
	buf nn.Buffer
}

func (s *convState) Free()        { nn.FreeBuffers(s.be, s.buf); s.buf = nil }
func (s *convState) Bytes() int64 { return nn.BufferBytes(s.be, s.buf) }

func (k *convBlock) Forward(tp *nn.Tape, x *nn.Tensor, B, L, _ int, st arch.LayerState) *nn.Tensor {
	d := k.w.Dim(0)
	var buf nn.Buffer
	if st != nil {
		buf = st.(*convState).buf
	}
	h := tp.Permute(tp.Reshape(k.norm.Forward(tp, x), B, L, d), 0, 2, 1)
	h = tp.Conv1D(h, k.w, k.b, nn.SiLU, buf)
	return tp.Add(x, tp.Reshape(tp.Permute(h, 0, 2, 1), B*L, d))
}

func (k *convBlock) Params(layer int) []nn.Param {
	p := arch.LayerPrefix(layer)
	return append(k.norm.Params(p+".norm"), nn.Param{Name: p + ".conv.weight", T: k.w, Decay: true},
		nn.Param{Name: p + ".conv.bias", T: k.b})
}

func (k *convBlock) NewState(B int) arch.LayerState {
	return &convState{be: k.be, buf: k.be.Alloc(B * k.w.Dim(0) * (k.w.Dim(1) - 1))}
}

func (k *convBlock) FLOPsPerToken(int) float64 { return float64(2 * k.w.Len()) }

func convCases() []archtest.Case {
	return []archtest.Case{
		{Name: "tied", Config: &convConfig{d: 4, layers: 2, width: 3, tie: true}},
		{Name: "untied+pos", Config: &convConfig{d: 4, layers: 2, width: 3, learned: true}},
	}
}

// A block written against the trunk passes the conformance suite: count,
// gradients, causality, step mode equal to Forward, the step contract
// (a freed state restarts).
func TestLMConformance(t *testing.T) {
	b := cpukernels.New[float64]()
	archtest.CheckParams(t, b, convCases(), archtest.ParamOptions{Vocab: 7, MaxLen: 6,
		Decays: func(p nn.Param) bool {
			return strings.HasSuffix(p.Name, "weight") && len(p.T.Shape) == 2 && !strings.Contains(p.Name, "embed")
		}})
	archtest.CheckGradients(t, b, convCases(), archtest.GradOptions{Vocab: 7, B: 2, L: 6, H: 1e-4, Tol: 1e-6})
	archtest.CheckCausal(t, b, convCases(), archtest.CausalOptions{Vocab: 7, B: 2, L: 6, Leak: 1e-12})
	archtest.CheckStepMatchesForward(t, b, convCases(), archtest.StepOptions{Vocab: 7, B: 2, L: 6,
		Chunks: [][]int{{1, 1, 1, 1, 1, 1}, {2, 4}, {6}}, Tol: 1e-12,
		StateBytes: func(_ arch.Config, B, _ int) int64 { return int64(2 * B * 4 * 2 * 8) }})
	for _, c := range convCases() {
		archtest.CheckStepContract(t, b, c, archtest.FreedRestarts)
	}
}

// The trunk names its parts embed, pos_embed, the blocks', norm_f and
// lm_head, in build order, and draws the RNG in that order: embedding,
// positions, blocks, head.
func TestLMParamsAndInitOrder(t *testing.T) {
	b := cpukernels.New[float64]()
	m := archtest.Build(t, b, convCases()[1], 5, 6, 9)
	archtest.CheckParamNames(t, m.Params(), "embed.weight[5 4] pos_embed.weight[6 4] layers.0.norm.weight[4] "+
		"layers.0.conv.weight[4 3] layers.0.conv.bias[4] layers.1.norm.weight[4] layers.1.conv.weight[4 3] "+
		"layers.1.conv.bias[4] norm_f.weight[4] lm_head.weight[5 4]")
	// Replay the draws: N(0, 0.02²) embedding and positions, each block's
	// conv weight N(0, 0.5²), then the head as torch's Linear U(±1/√d).
	rng := rand.New(rand.NewPCG(9, 1))
	want := map[string][]float64{}
	draw := func(name string, n int, f func() float64) {
		for range n {
			want[name] = append(want[name], f())
		}
	}
	draw("embed.weight", 20, func() float64 { return 0.02 * rng.NormFloat64() })
	draw("pos_embed.weight", 24, func() float64 { return 0.02 * rng.NormFloat64() })
	draw("layers.0.conv.weight", 12, func() float64 { return 0.5 * rng.NormFloat64() })
	draw("layers.1.conv.weight", 12, func() float64 { return 0.5 * rng.NormFloat64() })
	draw("lm_head.weight", 20, func() float64 { return (2*rng.Float64() - 1) / 2 })
	for _, p := range m.Params() {
		w, ok := want[p.Name]
		if !ok {
			continue
		}
		got := b.Read(p.T.Data)
		for i := range w {
			if d := got[i] - w[i]; d > 1e-15 || d < -1e-15 {
				t.Fatalf("%s[%d] = %v, want %v (draws out of order)", p.Name, i, got[i], w[i])
			}
		}
	}
	if got := m.(interface{ MaxLen() int }).MaxLen(); got != 6 {
		t.Errorf("MaxLen with learned positions = %d, want 6", got)
	}
	if got := archtest.Build(t, b, convCases()[0], 5, 6, 9).(interface{ MaxLen() int }).MaxLen(); got != 0 {
		t.Errorf("MaxLen without learned positions = %d, want 0", got)
	}
}

// FLOPs per token: the blocks' plus 2·d·V for the head.
func TestLMFLOPs(t *testing.T) {
	m := archtest.Build(t, cpukernels.New[float64](), convCases()[0], 5, 6, 1)
	if got, want := m.FLOPsPerToken(6), float64(2*(2*4*3)+2*4*5); got != want {
		t.Errorf("FLOPsPerToken = %v, want %v", got, want)
	}
}

// A ConvScan is of the activations' type only when asked for on a mixed
// backend, says so, and holds half the bytes then.
func TestConvScanLowPrecision(t *testing.T) {
	for _, c := range []struct {
		be         nn.Backend
		lowp, want bool
		bytes      int64
	}{
		{cpukernels.NewBF16(), true, true, 2 * 10},
		{cpukernels.NewBF16(), false, false, 4 * 10},
		{cpukernels.New[float32](), true, false, 4 * 10},
	} {
		s := arch.NewConvScan(c.be, 4, 6, c.lowp)
		if got := s.LowPrecision(); got != c.want || s.Bytes() != c.bytes {
			t.Errorf("%s, lowp %v: LowPrecision %v, Bytes %d; want %v, %d", c.be.Name(), c.lowp, got, s.Bytes(), c.want, c.bytes)
		}
		s.Free()
	}
}
