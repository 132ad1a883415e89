package rnn_test

import (
	"strings"
	"testing"

	"seqbench/arch/archtest"
	"seqbench/arch/rnn"
)

func TestDecode(t *testing.T) {
	for _, cell := range []string{"lstm", "gru"} {
		cfg, err := archtest.Decode(t, "{arch: "+cell+", d_model: 32, n_layers: 3, bias: false, norm: layernorm, tie_embeddings: false, norm_eps: 1.0e-6}")
		if err != nil {
			t.Fatal(err)
		}
		want := rnn.DefaultConfig(cell)
		want.DModel, want.NLayers, want.Bias, want.Norm, want.TieEmbeddings, want.NormEps = 32, 3, false, "layernorm", false, 1e-6
		if got := cfg.(*rnn.Config); *got != *want {
			t.Errorf("decoded %+v, want %+v", *got, *want)
		}

		cfg, err = archtest.Decode(t, "arch: "+cell)
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
	archtest.CheckDecodeErrors(t, []archtest.DecodeCase{
		{Src: "{arch: lstm, d_modle: 64}", Want: []string{"d_modle"}},
		{Src: "{arch: gru, n_heads: 4}", Want: []string{"n_heads"}},
		{Src: "{arch: lstm, d_model: 0}", Want: []string{"d_model", "0"}},
		{Src: "{arch: gru, d_model: -8}", Want: []string{"d_model", "-8"}},
		{Src: "{arch: lstm, d_model: 64.5}", Want: []string{"64.5"}},
		{Src: "{arch: lstm, n_layers: 0}", Want: []string{"n_layers", "0"}},
		{Src: "{arch: gru, norm: batchnorm}", Want: []string{"norm", "batchnorm", "rmsnorm"}},
		{Src: "{arch: lstm, norm_eps: 0}", Want: []string{"norm_eps", "0"}},
		{Src: "{arch: lstm, norm: none, norm_eps: 0}", Want: nil}, // no norm, no eps needed
		{Src: "{arch: gru, bias: maybe}", Want: []string{"maybe"}},
		{Src: "{arch: rnn}", Want: []string{"arch", "rnn", "lstm", "gru"}},
	})
	// A config built in code with the wrong cell is refused too.
	c := rnn.DefaultConfig("rnn")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "arch") {
		t.Errorf("Validate of arch rnn: %v", err)
	}
}
