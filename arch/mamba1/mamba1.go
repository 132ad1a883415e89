// Package mamba1 is the Mamba-1 language model (registered as "mamba1"):
// pre-norm residual blocks whose mixer is mamba_ssm's Mamba module (input
// projection, causal depthwise conv, selective scan with input-dependent
// δ, B, C, SiLU gate, output projection), as in Gu & Dao, "Mamba:
// Linear-Time Sequence Modeling with Selective State Spaces" (2023).
package mamba1

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
		Name: "mamba1",
		Doc:  "Mamba-1: selective state space blocks (mamba_ssm's Mamba mixer), RMSNorm | LayerNorm, tied LM head",
		New:  func() arch.Config { return DefaultConfig() },
	})
}

// Config is mamba1's model block. Names and defaults follow mamba_ssm's
// Mamba module and MambaConfig.
type Config struct {
	Arch    string `yaml:"arch"`
	DModel  int    `yaml:"d_model"`
	NLayers int    `yaml:"n_layers"`
	DState  int    `yaml:"d_state"` // N, the state size per channel
	Expand  int    `yaml:"expand"`  // E: the mixer works on E·d_model channels
	DConv   int    `yaml:"d_conv"`  // width of the causal depthwise conv
	// DtRank is the rank of the δ projection; 0 means mamba_ssm's "auto",
	// ceil(d_model/16).
	DtRank int `yaml:"dt_rank"`
	// DtMin and DtMax bound the initial δ = softplus(dt_proj.bias), drawn
	// log-uniformly between them.
	DtMin         float64 `yaml:"dt_min"`
	DtMax         float64 `yaml:"dt_max"`
	Norm          string  `yaml:"norm"` // rmsnorm | layernorm (with bias, as torch.nn.LayerNorm)
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

// dt initialisation constants of mamba_ssm's Mamba (not configurable
// there either without code changes).
const (
	dtInitFloor = 1e-4
	dtScale     = 1.0
)

// DefaultConfig holds the defaults a model block starts from.
func DefaultConfig() *Config {
	return &Config{Arch: "mamba1", DModel: 64, NLayers: 2, DState: 16, Expand: 2, DConv: 4,
		DtMin: 1e-3, DtMax: 0.1, Norm: "rmsnorm", NormEps: 1e-5, TieEmbeddings: true}
}

// dtRank resolves dt_rank 0 to ceil(d_model/16).
func (c *Config) dtRank() int {
	if c.DtRank > 0 {
		return c.DtRank
	}
	return (c.DModel + 15) / 16
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

func (c *Config) inner() int { return c.Expand * c.DModel }

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
	if c.Arch != "" && c.Arch != "mamba1" {
		return arch.FieldError("arch", strconv.Quote(c.Arch), "this config is for mamba1")
	}
	for _, err := range []error{
		inRange("d_model", c.DModel, 1),
		inRange("n_layers", c.NLayers, 1),
		inRange("d_state", c.DState, 1),
		inRange("expand", c.Expand, 1),
		inRange("d_conv", c.DConv, 1),
		inRange("d_intermediate", c.DIntermediate, 0),
		inRange("dt_rank", c.DtRank, 0),
		arch.FinitePositive("dt_min", c.DtMin),
		arch.FinitePositive("dt_max", c.DtMax),
		arch.OneOf("norm", c.Norm, "rmsnorm", "layernorm"),
		arch.FinitePositive("norm_eps", c.NormEps),
	} {
		if err != nil {
			return err
		}
	}
	if c.DtMin > c.DtMax {
		return arch.FieldError("dt_min", c.DtMin, fmt.Sprintf("must be ≤ dt_max = %g", c.DtMax))
	}
	if c.inner() > maxDim {
		return arch.FieldError("expand", c.Expand, fmt.Sprintf("expand·d_model must be ≤ %d, d_model = %d", maxDim, c.DModel))
	}
	return nil
}

// NumParams counts, with E = expand·d, R = dt_rank, N = d_state, W = d_conv:
//
//	V·d                                   token embedding
//	n_layers · (norm + mixer + mlp)       blocks
//	norm                                  final norm
//	V·d                                   LM head (untied)
//	V                                     LM head bias (head_bias)
//
// mixer = 2E·d (in_proj) + E·W + E (conv1d) + E·(R + 2N) (x_proj) +
// R·E + E (dt_proj) + E·N (A_log) + E (D) + E·d (out_proj),
// norm = d (+ d for LayerNorm's bias) and mlp = norm + 3·h·d with
// h = d_intermediate (0 without).
func (c *Config) NumParams(vocab, maxLen int) int {
	d, E, R, N, W := c.DModel, c.inner(), c.dtRank(), c.DState, c.DConv
	norm := d
	if c.Norm == "layernorm" {
		norm += d
	}
	mixer := 2*E*d + E*W + E + E*(R+2*N) + R*E + E + E*N + E + E*d
	n := vocab*d + c.NLayers*(norm+mixer+arch.MLPBranchParams(norm, d, c.DIntermediate)) + norm
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
	if err := env.Check("mamba1"); err != nil {
		return nil, err
	}
	return build(c, env), nil
}

// Model is the built Mamba-1 language model: the shared trunk (embedding,
// final norm, tied or untied head) around Mamba blocks.
type Model = arch.LM[*Block]

// Block is one pre-norm residual block, x += mixer(norm(x)), followed with
// d_intermediate by a second, x += mlp(norm2(x)).
type Block struct {
	Norm           nn.Layer
	Mixer          *Mixer
	arch.MLPBranch // the GatedMLP branch (nil fields without d_intermediate)
	cfg            *Config
	be             nn.Backend
	negOne         *nn.Tensor // (E, N) of −1, shared by the layers: A = negOne ⊙ exp(A_log)
	lowpState      bool       // arch.Env.LowpState
}

// Mixer is mamba_ssm's Mamba module without biases on the projections:
//
//	[x | z] = in_proj(h)                             (B·L, 2E)
//	x = SiLU(conv1d(x))                              causal, depthwise, width W
//	[dt | B | C] = x_proj(x)                         (B·L, R + 2N)
//	δ = softplus(dt_proj.weight·dt + dt_proj.bias)   inside the scan
//	y = selective_scan(x, δ, A = −exp(A_log), B, C, D) · SiLU(z)
//	out = out_proj(y)
//
// Conv and scan run in mamba_ssm's (B, E, L) layout; the projections work
// on (B·L, ·) rows.
type Mixer struct {
	InProj  *nn.Linear // d → 2E, [x | z]
	ConvW   *nn.Tensor // (E, W): torch's conv1d.weight (E, 1, W) without the 1
	ConvB   *nn.Tensor // (E)
	XProj   *nn.Linear // E → R + 2N, [dt | B | C]
	DtProj  *nn.Linear // R → E with bias; the bias is the scan's delta_bias
	ALog    *nn.Tensor // (E, N)
	D       *nn.Tensor // (E)
	OutProj *nn.Linear // E → d
	E, N, R int
}

// build allocates the layers and initializes them as mamba_ssm does
// (Mamba.__init__ and MixerModel's _init_weights): torch's Linear and Conv1d
// defaults, dt_proj.weight ~ U(±R^−½), dt_proj.bias = softplus⁻¹(δ0) with δ0
// log-uniform in [dt_min, dt_max] floored at 1e−4, A_log = log(1..N) (S4D
// real), D = 1, out_proj.weight scaled by 1/√n_layers (one residual branch
// per layer), embeddings N(0, 0.02²).
func build(c *Config, env arch.Env) *Model {
	be, d := env.Backend, c.DModel
	return arch.NewLM(env, arch.Trunk[*Block]{Name: "mamba1", DModel: d, NLayers: c.NLayers,
		Norm: func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, true) },
		Tie:  c.TieEmbeddings, HeadBias: c.HeadBias, NewBlock: c.BlockBuilder(env)})
}

