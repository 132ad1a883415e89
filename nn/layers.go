package nn

import (
	"fmt"
	"math/rand/v2"
)

// Layers bundle parameters with the op that uses them. Weight layouts follow
// PyTorch (Linear W is (out, in)) and Params names them as a torch
// state_dict would, so checkpoints can be exchanged one to one.

// Layer is a trainable map over the last dim of its input.
type Layer interface {
	Forward(tp *Tape, x *Tensor) *Tensor
	// Params lists the tensors under prefix ("layers.0.attn.qkv").
	Params(prefix string) []Param
}

// dotted joins a prefix and a name the way torch module paths do.
func dotted(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Linear is torch.nn.Linear: y = x·Wᵀ + b, W (out, in), b (out) or nil.
type Linear struct {
	W, B *Tensor
}

// NewLinear initializes like torch.nn.Linear (W and b from
// U(−1/√in, 1/√in)); models with their own scheme overwrite W afterwards.
func NewLinear(b Backend, in, out int, bias bool, rng *rand.Rand) *Linear {
	l := &Linear{W: NewParam(b, out, in)}
	KaimingUniform(b, l.W, in, rng)
	if bias {
		l.B = NewParam(b, out)
		KaimingUniform(b, l.B, in, rng)
	}
	return l
}

// Forward maps x (..., in) to (..., out).
func (l *Linear) Forward(tp *Tape, x *Tensor) *Tensor { return tp.Linear(x, l.W, l.B) }

// Params: weight decays, bias does not.
func (l *Linear) Params(prefix string) []Param {
	ps := []Param{{Name: dotted(prefix, "weight"), T: l.W, Decay: true}}
	if l.B != nil {
		ps = append(ps, Param{Name: dotted(prefix, "bias"), T: l.B})
	}
	return ps
}

// Embedding is a lookup table W (V, d).
type Embedding struct {
	W *Tensor
}

// NewEmbedding draws W from N(0, 0.02²) (GPT-2, mamba_ssm) rather than
// torch's N(0, 1): a tied LM head would otherwise start with logits of
// size ~√d and a loss far above log V.
func NewEmbedding(b Backend, vocab, d int, rng *rand.Rand) *Embedding {
	e := &Embedding{W: NewParam(b, vocab, d)}
	Normal(b, e.W, 0.02, rng)
	return e
}

// Forward gathers the rows of ids: the result is (len(ids), d).
func (e *Embedding) Forward(tp *Tape, ids []int32) *Tensor { return tp.Embedding(e.W, ids) }

// Params: embeddings take no weight decay.
func (e *Embedding) Params(prefix string) []Param {
	return []Param{{Name: dotted(prefix, "weight"), T: e.W}}
}

// RMSNorm normalizes the last dim by its root mean square and scales by W.
type RMSNorm struct {
	W   *Tensor
	Eps float64
}

// NewRMSNorm starts with W = 1 (identity scale), as torch does.
func NewRMSNorm(b Backend, d int, eps float64) *RMSNorm {
	n := &RMSNorm{W: NewParam(b, d), Eps: eps}
	Ones(b, n.W)
	return n
}

// Forward normalizes x (..., d).
func (n *RMSNorm) Forward(tp *Tape, x *Tensor) *Tensor { return tp.RMSNorm(x, n.W, n.Eps) }

// Params: norm weights take no weight decay.
func (n *RMSNorm) Params(prefix string) []Param {
	return []Param{{Name: dotted(prefix, "weight"), T: n.W}}
}

// LayerNorm is torch.nn.LayerNorm over the last dim; B is nil for
// bias=False (as nanoGPT offers).
type LayerNorm struct {
	W, B *Tensor
	Eps  float64
}

// NewLayerNorm starts with W = 1 and B = 0, as torch does.
func NewLayerNorm(b Backend, d int, eps float64, bias bool) *LayerNorm {
	n := &LayerNorm{W: NewParam(b, d), Eps: eps}
	Ones(b, n.W)
	if bias {
		n.B = NewParam(b, d) // Alloc zero-fills
	}
	return n
}

// Forward normalizes x (..., d).
func (n *LayerNorm) Forward(tp *Tape, x *Tensor) *Tensor { return tp.LayerNorm(x, n.W, n.B, n.Eps) }

// Params: norm weights and biases take no weight decay.
func (n *LayerNorm) Params(prefix string) []Param {
	ps := []Param{{Name: dotted(prefix, "weight"), T: n.W}}
	if n.B != nil {
		ps = append(ps, Param{Name: dotted(prefix, "bias"), T: n.B})
	}
	return ps
}

// NormKind names a normalization layer in configs.
type NormKind string

const (
	NormRMS   NormKind = "rmsnorm"
	NormLayer NormKind = "layernorm"
)

// NewNorm builds the named norm over d features; bias applies to LayerNorm
// only. An unknown kind panics: configs validate it before building.
func NewNorm(b Backend, kind NormKind, d int, eps float64, bias bool) Layer {
	switch kind {
	case NormRMS:
		return NewRMSNorm(b, d, eps)
	case NormLayer:
		return NewLayerNorm(b, d, eps, bias)
	}
	panic(fmt.Sprintf("nn.NewNorm: unknown kind %q", kind))
}

// MLPKind names a feed-forward block in configs.
type MLPKind string

const (
	MLPGELU   MLPKind = "gelu"   // fc (d→h) → GELU → proj (h→d), as GPT-2
	MLPSwiGLU MLPKind = "swiglu" // down(SiLU(gate(x)) ⊙ up(x)), as Llama
)

// MLP is the position-wise feed-forward block. Gate is nil for GELU; Up is
// GPT-2's fc and Down its proj.
type MLP struct {
	Kind           MLPKind
	Act            Activation // GELU (exact) or SiLU; GELUTanh reproduces GPT-2 exactly
	Gate, Up, Down *Linear
}

// NewMLP builds a d → hidden → d block; hidden ≤ 0 means 4d. An unknown
// kind panics: configs validate it before building.
func NewMLP(b Backend, kind MLPKind, d, hidden int, bias bool, rng *rand.Rand) *MLP {
	if hidden <= 0 {
		hidden = 4 * d
	}
	m := &MLP{Kind: kind}
	switch kind {
	case MLPGELU:
		m.Act = GELU
	case MLPSwiGLU:
		m.Act = SiLU
		m.Gate = NewLinear(b, d, hidden, bias, rng)
	default:
		panic(fmt.Sprintf("nn.NewMLP: unknown kind %q", kind))
	}
	m.Up = NewLinear(b, d, hidden, bias, rng)
	m.Down = NewLinear(b, hidden, d, bias, rng)
	return m
}

// Forward maps x (..., d) to (..., d).
func (m *MLP) Forward(tp *Tape, x *Tensor) *Tensor {
	if m.Gate == nil {
		return m.Down.Forward(tp, tp.Act(m.Act, m.Up.Forward(tp, x)))
	}
	h := tp.Mul(tp.Act(m.Act, m.Gate.Forward(tp, x)), m.Up.Forward(tp, x))
	return m.Down.Forward(tp, h)
}

// Params uses GPT-2's names (fc, proj) for GELU and Llama's (gate, up,
// down) for SwiGLU.
func (m *MLP) Params(prefix string) []Param {
	if m.Gate == nil {
		return append(m.Up.Params(dotted(prefix, "fc")), m.Down.Params(dotted(prefix, "proj"))...)
	}
	ps := m.Gate.Params(dotted(prefix, "gate"))
	ps = append(ps, m.Up.Params(dotted(prefix, "up"))...)
	return append(ps, m.Down.Params(dotted(prefix, "down"))...)
}

// Dropout is torch.nn.Dropout: during training (a recording tape) each
// element of x is zeroed with probability P and the rest are scaled by
// 1/(1−P); at P = 0, in evaluation and in step mode it is the identity and
// draws nothing. The mask is drawn on the host from RNG and applied with
// Mul, so every backend runs it with the ops it already has (the mask's
// upload costs one buffer of x's size per call).
type Dropout struct {
	P   float64
	RNG *rand.Rand
}

// Forward applies the dropout to x; a nil Dropout is the identity.
func (d *Dropout) Forward(tp *Tape, x *Tensor) *Tensor {
	if !d.active(tp) {
		return x
	}
	keep := 1 / (1 - d.P)
	mask := make([]float64, x.Len())
	for i := range mask {
		if d.RNG.Float64() >= d.P {
			mask[i] = keep
		}
	}
	m := &Tensor{Shape: append([]int(nil), x.Shape...), Data: tp.Alloc(len(mask))}
	tp.B.Write(m.Data, mask)
	return tp.Mul(x, m)
}

// Attention is the AttnDrop of one attention call with d's probability:
// a seed drawn from RNG during training, the zero AttnDrop (no dropout) at
// P = 0, in evaluation and in step mode, where nothing is drawn. A nil
// Dropout drops nothing.
func (d *Dropout) Attention(tp *Tape) AttnDrop {
	if !d.active(tp) {
		return AttnDrop{}
	}
	return AttnDrop{P: d.P, Seed: d.RNG.Uint64()}
}

// active reports whether d drops anything on tp: a set probability during
// training. It panics on a probability outside [0, 1) or a missing RNG.
func (d *Dropout) active(tp *Tape) bool {
	if d == nil || d.P == 0 || !tp.Recording() {
		return false
	}
	if d.RNG == nil || !(d.P > 0 && d.P < 1) {
		panic(fmt.Sprintf("nn.Dropout: p %v must be in [0, 1) and an RNG set", d.P))
	}
	return true
}

// GatedMLP is mamba_ssm's GatedMLP (the MLP of a Mamba block with
// d_intermediate > 0): y, g = fc1(x) split in halves; fc2(y ⊙ SiLU(g)).
// fc1 (d → 2h) holds [y | g] rows as mamba_ssm's one fused weight does, so
// checkpoints map one to one; no biases (mamba_ssm's default).
type GatedMLP struct {
	FC1, FC2 *Linear
	Hidden   int
}

// NewGatedMLP initializes fc1 and fc2 as torch.nn.Linear, in that order.
func NewGatedMLP(b Backend, d, hidden int, rng *rand.Rand) *GatedMLP {
	return &GatedMLP{FC1: NewLinear(b, d, 2*hidden, false, rng), FC2: NewLinear(b, hidden, d, false, rng), Hidden: hidden}
}

// Forward maps x (..., d) to (..., d).
func (m *GatedMLP) Forward(tp *Tape, x *Tensor) *Tensor {
	h := m.FC1.Forward(tp, x)
	return m.FC2.Forward(tp, tp.Mul(tp.Slice(h, 0, m.Hidden), tp.Act(SiLU, tp.Slice(h, m.Hidden, m.Hidden))))
}

// Params uses mamba_ssm's names: fc1, fc2.
func (m *GatedMLP) Params(prefix string) []Param {
	return append(m.FC1.Params(dotted(prefix, "fc1")), m.FC2.Params(dotted(prefix, "fc2"))...)
}
