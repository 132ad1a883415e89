package mamba1_test

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/arch/mamba1"
)

// mamba-130m (state-spaces/mamba-130m: d_model 768, 24 layers, vocab 50277
// padded to 50280, d_state 16, expand 2, d_conv 4, dt_rank auto = 48,
// RMSNorm, tied head) has 129,135,360 parameters.
func TestNumParamsMamba130m(t *testing.T) {
	c := mamba1.DefaultConfig()
	c.DModel, c.NLayers = 768, 24
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.NumParams(50280, 2048); got != 129_135_360 {
		t.Errorf("NumParams = %d, want 129135360", got)
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
	cfg, err := decode(t, "{arch: mamba1, d_model: 32, n_layers: 3, d_state: 8, expand: 3, d_conv: 2, dt_rank: 5, "+
		"dt_min: 0.002, dt_max: 0.2, norm: layernorm, norm_eps: 1e-6, tie_embeddings: false}")
	if err != nil {
		t.Fatal(err)
	}
	want := mamba1.DefaultConfig()
	want.DModel, want.NLayers, want.DState, want.Expand, want.DConv, want.DtRank = 32, 3, 8, 3, 2, 5
	want.DtMin, want.DtMax, want.Norm, want.NormEps, want.TieEmbeddings = 0.002, 0.2, "layernorm", 1e-6, false
	if got := cfg.(*mamba1.Config); *got != *want {
		t.Errorf("decoded %+v, want %+v", *got, *want)
	}

	cfg, err = decode(t, "arch: mamba1")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.(*mamba1.Config); *got != *mamba1.DefaultConfig() {
		t.Errorf("defaults: got %+v", *got)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	for i, tc := range []struct {
		src  string
		want []string // substrings of the error
	}{
		{"{arch: mamba1, d_stat: 16}", []string{"d_stat"}},
		{"{arch: mamba1, d_model: 0}", []string{"d_model", "0"}},
		{"{arch: mamba1, n_layers: -1}", []string{"n_layers", "-1"}},
		{"{arch: mamba1, d_state: 0}", []string{"d_state", "0"}},
		{"{arch: mamba1, expand: 0}", []string{"expand", "0"}},
		{"{arch: mamba1, expand: 1.5}", []string{"1.5"}},
		{"{arch: mamba1, d_conv: 0}", []string{"d_conv", "0"}},
		{"{arch: mamba1, dt_rank: -2}", []string{"dt_rank", "-2"}},
		{"{arch: mamba1, dt_rank: 0}", nil}, // auto
		{"{arch: mamba1, dt_min: 0}", []string{"dt_min", "0"}},
		{"{arch: mamba1, dt_max: .inf}", []string{"dt_max", "Inf"}},
		{"{arch: mamba1, dt_min: 0.5, dt_max: 0.1}", []string{"dt_min", "0.5", "dt_max", "0.1"}},
		{"{arch: mamba1, norm: batchnorm}", []string{"norm", "batchnorm", "rmsnorm"}},
		{"{arch: mamba1, norm_eps: -1e-5}", []string{"norm_eps", "-1e-05"}},
		{"{arch: mamba1, d_model: 100000000}", []string{"d_model", "100000000"}},
		{"{arch: mamba1, d_model: 16777216, expand: 2}", []string{"expand", "16777216"}},
		{"{arch: mamba1, tie_embeddings: maybe}", []string{"maybe"}},
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

func TestBuildErrors(t *testing.T) {
	c := mamba1.DefaultConfig()
	if _, err := c.Build(arch.Env{}); err == nil || !strings.Contains(err.Error(), "backend") {
		t.Errorf("Build without a backend: %v", err)
	}
	c.DState = 0
	if _, err := c.Build(arch.Env{}); err == nil || !strings.Contains(err.Error(), "d_state") {
		t.Errorf("Build of an invalid config: %v", err)
	}
}
