// Package ssm holds the linear time-invariant state space models; "s4d" is
// the diagonal S4 of Gu et al. 2022 ("On the Parameterization and
// Initialization of Diagonal State Space Models") after the S4D standalone
// reference (state-spaces/s4, models/s4/s4d.py): a convolution kernel from
// N/2 complex modes per channel, applied by FFT in parallel mode and as a
// recurrence in step mode.
package ssm

import (
	"fmt"
	"math"
	"strconv"

	"seqbench/arch"
	"seqbench/nn"
)

func init() {
	arch.Register(arch.Spec{
		Name: "s4d",
		Doc:  "diagonal LTI state space model S4D (FFT convolution; S4D-Lin | Inv | Real init; GLU | linear output)",
		New:  func() arch.Config { return DefaultConfig() },
	})
}

// Config is the s4d model block.
type Config struct {
	Arch    string `yaml:"arch"`
	DModel  int    `yaml:"d_model"`
	NLayers int    `yaml:"n_layers"`
	// DState is N, the real state size of a channel: N/2 complex modes,
	// their conjugates implied (so it must be even).
	DState int    `yaml:"d_state"`
	Init   string `yaml:"init"`   // lin | inv | real (S4D-Lin, S4D-Inv, S4D-Real)
	Output string `yaml:"output"` // glu | linear
	Norm   string `yaml:"norm"`   // layernorm | rmsnorm
	// DtMin and DtMax bound the log-uniform init of each channel's step.
	DtMin         float64 `yaml:"dt_min"`
	DtMax         float64 `yaml:"dt_max"`
	NormEps       float64 `yaml:"norm_eps"`
	TieEmbeddings bool    `yaml:"tie_embeddings"`
	// KernelLR, when > 0, puts the kernel's log_dt, log_A_real and A_imag in
	// an optimizer group of their own with peak lr min(kernel_lr, lr) and
	// no weight decay: the S4 repository's convention is 0.001. 0 (the
	// default) trains them with the rest.
	// (omitempty keeps it out of resolved configs, and so run ids, at 0).
	KernelLR float64 `yaml:"kernel_lr,omitempty"`
}

// DefaultConfig holds the defaults a model block starts from: the S4D
// reference's d_state 64, S4D-Lin, GLU output, dt in [1e-3, 0.1] and
// LayerNorm (with bias, as its example model).
func DefaultConfig() *Config {
	return &Config{Arch: "s4d", DModel: 64, NLayers: 2, DState: 64, Init: "lin", Output: "glu",
		Norm: "layernorm", DtMin: 1e-3, DtMax: 0.1, NormEps: 1e-5, TieEmbeddings: true}
}

// Validate checks every field; errors name the field, the value and what
// is allowed.
func (c *Config) Validate() error {
	if c.Arch != "" && c.Arch != "s4d" {
		return arch.FieldError("arch", strconv.Quote(c.Arch), "this config is for s4d")
	}
	for _, err := range []error{
		arch.Positive("d_model", c.DModel),
		arch.Positive("n_layers", c.NLayers),
		arch.OneOf("init", c.Init, "lin", "inv", "real"),
		arch.OneOf("output", c.Output, "glu", "linear"),
		arch.OneOf("norm", c.Norm, "layernorm", "rmsnorm"),
		arch.FinitePositive("norm_eps", c.NormEps),
		arch.FinitePositive("dt_min", c.DtMin),
		arch.FinitePositive("dt_max", c.DtMax),
	} {
		if err != nil {
			return err
		}
	}
	if c.KernelLR < 0 || math.IsNaN(c.KernelLR) || math.IsInf(c.KernelLR, 0) {
		return arch.FieldError("kernel_lr", c.KernelLR, "must be finite and ≥ 0 (0: the run's lr)")
	}
	if c.DState < 2 || c.DState%2 != 0 {
		return arch.FieldError("d_state", c.DState, "must be even and ≥ 2: d_state/2 complex modes, conjugates implied")
	}
	if c.DtMin > c.DtMax {
		return arch.FieldError("dt_min", c.DtMin, fmt.Sprintf("must be ≤ dt_max = %g", c.DtMax))
	}
	return nil
}

