package tasks

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// MADRecallConfig is MAD's in-context recall (registered as
// mad_in_context_recall) and noisy in-context recall
// (mad_noisy_in_context_recall): the same generator, the second with noise
// pairs between the key-value pairs. It is MAD's multi-query variant, the
// one the MAD benchmark runs (multi_query: True in every task config):
// every value of a key that appeared before is a query.
//
// Token ids, with V = vocab, Nn = noise_vocab and S = V − Nn: keys are
// [0, S/2), values [S/2, S), noise tokens [S, V). Layout of the full
// sequence of length L = seq_len (P = L/2 pairs):
//
//   - pairs 0..P−2: each, with probability frac_noise, two noise tokens
//     (i.i.d. uniform); otherwise a key k (uniform) and its value: the value
//     k got at its first appearance in this sequence, or, the first time, a
//     value drawn uniformly (two keys may share a value). One of these pairs,
//     chosen uniformly, is never noise, so the sequence holds a key;
//   - pair P−1: a key drawn uniformly among the distinct keys shown so far,
//     and its value (the final probe).
//
// The model reads the first L−1 tokens (SeqLen() = seq_len − 1, as MAD's
// inputs[:-1]) and predicts the next token at each position. Training
// targets are every next token (MAD trains on inputs[1:], the plain
// language-modelling loss); evaluation targets are only the values of keys
// shown before in the sequence, the final probe included: at the position
// of such a key the target is its value. MAD's test accuracy counts
// exactly these.
//
// Worked example (vocab 8, seq_len 12, noise_vocab 2, frac_noise 0.3;
// eval split, seed 6, batch 0, sequence 0), raw token ids, '_' = Ignore.
// Keys are 0..2, values 3..5, noise 6..7:
//
//	inputs : 7 6 0 5 7 6 0 5 2 5 2
//	targets: _ _ _ _ _ _ 5 _ _ _ 5
//
// The full sequence is the pairs (7 6) (0 5) (7 6) (0 5) (2 5) (2 5): two
// noise pairs, key 0 shown twice (its second value is a query: target 5 at
// the position of the key), key 2 sharing value 5, and the final probe,
// key 2, whose value is the token after the inputs. Decode shows the same
// with '.' for unscored targets and '|' before the probe's key; on the
// training split every target is the next token:
//
//	input : 7 6 0 5 7 6 0 5 2 5 | 2
//	target: . . . . . . 5 . . . | 5
//
// Differences from MAD's generator: the never-noise pair is drawn among
// pairs 0..P−2 (MAD draws among 0..P−1, and when it picks P−1 and every
// other pair comes up noise, probability frac_noise^(P−1)/P, there is no
// key to probe and its generator raises an error); MAD's single-query
// variant (a copy-prefix token before the probe) is not implemented.
type MADRecallConfig struct {
	task             string  // set by New: which of the two names this is
	Name             string  `yaml:"name"`
	Vocab            int     `yaml:"vocab"`       // all token ids, noise tokens included (MAD's vocab_size)
	SeqLen           int     `yaml:"seq_len"`     // L; the model reads L−1 tokens
	NoiseVocab       int     `yaml:"noise_vocab"` // Nn, the last Nn ids are noise (MAD's noise_vocab_size)
	FracNoise        float64 `yaml:"frac_noise"`  // probability that a pair is noise
	NumTrainExamples int     `yaml:"num_train_examples"`
	NumTestExamples  int     `yaml:"num_test_examples"`
}

// taskName is the registered name this config is for: set by New, else
// (a config built in code) its Name, else the plain task.
func (c *MADRecallConfig) taskName() string {
	switch {
	case c.task != "":
		return c.task
	case c.Name != "":
		return c.Name
	}
	return "mad_in_context_recall"
}

func (c *MADRecallConfig) common() madCommon {
	return madCommon{task: c.taskName(), name: c.Name, vocab: c.Vocab, seqLen: c.SeqLen,
		numTrain: c.NumTrainExamples, numTest: c.NumTestExamples,
		minVocab: c.NoiseVocab + 2, vocabWhy: "noise_vocab + 2: at least one key and one value id besides the noise ids",
		minSeqLen: 4, seqLenWhy: "a key-value pair and the final probe pair", evenLen: true}
}

// Validate checks the fields: noise_vocab >= 0 and vocab >= noise_vocab+2,
// seq_len even and >= 4, frac_noise in [0, 1) (and noise ids to draw from
// when it is > 0), example counts >= 1.
func (c *MADRecallConfig) Validate() error {
	if n := c.taskName(); n != "mad_in_context_recall" && n != "mad_noisy_in_context_recall" {
		return fmt.Errorf("field task.name: %q is not allowed (this config is for mad_in_context_recall or mad_noisy_in_context_recall)", n)
	}
	if c.NoiseVocab < 0 || c.NoiseVocab > maxMADVocab {
		return fmt.Errorf("field task.noise_vocab: %d is not allowed (must be in [0, %d])", c.NoiseVocab, maxMADVocab)
	}
	if !(c.FracNoise >= 0 && c.FracNoise < 1) {
		return fmt.Errorf("field task.frac_noise: %v is not allowed (must be in [0, 1), as in MAD)", c.FracNoise)
	}
	if c.FracNoise > 0 && c.NoiseVocab == 0 {
		return fmt.Errorf("field task.noise_vocab: 0 is not allowed (frac_noise %v > 0 needs noise ids to draw from)", c.FracNoise)
	}
	return c.common().validate()
}

