// Package mamba2 is the Mamba-2 language model (registered as "mamba2"):
// pre-norm residual blocks whose mixer is mamba_ssm's Mamba2 module (one
// input projection, causal depthwise conv over [x, B, C], the chunked state
// space dual with a scalar decay per head, gated RMSNorm, output
// projection), as in Dao & Gu, "Transformers are SSMs: Generalized Models
// and Efficient Algorithms Through Structured State Space Duality" (2024).
package mamba2

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
		Name: "mamba2",
		Doc:  "Mamba-2: SSD blocks (mamba_ssm's Mamba2 mixer: chunked state space dual, gated RMSNorm), RMSNorm, tied LM head",
		New:  func() arch.Config { return DefaultConfig() },
	})
}

// Config is mamba2's model block. Names and defaults follow mamba_ssm's
// Mamba2 module: d_state 128 as there and in the released checkpoints
// (64 is Mamba2Simple's default); tiny models set less.
type Config struct {
	Arch    string `yaml:"arch"`
	DModel  int    `yaml:"d_model"`
	NLayers int    `yaml:"n_layers"`
	DState  int    `yaml:"d_state"` // N, the state size per head and channel
	Expand  int    `yaml:"expand"`  // E: the mixer works on E·d_model channels
	// HeadDim is P, the channels per head: nheads = expand·d_model/headdim.
	HeadDim int `yaml:"headdim"`
	// NGroups is the number of B, C groups (as grouped-query attention's
	// key/value heads); it divides nheads.
	NGroups   int `yaml:"ngroups"`
	DConv     int `yaml:"d_conv"`     // width of the causal depthwise conv
	ChunkSize int `yaml:"chunk_size"` // the SSD's chunk length (results do not depend on it)
	// DtMin and DtMax bound the initial dt = softplus(dt_bias), drawn
	// log-uniformly between them.
	DtMin         float64 `yaml:"dt_min"`
	DtMax         float64 `yaml:"dt_max"`
	NormEps       float64 `yaml:"norm_eps"`
	TieEmbeddings bool    `yaml:"tie_embeddings"`
	// HeadBias gives the untied LM head a bias (zero at init), as MAD's
	// models have; it needs tie_embeddings false. (omitempty keeps it out
	// of resolved configs, and run ids, when false.)
	HeadBias bool `yaml:"head_bias,omitempty"`
	// DIntermediate, when > 0, gives every block a second residual branch
	// after the mixer, x += mlp(norm2(x)) with mamba_ssm's GatedMLP of
	// hidden width d_intermediate (MAD's Mamba with interleaved SwiGLU
	// layers); 0, mamba_ssm's default, has none. (omitempty keeps it out of
	// resolved configs, and run ids, at 0.)
	DIntermediate int `yaml:"d_intermediate,omitempty"`
}

// Initialisation constants of mamba_ssm's Mamba2 (constructor arguments
// there, fixed here).
const (
	dtInitFloor = 1e-4
	aInitMin    = 1.0 // A_init_range: A = −U(1, 16)
	aInitMax    = 16.0
)

// DefaultConfig holds the defaults a model block starts from.
func DefaultConfig() *Config {
	return &Config{Arch: "mamba2", DModel: 64, NLayers: 2, DState: 128, Expand: 2, HeadDim: 64, NGroups: 1,
		DConv: 4, ChunkSize: 256, DtMin: 1e-3, DtMax: 0.1, NormEps: 1e-5, TieEmbeddings: true}
}

// residuals is the number of residual branches per block: the mixer, and
// the MLP when d_intermediate > 0. mamba_ssm scales out_proj and fc2 by
// 1/√(residuals·n_layers).
func (c *Config) residuals() int {
	if c.DIntermediate > 0 {
		return 2
	}
	return 1
}

func (c *Config) inner() int   { return c.Expand * c.DModel }
func (c *Config) nHeads() int  { return c.inner() / c.HeadDim }
func (c *Config) convDim() int { return c.inner() + 2*c.NGroups*c.DState }