// BlockBuilder returns the function that draws one block from env.RNG, as
// Build's trunk calls it for each layer; the hybrid arch calls it for its
// mamba1 layers. c must be valid; n_layers scales out_proj (and fc2).
func (c *Config) BlockBuilder(env arch.Env) func(int) *Block {
	be, rng, d := env.Backend, env.RNG, c.DModel
	cfg := *c
	E, N := c.inner(), c.DState
	negOne := make([]float64, E*N)
	for i := range negOne {
		negOne[i] = -1
	}
	blk := &Block{cfg: &cfg, be: be, negOne: nn.NewConst(be, negOne, E, N), lowpState: env.LowpState}
	norm := func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, true) }
	return func(int) *Block {
		b := *blk
		b.Mixer = newMixer(&cfg, be, rng)
		if c.DIntermediate > 0 {
			b.MLP = nn.NewGatedMLP(be, d, c.DIntermediate, rng)
			be.Scale(b.MLP.FC2.W.Data, 1/math.Sqrt(float64(c.residuals()*c.NLayers)))
			b.Norm2 = norm()
		}
		b.Norm = norm()
		return &b
	}
}

// newMixer draws one layer's mixer.
func newMixer(c *Config, be nn.Backend, rng *rand.Rand) *Mixer {
	d, E, N, R, W := c.DModel, c.inner(), c.DState, c.dtRank(), c.DConv
	mx := &Mixer{E: E, N: N, R: R}
	mx.InProj = nn.NewLinear(be, d, 2*E, false, rng)
	mx.ConvW, mx.ConvB = nn.NewParam(be, E, W), nn.NewParam(be, E)
	nn.KaimingUniform(be, mx.ConvW, W, rng) // fan_in = in_channels/groups · W = W
	nn.KaimingUniform(be, mx.ConvB, W, rng)
	mx.XProj = nn.NewLinear(be, E, R+2*N, false, rng)
	mx.DtProj = nn.NewLinear(be, R, E, true, rng)
	std := dtScale / math.Sqrt(float64(R))
	nn.Uniform(be, mx.DtProj.W, -std, std, rng)
	bias := make([]float64, E)
	lo, hi := math.Log(c.DtMin), math.Log(c.DtMax)
	for i := range bias {
		dt := max(math.Exp(lo+(hi-lo)*rng.Float64()), dtInitFloor)
		bias[i] = dt + math.Log(-math.Expm1(-dt)) // softplus⁻¹(dt)
	}
	be.Write(mx.DtProj.B.Data, bias)
	mx.ALog, mx.D = nn.NewParam(be, E, N), nn.NewParam(be, E)
	alog := make([]float64, E*N)
	for i := range alog {
		alog[i] = math.Log(float64(i%N + 1))
	}
	be.Write(mx.ALog.Data, alog)
	nn.Ones(be, mx.D)
	mx.OutProj = nn.NewLinear(be, E, d, false, rng)
	be.Scale(mx.OutProj.W.Data, 1/math.Sqrt(float64(c.residuals()*c.NLayers)))
	return mx
}

