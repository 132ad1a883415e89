package archtest

import (
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/nn"
)

// CausalOptions are CheckCausal's settings.
type CausalOptions struct {
	Vocab, B, L int
	// Leak bounds how much a logit may move when only a later token (or
	// another sequence) changes: 0 where nothing upstream of a position
	// mixes positions, float64 rounding (1e-12) where a reduction over the
	// sequence (an FFT convolution, a softmax over keys) may reassociate.
	Leak      float64
	Randomize Randomizer
}

// CheckCausal changes token t of sequence 0, for every t, and checks that
// the logits move only at positions ≥ t of sequence 0 (by at most o.Leak
// elsewhere) and do move at position t itself (by at least 1e-6).
func CheckCausal(t testing.TB, b nn.Backend, cases []Case, o CausalOptions) {
	t.Helper()
	randomize := orDefault(o.Randomize)
	B, L, vocab := o.B, o.L, o.Vocab
	for _, c := range cases {
		m := Build(t, b, c, vocab, L, 3)
		randomize(b, m.Params(), rand.New(rand.NewPCG(4, 4)))
		ids := randomIDs(rand.New(rand.NewPCG(5, 5)), B*L, vocab)
		base := Logits(b, m, ids, B, L)
		for tok := range L {
			alt := append([]int32(nil), ids...)
			alt[tok] = (alt[tok] + 1) % int32(vocab) // sequence 0 only
			got := Logits(b, m, alt, B, L)
			for row := range B * L {
				diff := 0.0
				for v := range vocab {
					if d := math.Abs(got[row*vocab+v] - base[row*vocab+v]); math.IsNaN(d) || d > diff {
						diff = d
					}
				}
				seq, p := row/L, row%L
				if affected := seq == 0 && p >= tok; !affected && !(diff <= o.Leak) {
					t.Errorf("%s: token %d changed logits of sequence %d position %d by %g", c.Name, tok, seq, p, diff)
				} else if seq == 0 && p == tok && !(diff >= 1e-6) {
					t.Errorf("%s: token %d did not change its own logits", c.Name, tok)
				}
			}
		}
	}
}
