package arch_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/arch"
	"seqbench/arch/attention"
	_ "seqbench/arch/mamba1"
	_ "seqbench/arch/mamba2"
	_ "seqbench/arch/rnn"
	_ "seqbench/arch/ssm"
	"seqbench/cpukernels"
)

// A GPT-style Transformer (GELU MLP of 4d, tied embeddings) has Kaplan's
// 12·n_layers·d² non-embedding weights (plus its norms), and its training
// FLOPs at a short context are 6·N·D with N counting the (tied) head, to
// within the attention term 3·D·n_layers·4·L_eff·d.
func TestTransformerFLOPsAreKaplans(t *testing.T) {
	c := attention.DefaultConfig()
	c.DModel, c.NLayers = 64, 2
	d, n, V, L := 64.0, 2.0, 256, 16
	norms := (2*n + 1) * d
	if got, want := float64(arch.NonEmbeddingParams(c)), 12*n*d*d+norms; got != want {
		t.Fatalf("non-embedding params %v, want 12·n·d² + norms = %v", got, want)
	}
	m, err := c.Build(arch.Env{Backend: cpukernels.New[float32](), Vocab: V, MaxLen: L, RNG: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	D := 1e6
	sixND := 6 * (12*n*d*d + d*float64(V)) * D
	attn := 3 * D * n * 4 * float64(L+1) / 2 * d
	if got := arch.TrainingFLOPs(m, L, D); math.Abs(got-(sixND+attn)) > 1e-9*got {
		t.Fatalf("training FLOPs %.6g, want 6ND %.6g + attention %.6g", got, sixND, attn)
	}
}

// Every arch's training FLOPs are at least 6·N·D for its matmul weights
// and grow linearly in D; the non-embedding count drops exactly the
// vocabulary's (and learned positions') weights.
func TestTrainingFLOPsEveryArch(t *testing.T) {
	for _, name := range arch.Names() {
		spec, err := arch.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		c := spec.New()
		V, L := 256, 32
		m, err := c.Build(arch.Env{Backend: cpukernels.New[float32](), Vocab: V, MaxLen: L, RNG: rand.New(rand.NewPCG(1, 2))})
		if err != nil {
			t.Fatal(name, err)
		}
		ne := arch.NonEmbeddingParams(c)
		if all := c.NumParams(V, L); ne <= 0 || ne >= all {
			t.Errorf("%s: non-embedding %d of %d params", name, ne, all)
		}
		c1, c2 := arch.TrainingFLOPs(m, L, 1e6), arch.TrainingFLOPs(m, L, 2e6)
		if c2 != 2*c1 {
			t.Errorf("%s: C(2D) = %g, 2·C(D) = %g", name, c2, 2*c1)
		}
		// Norm gains and biases are parameters no FLOP count charges;
		// allow them (well under 10% here) below 6·N·D.
		if six := 6 * float64(ne) * 1e6; c1 < 0.9*six {
			t.Errorf("%s: training FLOPs %.4g below 6·N·D = %.4g", name, c1, six)
		}
	}
}
