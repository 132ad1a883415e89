// Package attention is the causal multi-head attention Transformer
// (registered as "transformer"): GPT-2 / Llama style pre-norm blocks with
// RoPE, learned or no positions, a GELU or SwiGLU MLP and RMSNorm or
// LayerNorm.
package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"seqbench/arch"
	"seqbench/nn"
)

func init() {
	arch.Register(arch.Spec{
		Name: "transformer",
		Doc:  "causal multi-head attention Transformer (RoPE | learned | no positions, GELU | SwiGLU MLP, RMSNorm | LayerNorm)",
		New:  func() arch.Config { return DefaultConfig() },
	})
}

// Config is the transformer's model block.
type Config struct {
	Arch     string  `yaml:"arch"`
	DModel   int     `yaml:"d_model"`
	NLayers  int     `yaml:"n_layers"`
	NHeads   int     `yaml:"n_heads"`
	Pos      string  `yaml:"pos"` // rope | learned | none
	RopeBase float64 `yaml:"rope_base"`
	MLP      string  `yaml:"mlp"` // gelu | swiglu | none (attention-only blocks, as Zoology's baseline)
	// MLPRatio sets the MLP hidden width round(mlp_ratio·d_model); a float so
	// that Llama's 8/3 for SwiGLU can be asked for.
	MLPRatio float64 `yaml:"mlp_ratio"`
	Norm     string  `yaml:"norm"` // rmsnorm | layernorm
	// Bias adds biases to every Linear except the LM head, and to LayerNorm.
	Bias          bool `yaml:"bias"`
	TieEmbeddings bool `yaml:"tie_embeddings"`
	// HeadBias gives the untied LM head a bias (zero at init), as MAD's
	// models have; it needs tie_embeddings false. (omitempty keeps it out
	// of resolved configs, and run ids, when false.)
	HeadBias bool    `yaml:"head_bias,omitempty"`
	NormEps  float64 `yaml:"norm_eps"`
	// Dropout is GPT-2's residual dropout (resid_pdrop): on the attention
	// and MLP outputs before they join the residual stream. EmbedDropout
	// is on the token (and position) embeddings, AttnDropout on the
	// attention probabilities (attn_pdrop; Zoology's SelfAttention's
	// attention_dropout). All apply in training only and are off (0) by
	// default; Zoology's attention baseline uses 0.1 for embeddings and
	// attention probabilities. Their random masks come from a stream
	// seeded after the weights are drawn, so the initialization does not
	// depend on them. (omitempty keeps them out of resolved configs, and
	// run ids, at 0.)
	Dropout      float64 `yaml:"dropout,omitempty"`
	EmbedDropout float64 `yaml:"embed_dropout,omitempty"`
	AttnDropout  float64 `yaml:"attn_dropout,omitempty"`
}

// DefaultConfig holds the defaults a model block starts from.
func DefaultConfig() *Config {
	return &Config{Arch: "transformer", DModel: 64, NLayers: 2, NHeads: 4, Pos: "rope",
		RopeBase: 10000, MLP: "gelu", MLPRatio: 4, Norm: "rmsnorm", TieEmbeddings: true, NormEps: 1e-5}
}

func (c *Config) hidden() int { return int(math.Round(c.MLPRatio * float64(c.DModel))) }

// Validate checks every field; errors name the field, the value and what is
// allowed.
func (c *Config) Validate() error {
	if c.HeadBias && c.TieEmbeddings {
		return arch.FieldError("head_bias", true, "needs tie_embeddings false: a tied head is the embedding table, without a bias")
	}
	if c.Arch != "" && c.Arch != "transformer" {
		return arch.FieldError("arch", strconv.Quote(c.Arch), "this config is for transformer")
	}
	for _, err := range []error{
		arch.Positive("d_model", c.DModel),
		arch.Positive("n_layers", c.NLayers),
		arch.Positive("n_heads", c.NHeads),
		arch.OneOf("pos", c.Pos, "rope", "learned", "none"),
		arch.OneOf("mlp", c.MLP, "gelu", "swiglu", "none"),
		arch.OneOf("norm", c.Norm, "rmsnorm", "layernorm"),
		arch.FinitePositive("mlp_ratio", c.MLPRatio),
		arch.FinitePositive("norm_eps", c.NormEps),
	} {
		if err != nil {
			return err
		}
	}
	for _, d := range []struct {
		field string
		p     float64
	}{{"dropout", c.Dropout}, {"embed_dropout", c.EmbedDropout}, {"attn_dropout", c.AttnDropout}} {
		if !(d.p >= 0 && d.p < 1) {
			return arch.FieldError(d.field, d.p, "must be in [0, 1)")
		}
	}
	if c.DModel%c.NHeads != 0 {
		return arch.FieldError("n_heads", c.NHeads, fmt.Sprintf("must divide d_model = %d", c.DModel))
	}
	if c.Pos == "rope" {
		if dh := c.DModel / c.NHeads; dh%2 != 0 {
			return arch.FieldError("n_heads", c.NHeads, fmt.Sprintf(
				"pos rope pairs channels, so the head dim d_model/n_heads = %d/%d = %d must be even", c.DModel, c.NHeads, dh))
		}
		if err := arch.FinitePositive("rope_base", c.RopeBase); err != nil {
			return err
		}
	}
	if w := math.Round(c.MLPRatio * float64(c.DModel)); w < 1 || w > 1<<30 {
		return arch.FieldError("mlp_ratio", c.MLPRatio, fmt.Sprintf("round(mlp_ratio·d_model) must be in [1, 2^30], d_model = %d", c.DModel))
	}
	return nil
}

