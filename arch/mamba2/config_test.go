package mamba2_test

import (
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/mamba2"
)

func TestDecode(t *testing.T) {
	cfg, err := archtest.Decode(t, "{arch: mamba2, d_model: 48, n_layers: 3, d_state: 16, expand: 3, headdim: 4, "+
		"ngroups: 4, d_conv: 2, chunk_size: 32, dt_min: 0.002, dt_max: 0.2, norm_eps: 1.0e-6, tie_embeddings: false}")
	if err != nil {
		t.Fatal(err)
	}
	want := mamba2.DefaultConfig()
	want.DModel, want.NLayers, want.DState, want.Expand, want.HeadDim = 48, 3, 16, 3, 4
	want.NGroups, want.DConv, want.ChunkSize, want.DtMin, want.DtMax = 4, 2, 32, 0.002, 0.2
	want.NormEps, want.TieEmbeddings = 1e-6, false
	if got := cfg.(*mamba2.Config); *got != *want {
		t.Errorf("decoded %+v, want %+v", *got, *want)
	}

	cfg, err = archtest.Decode(t, "arch: mamba2")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.(*mamba2.Config)
	if *got != *mamba2.DefaultConfig() {
		t.Errorf("defaults: got %+v", *got)
	}
	// mamba_ssm's Mamba2 defaults (d_state 128; Mamba2Simple's is 64).
	if got.DState != 128 || got.Expand != 2 || got.HeadDim != 64 || got.NGroups != 1 || got.DConv != 4 ||
		got.ChunkSize != 256 || got.DtMin != 1e-3 || got.DtMax != 0.1 {
		t.Errorf("defaults differ from mamba_ssm's: %+v", *got)
	}
	// headdim 1 (E·d heads of one channel) is a valid tiny setting.
	if _, err := archtest.Decode(t, "{arch: mamba2, d_model: 3, headdim: 1, ngroups: 2}"); err != nil {
		t.Errorf("headdim 1: %v", err)
	}
}

// Every rejected block must say which field is wrong and with what value.
func TestDecodeErrors(t *testing.T) {
	archtest.CheckDecodeErrors(t, []archtest.DecodeCase{
		{Src: "{arch: mamba2, d_modle: 64}", Want: []string{"d_modle"}},
		// 2·64 = 128 channels do not split into heads of 48.
		{Src: "{arch: mamba2, headdim: 48}", Want: []string{"headdim", "48", "d_model", "64", "expand", "2", "128"}},
		{Src: "{arch: mamba2, d_model: 5, expand: 3, headdim: 4}", Want: []string{"headdim", "4", "3·5 = 15"}},
		{Src: "{arch: mamba2, d_model: 8, headdim: 4, ngroups: 3}", Want: []string{"ngroups", "3", "heads", "4"}},
		{Src: "{arch: mamba2, headdim: 64, ngroups: 4}", Want: []string{"ngroups", "4", "heads", "2"}},
		{Src: "{arch: mamba2, headdim: 0}", Want: []string{"headdim", "0"}},
		{Src: "{arch: mamba2, ngroups: 0}", Want: []string{"ngroups", "0"}},
		{Src: "{arch: mamba2, d_state: 0}", Want: []string{"d_state", "0"}},
		{Src: "{arch: mamba2, expand: 0}", Want: []string{"expand", "0"}},
		{Src: "{arch: mamba2, d_conv: 0}", Want: []string{"d_conv", "0"}},
		{Src: "{arch: mamba2, d_intermediate: -1}", Want: []string{"d_intermediate", "-1"}},
		{Src: "{arch: mamba2, head_bias: true}", Want: []string{"head_bias", "tie_embeddings false"}},
		{Src: "{arch: mamba2, head_bias: true, tie_embeddings: false}", Want: nil},
		{Src: "{arch: mamba2, chunk_size: 0}", Want: []string{"chunk_size", "0"}},
		{Src: "{arch: mamba2, n_layers: 0}", Want: []string{"n_layers", "0"}},
		{Src: "{arch: mamba2, d_model: -8}", Want: []string{"d_model", "-8"}},
		{Src: "{arch: mamba2, d_model: 64.5}", Want: []string{"64.5"}},
		{Src: "{arch: mamba2, dt_min: 0.5, dt_max: 0.1}", Want: []string{"dt_min", "0.5", "dt_max"}},
		{Src: "{arch: mamba2, dt_min: 0}", Want: []string{"dt_min"}},
		{Src: "{arch: mamba2, dt_max: .inf}", Want: []string{"dt_max"}},
		{Src: "{arch: mamba2, norm_eps: -1}", Want: []string{"norm_eps", "-1"}},
		{Src: "{arch: mamba2, norm: layernorm}", Want: []string{"norm"}}, // mamba2 blocks are RMSNorm only
		{Src: "{arch: mamba2, tie_embeddings: maybe}", Want: []string{"maybe"}},
	})
}

// Build refuses what a Config alone cannot check.
func TestBuildErrors(t *testing.T) {
	c := mamba2.DefaultConfig()
	if _, err := c.Build(arch.Env{Vocab: 8}); err == nil || !strings.Contains(err.Error(), "backend") {
		t.Errorf("no backend: %v", err)
	}
	c.HeadDim = 3
	if _, err := c.Build(arch.Env{Vocab: 8}); err == nil || !strings.Contains(err.Error(), "headdim") {
		t.Errorf("headdim 3: %v", err)
	}
}
