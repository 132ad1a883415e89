// Package rnn holds the recurrent baselines, registered as "lstm" and
// "gru": an embedding, a stack of torch.nn.LSTM / torch.nn.GRU layers with
// hidden size d_model (the classic stacked RNN language model: no residual
// connections, no norms between layers), a final norm and the LM head.
package rnn

import (
	"fmt"
	"math"
	"strconv"

	"seqbench/arch"
	"seqbench/nn"
)

func init() {
	arch.Register(arch.Spec{
		Name: "lstm",
		Doc:  "stacked LSTM (torch.nn.LSTM layers, hidden = d_model, gates i, f, g, o)",
		New:  func() arch.Config { return DefaultConfig("lstm") },
	})
	arch.Register(arch.Spec{
		Name: "gru",
		Doc:  "stacked GRU (torch.nn.GRU layers, hidden = d_model, gates r, z, n)",
		New:  func() arch.Config { return DefaultConfig("gru") },
	})
}

// Config is the model block of lstm and gru; Arch picks the cell.
type Config struct {
	Arch    string `yaml:"arch"` // lstm | gru
	DModel  int    `yaml:"d_model"`
	NLayers int    `yaml:"n_layers"`
	// Bias gives every RNN layer torch's two bias vectors (bias=True, the
	// torch default) and a LayerNorm final norm its bias.
	Bias bool   `yaml:"bias"`
	Norm string `yaml:"norm"` // final norm: rmsnorm | layernorm | none
	// TieEmbeddings shares the embedding with the LM head. On by default,
	// as for every other arch here, so that parameter counts compare like
	// for like (Press & Wolf 2017 tie RNN LMs too).
	TieEmbeddings bool    `yaml:"tie_embeddings"`
	NormEps       float64 `yaml:"norm_eps"`
}

// DefaultConfig holds the defaults of a model block of the given cell
// ("lstm" or "gru").
func DefaultConfig(cell string) *Config {
	return &Config{Arch: cell, DModel: 64, NLayers: 2, Bias: true, Norm: "rmsnorm", TieEmbeddings: true, NormEps: 1e-5}
}

// gates is 4 for the LSTM (i, f, g, o), 3 for the GRU (r, z, n).
func (c *Config) gates() int {
	if c.Arch == "gru" {
		return 3
	}
	return 4
}

// Validate checks every field; errors name the field, the value and what
// is allowed.
func (c *Config) Validate() error {
	if err := arch.OneOf("arch", c.Arch, "lstm", "gru"); err != nil {
		return err
	}
	if c.DModel < 1 || c.DModel > 1<<16 {
		return arch.FieldError("d_model", c.DModel, "must be in [1, 65536]")
	}
	if c.NLayers < 1 {
		return arch.FieldError("n_layers", c.NLayers, "must be ≥ 1")
	}
	if err := arch.OneOf("norm", c.Norm, "rmsnorm", "layernorm", "none"); err != nil {
		return err
	}
	if c.Norm != "none" && (!(c.NormEps > 0) || math.IsInf(c.NormEps, 0)) {
		return arch.FieldError("norm_eps", c.NormEps, "must be finite and > 0")
	}
	return nil
}

// NumParams counts, in the order they are built:
//
//	V·d                          token embedding
//	n_layers · (G·d·(d + d)      weight_ih_l{k} (G·d, d), weight_hh_l{k} (G·d, d)
//	            + 2·G·d)         bias_ih_l{k}, bias_hh_l{k} (bias)
//	norm                         d (RMSNorm, LayerNorm), + d (LayerNorm bias), 0 (none)
//	V·d                          LM head (untied)
//
// with G = 4 (LSTM) or 3 (GRU): torch's 4H(I+H) + 8H per LSTM layer and
// 3H(I+H) + 6H per GRU layer, at I = H = d.
func (c *Config) NumParams(vocab, maxLen int) int {
	d, G := c.DModel, c.gates()
	layer := G * d * 2 * d
	if c.Bias {
		layer += 2 * G * d
	}
	n := vocab*d + c.NLayers*layer
	switch c.Norm {
	case "rmsnorm":
		n += d
	case "layernorm":
		n += d
		if c.Bias {
			n += d
		}
	}
	if !c.TieEmbeddings {
		n += vocab * d
	}
	return n
}

