package tasks

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// The MAD tasks (Poli, Thomas, Nguyen et al. 2024, "Mechanistic Design and
// Scaling of Hybrid Architectures"; github.com/athms/mad-lab,
// mad/data/instances.py and configs/tasks/*.yml) share what this file holds:
// a fixed training set and a fixed test set of num_train_examples and
// num_test_examples sequences, the way MAD generates its data once and then
// trains for epochs over it (MAD: 12,800 training and 1,280 test examples,
// batch 128, 200 epochs).
//
// Example e of a split is generated from its own stream, seqRand(s, split,
// e, 0) with s = hashWords(task key, seed), so it is the same example every
// epoch and a pure function of (config, seed, split, e). Training batch
// `index` of size B holds the examples at stream positions index·B ..
// index·B+B−1 of an endless sequence of epochs, each epoch a fresh
// permutation of the N training examples (MAD's DataLoader(shuffle=True));
// a batch may straddle two epochs. Evaluation batch `index` holds test
// examples index·B+i mod N_test in order, so an eval set of
// N_test/B batches is the test set exactly once (the `mad` experiment kind
// sets train.eval_batches so).
//
// Every MAD task scores only what MAD's test targets score; the in-context
// recall tasks train, as MAD does, on every next token (see their configs).

// maxMADVocab and maxMADExamples bound what one config may ask to allocate
// (a memorization map of vocab entries, a permutation of the training set
// per batch): far above MAD's largest settings (vocab 8192, 12,800
// examples).
const (
	maxMADVocab    = 1 << 24
	maxMADExamples = 1 << 24
)

// MADConfig is implemented by the MAD task configs: the sizes of their
// fixed training and test sets, which the `mad` experiment kind turns into
// steps (epochs over the training set) and eval batches (the test set once).
type MADConfig interface {
	Config
	ExampleCounts() (train, test int)
}

// madKey is the stream key of a MAD task: a hash of its registered name,
// so two tasks given the same seed draw unrelated data.
func madKey(task string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(task))
	return h.Sum64()
}

// madSets is the fixed data of one MAD task config.
type madSets struct {
	key               uint64 // the task's stream key, hashed with the seed
	numTrain, numTest int
}

// forEach calls fill for every sequence i of batch index of a split, with
// the stream of the example it holds (see the comment at the top).
func (d madSets) forEach(split Split, seed uint64, index int64, size int, fill func(i int, r *rand.Rand)) {
	s := hashWords(d.key, seed)
	if split == Eval {
		n := int64(d.numTest)
		for i := range size {
			e := floorMod(index*int64(size)+int64(i), n)
			fill(i, seqRand(s, Eval, e, 0))
		}
		return
	}
	n := int64(d.numTrain)
	var perm []int32
	permEpoch := int64(math.MinInt64)
	for i := range size {
		g := index*int64(size) + int64(i)
		epoch, j := floorDiv(g, n), floorMod(g, n)
		if epoch != permEpoch {
			perm, permEpoch = epochPermutation(s, epoch, d.numTrain, perm), epoch
		}
		fill(i, seqRand(s, Train, int64(perm[j]), 0))
	}
}

// madEpochStream keys the per-epoch shuffles of the training set.
const madEpochStream = 0x0e90c4_5b0ff1e5

// epochPermutation returns the order of the n training examples in an
// epoch: a Fisher–Yates shuffle from the epoch's own stream.
func epochPermutation(s uint64, epoch int64, n int, dst []int32) []int32 {
	r := rand.New(rand.NewPCG(hashWords(madEpochStream, s, uint64(epoch)), hashWords(madEpochStream^1, s, uint64(epoch))))
	dst = dst[:0]
	for i := range n {
		dst = append(dst, int32(i))
	}
	r.Shuffle(n, func(i, j int) { dst[i], dst[j] = dst[j], dst[i] })
	return dst
}

func floorDiv(a, n int64) int64 {
	q := a / n
	if a%n != 0 && a < 0 {
		q--
	}
	return q
}

func floorMod(a, n int64) int64 { return ((a % n) + n) % n }

// madCommon holds the fields every MAD task config has.
type madCommon struct {
	task      string // the registered name this config is for (set by New)
	name      string
	vocab     int
	seqLen    int
	numTrain  int
	numTest   int
	minVocab  int    // the least vocab the layout needs
	vocabWhy  string // why (for the error)
	minSeqLen int
	seqLenWhy string
	evenLen   bool // seq_len must be even (key-value pairs)
}

// validate checks the shared fields; errors name the field, the value and
// what is allowed.
func (c madCommon) validate() error {
	if c.name != "" && c.name != c.task {
		return fmt.Errorf("field task.name: %q is not allowed (this config is for %s)", c.name, c.task)
	}
	if c.vocab < c.minVocab || c.vocab > maxMADVocab {
		return fmt.Errorf("field task.vocab: %d is not allowed (%s needs %d <= vocab <= %d: %s)", c.vocab, c.task, c.minVocab, maxMADVocab, c.vocabWhy)
	}
	if c.seqLen < c.minSeqLen || c.seqLen > maxTaskLen {
		return fmt.Errorf("field task.seq_len: %d is not allowed (%s needs %d <= seq_len <= %d: %s)", c.seqLen, c.task, c.minSeqLen, maxTaskLen, c.seqLenWhy)
	}
	if c.evenLen && c.seqLen%2 != 0 {
		return fmt.Errorf("field task.seq_len: %d is not allowed (%s needs an even seq_len: the sequence is made of token pairs)", c.seqLen, c.task)
	}
	if c.numTrain < 1 || c.numTrain > maxMADExamples {
		return fmt.Errorf("field task.num_train_examples: %d is not allowed (must be in [1, %d])", c.numTrain, maxMADExamples)
	}
	if c.numTest < 1 || c.numTest > maxMADExamples {
		return fmt.Errorf("field task.num_test_examples: %d is not allowed (must be in [1, %d])", c.numTest, maxMADExamples)
	}
	return nil
}

// drawDistinct appends m distinct tokens of [lo, lo+n) in random order to
// dst: a uniform ordered m-tuple, which is what MAD's choice among the
// shuffled list of all m-permutations of the vocabulary draws. Rejection is
// cheap because m is a motif size (a few tokens) and m <= n.
func drawDistinct(r *rand.Rand, lo, n, m int, dst []int32) []int32 {
	start := len(dst)
	for len(dst)-start < m {
		v := int32(lo + r.IntN(n))
		dup := false
		for _, u := range dst[start:] {
			dup = dup || u == v
		}
		if !dup {
			dst = append(dst, v)
		}
	}
	return dst
}
