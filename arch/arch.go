// Package arch is the registry of sequence-model architectures: a name maps
// to a config (decoded strictly from a YAML model block) that builds a Model.
// Every architecture has the same contract (token ids in, next-token logits
// out), so an experiment swaps one for another and nothing else changes.
//
// Every model is an LM (lm.go): token embedding, a stack of blocks, final
// norm, LM head, with step mode and parameter naming done once. Adding an
// architecture is a package with a Block type (its layer, step state,
// weight names and FLOPs), a Config whose Build calls NewLM, and a Register
// call in init; cmd/seqbench imports the package for its registration.
package arch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/internal/yamlcfg"
	"seqbench/nn"
)

// Model is a language model over a token vocabulary.
type Model interface {
	// Forward returns next-token logits (B·L, Vocab) for ids (B·L), laid out
	// batch-major (ids[b·L + t]).
	Forward(tp *nn.Tape, ids []int32, B, L int) *nn.Tensor
	// Params lists the trainable tensors with stable, torch-like names.
	Params() []nn.Param
	// FLOPsPerToken is the forward cost per token of a length-L sequence,
	// counting a multiply-add as 2 FLOPs (matmuls, attention, scans).
	FLOPsPerToken(L int) float64
}

// Stepper is a model with a step (recurrent) mode: it consumes a sequence
// in pieces, carrying a state whose size does not grow with the length
// (KV cache for attention), and gives the same logits as Forward on the
// whole sequence. Generation and long-context evaluation use it.
type Stepper interface {
	Model
	// NewState returns the empty state for a batch of B sequences.
	NewState(B int) State
	// Step consumes the next T tokens of each sequence, ids (B·T) batch-major,
	// and returns their logits (B·T, Vocab); T = 1 is one generation step.
	Step(tp *nn.Tape, st State, ids []int32, B, T int) *nn.Tensor
}

// LastStepper is a Stepper that can return only the logits of each
// sequence's last token of a Step (B, V), equal to the last rows of
// Step's: a generation's prefill, which needs no others.
type LastStepper interface {
	Stepper
	StepLast(tp *nn.Tape, st State, ids []int32, B, T int) *nn.Tensor
}

// ReplayStepper is a Stepper that can say whether its one-token Step is
// replayable: it queues the same device work, on the same buffers, at
// every position (its state advances in place and no op takes the
// position), so a Step captured as a graph (nn.Capturer) at one token
// replays the next ones, fed each token's id through the same host slice.
type ReplayStepper interface {
	Stepper
	StepReplayable() bool
}

// LossModel is a Model that computes the mean cross-entropy of Forward's
// logits against targets (rows whose target is ignore skipped; the count
// of the others returned) without holding all (B·L, V) logits at once,
// and, when argmax is not nil, each row's predicted token (training
// accuracy). Training uses it where the model has it.
type LossModel interface {
	Model
	Loss(tp *nn.Tape, ids, targets []int32, B, L int, ignore int32, argmax *nn.Argmax) (*nn.Tensor, int)
}

// LossAndArgmax is m's training loss (LossModel's where m has it, else
// CrossEntropy of Forward's logits) and, when argmax is not nil, each
// row's predicted token.
func LossAndArgmax(tp *nn.Tape, m Model, ids, targets []int32, B, L int, ignore int32, argmax *nn.Argmax) (*nn.Tensor, int) {
	if lm, ok := m.(LossModel); ok {
		return lm.Loss(tp, ids, targets, B, L, ignore, argmax)
	}
	logits := m.Forward(tp, ids, B, L)
	loss, n := tp.CrossEntropy(logits, targets, ignore)
	if argmax != nil {
		argmax.Set(tp, logits.Data, 0, B*L, logits.Dim(-1))
	}
	return loss, n
}

// State is a Stepper's carried state; Free returns its buffers.
type State interface {
	Free()
	// Bytes is the state's size in device memory.
	Bytes() int64
}

// Env is what a config needs to build a model.
type Env struct {
	Backend nn.Backend
	Vocab   int // from the task
	MaxLen  int // longest sequence the model will see (learned positions)
	RNG     *rand.Rand
	// LowpState keeps the Mamba blocks' step-mode states in the
	// activations' type on a mixed backend (bfloat16 under bf16, as
	// mamba_ssm keeps a bf16 model's inference cache): half the bytes a
	// decoded token reads and writes, each state value rounded once a
	// token, so a long decode drifts from the float32-state one (nn.SeqOps).
	LowpState bool
}

// Config is an architecture's model block. Its struct has yaml tags for every
// field, including `arch`, and holds the defaults before decoding.
type Config interface {
	// Validate checks the fields; errors name the field, the value and what
	// is allowed.
	Validate() error
	// NumParams is the exact parameter count the built model will have.
	NumParams(vocab, maxLen int) int
	Build(env Env) (Model, error)
}

// Spec registers an architecture: its name, a one-line description and
// New, which returns a config holding the defaults.
type Spec = yamlcfg.Entry[Config]

var registry = yamlcfg.NewRegistry[Config]("arch", "model", "arch", "arch")

// Register adds an architecture; it is called from init functions.
func Register(s Spec) { registry.Add(s) }

// Names lists the registered architectures, sorted.
func Names() []string { return registry.Names() }

// Lookup finds an architecture by name.
func Lookup(name string) (Spec, error) { return registry.Lookup(name) }