// Build allocates and initializes the model on env.Backend.
func (c *Config) Build(env arch.Env) (arch.Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := env.Check(c.Arch); err != nil {
		return nil, err
	}
	return build(c, env), nil
}

var _ arch.Stepper = (*Model)(nil)

// Model is the built stacked RNN. Fields are exported so tests and tools
// can reach individual layers; Params is the supported way to enumerate
// weights.
type Model struct {
	be     nn.Backend
	cfg    Config
	vocab  int
	Embed  *nn.Embedding
	Layers []*Layer
	NormF  nn.Layer   // nil for norm none
	Head   *nn.Linear // nil when tied: the logits then use Embed.W
}

// Layer is one torch RNN layer, weights as torch lays them out:
// WeightIH (G·d, d), WeightHH (G·d, d), BiasIH, BiasHH (G·d) or nil, rows in
// gate order (LSTM i, f, g, o; GRU r, z, n).
type Layer struct {
	GRU                                bool
	WeightIH, WeightHH, BiasIH, BiasHH *nn.Tensor
}

// build allocates the layers with torch's initializations: RNN weights and
// biases from U(−1/√d, 1/√d) (torch.nn.LSTM/GRU's reset_parameters), the
// embedding from N(0, 0.02²) (nn.NewEmbedding), an untied head as
// torch.nn.Linear, norms at 1 (and 0).
func build(c *Config, env arch.Env) *Model {
	be, rng, d, G := env.Backend, env.RNG, c.DModel, c.gates()
	m := &Model{be: be, cfg: *c, vocab: env.Vocab}
	m.Embed = nn.NewEmbedding(be, env.Vocab, d, rng)
	bound := 1 / math.Sqrt(float64(d))
	param := func(shape ...int) *nn.Tensor {
		t := nn.NewParam(be, shape...)
		nn.Uniform(be, t, -bound, bound, rng)
		return t
	}
	for range c.NLayers {
		l := &Layer{GRU: c.Arch == "gru", WeightIH: param(G*d, d), WeightHH: param(G*d, d)}
		if c.Bias {
			l.BiasIH, l.BiasHH = param(G*d), param(G*d)
		}
		m.Layers = append(m.Layers, l)
	}
	if c.Norm != "none" {
		m.NormF = nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, c.Bias)
	}
	if !c.TieEmbeddings {
		m.Head = nn.NewLinear(be, d, env.Vocab, false, rng)
	}
	return m
}

// Forward returns logits (B·L, V) for ids (B·L), batch-major.
func (m *Model) Forward(tp *nn.Tape, ids []int32, B, L int) *nn.Tensor {
	if len(ids) != B*L {
		panic(fmt.Sprintf("%s: %d ids for B=%d, L=%d", m.cfg.Arch, len(ids), B, L))
	}
	d := m.cfg.DModel
	x := tp.Reshape(m.Embed.Forward(tp, ids), B, L, d)
	for _, l := range m.Layers {
		x = l.forward(tp, x, nil)
	}
	return arch.Logits(tp, tp.Reshape(x, B*L, d), m.NormF, m.Head, m.Embed)
}

// forward maps x (B, L, d) to every hidden state (B, L, d). In step mode s
// is the layer's carried state: the layer starts from it and leaves its
// final state there.
func (l *Layer) forward(tp *nn.Tape, x *nn.Tensor, s *layerState) *nn.Tensor {
	in := nn.RNNInputs{X: x, Wih: l.WeightIH, Whh: l.WeightHH, Bih: l.BiasIH, Bhh: l.BiasHH}
	if s != nil {
		in.H0, in.C0, in.HT, in.CT = s.h[0], s.c[0], s.h[1], s.c[1]
		defer s.swap()
	}
	if l.GRU {
		return tp.GRU(in)
	}
	return tp.LSTM(in)
}

// Params lists the weights with torch-like names: embed.weight, then
// layers.weight_ih_l{k}, layers.weight_hh_l{k}, layers.bias_ih_l{k},
// layers.bias_hh_l{k} (torch.nn.LSTM/GRU's state_dict under a module named
// "layers"), norm_f.*, lm_head.weight. A tied LM head is not listed
// separately. RNN weight matrices and the head decay; biases, the
// embedding and the norm do not.
func (m *Model) Params() []nn.Param {
	ps := m.Embed.Params("embed")
	for k, l := range m.Layers {
		s := "_l" + strconv.Itoa(k)
		ps = append(ps,
			nn.Param{Name: "layers.weight_ih" + s, T: l.WeightIH, Decay: true},
			nn.Param{Name: "layers.weight_hh" + s, T: l.WeightHH, Decay: true})
		if l.BiasIH != nil {
			ps = append(ps,
				nn.Param{Name: "layers.bias_ih" + s, T: l.BiasIH},
				nn.Param{Name: "layers.bias_hh" + s, T: l.BiasHH})
		}
	}
	ps = append(ps, arch.HeadParams(m.NormF, m.Head)...)
	return ps
}

