package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// InductionHeadsConfig is the induction-heads task of the Mamba paper
// (Gu & Dao 2023, §4.1.2 and App. E.1.2, Table 2 / Table 11): somewhere in
// a random sequence a special token is followed by a target token; the
// sequence ends with the special token again, and the model must output the
// target, i.e. complete the bigram it saw once. Models train at one length
// (seq_len) and are evaluated at every length of eval_lengths (the paper:
// train 2^8, evaluate 2^6 .. 2^20), which measures length extrapolation.
//
// Token ids: 0..vocab−1 are ordinary tokens, the special token is vocab;
// Vocab() is vocab+1. Layout of one sequence of length L = seq_len:
//
//   - every position holds an ordinary token drawn i.i.d. uniformly, except
//   - position p (uniform in 0..L−3) holds the special token, so the target
//     (an ordinary token, uniform like the others) is at p+1 ≤ L−2, and
//   - position L−1 holds the special token.
//
// Only position L−1 is scored; its target is the token at p+1. The special
// token occurs exactly twice.
//
// Worked example (vocab 4, seq_len 12; train split, seed 4, batch 0,
// sequence 0), raw token ids (4 is the special token), '_' = Ignore:
//
//	inputs : 1 2 2 4 1 2 0 1 3 3 1 4
//	targets: _ _ _ _ _ _ _ _ _ _ _ 1
//
// and as Decode shows it ('*' the special token, '.' not scored):
//
//	input : 1 2 2 * 1 2 0 1 3 3 1 *
//	target: . . . . . . . . . . . 1
//
// The sequences of each length come from streams that depend on the length
// (and the seed, split, batch and position in the batch), so the eval sets
// of different lengths are independent samples.
type InductionHeadsConfig struct {
	Name   string `yaml:"name"`
	Vocab  int    `yaml:"vocab"`   // ordinary tokens; the special token is id vocab
	SeqLen int    `yaml:"seq_len"` // training length
	// EvalLengths are the lengths evaluated after training, each its own
	// segment named "L=<length>" (see Segmented); empty: none.
	EvalLengths []int `yaml:"eval_lengths"`
	// LossOn says which positions of a training sequence carry a target:
	// "last" (the default; empty is last) scores only the final special
	// token's recall; "all" also makes every other position predict the
	// next token, as safari's generator does (the ordinary tokens are
	// random, so those targets only add noise at chance level). The eval
	// sets score the final position only either way: the accuracy is the
	// recall's. See docs/PROTOCOLS.md for what the Mamba paper used.
	LossOn string `yaml:"loss_on,omitempty"`
}

// maxTaskLen bounds every sequence length a task accepts, so batch sizes
// times lengths stay far from int overflow (2^30 is 1024 times the paper's
// longest induction-heads evaluation).
const maxTaskLen = 1 << 30

// Validate checks vocab >= 2, 3 <= seq_len <= 2^30 and the same bounds for
// every eval length, with no length listed twice.
func (c *InductionHeadsConfig) Validate() error {
	if c.Name != "" && c.Name != "induction_heads" {
		return fmt.Errorf("field task.name: %q is not allowed (this config is for induction_heads)", c.Name)
	}
	if c.Vocab < 2 || int64(c.Vocab) >= math.MaxInt32 {
		return fmt.Errorf("field task.vocab: %d is not allowed (induction_heads needs 2 <= vocab < %d: ordinary tokens plus the special token id vocab must fit int32)",
			c.Vocab, math.MaxInt32)
	}
	if c.SeqLen < 3 || c.SeqLen > maxTaskLen {
		return fmt.Errorf("field task.seq_len: %d is not allowed (induction_heads needs 3 <= seq_len <= %d: the special token, the target and the final special token)",
			c.SeqLen, maxTaskLen)
	}
	if c.LossOn != "" && c.LossOn != "last" && c.LossOn != "all" {
		return fmt.Errorf("field task.loss_on: %q is not allowed (one of \"last\" (the default), \"all\")", c.LossOn)
	}
	for i, L := range c.EvalLengths {
		if L < 3 || L > maxTaskLen {
			return fmt.Errorf("field task.eval_lengths: %d (entry %d) is not allowed (every length must be in [3, %d])", L, i, maxTaskLen)
		}
		if slices.Contains(c.EvalLengths[:i], L) {
			return fmt.Errorf("field task.eval_lengths: %d (entry %d) is not allowed (listed twice)", L, i)
		}
	}
	return nil
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *InductionHeadsConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &inductionTask{vocab: c.Vocab, seqLen: c.SeqLen, evalLengths: slices.Clone(c.EvalLengths), lossAll: c.LossOn == "all"}, nil
}

