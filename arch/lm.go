package arch

import (
	"fmt"
	"strconv"

	"seqbench/nn"
)

// Block is the one part of a language model that differs between
// architectures: a layer that maps the residual stream to the next layer's
// input. Everything around the blocks (token and position embeddings, the
// final norm, the LM head, step-mode bookkeeping, parameter listing) is
// LM's, so an architecture is a Block type, its Config and a Register call.
type Block interface {
	// Forward maps x (B·L, d), the tokens at positions pos0 .. pos0+L−1 of
	// each sequence, to (B·L, d). st is the layer's step-mode state (from
	// NewState), which Forward starts from and advances; nil in parallel
	// mode.
	Forward(tp *nn.Tape, x *nn.Tensor, B, L, pos0 int, st LayerState) *nn.Tensor
	// Params lists the layer's weights; layer is its index in the stack
	// (LayerPrefix gives the usual "layers.<i>" prefix).
	Params(layer int) []nn.Param
	// NewState returns the layer's empty step-mode state for B sequences.
	NewState(B int) LayerState
	// FLOPsPerToken is the layer's forward cost per token of a length-L
	// sequence (a multiply-add is 2 FLOPs).
	FLOPsPerToken(L int) float64
}

// LayerState is one layer's carried step-mode state.
type LayerState interface {
	Free()
	Bytes() int64
}

// LowPrecisionState is a state (a LayerState, or a Stepper's State) that
// can say whether it holds values in a type narrower than its backend's.
type LowPrecisionState interface {
	LowPrecision() bool
}

// LayerPrefix is the parameter-name prefix of layer i, "layers.<i>".
func LayerPrefix(i int) string { return "layers." + strconv.Itoa(i) }

// Trunk is what an architecture tells NewLM about the parts it shares.
type Trunk[Blk Block] struct {
	Name    string // the architecture's name, in messages
	DModel  int
	NLayers int
	// LearnedPos adds a learned position embedding of Env.MaxLen rows
	// (named pos_embed) to the token embedding.
	LearnedPos bool
	// Norm builds the final norm (norm_f); nil for none.
	Norm func() nn.Layer
	// Tie makes the LM head the token embedding's table; otherwise it is a
	// Linear d → V (lm_head), with a bias only when HeadBias is set.
	Tie bool
	// EmbedDropout, when not nil, applies to the embeddings (positions
	// included) in training.
	EmbedDropout *nn.Dropout
	// HeadBias gives an untied head a bias, zero at init (the head's draws
	// come first, so the weights are those of a head without one).
	HeadBias bool
	// HeadStd, when > 0, redraws an untied head's weight from N(0, HeadStd²)
	// after torch's Linear init (the GPT-2 scheme); 0 keeps torch's.
	HeadStd float64
	// NewBlock builds layer i. Blocks are built in order, after the
	// embeddings and before the final norm and the head, so the RNG draws
	// come in that order.
	NewBlock func(i int) Blk
}

// PositionFree is a Block whose step-mode work never depends on the
// position: its state advances in place and none of its ops takes the
// position (recurrences, convolutions over a rolling state, position-wise
// layers), unlike attention, whose cache grows and whose rotation turns
// with the position.
type PositionFree interface {
	PositionFree() bool
}

// LM is the language model every architecture shares: token embedding
// (plus learned positions), n_layers blocks, final norm, LM head. Fields
// are exported so tests and tools can reach individual layers; Params is
// the supported way to enumerate weights.
type LM[Blk Block] struct {
	name   string
	be     nn.Backend
	vocab  int
	maxLen int
	Embed  *nn.Embedding
	// PosEmbed is nil unless positions are learned.
	PosEmbed *nn.Embedding
	Blocks   []Blk
	NormF    nn.Layer   // nil for none
	Head     *nn.Linear // nil when tied: the logits then use Embed.W
	// EmbedDropout is the embedding dropout (nil: none).
	EmbedDropout *nn.Dropout
}

var _ Stepper = (*LM[Block])(nil)

// NewLM builds the trunk on env: the token embedding (N(0, 0.02²)), the
// learned positions, the blocks, the final norm and an untied head, in that
// order.
func NewLM[Blk Block](env Env, t Trunk[Blk]) *LM[Blk] {
	be, rng, d := env.Backend, env.RNG, t.DModel
	m := &LM[Blk]{name: t.Name, be: be, vocab: env.Vocab, maxLen: env.MaxLen, EmbedDropout: t.EmbedDropout}
	m.Embed = nn.NewEmbedding(be, env.Vocab, d, rng)
	if t.LearnedPos {
		m.PosEmbed = nn.NewEmbedding(be, env.MaxLen, d, rng)
	}
	for i := range t.NLayers {
		m.Blocks = append(m.Blocks, t.NewBlock(i))
	}
	if t.Norm != nil {
		m.NormF = t.Norm()
	}
	if !t.Tie {
		m.Head = nn.NewLinear(be, d, env.Vocab, false, rng)
		if t.HeadStd > 0 {
			nn.Normal(be, m.Head.W, t.HeadStd, rng)
		}
		if t.HeadBias {
			m.Head.B = nn.NewParam(be, env.Vocab) // zero
		}
	}
	return m
}