// NumParams counts, in the order they are built:
//
//	V·d                                  token embedding
//	maxLen·d                             learned positions (pos learned)
//	n_layers · (2·norm + attn + mlp)     blocks (one norm, no mlp for mlp none)
//	norm                                 final norm
//	V·d                                  LM head (untied)
//	V                                    LM head bias (head_bias)
//
// norm = d (+ d for a LayerNorm bias), attn = 4d² (+ 4d bias), mlp = k·d·h
// (+ (k−1)·h + d bias) with h the hidden width and k = 2 for GELU, 3 for
// SwiGLU.
func (c *Config) NumParams(vocab, maxLen int) int {
	d, h := c.DModel, c.hidden()
	b := 0
	if c.Bias {
		b = 1
	}
	norm := d
	if c.Norm == "layernorm" {
		norm += b * d
	}
	attn := 4*d*d + b*4*d
	k := 2
	if c.MLP == "swiglu" {
		k = 3
	}
	mlp := k*d*h + b*((k-1)*h+d) + norm
	if c.MLP == "none" {
		mlp = 0
	}
	n := vocab*d + c.NLayers*(norm+attn+mlp) + norm
	if c.Pos == "learned" {
		n += maxLen * d
	}
	if !c.TieEmbeddings {
		n += vocab * d
	}
	if c.HeadBias {
		n += vocab
	}
	return n
}

// Build allocates and initializes the model on env.Backend.
func (c *Config) Build(env arch.Env) (arch.Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := env.Check("transformer"); err != nil {
		return nil, err
	}
	if c.Pos == "learned" && env.MaxLen < 1 {
		return nil, fmt.Errorf("transformer: pos learned needs the longest sequence length, got max_len %d", env.MaxLen)
	}
	return build(c, env), nil
}

// Model is the built transformer: the shared trunk (embedding, learned
// positions when pos is learned, final norm, tied or untied head) around
// attention blocks.
type Model = arch.LM[*Block]

// Block is one pre-norm residual block: x += drop(attn(norm1(x)));
// x += drop(mlp(norm2(x))) (the MLP half absent for mlp none).
type Block struct {
	Norm1 nn.Layer
	Attn  *Attention
	Norm2 nn.Layer    // nil for mlp none
	MLP   *nn.MLP     // nil for mlp none
	Drop  *nn.Dropout // residual dropout (nil: none)
	be    nn.Backend
	cfg   *Config
	// maxLen is the model's longest sequence (arch.Env.MaxLen; 0: none
	// given): the rows a KV cache takes at its first step.
	maxLen int
}

// Attention is causal multi-head self-attention with one fused qkv
// projection (d → 3d, laid out [q | k | v] with heads (H, Dh) inside each,
// as GPT-2's c_attn) and an output projection.
type Attention struct {
	QKV, Proj *nn.Linear
	NHeads    int
	HeadDim   int
	Rope      bool
	RopeBase  float64
	Drop      *nn.Dropout // dropout on the probabilities (nil: none)
}

