package rnn_test

import (
	"math"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/rnn"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// refForward is the model written out as loops over host values, in
// torch's conventions (weight_ih_l{k} (G·d, d) meets the layer input,
// weight_hh_l{k} the previous hidden state; gates LSTM i, f, g, o and GRU
// r, z, n with b_hn inside r ⊙ (·)). The gradient check cannot see a
// swapped weight or gate that is consistent between forward and backward;
// this comparison can.
func refForward(b nn.Backend, m *rnn.Model, c *rnn.Config, vocab int, ids []int32, B, L int) []float64 {
	read := func(t *nn.Tensor) []float64 {
		if t == nil {
			return nil
		}
		return b.Read(t.Data)
	}
	d := c.DModel
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	emb := read(m.Embed.W)
	x := archtest.RefEmbed(emb, ids, d)
	for _, l := range m.Blocks {
		wih, whh, bih, bhh := read(l.WeightIH), read(l.WeightHH), read(l.BiasIH), read(l.BiasHH)
		G := 4
		if l.GRU {
			G = 3
		}
		bias := func(v []float64, j int) float64 {
			if v == nil {
				return 0
			}
			return v[j]
		}
		y := make([]float64, B*L*d)
		for s := range B {
			h, cs := make([]float64, d), make([]float64, d)
			for t := range L {
				gi, gh := make([]float64, G*d), make([]float64, G*d)
				for j := range G * d {
					gi[j], gh[j] = bias(bih, j), bias(bhh, j)
					for k := range d {
						gi[j] += wih[j*d+k] * x[(s*L+t)*d+k]
						gh[j] += whh[j*d+k] * h[k]
					}
				}
				for u := range d {
					if l.GRU {
						r, z := sig(gi[u]+gh[u]), sig(gi[d+u]+gh[d+u])
						n := math.Tanh(gi[2*d+u] + r*gh[2*d+u])
						h[u] = (1-z)*n + z*h[u]
						continue
					}
					i, f, g, o := sig(gi[u]+gh[u]), sig(gi[d+u]+gh[d+u]), math.Tanh(gi[2*d+u]+gh[2*d+u]), sig(gi[3*d+u]+gh[3*d+u])
					cs[u] = f*cs[u] + i*g
					h[u] = o * math.Tanh(cs[u])
				}
				copy(y[(s*L+t)*d:], h)
			}
		}
		x = y
	}
	x = archtest.RefNorm(b, x, d, m.NormF)
	head := emb
	if m.Head != nil {
		head = read(m.Head.W)
	}
	return archtest.RefLinear(x, head, nil, d, vocab)
}

func TestForwardMatchesReference(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab = 7
	archtest.CheckReference(t, b, cases(variants()...), archtest.RefOptions{
		Vocab: vocab, B: 2, L: 5, Seed: 21,
		Ref: func(m arch.Model, c arch.Config, ids []int32, B, L int) []float64 {
			return refForward(b, m.(*rnn.Model), c.(*rnn.Config), vocab, ids, B, L)
		},
		Err: archtest.Rel(1), Tol: 1e-12,
	})
}