// PositionFree: the conv and scan states advance in place (arch.PositionFree).
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

// Forward maps h (B·L, d) to (B·L, d). negOne is an (E, N) constant of −1.
// With a layer state, the conv and the scan start from it and advance it.
//
// The projections into and out of the conv and the scan's (B, E, L)
// layout read the blocks they need in place: in_proj's x and z halves,
// x_proj's dt columns. For L > 1 they are channels-first products
// (nn.LinearToChannels, LinearFromChannels); at L = 1 the two layouts are
// the same memory, and one GEMM for the whole batch (nn.LinearBlock, then
// reshapes) beats B products of one column. No slice or layout copy
// remains but those of the small B and C (N columns each).
func (mx *Mixer) Forward(tp *nn.Tape, h, negOne *nn.Tensor, B, L int, st *arch.ConvScan) *nn.Tensor {
	E, N, R := mx.E, mx.N, mx.R
	toBCL, rows, drop := arch.ChannelsFirst(tp, B, L)
	// in is rows [row0, row0+E) of w times columns [col0, col0+k) of x,
	// as (B, E, L).
	in := func(x *nn.Tensor, col0, k int, w *nn.Tensor, row0 int) *nn.Tensor {
		return arch.LinearIntoChannels(tp, x, col0, k, w, row0, E, B, L)
	}
	// out is w times x (B, E, L), as (B·L, ·) rows.
	out := func(x, w *nn.Tensor) *nn.Tensor {
		if L > 1 {
			return tp.LinearFromChannels(x, w, B, L)
		}
		return tp.Linear(rows(x, E), w, nil)
	}
	d := h.Dim(-1)
	xin, z := in(h, 0, d, mx.InProj.W, 0), in(h, 0, d, mx.InProj.W, E)
	var convState, ssm nn.Buffer // the scan's state advances in place (H0 = HT)
	if st != nil {
		convState, ssm = st.Conv, st.SSM
	}
	x := tp.Conv1D(xin, mx.ConvW, mx.ConvB, nn.SiLU, convState) // (B, E, L)
	// mamba_ssm passes dt_proj.weight·dt as delta and the bias as delta_bias,
	// so the bias is added in the scan before the softplus.
	dbl := out(x, mx.XProj.W) // (B·L, R + 2N), [dt | B | C]
	deltaBCL := in(dbl, 0, R, mx.DtProj.W, 0)
	// Each intermediate is dropped once this code has read it for the last
	// time: the step then keeps only what the backward reads (the tape
	// knows which), not the layout copies between the ops.
	bs, cs := tp.Slice(dbl, R, N), tp.Slice(dbl, R+N, N)
	tp.Drop(dbl)
	Bm, Cm := toBCL(bs, N), toBCL(cs, N)
	drop(bs, cs)
	A := tp.Derived(mx.ALog, "A", func(tp *nn.Tape) *nn.Tensor { return tp.Mul(negOne, tp.Act(nn.Exp, mx.ALog)) })
	y := tp.SelectiveScan(nn.ScanInputs{
		U: x, Delta: deltaBCL, A: A, Bm: Bm, Cm: Cm,
		D: mx.D, Z: z, DeltaBias: mx.DtProj.B, DeltaSoftplus: true,
		H0: ssm, HT: ssm,
	})
	return out(y, mx.OutProj.W)
}