func (c *Config) norm() int {
	if c.Norm == "layernorm" {
		return 2 * c.DModel
	}
	return c.DModel
}

// outWidth is the output linear's width: 2·d for GLU, d for linear.
func (c *Config) outWidth() int {
	if c.Output == "glu" {
		return 2 * c.DModel
	}
	return c.DModel
}

// NumParams counts, in the order they are built (H = d, N = d_state):
//
//	V·d                                   token embedding
//	n_layers · (norm + ssm + out)         blocks
//	norm                                  final norm
//	V·d                                   LM head (untied)
//
// norm = 2d (LayerNorm) or d (RMSNorm); ssm = H (log_dt) + H·N/2 (log_A_real)
// + H·N/2 (A_imag) + H·N (C as real/imag pairs) + H (D) = 2H·(N + 1);
// out = w·d + w with w = 2d for GLU, d for linear.
func (c *Config) NumParams(vocab, maxLen int) int {
	d, w := c.DModel, c.outWidth()
	ssm := 2 * d * (c.DState + 1)
	n := vocab*d + c.NLayers*(c.norm()+ssm+w*d+w) + c.norm()
	if !c.TieEmbeddings {
		n += vocab * d
	}
	return n
}

// Build allocates and initializes the model on env.Backend.
func (c *Config) Build(env arch.Env) (arch.Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := env.Check("s4d"); err != nil {
		return nil, err
	}
	return build(c, env), nil
}

// Model is the built s4d language model: embedding → n_layers pre-norm
// residual S4D blocks → final norm → LM head.
type Model = arch.LM[*Block]

// Block is x += S4D(norm(x)).
type Block struct {
	Norm nn.Layer
	SSM  *S4D
	be   nn.Backend
	// kernel is the optimizer group of log_dt and A (nil: none).
	kernel *nn.ParamGroup
}

// S4D is the layer of the reference's S4D module over H = d_model
// channels: y = GELU(K ∗ u + D·u) with the kernel K of S4DKernel, then the
// position-wise output (Linear H → 2H and GLU, or Linear H → H).
type S4D struct {
	H, N2 int
	// The kernel's parameters as the reference stores them: A_re =
	// −exp(LogAReal) stays negative under any update; C (H, N2, 2) holds
	// real and imaginary parts (torch.view_as_real).
	LogDt    *nn.Tensor // (H)
	LogAReal *nn.Tensor // (H, N2)
	AImag    *nn.Tensor // (H, N2)
	C        *nn.Tensor // (H, N2, 2)
	D        *nn.Tensor // (H)
	Out      *nn.Linear
	GLU      bool
	// minusOne (H, N2) of −1 turns exp(LogAReal) into A_re by a Mul on the
	// tape (nn has no scalar-scale op); it is a constant, not a parameter.
	minusOne *nn.Tensor
}

// build allocates the layers and initializes them as the S4D reference:
// log dt ~ U[log dt_min, log dt_max]; A by init; C complex standard normal
// (N(0, 1/2) per part); D ~ N(0, 1); the output Linear as torch's Conv1d
// (U(±1/√H)); norms 1 (and 0); embedding N(0, 0.02²).
func build(c *Config, env arch.Env) *Model {
	be, d := env.Backend, c.DModel
	return arch.NewLM(env, arch.Trunk[*Block]{Name: "s4d", DModel: d, NLayers: c.NLayers,
		Norm: func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, true) },
		Tie:  c.TieEmbeddings, HeadStd: 0.02, NewBlock: c.BlockBuilder(env)})
}