// Validate checks every field; errors name the field, the value and what is
// allowed.
func (c *Config) Validate() error {
	if c.HeadBias && c.TieEmbeddings {
		return arch.FieldError("head_bias", true, "needs tie_embeddings false: a tied head is the embedding table, without a bias")
	}
	const maxDim = 1 << 24
	inRange := func(field string, v, lo int) error {
		if v < lo || v > maxDim {
			return arch.FieldError(field, v, fmt.Sprintf("must be in [%d, %d]", lo, maxDim))
		}
		return nil
	}
	if c.Arch != "" && c.Arch != "mamba2" {
		return arch.FieldError("arch", strconv.Quote(c.Arch), "this config is for mamba2")
	}
	for _, err := range []error{
		inRange("d_model", c.DModel, 1),
		inRange("n_layers", c.NLayers, 1),
		inRange("d_state", c.DState, 1),
		inRange("expand", c.Expand, 1),
		inRange("headdim", c.HeadDim, 1),
		inRange("ngroups", c.NGroups, 1),
		inRange("d_conv", c.DConv, 1),
		inRange("d_intermediate", c.DIntermediate, 0),
		inRange("chunk_size", c.ChunkSize, 1),
		arch.FinitePositive("dt_min", c.DtMin),
		arch.FinitePositive("dt_max", c.DtMax),
		arch.FinitePositive("norm_eps", c.NormEps),
	} {
		if err != nil {
			return err
		}
	}
	if c.DtMin > c.DtMax {
		return arch.FieldError("dt_min", c.DtMin, fmt.Sprintf("must be ≤ dt_max = %g", c.DtMax))
	}
	if c.inner() > maxDim || c.convDim() > maxDim {
		return arch.FieldError("expand", c.Expand, fmt.Sprintf(
			"expand·d_model + 2·ngroups·d_state must be ≤ %d, d_model = %d, ngroups = %d, d_state = %d",
			maxDim, c.DModel, c.NGroups, c.DState))
	}
	if c.inner()%c.HeadDim != 0 {
		return arch.FieldError("headdim", c.HeadDim, fmt.Sprintf(
			"must divide expand·d_model = %d·%d = %d, the channels the heads split", c.Expand, c.DModel, c.inner()))
	}
	if H := c.nHeads(); H%c.NGroups != 0 {
		return arch.FieldError("ngroups", c.NGroups, fmt.Sprintf(
			"must divide the number of heads expand·d_model/headdim = %d/%d = %d", c.inner(), c.HeadDim, H))
	}
	return nil
}

// NumParams counts, with E = expand·d, H = E/headdim heads, G = ngroups,
// N = d_state, W = d_conv and the conv's channels K = E + 2·G·N:
//
//	V·d                                   token embedding
//	n_layers · (d + mixer + mlp)          blocks (RMSNorm + mixer, MLP)
//	d                                     final norm
//	V·d                                   LM head (untied)
//	V                                     LM head bias (head_bias)
//
// mixer = d·(2E + 2G·N + H) (in_proj) + K·W + K (conv1d) + 3H (dt_bias,
// A_log, D) + E (gated norm) + E·d (out_proj); mlp = d + 3·h·d with
// h = d_intermediate (0 without).
func (c *Config) NumParams(vocab, maxLen int) int {
	d, E, H, G, N, W, K := c.DModel, c.inner(), c.nHeads(), c.NGroups, c.DState, c.DConv, c.convDim()
	mixer := d*(2*E+2*G*N+H) + K*W + K + 3*H + E + E*d
	n := vocab*d + c.NLayers*(d+mixer+arch.MLPBranchParams(d, d, c.DIntermediate)) + d
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
	if err := env.Check("mamba2"); err != nil {
		return nil, err
	}
	return build(c, env), nil
}

// Model is the built Mamba-2 language model: the shared trunk (embedding,
// final RMSNorm, tied or untied head) around Mamba-2 blocks.
type Model = arch.LM[*Block]

// Block is one pre-norm residual block, x += mixer(norm(x)), followed with
// d_intermediate by a second, x += mlp(norm2(x)).
type Block struct {
	Norm           *nn.RMSNorm
	Mixer          *Mixer
	arch.MLPBranch // the GatedMLP branch (nil fields without d_intermediate)
	cfg            *Config
	be             nn.Backend
	negOne         *nn.Tensor // (H) of −1, shared by the layers: A = negOne ⊙ exp(A_log)
	lowpState      bool       // arch.Env.LowpState
}

