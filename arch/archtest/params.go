package archtest

import (
	"strings"
	"testing"

	"seqbench/nn"
)

// ParamOptions are CheckParams's settings.
type ParamOptions struct {
	Vocab  int
	MaxLen int // passed to Build and NumParams; 0 where the arch has no positions
	// Decays says which parameters take weight decay; nil is DecaysLinear.
	Decays func(p nn.Param) bool
}

// DecaysLinear is the usual convention: the 2-D weights of Linear layers
// (names ending in ".weight") decay, embeddings, norms and biases do not.
func DecaysLinear(p nn.Param) bool {
	return strings.HasSuffix(p.Name, ".weight") && len(p.T.Shape) == 2 && !strings.Contains(p.Name, "embed")
}

// CheckParams builds every case and checks that the closed form
// Config.NumParams equals what Build allocates (nn.CountParams), that
// parameter names are unique, and that weight decay follows o.Decays and
// falls only on matrices.
func CheckParams(t testing.TB, b nn.Backend, cases []Case, o ParamOptions) {
	t.Helper()
	decays := o.Decays
	if decays == nil {
		decays = DecaysLinear
	}
	for _, c := range cases {
		ps := Build(t, b, c, o.Vocab, o.MaxLen, 1).Params()
		if got, want := nn.CountParams(ps), c.Config.NumParams(o.Vocab, o.MaxLen); got != want {
			t.Errorf("%s: built %d params, NumParams says %d", c.Name, got, want)
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if seen[p.Name] {
				t.Errorf("%s: duplicate name %s", c.Name, p.Name)
			}
			seen[p.Name] = true
			if p.Decay != decays(p) || (p.Decay && len(p.T.Shape) != 2) {
				t.Errorf("%s: %s %v decay %v", c.Name, p.Name, p.T.Shape, p.Decay)
			}
		}
	}
}