// MaxLen is the longest sequence the model accepts: the Env's MaxLen with
// learned positions, 0 (any length) otherwise. Evaluation at several
// lengths reads it to skip lengths the model cannot take.
func (m *LM[Blk]) MaxLen() int {
	if m.PosEmbed == nil {
		return 0
	}
	return m.maxLen
}

// Forward returns logits (B·L, V) for ids (B·L), batch-major.
func (m *LM[Blk]) Forward(tp *nn.Tape, ids []int32, B, L int) *nn.Tensor {
	if len(ids) != B*L {
		panic(fmt.Sprintf("%s: %d ids for B=%d, L=%d", m.name, len(ids), B, L))
	}
	return m.run(tp, ids, B, L, 0, nil)
}

var _ LossModel = (*LM[Block])(nil)

// Loss is the mean cross-entropy of Forward's logits against targets
// (ignore skipped) without the (B·L, V) logits ever held whole: the head
// and the loss run in chunks of rows (nn.Tape.LinearCrossEntropy). argmax,
// when not nil, receives each row's predicted token.
func (m *LM[Blk]) Loss(tp *nn.Tape, ids, targets []int32, B, L int, ignore int32, argmax *nn.Argmax) (*nn.Tensor, int) {
	if len(ids) != B*L {
		panic(fmt.Sprintf("%s: %d ids for B=%d, L=%d", m.name, len(ids), B, L))
	}
	x := m.blocks(tp, ids, B, L, 0, nil)
	if m.NormF != nil {
		x = m.NormF.Forward(tp, x)
	}
	w, b := m.Embed.W, (*nn.Tensor)(nil)
	if m.Head != nil {
		w, b = m.Head.W, m.Head.B
	}
	return tp.LinearCrossEntropy(x, w, b, targets, ignore, argmax, 0)
}

// run embeds ids (tokens at positions pos0 .. pos0+L−1), runs the blocks
// (carrying st's layer states when st is not nil) and returns the logits.
func (m *LM[Blk]) run(tp *nn.Tape, ids []int32, B, L, pos0 int, st []LayerState) *nn.Tensor {
	return m.logits(tp, m.blocks(tp, ids, B, L, pos0, st))
}

// blocks embeds ids and runs the blocks: the hidden states (B·L, d)
// before the final norm.
func (m *LM[Blk]) blocks(tp *nn.Tape, ids []int32, B, L, pos0 int, st []LayerState) *nn.Tensor {
	x := m.embed(tp, ids, B, L, pos0)
	for i, blk := range m.Blocks {
		var ls LayerState
		if st != nil {
			ls = st[i]
		}
		x = blk.Forward(tp, x, B, L, pos0, ls)
	}
	return x
}

// logits applies the final norm and the head to hidden states, row by row.
func (m *LM[Blk]) logits(tp *nn.Tape, x *nn.Tensor) *nn.Tensor {
	if m.NormF != nil {
		x = m.NormF.Forward(tp, x)
	}
	if m.Head != nil {
		return m.Head.Forward(tp, x)
	}
	return tp.Linear(x, m.Embed.W, nil)
}

// embed returns the token (and learned position) embeddings (B·L, d).
func (m *LM[Blk]) embed(tp *nn.Tape, ids []int32, B, L, pos0 int) *nn.Tensor {
	x := m.Embed.Forward(tp, ids)
	if m.PosEmbed == nil {
		return m.EmbedDropout.Forward(tp, x)
	}
	if pos0+L > m.maxLen {
		panic(fmt.Sprintf("%s: position %d exceeds the learned positions (max_len %d)", m.name, pos0+L-1, m.maxLen))
	}
	pos := make([]int32, B*L)
	for i := range pos {
		pos[i] = int32(pos0 + i%L)
	}
	return m.EmbedDropout.Forward(tp, tp.Add(x, m.PosEmbed.Forward(tp, pos)))
}

// Params lists the weights with torch-like names: embed, pos_embed (learned
// positions), each block's, norm_f, lm_head. A tied LM head is not listed
// separately (it is embed.weight).
func (m *LM[Blk]) Params() []nn.Param {
	ps := m.Embed.Params("embed")
	if m.PosEmbed != nil {
		ps = append(ps, m.PosEmbed.Params("pos_embed")...)
	}
	for i, blk := range m.Blocks {
		ps = append(ps, blk.Params(i)...)
	}
	if m.NormF != nil {
		ps = append(ps, m.NormF.Params("norm_f")...)
	}
	if m.Head != nil {
		ps = append(ps, m.Head.Params("lm_head")...)
	}
	return ps
}