// Mixer is mamba_ssm's Mamba2 module (without its d_ssm < d_inner option,
// which would add a gated-MLP branch):
//
//	[z | x | B | C | dt] = in_proj(h)          (B·L, E | E | G·N | G·N | H)
//	[x | B | C] = SiLU(conv1d([x | B | C]))    causal, depthwise, width W
//	y = SSD(x, dt, A = −exp(A_log), B, C, D, dt_bias, softplus)   (B, L, H, P)
//	y = RMSNorm_g(y · SiLU(z)) · norm.weight   per group of E/G channels
//	out = out_proj(y)
//
// The conv runs in the (B, channels, L) layout; the SSD takes (B, L, H, P)
// and (B, L, G, N), which are the projection's rows reshaped.
type Mixer struct {
	InProj  *nn.Linear // d → 2E + 2G·N + H
	ConvW   *nn.Tensor // (K, W): torch's conv1d.weight (K, 1, W) without the 1
	ConvB   *nn.Tensor // (K)
	DtBias  *nn.Tensor // (H)
	ALog    *nn.Tensor // (H)
	D       *nn.Tensor // (H)
	NormW   *nn.Tensor // (E): the gated RMSNorm's weight
	OutProj *nn.Linear // E → d

	E, H, P, G, N, Chunk int
	Eps                  float64
}

// build allocates the layers and initializes them as mamba_ssm does
// (Mamba2.__init__ and MixerModel's _init_weights): torch's Linear and
// Conv1d defaults, dt_bias = softplus⁻¹(dt) with dt log-uniform in
// [dt_min, dt_max] floored at 1e−4, A_log = log U(1, 16), D = 1, norm
// weights 1, out_proj.weight scaled by 1/√n_layers (one residual branch per
// layer), embeddings N(0, 0.02²).
func build(c *Config, env arch.Env) *Model {
	be, d := env.Backend, c.DModel
	return arch.NewLM(env, arch.Trunk[*Block]{Name: "mamba2", DModel: d, NLayers: c.NLayers,
		Norm: func() nn.Layer { return nn.NewRMSNorm(be, d, c.NormEps) }, Tie: c.TieEmbeddings, HeadBias: c.HeadBias,
		NewBlock: c.BlockBuilder(env)})
}

// BlockBuilder returns the function that draws one block from env.RNG, as
// Build's trunk calls it for each layer; the hybrid arch calls it for its
// mamba2 layers. c must be valid; n_layers scales out_proj (and fc2).
func (c *Config) BlockBuilder(env arch.Env) func(int) *Block {
	be, rng, d, H := env.Backend, env.RNG, c.DModel, c.nHeads()
	cfg := *c
	negOne := make([]float64, H)
	for i := range negOne {
		negOne[i] = -1
	}
	blk := &Block{cfg: &cfg, be: be, negOne: nn.NewConst(be, negOne, H), lowpState: env.LowpState}
	return func(int) *Block {
		b := *blk
		b.Mixer = newMixer(&cfg, be, rng)
		if c.DIntermediate > 0 {
			b.MLP = nn.NewGatedMLP(be, d, c.DIntermediate, rng)
			be.Scale(b.MLP.FC2.W.Data, 1/math.Sqrt(float64(c.residuals()*c.NLayers)))
			b.Norm2 = nn.NewRMSNorm(be, d, c.NormEps)
		}
		b.Norm = nn.NewRMSNorm(be, d, c.NormEps)
		return &b
	}
}

// newMixer draws one layer's mixer.
func newMixer(c *Config, be nn.Backend, rng *rand.Rand) *Mixer {
	d, E, H, G, N, W, K := c.DModel, c.inner(), c.nHeads(), c.NGroups, c.DState, c.DConv, c.convDim()
	mx := &Mixer{E: E, H: H, P: c.HeadDim, G: G, N: N, Chunk: c.ChunkSize, Eps: c.NormEps}
	mx.InProj = nn.NewLinear(be, d, 2*E+2*G*N+H, false, rng)
	mx.ConvW, mx.ConvB = nn.NewParam(be, K, W), nn.NewParam(be, K)
	nn.KaimingUniform(be, mx.ConvW, W, rng) // fan_in = in_channels/groups · W = W
	nn.KaimingUniform(be, mx.ConvB, W, rng)
	bias, alog := make([]float64, H), make([]float64, H)
	lo, hi := math.Log(c.DtMin), math.Log(c.DtMax)
	for i := range bias {
		dt := max(math.Exp(lo+(hi-lo)*rng.Float64()), dtInitFloor)
		bias[i] = dt + math.Log(-math.Expm1(-dt)) // softplus⁻¹(dt)
	}
	for i := range alog {
		alog[i] = math.Log(aInitMin + (aInitMax-aInitMin)*rng.Float64())
	}
	mx.DtBias, mx.ALog, mx.D = nn.NewParam(be, H), nn.NewParam(be, H), nn.NewParam(be, H)
	be.Write(mx.DtBias.Data, bias)
	be.Write(mx.ALog.Data, alog)
	nn.Ones(be, mx.D)
	mx.NormW = nn.NewParam(be, E)
	nn.Ones(be, mx.NormW)
	mx.OutProj = nn.NewLinear(be, E, d, false, rng)
	be.Scale(mx.OutProj.W.Data, 1/math.Sqrt(float64(c.residuals()*c.NLayers)))
	return mx
}

