package mamba1_test

import (
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
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

func TestDecode(t *testing.T) {
	cfg, err := archtest.Decode(t, "{arch: mamba1, d_model: 32, n_layers: 3, d_state: 8, expand: 3, d_conv: 2, dt_rank: 5, "+
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

	cfg, err = archtest.Decode(t, "arch: mamba1")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.(*mamba1.Config); *got != *mamba1.DefaultConfig() {
		t.Errorf("defaults: got %+v", *got)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	archtest.CheckDecodeErrors(t, []archtest.DecodeCase{
		{Src: "{arch: mamba1, d_stat: 16}", Want: []string{"d_stat"}},
		{Src: "{arch: mamba1, d_model: 0}", Want: []string{"d_model", "0"}},
		{Src: "{arch: mamba1, n_layers: -1}", Want: []string{"n_layers", "-1"}},
		{Src: "{arch: mamba1, d_state: 0}", Want: []string{"d_state", "0"}},
		{Src: "{arch: mamba1, expand: 0}", Want: []string{"expand", "0"}},
		{Src: "{arch: mamba1, expand: 1.5}", Want: []string{"1.5"}},
		{Src: "{arch: mamba1, d_conv: 0}", Want: []string{"d_conv", "0"}},
		{Src: "{arch: mamba1, d_intermediate: -1}", Want: []string{"d_intermediate", "-1"}},
		{Src: "{arch: mamba1, head_bias: true}", Want: []string{"head_bias", "tie_embeddings false"}},
		{Src: "{arch: mamba1, head_bias: true, tie_embeddings: false}", Want: nil},
		{Src: "{arch: mamba1, dt_rank: -2}", Want: []string{"dt_rank", "-2"}},
		{Src: "{arch: mamba1, dt_rank: 0}", Want: nil}, // auto
		{Src: "{arch: mamba1, dt_min: 0}", Want: []string{"dt_min", "0"}},
		{Src: "{arch: mamba1, dt_max: .inf}", Want: []string{"dt_max", "Inf"}},
		{Src: "{arch: mamba1, dt_min: 0.5, dt_max: 0.1}", Want: []string{"dt_min", "0.5", "dt_max", "0.1"}},
		{Src: "{arch: mamba1, norm: batchnorm}", Want: []string{"norm", "batchnorm", "rmsnorm"}},
		{Src: "{arch: mamba1, norm_eps: -1e-5}", Want: []string{"norm_eps", "-1e-05"}},
		{Src: "{arch: mamba1, d_model: 100000000}", Want: []string{"d_model", "100000000"}},
		{Src: "{arch: mamba1, d_model: 16777216, expand: 2}", Want: []string{"expand", "16777216"}},
		{Src: "{arch: mamba1, tie_embeddings: maybe}", Want: []string{"maybe"}},
	})
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