// Params lists the layer's weights with mamba_ssm's module names without
// its "backbone." prefix: layers.i.{norm, mixer.*} (the trunk adds embed,
// norm_f and lm_head). Weight decay applies to the projection and conv
// weights only; A_log, D, dt_proj.bias, the conv bias and the norm take
// none (mamba_ssm marks A_log and D _no_weight_decay).
func (blk *Block) Params(layer int) []nn.Param {
	p := arch.LayerPrefix(layer)
	ps := blk.Norm.Params(p + ".norm")
	mx, q := blk.Mixer, p+".mixer"
	ps = append(ps, mx.InProj.Params(q+".in_proj")...)
	ps = append(ps, nn.Param{Name: q + ".conv1d.weight", T: mx.ConvW, Decay: true},
		nn.Param{Name: q + ".conv1d.bias", T: mx.ConvB})
	ps = append(ps, mx.XProj.Params(q+".x_proj")...)
	ps = append(ps, mx.DtProj.Params(q+".dt_proj")...)
	ps = append(ps, nn.Param{Name: q + ".A_log", T: mx.ALog}, nn.Param{Name: q + ".D", T: mx.D})
	ps = append(ps, mx.OutProj.Params(q+".out_proj")...)
	return append(ps, blk.MLPBranch.Params(p)...)
}

// FLOPsPerToken counts a multiply-add as 2 FLOPs, with E = expand·d:
//
//	2·(2E·d + E·(R + 2N) + R·E + E·d)   in_proj, x_proj, dt_proj, out_proj
//	+ 2·E·W                             the depthwise conv
//	+ 9·E·N + 2·E                       the selective scan, counted as
//	                                    mamba_ssm's benchmarks do (9·B·L·D·N:
//	                                    δ·A, exp, δ·B·u, the state update
//	                                    a·h + b, C·h and its sum) plus the D
//	                                    skip and the z gate
//	+ 6·h·d                             the GatedMLP (h = d_intermediate)
//
// per layer (the trunk adds 2·d·V for the LM head). It does not depend on
// L: the scan is linear in time. Norms, softplus, SiLU, biases and residual
// adds are not counted.
func (blk *Block) FLOPsPerToken(int) float64 {
	c := blk.cfg
	d, E, R, N, W := float64(c.DModel), float64(c.inner()), float64(c.dtRank()), float64(c.DState), float64(c.DConv)
	return 2*(2*E*d+E*(R+2*N)+R*E+E*d) + 2*E*W + 9*E*N + 2*E + 6*float64(c.DIntermediate)*d
}

// NewState returns the layer's zero state for B sequences: the conv's last
// W−1 inputs (B, E, W−1) and the scan's (B, E, N).
func (blk *Block) NewState(B int) arch.LayerState {
	E, N, W := blk.cfg.inner(), blk.cfg.DState, blk.cfg.DConv
	return arch.NewConvScan(blk.be, B*E*(W-1), B*E*N, blk.lowpState)
}
