package hybrid_test

import (
	"math/rand/v2"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/attention"
	"seqbench/arch/hybrid"
	"seqbench/arch/mamba2"
	"seqbench/cpukernels"
)

// Bad blocks fail naming the field (a sub-block's under its kind), the
// value and what is allowed.
func TestDecodeErrors(t *testing.T) {
	archtest.CheckDecodeErrors(t, []archtest.DecodeCase{
		{Src: "{arch: hybrid}", Want: nil},
		{Src: "{arch: hybrid, pattern: 'mamba1*2, s4d', n_layers: 6, mamba1: {d_state: 4}}", Want: nil},
		{Src: "{arch: hybrid, pattern: mamba3}", Want: []string{"field pattern", `"mamba3"`, "mamba1, mamba2, attention, s4d, lstm, gru, mlp"}},
		{Src: "{arch: hybrid, pattern: ''}", Want: []string{"field pattern", "at least one layer"}},
		{Src: "{arch: hybrid, pattern: 'mamba2*0'}", Want: []string{"field pattern", `"mamba2*0"`, "n in [1, 65536]"}},
		{Src: "{arch: hybrid, pattern: [mamba2, [attention]]}", Want: []string{"field pattern", "list item"}},
		{Src: "{arch: hybrid, pattern: [mamba2, attention], n_layers: -1}", Want: []string{"field n_layers", "-1", "[0, 2^20]"}},
		{Src: "{arch: hybrid, d_model: 0}", Want: []string{"field d_model", "0", "[1, 65536]"}},
		{Src: "{arch: hybrid, every: {k: 3, block: mlp}}", Want: []string{"field every.k", "3", "[1, n_layers = 2]"}},
		{Src: "{arch: hybrid, every: {k: 1, block: conv}}", Want: []string{"field every.block", `"conv"`, "mlp"}},
		{Src: "{arch: hybrid, attention_at: [2]}", Want: []string{"field attention_at", "2", "0 .. 1"}},
		{Src: "{arch: hybrid, norm: batchnorm}", Want: []string{"field norm", `"batchnorm"`, "rmsnorm, layernorm"}},
		{Src: "{arch: hybrid, attention: {n_heads: 3}}", Want: []string{"field attention.n_heads", "3", "must divide d_model = 64"}},
		{Src: "{arch: hybrid, attention: {pos: learned}}", Want: []string{"field attention.pos", "learned", "rope or none"}},
		{Src: "{arch: hybrid, mamba2: {headdim: 48}}", Want: []string{"field mamba2.headdim", "48", "must divide"}},
		{Src: "{arch: hybrid, mamba2: {d_model: 32}}", Want: []string{"field mamba2.d_model", "top level"}},
		{Src: "{arch: hybrid, attention: {dropout: 0.1}}", Want: []string{"field attention.dropout", "not allowed in a hybrid"}},
		{Src: "{arch: hybrid, attention: {attn_dropout: 0.1}}", Want: []string{"field attention.attn_dropout", "not allowed in a hybrid"}},
		{Src: "{arch: hybrid, mamba2: {d_stat: 4}}", Want: []string{"unknown field d_stat", "d_state"}},
		{Src: "{arch: hybrid, s4d: {d_state: 4}}", Want: nil},
		{Src: "{arch: hybrid, s4d: {d_state: 3}}", Want: []string{"field s4d.d_state", "3", "even"}},
		{Src: "{arch: hybrid, pattern: mlp, mlp: {mlp: relu}}", Want: []string{"field mlp.mlp", `"relu"`, "gelu, swiglu"}},
		{Src: "{arch: hybrid, pattern: gru, gru: {norm: none}}", Want: []string{"field gru.norm", "not allowed in a hybrid"}},
		{Src: "{arch: hybrid, wat: 1}", Want: []string{"unknown field wat", "pattern"}},
	})
}

// The pattern repeats to n_layers, the last repeat cut short; every and
// attention_at override layers;
// a sub-block starts from hybrid's defaults for its kind.
func TestLayersAndDefaults(t *testing.T) {
	c, err := archtest.Decode(t, "{arch: hybrid, pattern: 'mamba2*3 attention', n_layers: 8, every: {k: 3, block: mlp}, attention_at: [0], attention: {n_heads: 8}}")
	if err != nil {
		t.Fatal(err)
	}
	h := c.(*hybrid.Config)
	want := "attention mamba2 mlp attention mamba2 mlp mamba2 attention"
	if got := joined(h.Layers()); got != want {
		t.Errorf("layers %s, want %s", got, want)
	}
	if h.Attention.NHeads != 8 || h.Attention.MLP != "none" || h.Attention.Pos != "rope" {
		t.Errorf("attention sub-block %+v: want n_heads 8 over the defaults (mlp none, rope)", *h.Attention)
	}
	c, err = archtest.Decode(t, "{arch: hybrid, pattern: 'mamba2*2 attention', n_layers: 7}")
	if err != nil {
		t.Fatal(err)
	}
	want = "mamba2 mamba2 attention mamba2 mamba2 attention mamba2"
	if got := joined(c.(*hybrid.Config).Layers()); got != want {
		t.Errorf("layers %s, want %s (the last repeat cut short)", got, want)
	}
	if h.Mamba2 != nil {
		t.Errorf("mamba2 sub-block %+v, want nil (not written)", *h.Mamba2)
	}
}