// ExampleCounts returns num_train_examples and num_test_examples.
func (c *MADRecallConfig) ExampleCounts() (int, int) { return c.NumTrainExamples, c.NumTestExamples }

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *MADRecallConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &madRecallTask{name: c.taskName(), vocab: c.Vocab, seqLen: c.SeqLen, noiseVocab: c.NoiseVocab, fracNoise: c.FracNoise,
		sets: madSets{key: madKey(c.taskName()), numTrain: c.NumTrainExamples, numTest: c.NumTestExamples}}, nil
}

type madRecallTask struct {
	name                      string
	vocab, seqLen, noiseVocab int
	fracNoise                 float64
	sets                      madSets
}

func (t *madRecallTask) Vocab() int  { return t.vocab }
func (t *madRecallTask) SeqLen() int { return t.seqLen - 1 }

func (t *madRecallTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	L := t.seqLen - 1
	b := newBatch(size, L)
	seq := make([]int32, t.seqLen)
	scored := make([]bool, t.seqLen)
	S := t.vocab - t.noiseVocab
	value := make([]int32, S/2)
	var shown []int32
	t.sets.forEach(split, seed, index, size, func(i int, r *rand.Rand) {
		shown = t.fill(r, seq, scored, value, shown[:0])
		in, tg := b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L]
		copy(in, seq[:L])
		for p := range L {
			if split == Train || scored[p+1] {
				tg[p] = seq[p+1]
			}
		}
	})
	return b
}

// fill writes one full sequence of seq_len tokens into seq and marks in
// scored the values that are queries. value and shown are scratch space
// (value[k] < 0: key k not shown yet). Draw order, pair by pair as MAD:
// the never-noise pair; then per pair the noise coin (only when
// frac_noise > 0 and not the never-noise pair), two noise tokens or a key
// and, the first time, its value; finally the probe.
func (t *madRecallTask) fill(r *rand.Rand, seq []int32, scored []bool, value, shown []int32) []int32 {
	S := t.vocab - t.noiseVocab
	nk, nv := S/2, S-S/2
	for k := range value {
		value[k] = -1
	}
	clear(scored)
	P := t.seqLen / 2
	keep := r.IntN(P - 1)
	for i := range P - 1 {
		if t.fracNoise > 0 && i != keep && r.Float64() < t.fracNoise {
			seq[2*i] = int32(S + r.IntN(t.noiseVocab))
			seq[2*i+1] = int32(S + r.IntN(t.noiseVocab))
			continue
		}
		k := r.IntN(nk)
		if value[k] < 0 {
			value[k] = int32(nk + r.IntN(nv))
			shown = append(shown, int32(k))
		} else {
			scored[2*i+1] = true
		}
		seq[2*i], seq[2*i+1] = int32(k), value[k]
	}
	k := shown[r.IntN(len(shown))]
	seq[2*P-2], seq[2*P-1] = k, value[k]
	scored[2*P-1] = true
	return shown
}

// Decode renders sequence i as token ids, '.' for unscored targets and '|'
// before the final probe pair (the last input token is the probe's key).
// Ids outside the vocab show as '?'.
func (t *madRecallTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("%s: no sequence %d in a batch of %d", t.name, i, b.B)
	}
	in, tg := madDecodeIDs(b, i, t.vocab)
	return renderRows(in, tg, 1, b.L-1)
}

// madDecodeIDs renders sequence i of a batch as token ids ('?' outside
// [0, vocab)) and its targets ('.' for Ignore).
func madDecodeIDs(b Batch, i, vocab int) (ins, tgs []string) {
	id := func(tok int32) string {
		if tok >= 0 && int64(tok) < int64(vocab) {
			return strconv.Itoa(int(tok))
		}
		return "?"
	}
	ins, tgs = make([]string, b.L), make([]string, b.L)
	for p := range b.L {
		ins[p], tgs[p] = id(b.Inputs[i*b.L+p]), "."
		if v := b.Targets[i*b.L+p]; v != Ignore {
			tgs[p] = id(v)
		}
	}
	return ins, tgs
}

func init() {
	Register(Spec{
		Name: "mad_in_context_recall",
		Doc:  "MAD in-context recall (multi-query): key-value pairs, the value of every repeated key is a query; fixed train/test sets",
		New: func() Config {
			return &MADRecallConfig{task: "mad_in_context_recall", Name: "mad_in_context_recall", Vocab: 16, SeqLen: 128,
				NumTrainExamples: 12800, NumTestExamples: 1280}
		},
	})
	Register(Spec{
		Name: "mad_noisy_in_context_recall",
		Doc:  "MAD noisy in-context recall: in-context recall with pairs of noise tokens (own vocabulary) between the key-value pairs",
		New: func() Config {
			return &MADRecallConfig{task: "mad_noisy_in_context_recall", Name: "mad_noisy_in_context_recall", Vocab: 32, SeqLen: 128,
				NoiseVocab: 16, FracNoise: 0.2, NumTrainExamples: 12800, NumTestExamples: 1280}
		},
	})
}