// Decode reads a model block: it finds `arch`, then decodes the whole block
// strictly (unknown fields are errors) into that architecture's config and
// validates it.
func Decode(node *yaml.Node) (Config, error) { return registry.Decode(node) }

// FieldError is a config error naming the field, its value and what is
// allowed.
func FieldError(field string, value any, allowed string) error {
	return &FieldErr{Field: field, Value: value, Allowed: allowed}
}

// FieldErr is FieldError's error; a config that holds another (the hybrid
// arch's per-kind blocks) prefixes Field with the block's name.
type FieldErr struct {
	Field   string
	Value   any
	Allowed string
}

func (e *FieldErr) Error() string {
	return fmt.Sprintf("field %s: %v is not allowed (%s)", e.Field, e.Value, e.Allowed)
}

// OneOf checks that v is one of the allowed strings.
func OneOf(field, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return FieldError(field, fmt.Sprintf("%q", v), "one of "+strings.Join(allowed, ", "))
}

// Positive checks that an integer field is at least 1.
func Positive(field string, v int) error {
	if v <= 0 {
		return FieldError(field, v, "must be ≥ 1")
	}
	return nil
}

// FinitePositive checks that a real field is finite and above 0.
func FinitePositive(field string, v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return FieldError(field, v, "must be finite and > 0")
	}
	return nil
}

// Check reports what Build needs but env lacks: a backend, an RNG and a
// vocabulary of at least one token.
func (e Env) Check(archName string) error {
	if e.Backend == nil || e.RNG == nil {
		return fmt.Errorf("%s: Build needs a backend and an RNG", archName)
	}
	if e.Vocab < 1 {
		return fmt.Errorf("%s: vocab %d (the task must give ≥ 1)", archName, e.Vocab)
	}
	return nil
}

// ConvScan is one Mamba layer's carried state: the causal conv's last W−1
// inputs (nil when W = 1) and the scan's (Mamba-1) or SSD's (Mamba-2) state.
// Its size does not grow with the tokens consumed.
type ConvScan struct {
	Backend   nn.Backend
	Conv, SSM nn.Buffer
}

// NewConvScan allocates zero states: conv elements for the conv (none when
// 0) and ssm for the scan, of the activations' type when lowp and be is a
// mixed backend (Env.LowpState), else of be's.
func NewConvScan(be nn.Backend, conv, ssm int, lowp bool) *ConvScan {
	alloc := be.Alloc
	if m, ok := be.(nn.MixedBackend); ok && lowp {
		alloc = func(n int) nn.Buffer { return m.AllocAs(n, m.ActDType()) }
	}
	s := &ConvScan{Backend: be, SSM: alloc(ssm)}
	if conv > 0 {
		s.Conv = alloc(conv)
	}
	return s
}

// Free returns the buffers.
func (s *ConvScan) Free() {
	nn.FreeBuffers(s.Backend, s.Conv, s.SSM)
	s.Conv, s.SSM = nil, nil
}

// Bytes is the memory the state holds.
func (s *ConvScan) Bytes() int64 { return nn.BufferBytes(s.Backend, s.Conv, s.SSM) }

// LowPrecision reports whether the state is of a type narrower than the
// backend's (NewConvScan's lowp on a mixed backend).
func (s *ConvScan) LowPrecision() bool { return nn.DTypeOf(s.Backend, s.SSM) != s.Backend.DType() }

// LinearIntoChannels is nn.LinearToChannels (columns [col0, col0+k) of x
// (B·L, ·) times rows [row0, row0+rows) of w, as (B, rows, L)); at L = 1,
// where rows and channels first are the same memory, it is one
// nn.LinearBlock for the whole batch reshaped: a GEMM of B rows, not B
// products of one column.
func LinearIntoChannels(tp *nn.Tape, x *nn.Tensor, col0, k int, w *nn.Tensor, row0, rows, B, L int) *nn.Tensor {
	if L == 1 {
		return tp.Reshape(tp.LinearBlock(x, col0, k, w, row0, rows), B, rows, 1)
	}
	return tp.LinearToChannels(x, col0, k, w, row0, rows, B, L)
}

// ChannelsFirst returns the layout copies between rows (B·L, c), the
// trunk's layout, and channels first (B, c, L), the convolution's and the
// scan's (mamba_ssm's), and the Drop to use on their sources. At L = 1 (a
// decoded token) the two layouts are the same memory: the copies become
// reshapes, a launch each saved, and drop keeps their sources, which the
// reshapes share.
func ChannelsFirst(tp *nn.Tape, B, L int) (toBCL, rows func(t *nn.Tensor, c int) *nn.Tensor, drop func(ts ...*nn.Tensor)) {
	if L == 1 {
		toBCL = func(t *nn.Tensor, c int) *nn.Tensor { return tp.Reshape(t, B, c, 1) }
		rows = func(t *nn.Tensor, c int) *nn.Tensor { return tp.Reshape(t, B, c) }
		return toBCL, rows, func(...*nn.Tensor) {}
	}
	toBCL = func(t *nn.Tensor, c int) *nn.Tensor { return tp.Permute(tp.Reshape(t, B, L, c), 0, 2, 1) }
	rows = func(t *nn.Tensor, c int) *nn.Tensor { return tp.Reshape(tp.Permute(t, 0, 2, 1), B*L, c) }
	return toBCL, rows, tp.Drop
}