// BlockBuilder returns the function that draws one block from env.RNG, as
// Build's trunk calls it for each layer; the hybrid arch calls it for its
// s4d layers. c must be valid.
func (c *Config) BlockBuilder(env arch.Env) func(int) *Block {
	be, rng, d := env.Backend, env.RNG, c.DModel
	H, N2 := d, c.DState/2
	norm := func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, true) }
	minus := make([]float64, H*N2)
	for i := range minus {
		minus[i] = -1
	}
	minusOne := nn.NewConst(be, minus, H, N2)
	var kernel *nn.ParamGroup
	if c.KernelLR > 0 {
		kernel = &nn.ParamGroup{Name: "s4d.kernel", MaxLR: c.KernelLR, NoDecay: true}
	}
	return func(int) *Block {
		s := &S4D{H: H, N2: N2, LogDt: nn.NewParam(be, H), LogAReal: nn.NewParam(be, H, N2),
			AImag: nn.NewParam(be, H, N2), C: nn.NewParam(be, H, N2, 2), D: nn.NewParam(be, H),
			GLU: c.Output == "glu", minusOne: minusOne}
		nn.Uniform(be, s.LogDt, math.Log(c.DtMin), math.Log(c.DtMax), rng)
		logARe, aIm := initA(c.Init, H, N2)
		be.Write(s.LogAReal.Data, logARe)
		be.Write(s.AImag.Data, aIm)
		nn.Normal(be, s.C, math.Sqrt(0.5), rng)
		nn.Normal(be, s.D, 1, rng)
		s.Out = nn.NewLinear(be, H, c.outWidth(), true, rng)
		return &Block{Norm: norm(), SSM: s, be: be, kernel: kernel}
	}
}

// initA returns log(−A_re) and A_im (H, N2) of the named init, n = 0..N2−1
// and N = 2·N2 (the reference's d_state):
//
//	lin:  A_n = −1/2 + i·π·n
//	inv:  A_n = −1/2 + i·(N/π)·(N/(2n+1) − 1)
//	real: A_n = −(n+1)
func initA(init string, H, N2 int) (logARe, aIm []float64) {
	logARe, aIm = make([]float64, H*N2), make([]float64, H*N2)
	N := float64(2 * N2)
	for i := range logARe {
		n := float64(i % N2)
		switch init {
		case "lin":
			logARe[i], aIm[i] = math.Log(0.5), math.Pi*n
		case "inv":
			logARe[i], aIm[i] = math.Log(0.5), N/math.Pi*(N/(2*n+1)-1)
		case "real":
			logARe[i] = math.Log(n + 1)
		default:
			panic("s4d: unknown init " + strconv.Quote(init)) // Validate rejects it first
		}
	}
	return logARe, aIm
}

// PositionFree: the modes' states advance in place (arch.PositionFree).
func (blk *Block) PositionFree() bool { return true }

// Forward maps x (B·L, d); st is the layer's *state, the modes' complex
// states (B, H, N2, 2), in step mode, nil in parallel mode.
func (blk *Block) Forward(tp *nn.Tape, x *nn.Tensor, B, L, _ int, st arch.LayerState) *nn.Tensor {
	var buf nn.Buffer
	if st != nil {
		buf = st.(*state).buf
	}
	mixed := blk.SSM.Forward(tp, blk.Norm.Forward(tp, x), B, L, buf)
	out := tp.Add(x, mixed)
	tp.Drop(mixed)
	return out
}

// Forward maps x (B·L, H) to (B·L, H). With a state it runs the recurrence
// (S4DRecurrent, inference only) from it and advances it; otherwise the
// FFT convolution with the length-L kernel.
func (s *S4D) Forward(tp *nn.Tape, x *nn.Tensor, B, L int, state nn.Buffer) *nn.Tensor {
	u := tp.Permute(tp.Reshape(x, B, L, s.H), 0, 2, 1) // (B, H, L)
	aRe := tp.Mul(tp.Act(nn.Exp, s.LogAReal), s.minusOne)
	cRe := tp.Reshape(tp.Slice(s.C, 0, 1), s.H, s.N2)
	cIm := tp.Reshape(tp.Slice(s.C, 1, 1), s.H, s.N2)
	var y *nn.Tensor
	if state == nil {
		K := tp.S4DKernel(s.LogDt, aRe, s.AImag, cRe, cIm, L)
		y = tp.FFTConv(u, K, s.D)
	} else {
		// y is an activation: of u's type (bfloat16 under bf16).
		y = &nn.Tensor{Shape: []int{B, s.H, L}, Data: tp.AllocAs(B*s.H*L, nn.DTypeOf(tp.B, u.Data))}
		tp.B.S4DRecurrent(y.Data, state, u.Data, s.D.Data, nn.S4DArgs{H: s.H, N2: s.N2, L: L,
			LogDt: s.LogDt.Data, ARe: aRe.Data, AIm: s.AImag.Data, CRe: cRe.Data, CIm: cIm.Data}, B)
	}
	g := tp.Act(nn.GELU, y)
	rows := tp.Reshape(tp.Permute(g, 0, 2, 1), B*L, s.H)
	tp.Drop(g)
	z := s.Out.Forward(tp, rows)
	if !s.GLU {
		return z
	}
	// torch.nn.GLU: first half times the sigmoid of the second.
	lin, gate := tp.Slice(z, 0, s.H), tp.Slice(z, s.H, s.H)
	tp.Drop(z)
	return tp.Mul(lin, tp.Act(nn.Sigmoid, gate))
}