// PositionFree: the conv and SSD states advance in place (arch.PositionFree).
func (blk *Block) PositionFree() bool { return true }

// Forward maps x (B·L, d) to x + mixer(norm(x)); st is the layer's
// *arch.ConvScan in step mode.
func (blk *Block) Forward(tp *nn.Tape, x *nn.Tensor, B, L, _ int, st arch.LayerState) *nn.Tensor {
	var ls *arch.ConvScan
	if st != nil {
		ls = st.(*arch.ConvScan)
	}
	mixed := blk.Mixer.Forward(tp, blk.Norm.Forward(tp, x), blk.negOne, B, L, ls)
	x = tp.Add(x, mixed)
	tp.Drop(mixed)
	return blk.MLPBranch.Forward(tp, x)
}

// Forward maps h (B·L, d) to (B·L, d). negOne is an (H) constant of −1.
// With a layer state, the conv and the SSD start from it and advance it.
//
// in_proj's three parts, [z | xBC | dt] by its rows, are three products
// that read their block of the weight in place (nn.LinearBlock), xBC
// straight into the conv's (B, K, L) layout for L > 1
// (nn.LinearToChannels): no slice of the fused projection and no layout
// copy before the conv. At L = 1 the layouts coincide.
func (mx *Mixer) Forward(tp *nn.Tape, h, negOne *nn.Tensor, B, L int, st *arch.ConvScan) *nn.Tensor {
	E, H, P, G, N := mx.E, mx.H, mx.P, mx.G, mx.N
	K := E + 2*G*N
	_, rows, drop := arch.ChannelsFirst(tp, B, L)
	d, w := h.Dim(-1), mx.InProj.W // w: (E + K + H, d)
	xbcT := arch.LinearIntoChannels(tp, h, 0, d, w, E, K, B, L)
	// The SSD's state advances in place (H0 = HT).
	var convState, ssm nn.Buffer
	if st != nil {
		convState, ssm = st.Conv, st.SSM
	}
	// Each intermediate is dropped once this code has read it for the last
	// time: the step then keeps only what the backward reads.
	conv := tp.Conv1D(xbcT, mx.ConvW, mx.ConvB, nn.SiLU, convState)
	xbc := rows(conv, K)
	drop(conv)
	x, bm, cm := tp.Slice(xbc, 0, E), tp.Slice(xbc, E, G*N), tp.Slice(xbc, E+G*N, G*N)
	tp.Drop(xbc)
	dt := tp.LinearBlock(h, 0, d, w, E+K, H)
	y := tp.SSD(nn.SSDInputs{
		X:  tp.Reshape(x, B, L, H, P),
		Dt: tp.Reshape(dt, B, L, H),
		A:  tp.Derived(mx.ALog, "A", func(tp *nn.Tape) *nn.Tensor { return tp.Mul(negOne, tp.Act(nn.Exp, mx.ALog)) }),
		Bm: tp.Reshape(bm, B, L, G, N), Cm: tp.Reshape(cm, B, L, G, N),
		D: mx.D, DtBias: mx.DtBias, DtSoftplus: true, Chunk: mx.Chunk,
		H0: ssm, HT: ssm,
	})
	z := tp.LinearBlock(h, 0, d, w, 0, E)
	gate := tp.Act(nn.SiLU, z)
	gated := tp.Mul(tp.Reshape(y, B*L, E), gate)
	tp.Drop(y)
	normed := mx.gatedNorm(tp, gated)
	tp.Drop(gated)
	return mx.OutProj.Forward(tp, normed)
}