// inductionTask generates induction_heads sequences of one length; its
// segments are tasks of the eval lengths.
type inductionTask struct {
	vocab, seqLen int
	evalLengths   []int
	lossAll       bool // training targets at every position (loss_on: all)
}

var _ Segmented = (*inductionTask)(nil)

func (t *inductionTask) Vocab() int  { return t.vocab + 1 }
func (t *inductionTask) SeqLen() int { return t.seqLen }

// special is the special token's id.
func (t *inductionTask) special() int32 { return int32(t.vocab) }

// EvalSegments returns one segment per eval length, in the order listed.
func (t *inductionTask) EvalSegments() []Segment {
	segs := make([]Segment, len(t.evalLengths))
	for i, L := range t.evalLengths {
		segs[i] = Segment{Name: "L=" + strconv.Itoa(L), Task: &inductionTask{vocab: t.vocab, seqLen: L}}
	}
	return segs
}

// inductionStream is the key that, hashed with the seed and the length,
// gives the seed of a length's streams.
const inductionStream = 0x1d0c7104_4ead5eed

// Batch fills every sequence from its own stream (see seqRand), so sequence
// i does not depend on the batch size.
func (t *inductionTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	L := t.seqLen
	b := newBatch(size, L)
	lenSeed := hashWords(inductionStream, seed, uint64(L))
	for i := range size {
		in, tg := b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L]
		t.fill(seqRand(lenSeed, split, index, i), in, tg)
		if t.lossAll && split == Train {
			copy(tg[:L-1], in[1:])
		}
	}
	return b
}

// fill writes one sequence; tg is all Ignore on entry. The position is drawn
// first, then the ordinary tokens in position order (skipping the two
// special positions), so the target is simply the token drawn for p+1.
func (t *inductionTask) fill(r *rand.Rand, in, tg []int32) {
	L := len(in)
	p := r.IntN(L - 2)
	for q := range L - 1 {
		if q != p {
			in[q] = int32(r.IntN(t.vocab))
		}
	}
	in[p], in[L-1] = t.special(), t.special()
	tg[L-1] = in[p+1]
}

// Decode renders sequence i as an input line and a target line, column
// aligned: ordinary tokens as their id, the special token as '*', unscored
// targets as '.'; ids outside the vocab show as '?'. Sequences longer than
// 32 positions wrap into rows of 32 labelled with their first position.
func (t *inductionTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("induction_heads: no sequence %d in a batch of %d", i, b.B)
	}
	in, tg := b.Inputs[i*b.L:(i+1)*b.L], b.Targets[i*b.L:(i+1)*b.L]
	ordinary := func(tok int32) string {
		if tok >= 0 && int(tok) < t.vocab {
			return strconv.Itoa(int(tok))
		}
		return "?"
	}
	ins, tgs := make([]string, b.L), make([]string, b.L)
	for p := range b.L {
		ins[p] = ordinary(in[p])
		if in[p] == t.special() {
			ins[p] = "*"
		}
		tgs[p] = "."
		if tg[p] != Ignore {
			tgs[p] = ordinary(tg[p])
		}
	}
	return renderRows(ins, tgs, len(strconv.Itoa(t.vocab-1)), -1)
}

func init() {
	Register(Spec{
		Name: "induction_heads",
		Doc:  "Mamba induction heads: after a special token recall the token that followed its first occurrence; eval at several lengths",
		New: func() Config {
			return &InductionHeadsConfig{Name: "induction_heads", Vocab: 16, SeqLen: 256}
		},
	})
}