// Params lists the layer's weights: layers.i.{norm, s4d.D,
// s4d.kernel.{log_dt, log_A_real, A_imag, C}, s4d.output_linear} (the trunk
// adds embed, norm_f and lm_head). Under the default decay policy
// (weight_decay_on: matrices) only the Linear weights decay: the SSM
// parameters (log_dt, A, C, D) and norms do not (C scales the kernel as a
// norm's weight scales its output, D is a per-channel vector like a bias).
// The reference exempts log_dt and A (with lr 1e-3) and decays the rest,
// C and D included: kernel_lr 0.001 with weight_decay_on: all.
func (blk *Block) Params(layer int) []nn.Param {
	p := arch.LayerPrefix(layer)
	ps := blk.Norm.Params(p + ".norm")
	s := blk.SSM
	ps = append(ps,
		nn.Param{Name: p + ".s4d.D", T: s.D},
		nn.Param{Name: p + ".s4d.kernel.log_dt", T: s.LogDt, Group: blk.kernel},
		nn.Param{Name: p + ".s4d.kernel.log_A_real", T: s.LogAReal, Group: blk.kernel},
		nn.Param{Name: p + ".s4d.kernel.A_imag", T: s.AImag, Group: blk.kernel},
		nn.Param{Name: p + ".s4d.kernel.C", T: s.C})
	return append(ps, s.Out.Params(p+".s4d.output_linear")...)
}

// FLOPsPerToken counts a multiply-add as 2 FLOPs and charges each token
// 1/L of what one length-L sequence costs:
//
//	2·w·d                           output linear (w = 2d GLU, d linear)
//	+ d·(8·N/2                      the kernel: one complex multiply-add per
//	                                mode and position
//	  + (3·2.5·n·log₂n + 3n)/L      three real FFTs of size n (u, K, inverse;
//	                                2.5·n·log₂n each, half the complex
//	                                5·n·log₂n) and the n/2 complex products
//	  + 2)                          the D·u skip
//
// per layer (the trunk adds 2·d·V for the LM head), with n the FFT size
// (the smallest power of two ≥ 2L) and N = d_state. The kernel and its FFT
// are counted once per sequence, as if the batch were 1; a batch shares
// them, so the true cost per token is lower by up to those terms. Norms,
// GELU, GLU's sigmoid and the residual adds are not counted.
func (blk *Block) FLOPsPerToken(L int) float64 {
	s := blk.SSM
	d, w := float64(s.H), float64(s.Out.W.Dim(0))
	total := 2 * w * d
	if L < 1 {
		return total
	}
	n := float64(fftSize(L))
	conv := (7.5*n*math.Log2(n) + 3*n) / float64(L)
	return total + d*(8*float64(s.N2)+conv+2)
}

// fftSize is the FFT length the convolution uses for length L.
func fftSize(L int) int {
	n := 1
	for n < 2*L {
		n <<= 1
	}
	return n
}

// state is one layer's step-mode state: the modes' complex states
// (B, H, N2, 2). Its size does not grow with the tokens consumed.
type state struct {
	be  nn.Backend
	buf nn.Buffer
}

func (s *state) Free() {
	nn.FreeBuffers(s.be, s.buf)
	s.buf = nil
}

// Bytes is B·d·d_state elements.
func (s *state) Bytes() int64 { return nn.BufferBytes(s.be, s.buf) }

// NewState returns the layer's zero state for B sequences.
func (blk *Block) NewState(B int) arch.LayerState {
	return &state{be: blk.be, buf: blk.be.Alloc(B * blk.SSM.H * blk.SSM.N2 * 2)}
}