// FLOPsPerToken counts a multiply-add as 2 FLOPs:
//
//	2·n_layers·G·d·(d + d)   the input and hidden projections of every layer
//	+ 2·d·V                  the LM head, tied or not
//
// with G = 4 (LSTM) or 3 (GRU). It does not depend on L: a recurrence costs
// the same per token at any length. Embedding lookups, gate
// nonlinearities, the cell update, biases and the norm are not counted.
func (m *Model) FLOPsPerToken(L int) float64 {
	d, G, n := float64(m.cfg.DModel), float64(m.cfg.gates()), float64(m.cfg.NLayers)
	return 2*n*G*d*2*d + 2*d*float64(m.vocab)
}

// layerState is one layer's carried state: h (and the LSTM's c), each
// double-buffered so that the op never reads and writes the same buffer
// (index 0 is the current state, 1 receives the next).
type layerState struct {
	h, c [2]nn.Buffer // c nil for the GRU
}

func (s *layerState) swap() {
	s.h[0], s.h[1] = s.h[1], s.h[0]
	s.c[0], s.c[1] = s.c[1], s.c[0]
}

// state is the step-mode state of the whole stack.
type state struct {
	be     nn.Backend
	B, d   int
	gru    bool
	layers []layerState // nil after Free: the next Step starts from zeros
}

// alloc gives every layer zero states.
func (s *state) alloc(n int) {
	s.layers = make([]layerState, n)
	for i := range s.layers {
		for j := range 2 {
			s.layers[i].h[j] = s.be.Alloc(s.B * s.d)
			if !s.gru {
				s.layers[i].c[j] = s.be.Alloc(s.B * s.d)
			}
		}
	}
}

func (s *state) Free() {
	for _, l := range s.layers {
		nn.FreeBuffers(s.be, append(l.h[:], l.c[:]...)...)
	}
	s.layers = nil
}

// Bytes is what the state holds in device memory: two buffers (B, d) for h
// (and two for c) per layer, the double buffering included. It does not
// grow with the tokens consumed.
func (s *state) Bytes() int64 {
	per := int64(2)
	if !s.gru {
		per = 4
	}
	return int64(len(s.layers)) * per * int64(s.B*s.d) * nn.ElemBytes(s.be)
}

// NewState returns zero states (h, and c for the LSTM) for B sequences.
func (m *Model) NewState(B int) arch.State {
	s := &state{be: m.be, B: B, d: m.cfg.DModel, gru: m.cfg.Arch == "gru"}
	s.alloc(len(m.Layers))
	return s
}

// Step consumes the next T tokens of each sequence (ids (B·T),
// batch-major) and returns their logits (B·T, V), equal to the rows Forward
// gives for them on the whole sequence. It is for inference: the carried
// state is outside the tape, and a recording tape is refused rather than
// given partial gradients.
func (m *Model) Step(tp *nn.Tape, st arch.State, ids []int32, B, T int) *nn.Tensor {
	s, ok := st.(*state)
	switch {
	case !ok:
		panic(fmt.Sprintf("%s: Step with a %T state", m.cfg.Arch, st))
	case tp.Recording():
		panic(m.cfg.Arch + ": Step is inference-only; use a tape with record=false")
	case B != s.B || len(ids) != B*T:
		panic(fmt.Sprintf("%s: Step with %d ids for B=%d, T=%d on a state for B=%d", m.cfg.Arch, len(ids), B, T, s.B))
	}
	if s.layers == nil {
		s.alloc(len(m.Layers))
	}
	d := m.cfg.DModel
	x := tp.Reshape(m.Embed.Forward(tp, ids), B, T, d)
	for i, l := range m.Layers {
		x = l.forward(tp, x, &s.layers[i])
	}
	return arch.Logits(tp, tp.Reshape(x, B*T, d), m.NormF, m.Head, m.Embed)
}
