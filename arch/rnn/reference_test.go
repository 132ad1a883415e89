package rnn_test

import (
	"math"
	"math/rand/v2"
	"testing"

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
	x := make([]float64, B*L*d)
	for i, id := range ids {
		copy(x[i*d:(i+1)*d], emb[int(id)*d:])
	}
	for _, l := range m.Layers {
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
	if m.NormF != nil {
		for r := range B * L {
			row := x[r*d : (r+1)*d]
			switch n := m.NormF.(type) {
			case *nn.RMSNorm:
				w, ss := read(n.W), 0.0
				for _, v := range row {
					ss += v * v
				}
				rs := 1 / math.Sqrt(ss/float64(d)+n.Eps)
				for i := range row {
					row[i] *= rs * w[i]
				}
			case *nn.LayerNorm:
				w, nb := read(n.W), read(n.B)
				mean, vr := 0.0, 0.0
				for _, v := range row {
					mean += v / float64(d)
				}
				for _, v := range row {
					vr += (v - mean) * (v - mean) / float64(d)
				}
				for i := range row {
					row[i] = (row[i] - mean) / math.Sqrt(vr+n.Eps) * w[i]
					if nb != nil {
						row[i] += nb[i]
					}
				}
			}
		}
	}
	head := emb
	if m.Head != nil {
		head = read(m.Head.W)
	}
	logits := make([]float64, B*L*vocab)
	for r := range B * L {
		for v := range vocab {
			for k := range d {
				logits[r*vocab+v] += x[r*d+k] * head[v*d+k]
			}
		}
	}
	return logits
}

func TestForwardMatchesReference(t *testing.T) {
	b := cpukernels.New[float64]()
	const vocab, B, L = 7, 2, 5
	rng := rand.New(rand.NewPCG(21, 22))
	ids := make([]int32, B*L)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	for _, c := range variants() {
		m := build(t, c, b, vocab, 5)
		randomize(b, m.Params(), rng)
		tp := nn.NewTape(b, false)
		got := b.Read(m.Forward(tp, ids, B, L).Data)
		tp.Release()
		want := refForward(b, m, c, vocab, ids, B, L)
		worst := 0.0
		for i := range want {
			worst = math.Max(worst, math.Abs(got[i]-want[i])/math.Max(1, math.Abs(want[i])))
		}
		if worst > 1e-12 {
			t.Errorf("%s: logits differ from the reference by %.3g", name(c), worst)
		}
	}
}
