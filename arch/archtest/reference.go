package archtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/arch"
	"seqbench/nn"
)

// RefOptions are CheckReference's settings.
type RefOptions struct {
	Vocab, B, L int
	Seed        uint64 // ids and randomized values come from PCG(Seed, Seed+1)
	// Ref is the architecture written out as loops over host values in its
	// PyTorch original's conventions; it returns the logits (B·L, vocab).
	Ref       func(m arch.Model, c arch.Config, ids []int32, B, L int) []float64
	Err       ErrFunc // nil is Abs
	Tol       float64 // bound on the worst error (strict: err < Tol)
	Randomize Randomizer
}

// CheckReference checks Forward against the architecture's reference loops
// on randomized weights. The gradient check cannot see a layout mistake
// that forward and backward share (a swapped gate, a transposed weight, a
// wrong RoPE pairing); this comparison can.
func CheckReference(t testing.TB, b nn.Backend, cases []Case, o RefOptions) {
	t.Helper()
	errf, randomize := orAbs(o.Err), orDefault(o.Randomize)
	B, L, vocab := o.B, o.L, o.Vocab
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed+1))
	ids := randomIDs(rng, B*L, vocab)
	for _, c := range cases {
		m := Build(t, b, c, vocab, L, 5)
		randomize(b, m.Params(), rng)
		got := Logits(b, m, ids, B, L)
		want := o.Ref(m, c.Config, ids, B, L)
		if len(want) != len(got) {
			t.Fatalf("%s: the reference gave %d logits, Forward %d", c.Name, len(want), len(got))
		}
		var w worst
		for i := range want {
			w.add(errf(got[i], want[i]), func() string {
				return fmt.Sprintf("row %d token %d: %.15g vs %.15g", i/vocab, i%vocab, got[i], want[i])
			})
		}
		t.Logf("%s: worst err %.2g", c.Name, w.err)
		if !(w.err < o.Tol) {
			t.Errorf("%s: Forward differs from the reference loops by %.3g at %s", c.Name, w.err, w.where)
		}
	}
}

// RefEmbed looks up the rows of table (vocab, d) for ids: x[i] = table[ids[i]].
func RefEmbed(table []float64, ids []int32, d int) []float64 {
	x := make([]float64, len(ids)*d)
	for i, id := range ids {
		copy(x[i*d:(i+1)*d], table[int(id)*d:(int(id)+1)*d])
	}
	return x
}

// RefLinear is y = x·wᵀ + bias over rows of x (rows × in), w (out, in) as
// torch stores it; bias may be nil.
func RefLinear(x, w, bias []float64, in, out int) []float64 {
	rows := len(x) / in
	y := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			s := 0.0
			if bias != nil {
				s = bias[o]
			}
			for i := range in {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

// RefNorm normalizes every row of d values of x as layer (an *nn.RMSNorm
// or *nn.LayerNorm, with its weights read from b) does:
//
//	RMSNorm:   x / √(mean(x²) + eps) · w
//	LayerNorm: (x − mean) / √(var + eps) · w + bias
//
// A nil layer (no norm) returns x unchanged.
func RefNorm(b nn.Backend, x []float64, d int, layer nn.Layer) []float64 {
	if layer == nil {
		return x
	}
	read := func(t *nn.Tensor) []float64 {
		if t == nil {
			return nil
		}
		return b.Read(t.Data)
	}
	y := make([]float64, len(x))
	for r := range len(x) / d {
		row := x[r*d : (r+1)*d]
		switch n := layer.(type) {
		case *nn.RMSNorm:
			w, ss := read(n.W), 0.0
			for _, v := range row {
				ss += v * v
			}
			for i, v := range row {
				y[r*d+i] = v / math.Sqrt(ss/float64(d)+n.Eps) * w[i]
			}
		case *nn.LayerNorm:
			w, bias := read(n.W), read(n.B)
			mean, vr := 0.0, 0.0
			for _, v := range row {
				mean += v / float64(d)
			}
			for _, v := range row {
				vr += (v - mean) * (v - mean) / float64(d)
			}
			for i, v := range row {
				y[r*d+i] = (v - mean) / math.Sqrt(vr+n.Eps) * w[i]
				if bias != nil {
					y[r*d+i] += bias[i]
				}
			}
		default:
			panic(fmt.Sprintf("archtest.RefNorm: %T is not a norm it knows", layer))
		}
	}
	return y
}

// RefGatedMLP is mamba_ssm's GatedMLP over rows of x (rows × d): h =
// fc1(x) = [y | g], out = fc2(y · SiLU(g)), no biases.
func RefGatedMLP(b nn.Backend, x []float64, d int, m *nn.GatedMLP) []float64 {
	hid := m.Hidden
	h := RefLinear(x, b.Read(m.FC1.W.Data), nil, d, 2*hid)
	rows := len(x) / d
	z := make([]float64, rows*hid)
	for r := range rows {
		for j := range hid {
			g := h[r*2*hid+hid+j]
			z[r*hid+j] = h[r*2*hid+j] * g / (1 + math.Exp(-g))
		}
	}
	return RefLinear(z, b.Read(m.FC2.W.Data), nil, hid, d)
}

// RefAddMLP adds a block's MLP branch to x in place: x += mlp(norm(x));
// nothing when mlp is nil.
func RefAddMLP(b nn.Backend, x []float64, d int, norm nn.Layer, mlp *nn.GatedMLP) {
	if mlp == nil {
		return
	}
	o := RefGatedMLP(b, RefNorm(b, x, d, norm), d, mlp)
	for i := range x {
		x[i] += o[i]
	}
}
