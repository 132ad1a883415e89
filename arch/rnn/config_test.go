package rnn_test

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/arch/rnn"
)

func decode(t *testing.T, src string) (arch.Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("yaml %q: %v", src, err)
	}
	return arch.Decode(doc.Content[0])
}

func TestDecode(t *testing.T) {
	for _, cell := range []string{"lstm", "gru"} {
		cfg, err := decode(t, "{arch: "+cell+", d_model: 32, n_layers: 3, bias: false, norm: layernorm, tie_embeddings: false, norm_eps: 1.0e-6}")
		if err != nil {
			t.Fatal(err)
		}
		want := rnn.DefaultConfig(cell)
		want.DModel, want.NLayers, want.Bias, want.Norm, want.TieEmbeddings, want.NormEps = 32, 3, false, "layernorm", false, 1e-6
		if got := cfg.(*rnn.Config); *got != *want {
			t.Errorf("decoded %+v, want %+v", *got, *want)
		}

		cfg, err = decode(t, "arch: "+cell)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.(*rnn.Config); *got != *rnn.DefaultConfig(cell) {
			t.Errorf("defaults: got %+v", *got)
		}
	}
	d := rnn.DefaultConfig("lstm")
	if d.DModel != 64 || d.NLayers != 2 || !d.Bias || d.Norm != "rmsnorm" || !d.TieEmbeddings {
		t.Errorf("documented defaults changed: %+v", *d)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	for i, tc := range []struct {
		src  string
		want []string // substrings of the error; nil: accepted
	}{
		{"{arch: lstm, d_modle: 64}", []string{"d_modle"}},
		{"{arch: gru, n_heads: 4}", []string{"n_heads"}},
		{"{arch: lstm, d_model: 0}", []string{"d_model", "0"}},
		{"{arch: gru, d_model: -8}", []string{"d_model", "-8"}},
		{"{arch: lstm, d_model: 64.5}", []string{"64.5"}},
		{"{arch: lstm, n_layers: 0}", []string{"n_layers", "0"}},
		{"{arch: gru, norm: batchnorm}", []string{"norm", "batchnorm", "rmsnorm"}},
		{"{arch: lstm, norm_eps: 0}", []string{"norm_eps", "0"}},
		{"{arch: lstm, norm: none, norm_eps: 0}", nil}, // no norm, no eps needed
		{"{arch: gru, bias: maybe}", []string{"maybe"}},
		{"{arch: rnn}", []string{"arch", "rnn", "lstm", "gru"}},
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
	// A config built in code with the wrong cell is refused too.
	c := rnn.DefaultConfig("rnn")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "arch") {
		t.Errorf("Validate of arch rnn: %v", err)
	}
}