// build allocates the layers, then re-draws the weights with GPT-2's scheme
// (N(0, 0.02²) everywhere, residual output projections scaled by
// 1/√(2·n_layers) so the residual stream's variance does not grow with
// depth; biases 0, norms 1).
func build(c *Config, env arch.Env) *Model {
	be, rng, d := env.Backend, env.RNG, c.DModel
	const std = 0.02
	norm := func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, c.Bias) }
	var resid, embed, attn *nn.Dropout
	if c.Dropout > 0 {
		resid = &nn.Dropout{P: c.Dropout}
	}
	if c.EmbedDropout > 0 {
		embed = &nn.Dropout{P: c.EmbedDropout}
	}
	if c.AttnDropout > 0 {
		attn = &nn.Dropout{P: c.AttnDropout}
	}
	m := arch.NewLM(env, arch.Trunk[*Block]{Name: "transformer", DModel: d, NLayers: c.NLayers,
		LearnedPos: c.Pos == "learned", Norm: norm, Tie: c.TieEmbeddings, HeadBias: c.HeadBias, HeadStd: std, EmbedDropout: embed,
		NewBlock: c.blockBuilder(env, resid, attn)})
	// The masks' stream is seeded after every weight is drawn, and only
	// when some dropout is on, so the weights are the same with or without.
	if resid != nil || embed != nil || attn != nil {
		drops := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		for _, dr := range []*nn.Dropout{resid, embed, attn} {
			if dr != nil {
				dr.RNG = drops
			}
		}
	}
	return m
}

// BlockBuilder returns the function that draws one block from env.RNG
// (GPT-2's init, as Build's), without dropout; the hybrid arch
// calls it for its attention layers. c must be valid; n_layers scales the
// output projections.
func (c *Config) BlockBuilder(env arch.Env) func(int) *Block { return c.blockBuilder(env, nil, nil) }

func (c *Config) blockBuilder(env arch.Env, resid, attn *nn.Dropout) func(int) *Block {
	be, rng, d := env.Backend, env.RNG, c.DModel
	cfg := *c
	const std = 0.02
	projStd := std / math.Sqrt(2*float64(c.NLayers))
	reinit := func(l *nn.Linear, s float64) *nn.Linear {
		nn.Normal(be, l.W, s, rng)
		if l.B != nil {
			nn.Zeros(be, l.B)
		}
		return l
	}
	linear := func(in, out int, bias bool, s float64) *nn.Linear {
		return reinit(nn.NewLinear(be, in, out, bias, rng), s)
	}
	norm := func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, c.Bias) }
	return func(int) *Block {
		blk := &Block{Drop: resid, be: be, cfg: &cfg, maxLen: env.MaxLen}
		var mlp *nn.MLP
		if c.MLP != "none" {
			mlp = nn.NewMLP(be, nn.MLPKind(c.MLP), d, c.hidden(), c.Bias, rng)
			if mlp.Gate != nil {
				reinit(mlp.Gate, std)
			}
			reinit(mlp.Up, std)
			reinit(mlp.Down, projStd)
		}
		blk.Norm1 = norm()
		blk.Attn = &Attention{QKV: linear(d, 3*d, c.Bias, std), Proj: linear(d, d, c.Bias, projStd),
			NHeads: c.NHeads, HeadDim: d / c.NHeads, Rope: c.Pos == "rope", RopeBase: c.RopeBase, Drop: attn}
		if mlp != nil {
			blk.Norm2, blk.MLP = norm(), mlp
		}
		return blk
	}
}

// PositionFree (arch.PositionFree): a step's rotation, the cache rows it
// writes and the keys it reads come from the cache's position on the
// device, so its work is the same at every position while the cache does
// not grow: when the model's maximum length, the rows the cache takes at
// its first step, is known. (Learned positions are the trunk's, which
// says so itself.)
func (blk *Block) PositionFree() bool { return blk.maxLen > 0 }

// Forward maps x (B·L, d) for tokens at positions pos0 .. pos0+L−1; st is
// the layer's *KVCache in step mode, nil in parallel mode.
func (blk *Block) Forward(tp *nn.Tape, x *nn.Tensor, B, L, pos0 int, st arch.LayerState) *nn.Tensor {
	var kv *KVCache
	if st != nil {
		kv = st.(*KVCache)
	}
	// The branches' outputs are dropped once added: the backward of the
	// residual add does not read them.
	attn := blk.Drop.Forward(tp, blk.Attn.Forward(tp, blk.Norm1.Forward(tp, x), B, L, pos0, kv))
	x = tp.Add(x, attn)
	tp.Drop(attn)
	if blk.MLP == nil {
		return x
	}
	mlp := blk.Drop.Forward(tp, blk.MLP.Forward(tp, blk.Norm2.Forward(tp, x)))
	out := tp.Add(x, mlp)
	tp.Drop(mlp)
	return out
}

