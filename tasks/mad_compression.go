package tasks

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// MADCompressionConfig is MAD's compression task (registered as
// mad_compression) laid out for a causal language model.
//
// In MAD (generate_compression_instance) a sequence is L−1 tokens drawn
// uniformly from [0, V−1) followed by the compression token V−1, and the
// target is the whole sequence: an AutoEncoder backbone runs the layers
// over it, keeps only the output at the last position (the compression
// token) and an MLP decodes every position i from that one vector plus a
// sinusoidal embedding of i; accuracy is over all L positions.
//
// seqbench's models are causal language models with no such bottleneck, so
// the decoder's position queries become tokens: after the L input tokens
// come L decode tokens P_0..P_{L−1}, and at P_i the model must output
// token i of the input. Token ids, V = vocab: data [0, V−1), compression
// token V−1, decode token P_i = V+i; Vocab() = V+L and SeqLen() = 2L. The
// L decode positions are scored (the last one's target is the compression
// token itself, as in MAD's accuracy), in training and evaluation alike.
//
// This keeps MAD's data and score but not its bottleneck: a fixed-state
// model (an SSM, an RNN) must indeed carry the whole sequence in its state
// past the compression token, exactly what MAD tests, while attention can
// look the tokens up again, which MAD's AutoEncoder forbids. Compression
// scores of attention models are therefore not comparable to MAD's.
//
// Worked example (vocab 5, seq_len 6; eval split, seed 4, batch 0,
// sequence 0), raw token ids ('_' = Ignore; data 0..3, compression token 4,
// decode tokens 5..10):
//
//	inputs : 2 0 3 3 2 4 5 6 7 8 9 10
//	targets: _ _ _ _ _ _ 2 0 3 3 2 4
//
// Decode shows the data, '#' for the compression token, '>' for the decode
// tokens and '|' before them:
//
//	input : 2 0 3 3 2 # | > > > > > >
//	target: . . . . . . | 2 0 3 3 2 #
type MADCompressionConfig struct {
	Name             string `yaml:"name"`
	Vocab            int    `yaml:"vocab"`   // V: V−1 data values and the compression token (MAD's vocab_size)
	SeqLen           int    `yaml:"seq_len"` // L, the sequence to compress (the model reads 2L tokens)
	NumTrainExamples int    `yaml:"num_train_examples"`
	NumTestExamples  int    `yaml:"num_test_examples"`
}

const madCompressionName = "mad_compression"

// Validate checks vocab >= 2, 2 <= seq_len <= 2^29 and example counts >= 1.
func (c *MADCompressionConfig) Validate() error {
	if err := (madCommon{task: madCompressionName, name: c.Name, vocab: c.Vocab, seqLen: c.SeqLen,
		numTrain: c.NumTrainExamples, numTest: c.NumTestExamples,
		minVocab: 2, vocabWhy: "a data value besides the compression token",
		minSeqLen: 2, seqLenWhy: "a data token and the compression token"}).validate(); err != nil {
		return err
	}
	if c.SeqLen > maxTaskLen/2 || c.Vocab+c.SeqLen > maxMADVocab {
		return fmt.Errorf("field task.seq_len: %d is not allowed (the model reads 2·seq_len tokens, at most %d, and the vocab grows by seq_len decode tokens, to at most %d)",
			c.SeqLen, maxTaskLen, maxMADVocab)
	}
	return nil
}

// ExampleCounts returns num_train_examples and num_test_examples.
func (c *MADCompressionConfig) ExampleCounts() (int, int) {
	return c.NumTrainExamples, c.NumTestExamples
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *MADCompressionConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &madCompressionTask{vocab: c.Vocab, seqLen: c.SeqLen,
		sets: madSets{key: madKey(madCompressionName), numTrain: c.NumTrainExamples, numTest: c.NumTestExamples}}, nil
}

type madCompressionTask struct {
	vocab, seqLen int
	sets          madSets
}

func (t *madCompressionTask) Vocab() int  { return t.vocab + t.seqLen }
func (t *madCompressionTask) SeqLen() int { return 2 * t.seqLen }

func (t *madCompressionTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	L := 2 * t.seqLen
	b := newBatch(size, L)
	t.sets.forEach(split, seed, index, size, func(i int, r *rand.Rand) {
		t.fill(r, b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L])
	})
	return b
}

// fill writes one sequence; tg is all Ignore on entry.
func (t *madCompressionTask) fill(r *rand.Rand, in, tg []int32) {
	n := t.seqLen
	for p := range n - 1 {
		in[p] = int32(r.IntN(t.vocab - 1))
	}
	in[n-1] = int32(t.vocab - 1)
	for p := range n {
		in[n+p], tg[n+p] = int32(t.vocab+p), in[p]
	}
}

// Decode renders sequence i: data as ids, '#' the compression token, '>'
// the decode tokens, '|' before them; ids outside the vocab show as '?'.
func (t *madCompressionTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("%s: no sequence %d in a batch of %d", madCompressionName, i, b.B)
	}
	cell := func(tok int32) string {
		switch {
		case tok >= 0 && tok < int32(t.vocab-1):
			return strconv.Itoa(int(tok))
		case tok == int32(t.vocab-1):
			return "#"
		case tok >= int32(t.vocab) && tok < int32(t.vocab+t.seqLen):
			return ">"
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
	return renderRows(ins, tgs, 1, t.seqLen)
}

func init() {
	Register(Spec{
		Name: madCompressionName,
		Doc:  "MAD compression: reproduce a random sequence from decode tokens after a compression token (LM layout of MAD's autoencoder task)",
		New: func() Config {
			return &MADCompressionConfig{Name: madCompressionName, Vocab: 16, SeqLen: 32, NumTrainExamples: 12800, NumTestExamples: 1280}
		},
	})
}
