package tasks

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// MADSelectiveCopyingConfig is MAD's selective copying (registered as
// mad_selective_copying; MAD's generate_copying_instance with
// selective=True). It differs from the Mamba paper's selective_copy task
// in its token layout and blank placement, so it is a task of its own.
//
// Token ids, with V = vocab: data values [0, V−2), blank V−2, copy token
// V−1 (all inside vocab, as MAD's vocab_size). Layout of one sequence of
// length L = seq_len with K = num_tokens:
//
//   - positions 0..L−K−2: the K data tokens (i.i.d. uniform) in order, with
//     L−2K−1 blanks inserted among them: each blank goes, independently and
//     uniformly, before one of the K data tokens (MAD inserts them with
//     np.insert at indices drawn from [0, K)), so the last data token always
//     sits at L−K−2, right before the copy token;
//   - position L−K−1: the copy token;
//   - positions L−K..L−1: blanks, where the targets are the K data tokens
//     in order (the only scored positions, in training and evaluation).
//
// Worked example (vocab 6, seq_len 12, num_tokens 3; eval split, seed 1,
// batch 0, sequence 0), raw token ids, '_' = Ignore (data 0..3, blank 4,
// copy token 5):
//
//	inputs : 4 4 4 0 4 2 4 2 5 4 4 4
//	targets: _ _ _ _ _ _ _ _ _ 0 2 2
//
// L−2K−1 = 5 blanks lie among the data 0 2 2. Decode shows data as values,
// blanks '.', the copy token '>' and '|' before it:
//
//	input : . . . 0 . 2 . 2 | > . . .
//	target: . . . . . . . . | . 0 2 2
type MADSelectiveCopyingConfig struct {
	Name             string `yaml:"name"`
	Vocab            int    `yaml:"vocab"`      // all token ids: V−2 data values, blank, copy (MAD's vocab_size)
	SeqLen           int    `yaml:"seq_len"`    // L
	NumTokens        int    `yaml:"num_tokens"` // K, data tokens to copy (MAD's num_tokens_to_copy)
	NumTrainExamples int    `yaml:"num_train_examples"`
	NumTestExamples  int    `yaml:"num_test_examples"`
}

const madSelCopyName = "mad_selective_copying"

// Validate checks num_tokens >= 1, seq_len > 2·num_tokens+1 (MAD's assert:
// at least one blank among the data), vocab >= 3 and example counts >= 1.
func (c *MADSelectiveCopyingConfig) Validate() error {
	if c.NumTokens < 1 || c.NumTokens > maxTaskLen/2 {
		return fmt.Errorf("field task.num_tokens: %d is not allowed (must be in [1, %d])", c.NumTokens, maxTaskLen/2)
	}
	return madCommon{task: madSelCopyName, name: c.Name, vocab: c.Vocab, seqLen: c.SeqLen,
		numTrain: c.NumTrainExamples, numTest: c.NumTestExamples,
		minVocab: 3, vocabWhy: "a data value besides the blank and copy tokens",
		minSeqLen: 2*c.NumTokens + 2, seqLenWhy: "MAD asserts seq_len > 2·num_tokens+1, so at least one blank lies among the data"}.validate()
}

// ExampleCounts returns num_train_examples and num_test_examples.
func (c *MADSelectiveCopyingConfig) ExampleCounts() (int, int) {
	return c.NumTrainExamples, c.NumTestExamples
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *MADSelectiveCopyingConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &madSelCopyTask{vocab: c.Vocab, seqLen: c.SeqLen, k: c.NumTokens,
		sets: madSets{key: madKey(madSelCopyName), numTrain: c.NumTrainExamples, numTest: c.NumTestExamples}}, nil
}

type madSelCopyTask struct {
	vocab, seqLen, k int
	sets             madSets
}

func (t *madSelCopyTask) Vocab() int   { return t.vocab }
func (t *madSelCopyTask) SeqLen() int  { return t.seqLen }
func (t *madSelCopyTask) blank() int32 { return int32(t.vocab - 2) }
func (t *madSelCopyTask) copyTok() int32 {
	return int32(t.vocab - 1)
}

func (t *madSelCopyTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	L := t.seqLen
	b := newBatch(size, L)
	data := make([]int32, t.k)
	before := make([]int, t.k)
	t.sets.forEach(split, seed, index, size, func(i int, r *rand.Rand) {
		t.fill(r, data, before, b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L])
	})
	return b
}

// fill writes one sequence; tg is all Ignore on entry. Draw order: the K
// data values, then the gap of each blank.
func (t *madSelCopyTask) fill(r *rand.Rand, data []int32, before []int, in, tg []int32) {
	L, K := t.seqLen, t.k
	for j := range data {
		data[j] = int32(r.IntN(t.vocab - 2))
	}
	clear(before)
	for range L - 2*K - 1 {
		before[r.IntN(K)]++
	}
	p := 0
	for j := range K {
		for range before[j] {
			in[p] = t.blank()
			p++
		}
		in[p] = data[j]
		p++
	}
	in[p] = t.copyTok()
	for k := range K {
		in[p+1+k], tg[p+1+k] = t.blank(), data[k]
	}
}

// Decode renders sequence i: data as values, blanks '.', the copy token
// '>', '|' before the copy token, ids outside the vocab '?'.
func (t *madSelCopyTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("%s: no sequence %d in a batch of %d", madSelCopyName, i, b.B)
	}
	cell := func(tok int32) string {
		switch {
		case tok == t.blank():
			return "."
		case tok == t.copyTok():
			return ">"
		case tok >= 0 && tok < t.blank():
			return strconv.Itoa(int(tok))
		}
		return "?"
	}
	ins, tgs := make([]string, b.L), make([]string, b.L)
	for p := range b.L {
		ins[p], tgs[p] = cell(b.Inputs[i*b.L+p]), "."
		if v := b.Targets[i*b.L+p]; v != Ignore {
			tgs[p] = cell(v)
		}
	}
	return renderRows(ins, tgs, 1, b.L-t.k-1)
}

func init() {
	Register(Spec{
		Name: madSelCopyName,
		Doc:  "MAD selective copying: copy K data tokens scattered among blanks, in order, after a copy token; fixed train/test sets",
		New: func() Config {
			return &MADSelectiveCopyingConfig{Name: madSelCopyName, Vocab: 16, SeqLen: 256, NumTokens: 16,
				NumTrainExamples: 12800, NumTestExamples: 1280}
		},
	})
}