// Forward maps x (B·L, d) to (B·L, d). pos0 is the position of the first
// token (the RoPE offset). With a cache, the new keys and values are
// appended to it and the L queries attend to every cached key
// (Backend.AttentionCached: the causal mask aligned to the end). The
// rotation, the cache rows written and the count of keys read all come
// from the cache's position on the device, so a decoded token's work is
// the same at every position.
func (a *Attention) Forward(tp *nn.Tape, x *nn.Tensor, B, L, pos0 int, kv *KVCache) *nn.Tensor {
	q, k, v := a.project(tp, x, B, L, pos0, kv)
	if kv == nil {
		return a.merge(tp, a.attend(tp, q, k, v), B, L)
	}
	K, V := kv.extend(tp.B, k, v)
	return a.merge(tp, tp.AttentionCached(q, K, V, kv.pos, 1/math.Sqrt(float64(a.HeadDim))), B, L)
}

// project returns q, k, v (B, H, L, Dh), q and k rotated when RoPE is on:
// from pos0, or with a cache from its position on the device.
func (a *Attention) project(tp *nn.Tape, x *nn.Tensor, B, L, pos0 int, kv *KVCache) (q, k, v *nn.Tensor) {
	d := a.NHeads * a.HeadDim
	qkv := a.QKV.Forward(tp, x) // (B·L, 3d)
	// The (B·L, 3d) projection and its layout copies are dropped once read:
	// the backward reads the heads the attention gets.
	heads := func(i int) *nn.Tensor {
		s := tp.Slice(qkv, i*d, d)
		if L == 1 { // a decoded token: (B, 1, H, Dh) is (B, H, 1, Dh) in memory
			return tp.Reshape(s, B, a.NHeads, 1, a.HeadDim)
		}
		t := tp.Permute(tp.Reshape(s, B, L, a.NHeads, a.HeadDim), 0, 2, 1, 3)
		tp.Drop(s)
		return t
	}
	q, k, v = heads(0), heads(1), heads(2)
	tp.Drop(qkv)
	if a.Rope {
		var qr, kr *nn.Tensor
		if kv != nil {
			pos := kv.position(tp.B)
			qr, kr = tp.RoPEAt(q, pos, a.RopeBase), tp.RoPEAt(k, pos, a.RopeBase)
		} else {
			qr, kr = tp.RoPE(q, pos0, a.RopeBase), tp.RoPE(k, pos0, a.RopeBase)
		}
		tp.Drop(q, k)
		q, k = qr, kr
	}
	return q, k, v
}

// attend is causal scaled dot-product attention with scale 1/√Dh, its
// probabilities dropped in training when Drop is set.
func (a *Attention) attend(tp *nn.Tape, q, k, v *nn.Tensor) *nn.Tensor {
	return tp.AttentionDropout(q, k, v, 1/math.Sqrt(float64(a.HeadDim)), true, a.Drop.Attention(tp))
}

// merge takes o (B, H, L, Dh) back to (B·L, d) and applies the output
// projection.
func (a *Attention) merge(tp *nn.Tape, o *nn.Tensor, B, L int) *nn.Tensor {
	if L > 1 { // at L = 1 (B, H, 1, Dh) is already (B, 1, H, Dh) in memory
		o = tp.Permute(o, 0, 2, 1, 3) // (B, L, H, Dh)
	}
	return a.Proj.Forward(tp, tp.Reshape(o, B*L, a.NHeads*a.HeadDim))
}

// Params lists the layer's weights with torch-like names:
// layers.i.{norm1, attn.qkv, attn.proj, norm2, mlp.*} (the trunk adds
// embed, pos_embed, norm_f and lm_head).
func (blk *Block) Params(layer int) []nn.Param {
	p := arch.LayerPrefix(layer)
	ps := blk.Norm1.Params(p + ".norm1")
	ps = append(ps, blk.Attn.QKV.Params(p+".attn.qkv")...)
	ps = append(ps, blk.Attn.Proj.Params(p+".attn.proj")...)
	if blk.MLP == nil {
		return ps
	}
	ps = append(ps, blk.Norm2.Params(p+".norm2")...)
	return append(ps, blk.MLP.Params(p+".mlp")...)
}