// FLOPsPerToken is the blocks' cost plus 2·d·V for the LM head, tied or
// not. Layers of equal cost are counted as n_layers times one layer's (the
// count the architectures' docs give).
func (m *LM[Blk]) FLOPsPerToken(L int) float64 {
	head := 2 * float64(m.Embed.W.Dim(1)) * float64(m.vocab)
	if len(m.Blocks) == 0 {
		return head
	}
	first, same, sum := m.Blocks[0].FLOPsPerToken(L), true, 0.0
	for _, blk := range m.Blocks {
		f := blk.FLOPsPerToken(L)
		same = same && f == first
		sum += f
	}
	if same {
		sum = float64(len(m.Blocks)) * first
	}
	return sum + head
}

// lmState is the step-mode state: one LayerState per block and the number
// of tokens consumed (the next token's position).
type lmState struct {
	B, n   int
	layers []LayerState // nil after Free: the next Step starts over
}

// Free returns every layer's buffers; the next Step starts from an empty
// state, as on a new one.
func (s *lmState) Free() {
	for _, l := range s.layers {
		l.Free()
	}
	s.layers, s.n = nil, 0
}

// LowPrecision reports whether some layer keeps its state in a type
// narrower than the backend's (Env.LowpState on a mixed backend): the
// bfloat16 decode states a benchmark must name.
func (s *lmState) LowPrecision() bool {
	for _, l := range s.layers {
		if lp, ok := l.(LowPrecisionState); ok && lp.LowPrecision() {
			return true
		}
	}
	return false
}

// Bytes is the state's size in device memory, summed over the layers.
func (s *lmState) Bytes() int64 {
	total := int64(0)
	for _, l := range s.layers {
		total += l.Bytes()
	}
	return total
}

// NewState returns empty states for B sequences.
func (m *LM[Blk]) NewState(B int) State {
	s := &lmState{B: B}
	m.allocState(s)
	return s
}

func (m *LM[Blk]) allocState(s *lmState) {
	s.layers = make([]LayerState, len(m.Blocks))
	for i, blk := range m.Blocks {
		s.layers[i] = blk.NewState(s.B)
	}
}

// Step consumes the next T tokens of each sequence (ids (B·T), batch-major)
// and returns their logits (B·T, V), equal to the rows Forward gives for
// them on the whole sequence. It is for inference: the states are advanced
// outside the tape, so no gradient could reach them, and a recording tape
// is refused rather than given partial gradients.
func (m *LM[Blk]) Step(tp *nn.Tape, st State, ids []int32, B, T int) *nn.Tensor {
	return m.logits(tp, m.stepBlocks(tp, st, ids, B, T))
}

// StepLast is Step returning only each sequence's last logits (B, V): what
// generation reads after a prompt. The final norm and the head, the
// largest GEMM of a long prompt, run on B rows instead of B·T, and the
// (B·T, V) logits are never held (at B 64, T 2048 and a 50K vocabulary
// they would take 26 GB in float32).
func (m *LM[Blk]) StepLast(tp *nn.Tape, st State, ids []int32, B, T int) *nn.Tensor {
	if T < 1 {
		panic(fmt.Sprintf("%s: StepLast of T=%d tokens (at least 1)", m.name, T))
	}
	x := m.stepBlocks(tp, st, ids, B, T)
	d := x.Dim(-1)
	return m.logits(tp, tp.Slice(tp.Reshape(x, B, T*d), (T-1)*d, d))
}

// StepReplayable reports whether a one-token Step queues the same device
// work at every position (arch.ReplayStepper): no learned positions, and
// every block PositionFree.
func (m *LM[Blk]) StepReplayable() bool {
	if m.PosEmbed != nil {
		return false
	}
	for _, blk := range m.Blocks {
		if pf, ok := any(blk).(PositionFree); !ok || !pf.PositionFree() {
			return false
		}
	}
	return true
}

// stepBlocks checks a Step call, runs the blocks on it and advances st.
func (m *LM[Blk]) stepBlocks(tp *nn.Tape, st State, ids []int32, B, T int) *nn.Tensor {
	s, ok := st.(*lmState)
	switch {
	case !ok:
		panic(fmt.Sprintf("%s: Step with a %T state", m.name, st))
	case tp.Recording():
		panic(m.name + ": Step is inference-only; use a tape with record=false")
	case B != s.B || len(ids) != B*T:
		panic(fmt.Sprintf("%s: Step with %d ids for B=%d, T=%d on a state for B=%d", m.name, len(ids), B, T, s.B))
	}
	if s.layers == nil {
		m.allocState(s)
	}
	x := m.blocks(tp, ids, B, T, s.n, s.layers)
	s.n += T
	return x
}
