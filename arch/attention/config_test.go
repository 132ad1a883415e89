package attention_test

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/arch/attention"
)

// GPT-2's published sizes (Hugging Face gpt2, gpt2-medium) pin the closed
// form: learned positions, LayerNorm with bias, GELU MLP 4x, biased
// Linears, tied head.
func TestNumParamsGPT2(t *testing.T) {
	for _, tc := range []struct {
		name                string
		d, layers, heads, n int
	}{
		{"gpt2", 768, 12, 12, 124_439_808},
		{"gpt2-medium", 1024, 24, 16, 354_823_168},
	} {
		c := attention.DefaultConfig()
		c.DModel, c.NLayers, c.NHeads = tc.d, tc.layers, tc.heads
		c.Pos, c.Norm, c.MLP, c.Bias, c.TieEmbeddings = "learned", "layernorm", "gelu", true, true
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.NumParams(50257, 1024); got != tc.n {
			t.Errorf("%s: NumParams = %d, want %d", tc.name, got, tc.n)
		}
	}
}

func decode(t *testing.T, src string) (arch.Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("yaml %q: %v", src, err)
	}
	return arch.Decode(doc.Content[0])
}

func TestDecode(t *testing.T) {
	cfg, err := decode(t, "{arch: transformer, d_model: 32, n_layers: 1, n_heads: 2, pos: learned, mlp: swiglu, mlp_ratio: 2.5, norm: layernorm, bias: true, tie_embeddings: false}")
	if err != nil {
		t.Fatal(err)
	}
	want := attention.DefaultConfig()
	want.DModel, want.NLayers, want.NHeads, want.Pos, want.MLP, want.MLPRatio = 32, 1, 2, "learned", "swiglu", 2.5
	want.Norm, want.Bias, want.TieEmbeddings = "layernorm", true, false
	if got := cfg.(*attention.Config); *got != *want {
		t.Errorf("decoded %+v, want %+v", *got, *want)
	}

	cfg, err = decode(t, "arch: transformer")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.(*attention.Config); *got != *attention.DefaultConfig() {
		t.Errorf("defaults: got %+v", *got)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	for i, tc := range []struct {
		src  string
		want []string // substrings of the error
	}{
		{"{arch: transformer, d_modle: 64}", []string{"d_modle"}},
		{"{arch: transformer, d_model: 64, n_heads: 3}", []string{"n_heads", "3", "d_model", "64"}},
		{"{arch: transformer, d_model: 12, n_heads: 4}", []string{"n_heads", "rope", "3"}}, // odd head dim
		{"{arch: transformer, d_model: 12, n_heads: 4, pos: learned}", nil},                // fine without RoPE
		{"{arch: transformer, pos: alibi}", []string{"pos", "alibi", "rope"}},
		{"{arch: transformer, mlp: relu}", []string{"mlp", "relu", "swiglu"}},
		{"{arch: transformer, norm: batchnorm}", []string{"norm", "batchnorm"}},
		{"{arch: transformer, n_layers: 0}", []string{"n_layers", "0"}},
		{"{arch: transformer, d_model: -8}", []string{"d_model", "-8"}},
		{"{arch: transformer, n_heads: 0}", []string{"n_heads", "0"}},
		{"{arch: transformer, d_model: 64.5}", []string{"64.5"}},
		{"{arch: transformer, norm_eps: 0}", []string{"norm_eps"}},
		{"{arch: transformer, rope_base: -1}", []string{"rope_base", "-1"}},
		{"{arch: transformer, mlp_ratio: 0.001}", []string{"mlp_ratio"}},
		{"{arch: transformer, bias: maybe}", []string{"maybe"}},
	} {
		_, err := decode(t, tc.src)
		if tc.want == nil {
			if err != nil {
				t.Errorf("case %d %s: unexpected error %v", i, tc.src, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("case %d %s: no error", i, tc.src)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d %s: error %q does not mention %q", i, tc.src, err, w)
			}
		}
	}
}
