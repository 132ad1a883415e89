package hybrid

import (
	"errors"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/nn"
)

// Residual makes a layer that maps the residual stream to a new one (an
// LSTM or GRU layer) a pre-norm residual block, x += inner(norm(x)), as
// every other kind of a hybrid is. Its state is the inner layer's.
type Residual struct {
	Norm  nn.Layer
	Inner arch.Block
}

func (r *Residual) Forward(tp *nn.Tape, x *nn.Tensor, B, L, pos0 int, st arch.LayerState) *nn.Tensor {
	return tp.Add(x, r.Inner.Forward(tp, r.Norm.Forward(tp, x), B, L, pos0, st))
}

// PositionFree is the inner layer's (arch.PositionFree).
func (r *Residual) PositionFree() bool {
	pf, ok := r.Inner.(arch.PositionFree)
	return ok && pf.PositionFree()
}

// Params lists layers.i.norm, then the inner layer's own names.
func (r *Residual) Params(layer int) []nn.Param {
	return append(r.Norm.Params(arch.LayerPrefix(layer)+".norm"), r.Inner.Params(layer)...)
}

func (r *Residual) NewState(B int) arch.LayerState { return r.Inner.NewState(B) }

func (r *Residual) FLOPsPerToken(L int) float64 { return r.Inner.FLOPsPerToken(L) }

// MLPBlock is the mlp layer kind, x += mlp(norm(x)).
type MLPBlock struct {
	Norm nn.Layer
	MLP  *nn.MLP
}

func (m *MLPBlock) Forward(tp *nn.Tape, x *nn.Tensor, _, _, _ int, _ arch.LayerState) *nn.Tensor {
	return tp.Add(x, m.MLP.Forward(tp, m.Norm.Forward(tp, x)))
}

// Params lists layers.i.norm and layers.i.mlp.* (nn.MLP's names).
func (m *MLPBlock) Params(layer int) []nn.Param {
	p := arch.LayerPrefix(layer)
	return append(m.Norm.Params(p+".norm"), m.MLP.Params(p+".mlp")...)
}

// PositionFree: a position-wise layer (arch.PositionFree).
func (m *MLPBlock) PositionFree() bool { return true }

// NewState is an empty state: a position-wise layer carries nothing.
func (m *MLPBlock) NewState(int) arch.LayerState { return noState{} }

// FLOPsPerToken is 2 FLOPs per weight of the d×h matrices (2 for GELU, 3
// for SwiGLU); activations, biases and the norm are not counted.
func (m *MLPBlock) FLOPsPerToken(int) float64 {
	n := m.MLP.Up.W.Len() + m.MLP.Down.W.Len()
	if m.MLP.Gate != nil {
		n += m.MLP.Gate.W.Len()
	}
	return 2 * float64(n)
}

type noState struct{}

func (noState) Free()        {}
func (noState) Bytes() int64 { return 0 }

// Pattern is the layer kinds of one period of the stack. In YAML it is a
// list of kinds or a string of them separated by spaces or commas, each
// optionally followed by *n for n in a row: "mamba2*3 attention" is
// [mamba2, mamba2, mamba2, attention]. It is written back in that compact
// form, so that runs of one pattern share one value (reports group by it).
type Pattern []string

// UnmarshalYAML reads a string or a list of strings (each of which may
// hold several kinds, as the string form).
func (p *Pattern) UnmarshalYAML(n *yaml.Node) error {
	var items []string
	switch n.Kind {
	case yaml.ScalarNode:
		items = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return errors.New("field pattern: a list item must be a layer kind")
			}
			items = append(items, c.Value)
		}
	default:
		return errors.New("field pattern: must be a string or a list of layer kinds")
	}
	out, err := ParsePattern(strings.Join(items, " "))
	if err != nil {
		return err
	}
	*p = out
	return nil
}

// MarshalYAML writes the compact string form.
func (p Pattern) MarshalYAML() (any, error) { return p.String(), nil }

// String is the compact form: runs of one kind as kind*n.
func (p Pattern) String() string {
	var parts []string
	for i := 0; i < len(p); {
		j := i
		for j < len(p) && p[j] == p[i] {
			j++
		}
		if j-i == 1 {
			parts = append(parts, p[i])
		} else {
			parts = append(parts, p[i]+"*"+strconv.Itoa(j-i))
		}
		i = j
	}
	return strings.Join(parts, " ")
}

// ParsePattern reads the string form: kinds separated by spaces or commas,
// each with an optional *n (1 ≤ n ≤ 65536). The kinds are checked by
// Validate, with the others.
func ParsePattern(s string) (Pattern, error) {
	var out Pattern
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		kind, reps, ok := strings.Cut(f, "*")
		n := 1
		if ok {
			v, err := strconv.Atoi(reps)
			if err != nil || v < 1 || v > 1<<16 {
				return nil, arch.FieldError("pattern", strconv.Quote(f), "a repeat kind*n needs n in [1, 65536]")
			}
			n = v
		}
		if len(out)+n > 1<<16 {
			return nil, arch.FieldError("pattern", strconv.Quote(s), "at most 65536 layers")
		}
		for range n {
			out = append(out, kind)
		}
	}
	return out, nil
}
