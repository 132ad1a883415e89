package tasks

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// MADMemorizationConfig is MAD's memorization task (registered as
// mad_memorization): a fixed key→value map, the same in every sequence of
// the training and the test set, that the model can only learn into its
// weights (nothing in the sequence tells the value).
//
// Token ids, with V = vocab and S = V−1: keys [0, S/2), values [S/2, S),
// the insert token V−1. The map sends key k to a distinct value: MAD
// (generate_kv_map) shuffles the keys and the values and pairs them up, so
// the S/2 keys map one-to-one onto a random S/2 of the S−S/2 values. It is
// drawn from its own stream of the run's seed (MAD: from its seed, 12345),
// so it is fixed for the run and shared by both splits, and a different
// seed gives a different map. Layout of one sequence of length L = seq_len:
// L/2 pairs of a key (uniform, with replacement) and the insert token; the
// target at each insert token is the key's value (the only scored
// positions, in training and evaluation alike).
//
// Worked example (vocab 9, seq_len 8; eval split, seed 3, batch 0,
// sequence 0), raw token ids ('_' = Ignore; keys 0..3, values 4..7,
// insert token 8); this seed's map is 0→7, 1→4, 2→5, 3→6:
//
//	inputs : 0 8 1 8 3 8 2 8
//	targets: _ 7 _ 4 _ 6 _ 5
//
// Decode shows the insert token as '>':
//
//	input : 0 > 1 > 3 > 2 >
//	target: . 7 . 4 . 6 . 5
type MADMemorizationConfig struct {
	Name             string `yaml:"name"`
	Vocab            int    `yaml:"vocab"`   // all token ids, the insert token included (MAD's vocab_size)
	SeqLen           int    `yaml:"seq_len"` // L: L/2 key/insert pairs
	NumTrainExamples int    `yaml:"num_train_examples"`
	NumTestExamples  int    `yaml:"num_test_examples"`
}

const madMemorizationName = "mad_memorization"

// Validate checks vocab >= 3, seq_len even and >= 2, example counts >= 1.
func (c *MADMemorizationConfig) Validate() error {
	return madCommon{task: madMemorizationName, name: c.Name, vocab: c.Vocab, seqLen: c.SeqLen,
		numTrain: c.NumTrainExamples, numTest: c.NumTestExamples,
		minVocab: 3, vocabWhy: "a key, a value and the insert token",
		minSeqLen: 2, seqLenWhy: "a key and the insert token", evenLen: true}.validate()
}

// ExampleCounts returns num_train_examples and num_test_examples.
func (c *MADMemorizationConfig) ExampleCounts() (int, int) {
	return c.NumTrainExamples, c.NumTestExamples
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *MADMemorizationConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &madMemorizationTask{vocab: c.Vocab, seqLen: c.SeqLen,
		sets: madSets{key: madKey(madMemorizationName), numTrain: c.NumTrainExamples, numTest: c.NumTestExamples}}, nil
}

type madMemorizationTask struct {
	vocab, seqLen int
	sets          madSets
}

func (t *madMemorizationTask) Vocab() int    { return t.vocab }
func (t *madMemorizationTask) SeqLen() int   { return t.seqLen }
func (t *madMemorizationTask) insert() int32 { return int32(t.vocab - 1) }

// madMapStream keys the stream the memorization map is drawn from.
const madMapStream = 0x3e3012a7_10a0_f00d

// kvMap returns the value of every key for a seed: the values [S/2, S)
// shuffled, the first S/2 of them assigned to keys 0, 1, ... in order.
func (t *madMemorizationTask) kvMap(seed uint64) []int32 {
	S := t.vocab - 1
	nk := S / 2
	r := rand.New(rand.NewPCG(hashWords(madMapStream, seed), hashWords(madMapStream^1, seed)))
	vals := make([]int32, S-nk)
	for i := range vals {
		vals[i] = int32(nk + i)
	}
	r.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	return vals[:nk]
}

func (t *madMemorizationTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	L := t.seqLen
	b := newBatch(size, L)
	m := t.kvMap(seed)
	t.sets.forEach(split, seed, index, size, func(i int, r *rand.Rand) {
		in, tg := b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L]
		for p := 0; p < L; p += 2 {
			k := r.IntN(len(m))
			in[p], in[p+1], tg[p+1] = int32(k), t.insert(), m[k]
		}
	})
	return b
}

// Decode renders sequence i as token ids, '>' for the insert token, '.' for
// unscored targets and '?' for ids outside the vocab.
func (t *madMemorizationTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("%s: no sequence %d in a batch of %d", madMemorizationName, i, b.B)
	}
	in, tg := madDecodeIDs(b, i, t.vocab)
	ins := strconv.Itoa(int(t.insert()))
	for p := range in {
		if in[p] == ins {
			in[p] = ">"
		}
	}
	return renderRows(in, tg, 1, -1)
}

func init() {
	Register(Spec{
		Name: madMemorizationName,
		Doc:  "MAD memorization: learn a fixed key-value map (the same in every sequence, train and test) into the weights",
		New: func() Config {
			return &MADMemorizationConfig{Name: madMemorizationName, Vocab: 256, SeqLen: 32, NumTrainExamples: 256, NumTestExamples: 1280}
		},
	})
}