// FLOPsPerToken counts a multiply-add as 2 FLOPs:
//
//	2·(4d² + k·d·h)   every matmul weight (k = 2 GELU, 3 SwiGLU, 0 none)
//	+ 2·(2·L_eff·d)   QKᵀ and A·V, each 2·L_eff·d per token
//
// per layer (the trunk adds 2·d·V for the LM head, tied or not), with
// L_eff = (L+1)/2, the mean number of keys a causal query attends to
// (Kaplan et al. count the full L; halving is what a causal kernel does).
// Positions, norms, activations, softmax, RoPE, biases and residual adds
// are not counted.
func (blk *Block) FLOPsPerToken(L int) float64 {
	c := blk.cfg
	d, h := float64(c.DModel), float64(c.hidden())
	k := 2.0
	switch c.MLP {
	case "swiglu":
		k = 3
	case "none":
		k = 0
	}
	lEff := 0.0
	if L > 0 {
		lEff = float64(L+1) / 2
	}
	return 2*(4*d*d+k*d*h) + 4*lEff*d
}

// KVCache holds one layer's keys (already rotated) and values outside any
// tape: K and V (B, H, rows, Dh), of which the first n rows of each (b, h)
// block are the tokens consumed so far. A step writes its keys into the
// rows after them; the cache is reallocated only when the rows run out,
// to the model's maximum length at the first step where it has one, and
// half as large again past it, so a decoded token costs its own keys'
// copy, not the whole cache's. The device holds n too (pos, a position:
// nn.Backend.RoPEAt): the step's rotation, the rows it writes and the keys
// its attention reads are taken from there, so its work is the same at
// every position and a graph of it replays (while the rows last).
type KVCache struct {
	be     nn.Backend
	maxLen int // rows to take at the first step (0: as many as it needs)
	K, V   *nn.Tensor
	n      int
	pos    nn.Buffer // n on the device
	one    nn.Buffer // 1, to advance pos by Axpy
}

// position is the cache's position on the device (0 for an empty cache).
func (c *KVCache) position(be nn.Backend) nn.Buffer {
	if c.pos == nil {
		c.pos, c.one = be.Alloc(1), be.Alloc(1)
		be.Fill(c.one, 1)
	}
	return c.pos
}

// extend appends k, v (B, H, T, Dh) at the cache's position, advances it,
// and returns the cache.
func (c *KVCache) extend(be nn.Backend, k, v *nn.Tensor) (K, V *nn.Tensor) {
	B, H, T, Dh := k.Dim(0), k.Dim(1), k.Dim(2), k.Dim(3)
	pos := c.position(be)
	rows := 0
	if c.K != nil {
		rows = c.K.Dim(2)
	}
	if need := c.n + T; need > rows {
		newRows := max(need, c.maxLen)
		if rows > 0 {
			newRows = max(need, rows+rows/2)
		}
		grow := func(old, like *nn.Tensor) *nn.Tensor {
			// The cache holds activations: bfloat16 under bf16 precision.
			t := &nn.Tensor{Shape: []int{B, H, newRows, Dh}, Data: nn.AllocLike(be, like.Data, B*H*newRows*Dh)}
			if old != nil {
				be.CopyBlock(t.Data, 0, newRows*Dh, old.Data, 0, rows*Dh, B*H, c.n*Dh, false)
				be.Free(old.Data)
			}
			return t
		}
		c.K, c.V, rows = grow(c.K, k), grow(c.V, v), newRows
	}
	be.AppendRows(c.K.Data, rows*Dh, k.Data, B*H, T*Dh, pos, Dh)
	be.AppendRows(c.V.Data, rows*Dh, v.Data, B*H, T*Dh, pos, Dh)
	be.Axpy(float64(T), c.one, pos)
	c.n += T
	return c.K, c.V
}

// Free returns the cached keys and values; the cache is empty again, at
// position 0.
func (c *KVCache) Free() {
	nn.FreeBuffers(c.be, c.pos, c.one)
	for _, t := range []*nn.Tensor{c.K, c.V} {
		if t != nil {
			c.be.Free(t.Data)
		}
	}
	c.K, c.V, c.n, c.pos, c.one = nil, nil, 0, nil, nil
}

// Bytes is the size of the keys and values consumed: 2·B·n·d elements
// (of the activations' type), growing linearly with the tokens, as
// evaluation's projection of a state's size expects; the rows allocated
// ahead of them are the device's, counted in its peak memory.
func (c *KVCache) Bytes() int64 {
	if c.K == nil {
		return 0
	}
	rows := int64(c.K.Dim(2))
	return nn.BufferBytes(c.be, c.K.Data, c.V.Data) / rows * int64(c.n)
}

// NewState returns the layer's empty KV cache.
func (blk *Block) NewState(int) arch.LayerState { return &KVCache{be: blk.be, maxLen: blk.maxLen} }