// A resolved config (yaml.Dump of the decoded block) decodes again to the
// same config: the compact pattern and sub-blocks without the trunk's
// fields.
func TestResolvedRoundTrip(t *testing.T) {
	src := "{arch: hybrid, pattern: [mamba2, mamba2, attention], attention: {n_heads: 2}, mamba2: {d_state: 16}, tie_embeddings: false}"
	c, err := archtest.Decode(t, src)
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Dump(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := archtest.Decode(t, string(out))
	if err != nil {
		t.Fatalf("resolved config %s: %v", out, err)
	}
	out2, _ := yaml.Dump(again)
	if string(out) != string(out2) {
		t.Errorf("round trip changed the config:\n%s\nthen\n%s", out, out2)
	}
	var m map[string]any
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["pattern"] != "mamba2*2 attention" {
		t.Errorf("pattern written as %v, want the compact %q", m["pattern"], "mamba2*2 attention")
	}
	if _, ok := m["mamba2"].(map[string]any)["d_model"]; ok {
		t.Errorf("the mamba2 sub-block is written with d_model:\n%s", out)
	}
}

// Hand count at d_model 8, vocab 10, tied, RMSNorm, pattern mamba2 mamba2
// attention mlp:
//
//	embed 10·8                                                     80
//	mamba2 (E 16, 4 heads of 4, N 4, G 1, W 4, K = 16 + 8 = 24):
//	  norm 8 + in_proj 8·(32 + 8 + 4) + conv 24·4 + 24
//	  + dt_bias, A_log, D 3·4 + gated norm 16 + out_proj 16·8     636 ×2
//	attention (2 heads, mlp none): norm 8 + qkv 8·24 + proj 8·8   264
//	mlp (SwiGLU, h 32): norm 8 + 3·8·32                           776
//	final norm                                                      8
//
// 80 + 1272 + 264 + 776 + 8 = 2400.
func TestNumParamsHandCount(t *testing.T) {
	c, err := archtest.Decode(t, "{arch: hybrid, d_model: 8, pattern: mamba2 mamba2 attention mlp, mamba2: {d_state: 4, headdim: 4}, attention: {n_heads: 2}}")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.NumParams(10, 0); got != 2400 {
		t.Errorf("NumParams = %d, want 2400", got)
	}
	m := archtest.Build(t, cpukernels.New[float32](), archtest.Case{Name: "hand", Config: c}, 10, 0, 1)
	archtest.CheckParamNames(t, m.Params(), "embed.weight[10 8] layers.0.norm.weight[8] layers.0.mixer.in_proj.weight[44 8] "+
		"... layers.2.norm1.weight[8] layers.2.attn.qkv.weight[24 8] layers.2.attn.proj.weight[8 8] "+
		"layers.3.norm.weight[8] layers.3.mlp.gate.weight[32 8] layers.3.mlp.up.weight[32 8] layers.3.mlp.down.weight[8 32] "+
		"norm_f.weight[8]")
}

// FLOPs per token are each layer's own arch's count plus the head: the
// hybrid of two mamba2 layers and one attention layer costs what those
// layers cost in their own models.
func TestFLOPs(t *testing.T) {
	b, L, V := cpukernels.New[float64](), 64, 10
	env := func() arch.Env { return arch.Env{Backend: b, Vocab: V, MaxLen: L, RNG: rand.New(rand.NewPCG(1, 1))} }
	c, err := archtest.Decode(t, "{arch: hybrid, d_model: 8, pattern: mamba2 mamba2 attention, mamba2: {d_state: 4, headdim: 4, chunk_size: 16}, attention: {n_heads: 2}}")
	if err != nil {
		t.Fatal(err)
	}
	hm, err := c.Build(env())
	if err != nil {
		t.Fatal(err)
	}
	m2 := mamba2.DefaultConfig()
	m2.DModel, m2.NLayers, m2.DState, m2.HeadDim, m2.ChunkSize = 8, 2, 4, 4, 16
	a := attention.DefaultConfig()
	a.DModel, a.NLayers, a.NHeads, a.MLP = 8, 1, 2, "none"
	head := float64(2 * 8 * V)
	want := -head
	for _, cfg := range []arch.Config{m2, a} {
		m, err := cfg.Build(env())
		if err != nil {
			t.Fatal(err)
		}
		want += m.FLOPsPerToken(L)
	}
	if got := hm.FLOPsPerToken(L); got != want {
		t.Errorf("FLOPsPerToken = %v, want %v", got, want)
	}
}