// gatedNorm is RMSNormGated's normalisation of the gated y (B·L, E) with
// norm_before_gate = False: each group of E/G channels (mamba_ssm's
// group_size) by its own root mean square, then times NormW.
func (mx *Mixer) gatedNorm(tp *nn.Tape, y *nn.Tensor) *nn.Tensor {
	if mx.G == 1 {
		return tp.RMSNorm(y, mx.NormW, mx.Eps)
	}
	gs := mx.E / mx.G
	w := tp.Reshape(mx.NormW, 1, mx.E)
	parts := make([]*nn.Tensor, mx.G)
	for g := range parts {
		parts[g] = tp.RMSNorm(tp.Slice(y, g*gs, gs), tp.Slice(w, g*gs, gs), mx.Eps)
	}
	return tp.Concat(parts...)
}

// Params lists the layer's weights with mamba_ssm's module names without
// its "backbone." prefix: layers.i.{norm, mixer.*} (the trunk adds embed,
// norm_f and lm_head). Weight decay applies to the projection and conv
// weights only; A_log, D, dt_bias, the conv bias and the norms take none
// (mamba_ssm marks A_log, D and dt_bias _no_weight_decay).
func (blk *Block) Params(layer int) []nn.Param {
	p := arch.LayerPrefix(layer)
	ps := blk.Norm.Params(p + ".norm")
	mx, q := blk.Mixer, p+".mixer"
	ps = append(ps, mx.InProj.Params(q+".in_proj")...)
	ps = append(ps, nn.Param{Name: q + ".conv1d.weight", T: mx.ConvW, Decay: true},
		nn.Param{Name: q + ".conv1d.bias", T: mx.ConvB},
		nn.Param{Name: q + ".dt_bias", T: mx.DtBias},
		nn.Param{Name: q + ".A_log", T: mx.ALog},
		nn.Param{Name: q + ".D", T: mx.D},
		nn.Param{Name: q + ".norm.weight", T: mx.NormW})
	ps = append(ps, mx.OutProj.Params(q+".out_proj")...)
	return append(ps, blk.MLPBranch.Params(p)...)
}

// FLOPsPerToken counts a multiply-add as 2 FLOPs, with E = expand·d,
// H heads of P = headdim channels, G groups, N = d_state, W = d_conv,
// K = E + 2G·N:
//
//	2·(d·(2E + 2G·N + H) + E·d)     in_proj, out_proj
//	+ 2·K·W                         the depthwise conv
//	+ 2·q·(G·N + H·P)               intra-chunk: C·Bᵀ (per group) and its
//	                                masked product with X (per head)
//	+ 4·H·P·N                       chunk states and state → output
//	+ 2·H·P·N·chunks/L              the inter-chunk recurrence
//	+ 2·E                           the D skip
//	+ 6·h·d                         the GatedMLP (h = d_intermediate)
//
// per layer (the trunk adds 2·d·V for the LM head). q is the mean number of earlier
// steps (itself included) a step sees inside its chunk: Σ_c n_c(n_c+1)/2 / L
// over the chunks of n_c steps, (chunk_size+1)/2 when L is a multiple of
// chunk_size. Embedding lookups, norms, the gate, softplus, exp, SiLU,
// biases and residual adds are not counted.
func (blk *Block) FLOPsPerToken(L int) float64 {
	c := blk.cfg
	d, E, H, P := float64(c.DModel), float64(c.inner()), float64(c.nHeads()), float64(c.HeadDim)
	G, N, W, K := float64(c.NGroups), float64(c.DState), float64(c.DConv), float64(c.convDim())
	q, chunks := 0.0, 0.0
	if L > 0 {
		pairs := 0
		for t0 := 0; t0 < L; t0 += c.ChunkSize {
			n := min(c.ChunkSize, L-t0)
			pairs += n * (n + 1) / 2
			chunks++
		}
		q = float64(pairs) / float64(L)
		chunks /= float64(L)
	}
	return 2*(d*(2*E+2*G*N+H)+E*d) + 2*K*W + 2*q*(G*N+H*P) + 4*H*P*N + 2*H*P*N*chunks + 2*E + 6*float64(c.DIntermediate)*d
}

// NewState returns the layer's zero state for B sequences: the conv's last
// W−1 inputs (B, K, W−1) and the SSD's (B, H, P, N).
func (blk *Block) NewState(B int) arch.LayerState {
	c := blk.cfg
	return arch.NewConvScan(blk.be, B*c.convDim()*(c.DConv-1), B*c.nHeads()*c.HeadDim*c.DState, blk.lowpState)
}
