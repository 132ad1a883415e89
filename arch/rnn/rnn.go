// Package rnn holds the recurrent baselines, registered as "lstm" and
// "gru": an embedding, a stack of torch.nn.LSTM / torch.nn.GRU layers with
// hidden size d_model (the classic stacked RNN language model: no residual
// connections, no norms between layers), a final norm and the LM head.
package rnn

import (
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

// Model is the built stacked RNN: the shared trunk (embedding, final norm
// or none, tied or untied head) around RNN layers.
type Model = arch.LM[*Layer]

// Layer is one torch RNN layer, weights as torch lays them out:
// WeightIH (G·d, d), WeightHH (G·d, d), BiasIH, BiasHH (G·d) or nil, rows in
// gate order (LSTM i, f, g, o; GRU r, z, n).
type Layer struct {
	GRU                                bool
	WeightIH, WeightHH, BiasIH, BiasHH *nn.Tensor
	d                                  int
	be                                 nn.Backend
}

// build allocates the layers with torch's initializations: RNN weights and
// biases from U(−1/√d, 1/√d) (torch.nn.LSTM/GRU's reset_parameters), the
// embedding from N(0, 0.02²) (nn.NewEmbedding), an untied head as
// torch.nn.Linear, norms at 1 (and 0).
func build(c *Config, env arch.Env) *Model {
	be, d := env.Backend, c.DModel
	var norm func() nn.Layer
	if c.Norm != "none" {
		norm = func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, c.Bias) }
	}
	return arch.NewLM(env, arch.Trunk[*Layer]{Name: c.Arch, DModel: d, NLayers: c.NLayers, Norm: norm,
		Tie: c.TieEmbeddings, NewBlock: c.BlockBuilder(env)})
}

// BlockBuilder returns the function that draws one layer from env.RNG, as
// Build's trunk calls it for each layer; the hybrid arch calls it for its
// lstm and gru layers. c must be valid.
func (c *Config) BlockBuilder(env arch.Env) func(int) *Layer {
	be, rng, d, G := env.Backend, env.RNG, c.DModel, c.gates()
	bound := 1 / math.Sqrt(float64(d))
	param := func(shape ...int) *nn.Tensor {
		t := nn.NewParam(be, shape...)
		nn.Uniform(be, t, -bound, bound, rng)
		return t
	}
	return func(int) *Layer {
		l := &Layer{GRU: c.Arch == "gru", WeightIH: param(G*d, d), WeightHH: param(G*d, d), d: d, be: be}
		if c.Bias {
			l.BiasIH, l.BiasHH = param(G*d), param(G*d)
		}
		return l
	}
}

// PositionFree: the state advances in place (arch.PositionFree).
func (l *Layer) PositionFree() bool { return true }

// Forward maps x (B·L, d) to every hidden state (B·L, d). In step mode st
// is the layer's *layerState: the layer starts from it and leaves its final
// state there.
func (l *Layer) Forward(tp *nn.Tape, x *nn.Tensor, B, L, _ int, st arch.LayerState) *nn.Tensor {
	in := nn.RNNInputs{X: tp.Reshape(x, B, L, l.d), Wih: l.WeightIH, Whh: l.WeightHH, Bih: l.BiasIH, Bhh: l.BiasHH}
	if st != nil {
		s := st.(*layerState)
		in.H0, in.C0, in.HT, in.CT = s.h[0], s.c[0], s.h[1], s.c[1]
		defer s.advance()
	}
	var y *nn.Tensor
	if l.GRU {
		y = tp.GRU(in)
	} else {
		y = tp.LSTM(in)
	}
	return tp.Reshape(y, B*L, l.d)
}

// Params lists the layer's weights with torch-like names:
// layers.weight_ih_l{k}, layers.weight_hh_l{k}, layers.bias_ih_l{k},
// layers.bias_hh_l{k} (torch.nn.LSTM/GRU's state_dict under a module named
// "layers"; the trunk adds embed, norm_f and lm_head). RNN weight matrices
// decay; biases do not.
func (l *Layer) Params(layer int) []nn.Param {
	s := "_l" + strconv.Itoa(layer)
	ps := []nn.Param{
		{Name: "layers.weight_ih" + s, T: l.WeightIH, Decay: true},
		{Name: "layers.weight_hh" + s, T: l.WeightHH, Decay: true}}
	if l.BiasIH != nil {
		ps = append(ps,
			nn.Param{Name: "layers.bias_ih" + s, T: l.BiasIH},
			nn.Param{Name: "layers.bias_hh" + s, T: l.BiasHH})
	}
	return ps
}

// FLOPsPerToken counts a multiply-add as 2 FLOPs:
//
//	2·G·d·(d + d)   the input and hidden projections
//
// per layer (the trunk adds 2·d·V for the LM head, tied or not), with G = 4
// (LSTM) or 3 (GRU). It does not depend on L: a recurrence costs the same
// per token at any length. Gate nonlinearities, the cell update, biases and
// the norm are not counted.
func (l *Layer) FLOPsPerToken(int) float64 {
	G := 4.0
	if l.GRU {
		G = 3
	}
	d := float64(l.d)
	return 2 * G * d * 2 * d
}

// layerState is one layer's carried state: h (and the LSTM's c), each
// double-buffered so that the op never reads and writes the same buffer
// (index 0 is the current state, 1 receives the next). It does not grow
// with the tokens consumed.
type layerState struct {
	be   nn.Backend
	h, c [2]nn.Buffer // c nil for the GRU
}

// advance makes the state just written (index 1) the next step's input
// (index 0) by copying it, so that every step reads and writes the same
// buffers (a Layer is arch.PositionFree: its Step replays as a graph); a
// copy of B·d elements per layer and token.
func (s *layerState) advance() {
	s.be.Copy(s.h[0], s.h[1])
	if s.c[0] != nil {
		s.be.Copy(s.c[0], s.c[1])
	}
}

func (s *layerState) Free() {
	nn.FreeBuffers(s.be, append(s.h[:], s.c[:]...)...)
	s.h, s.c = [2]nn.Buffer{}, [2]nn.Buffer{}
}

// Bytes is two buffers (B, d) for h (and two for c), the double buffering
// included.
func (s *layerState) Bytes() int64 { return nn.BufferBytes(s.be, append(s.h[:], s.c[:]...)...) }

// NewState returns the layer's zero states (h, and c for the LSTM) for B
// sequences.
func (l *Layer) NewState(B int) arch.LayerState {
	s := &layerState{be: l.be}
	for j := range 2 {
		s.h[j] = l.be.Alloc(B * l.d)
		if !l.GRU {
			s.c[j] = l.be.Alloc(B * l.d)
		}
	}
	return s
}
