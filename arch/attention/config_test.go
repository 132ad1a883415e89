package attention_test

import (
	"testing"

	"seqbench/arch/archtest"
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

func TestDecode(t *testing.T) {
	cfg, err := archtest.Decode(t, "{arch: transformer, d_model: 32, n_layers: 1, n_heads: 2, pos: learned, mlp: swiglu, mlp_ratio: 2.5, norm: layernorm, bias: true, tie_embeddings: false}")
	if err != nil {
		t.Fatal(err)
	}
	want := attention.DefaultConfig()
	want.DModel, want.NLayers, want.NHeads, want.Pos, want.MLP, want.MLPRatio = 32, 1, 2, "learned", "swiglu", 2.5
	want.Norm, want.Bias, want.TieEmbeddings = "layernorm", true, false
	if got := cfg.(*attention.Config); *got != *want {
		t.Errorf("decoded %+v, want %+v", *got, *want)
	}

	cfg, err = archtest.Decode(t, "arch: transformer")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.(*attention.Config); *got != *attention.DefaultConfig() {
		t.Errorf("defaults: got %+v", *got)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	archtest.CheckDecodeErrors(t, []archtest.DecodeCase{
		{Src: "{arch: transformer, d_modle: 64}", Want: []string{"d_modle"}},
		{Src: "{arch: transformer, d_model: 64, n_heads: 3}", Want: []string{"n_heads", "3", "d_model", "64"}},
		{Src: "{arch: transformer, d_model: 12, n_heads: 4}", Want: []string{"n_heads", "rope", "3"}}, // odd head dim
		{Src: "{arch: transformer, d_model: 12, n_heads: 4, pos: learned}", Want: nil},                // fine without RoPE
		{Src: "{arch: transformer, pos: alibi}", Want: []string{"pos", "alibi", "rope"}},
		{Src: "{arch: transformer, mlp: relu}", Want: []string{"mlp", "relu", "swiglu"}},
		{Src: "{arch: transformer, norm: batchnorm}", Want: []string{"norm", "batchnorm"}},
		{Src: "{arch: transformer, n_layers: 0}", Want: []string{"n_layers", "0"}},
		{Src: "{arch: transformer, d_model: -8}", Want: []string{"d_model", "-8"}},
		{Src: "{arch: transformer, n_heads: 0}", Want: []string{"n_heads", "0"}},
		{Src: "{arch: transformer, d_model: 64.5}", Want: []string{"64.5"}},
		{Src: "{arch: transformer, norm_eps: 0}", Want: []string{"norm_eps"}},
		{Src: "{arch: transformer, rope_base: -1}", Want: []string{"rope_base", "-1"}},
		{Src: "{arch: transformer, mlp_ratio: 0.001}", Want: []string{"mlp_ratio"}},
		{Src: "{arch: transformer, bias: maybe}", Want: []string{"maybe"}},
		{Src: "{arch: transformer, dropout: 1}", Want: []string{"dropout", "1", "[0, 1)"}},
		{Src: "{arch: transformer, embed_dropout: -0.1}", Want: []string{"embed_dropout", "-0.1"}},
		{Src: "{arch: transformer, attn_dropout: 1.5}", Want: []string{"attn_dropout", "1.5", "[0, 1)"}},
		{Src: "{arch: transformer, mlp: none, dropout: 0.1, embed_dropout: 0.1, attn_dropout: 0.1}", Want: nil},
		{Src: "{arch: transformer, head_bias: true}", Want: []string{"head_bias", "tie_embeddings false"}},
	})
}
