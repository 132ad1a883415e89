package tasks

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MQARConfig is multi-query associative recall as Zoology generates it
// (Arora, Eyuboglu et al. 2023, "Zoology: Measuring and Improving Recall in
// Efficient Language Models"; zoology/data/multiquery_ar.py): a sequence
// starts with K key-value pairs, and later each key appears once more as a
// query, where the model must output the value it was paired with.
//
// Token ids: keys are drawn from [1, V/2) and values from [V/2, V)
// (V = vocab, V/2 rounded down), each without replacement, so the K keys
// of a sequence are distinct and so are its K values. Layout of one
// sequence of length L = seq_len with K = num_kv_pairs:
//
//   - positions 0..2K−1: key₀ value₀ key₁ value₁ … (random order);
//   - positions 2K..L−1, the query region of S = (L−2K)/2 even slots
//     2K, 2K+2, …: K distinct slots g₀..g_{K−1} hold the keys as queries,
//     key_k at 2K+2·g_k with its value as the target there (next-token
//     prediction: the model reads the key and must answer the value);
//   - every other position of the query region is filler: a token drawn
//     uniformly from [0, V) when random_non_queries is set (it may happen
//     to equal a key or value; it is never scored), else 0.
//
// The slots follow Zoology's power law: K draws without replacement with
// P(slot g) ∝ (g+1)^(power_a−1), so with power_a = 0.01 queries crowd near
// the key-value pairs and a few land far away; power_a = 1 is uniform. Only
// the K query positions are scored.
//
// Worked example (vocab 16, seq_len 16, num_kv_pairs 3, random_non_queries
// false; train split, seed 4, batch 0, sequence 0), raw token ids, '_' =
// Ignore:
//
//	inputs : 1 9 2 10 3 13 1 0 3 0 2 0 0 0 0 0
//	targets: _ _ _ _ _ _ 9 _ 13 _ 10 _ _ _ _ _
//
// and as Decode shows it ('|' before the query region, '.' the filler 0 or
// an unscored target):
//
//	input :  1  9  2 10  3 13  |  1  .  3  .  2  .  .  .  .  .
//	target:  .  .  .  .  .  .  |  9  . 13  . 10  .  .  .  .  .
//
// The power law put all three queries in the first slots. With
// random_non_queries (the default) the same sequence has random filler:
//
//	input :  1  9  2 10  3 13  |  1  7  3  7  2 11  7 13 10 12
//	target:  .  .  .  .  .  .  |  9  . 13  . 10  .  .  .  .  .
//
// Validation follows Zoology's generator: seq_len even and >= 4·num_kv_pairs
// (the query region needs a slot per key); vocab large enough for distinct
// keys (num_kv_pairs <= V/2 − 1). Zoology also asserts vocab > seq_len,
// which its generator does not need; seqbench does not require it.
//
// Curricula. train_curriculum and test_curriculum are lists of
// {seq_len, num_kv_pairs} settings; an empty list means the single setting
// (seq_len, num_kv_pairs). Training batch i is generated at train setting
// i mod n (round robin, as deterministic as the rest of the data; list a
// setting twice to give it twice the batches), each batch at one length.
// The task's own eval set cycles through the test settings the same way,
// so its accuracy is over all of them, like Zoology's overall test
// accuracy. A non-empty test_curriculum also makes each setting a segment,
// named "L=<seq_len>,kv=<num_kv_pairs>", evaluated and reported on its own
// (see Segmented). SeqLen() is the longest length of both lists, so learned
// positions cover every batch; shorter batches have their own length.
type MQARConfig struct {
	Name             string  `yaml:"name"`
	Vocab            int     `yaml:"vocab"`
	SeqLen           int     `yaml:"seq_len"`
	NumKVPairs       int     `yaml:"num_kv_pairs"`
	PowerA           float64 `yaml:"power_a"`
	RandomNonQueries bool    `yaml:"random_non_queries"`
	// TrainCurriculum and TestCurriculum replace (seq_len, num_kv_pairs)
	// for training and for evaluation when non-empty.
	TrainCurriculum []MQARSetting `yaml:"train_curriculum"`
	TestCurriculum  []MQARSetting `yaml:"test_curriculum"`
	// NumExamples, when > 0, makes training Zoology's: a fixed set of
	// num_examples sequences per training setting, drawn once and shuffled
	// anew every epoch (train.epochs counts them), instead of fresh
	// sequences every batch (0, the default). NumTestExamples, when > 0,
	// makes the eval set (and every segment's) a fixed set of that many
	// sequences cycled in order, so an eval set of num_test_examples
	// sequences (train.eval_examples) is each test example once; 0 draws
	// eval batch i's sequences from batch i's own stream. Zoology: 100,000
	// and 3,000.
	NumExamples     int `yaml:"num_examples,omitempty"`
	NumTestExamples int `yaml:"num_test_examples,omitempty"`
}

// MQARSetting is one (seq_len, num_kv_pairs) entry of a curriculum.
type MQARSetting struct {
	SeqLen     int `yaml:"seq_len"`
	NumKVPairs int `yaml:"num_kv_pairs"`
}

func (s MQARSetting) name() string { return fmt.Sprintf("L=%d,kv=%d", s.SeqLen, s.NumKVPairs) }

// check returns why s is not a valid setting for vocab, or "".
func (s MQARSetting) check(vocab int) string {
	switch {
	case s.NumKVPairs < 1:
		return "num_kv_pairs must be >= 1"
	case s.NumKVPairs > vocab/2-1:
		return fmt.Sprintf("num_kv_pairs must be <= vocab/2 - 1 = %d: the keys of a sequence are distinct tokens of [1, vocab/2)", vocab/2-1)
	case s.SeqLen < 4 || s.SeqLen > maxTaskLen:
		return fmt.Sprintf("seq_len must be in [4, %d]", maxTaskLen)
	case s.SeqLen%2 != 0:
		return "seq_len must be even (queries sit on every other position of the query region, as in Zoology)"
	case s.SeqLen/4 < s.NumKVPairs:
		return fmt.Sprintf("seq_len must be >= 4*num_kv_pairs = %d: 2K positions of pairs plus a query slot per key", 4*int64(s.NumKVPairs))
	}
	return ""
}

// Validate checks the fields; see the type's comment for the rules.
func (c *MQARConfig) Validate() error {
	if c.Name != "" && c.Name != "mqar" {
		return fmt.Errorf("field task.name: %q is not allowed (this config is for mqar)", c.Name)
	}
	if c.Vocab < 4 || int64(c.Vocab) > math.MaxInt32 {
		return fmt.Errorf("field task.vocab: %d is not allowed (mqar needs 4 <= vocab <= %d: keys from [1, vocab/2), values from [vocab/2, vocab))",
			c.Vocab, math.MaxInt32)
	}
	for _, f := range []struct {
		field string
		n     int
	}{{"num_examples", c.NumExamples}, {"num_test_examples", c.NumTestExamples}} {
		if f.n < 0 || f.n > maxMQARExamples {
			return fmt.Errorf("field task.%s: %d is not allowed (must be in [0, %d]; 0 draws fresh sequences)", f.field, f.n, maxMQARExamples)
		}
	}
	if !(c.PowerA > 0) || math.IsInf(c.PowerA, 0) {
		return fmt.Errorf("field task.power_a: %v is not allowed (must be finite and > 0; 1 places queries uniformly)", c.PowerA)
	}
	// The single setting is checked only where it is used, so a config
	// with both curricula does not trip over the unused defaults.
	if len(c.TrainCurriculum) == 0 || len(c.TestCurriculum) == 0 {
		single := MQARSetting{c.SeqLen, c.NumKVPairs}
		if why := single.check(c.Vocab); why != "" {
			field, v := "seq_len", c.SeqLen
			if strings.HasPrefix(why, "num_kv_pairs") {
				field, v = "num_kv_pairs", c.NumKVPairs
			}
			return fmt.Errorf("field task.%s: %d is not allowed (%s; seq_len %d, num_kv_pairs %d, vocab %d)",
				field, v, why, c.SeqLen, c.NumKVPairs, c.Vocab)
		}
	}
	for _, cur := range []struct {
		field string
		list  []MQARSetting
	}{{"train_curriculum", c.TrainCurriculum}, {"test_curriculum", c.TestCurriculum}} {
		for i, s := range cur.list {
			if why := s.check(c.Vocab); why != "" {
				return fmt.Errorf("field task.%s: {seq_len: %d, num_kv_pairs: %d} (entry %d) is not allowed (%s; vocab %d)",
					cur.field, s.SeqLen, s.NumKVPairs, i, why, c.Vocab)
			}
			if cur.field == "test_curriculum" && slices.Contains(cur.list[:i], s) {
				return fmt.Errorf("field task.test_curriculum: {seq_len: %d, num_kv_pairs: %d} (entry %d) is not allowed (listed twice; each test setting is a named segment)",
					s.SeqLen, s.NumKVPairs, i)
			}
		}
	}
	return nil
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *MQARConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t := &mqarTask{vocab: c.Vocab, powerA: c.PowerA, randomNonQueries: c.RandomNonQueries,
		numTrain: c.NumExamples, numTest: c.NumTestExamples, perms: &permCache{}}
	single := []MQARSetting{{c.SeqLen, c.NumKVPairs}}
	t.train, t.test = c.TrainCurriculum, c.TestCurriculum
	if len(t.train) == 0 {
		t.train = single
	}
	if len(t.test) == 0 {
		t.test = single
	} else {
		t.segments = true
	}
	t.train, t.test = slices.Clone(t.train), slices.Clone(t.test)
	t.slotWeights = map[int][]float64{}
	for _, s := range append(slices.Clone(t.train), t.test...) {
		t.maxLen = max(t.maxLen, s.SeqLen)
		space := (s.SeqLen - 2*s.NumKVPairs) / 2
		if _, ok := t.slotWeights[space]; !ok {
			t.slotWeights[space] = slotLogInvWeights(space, c.PowerA)
		}
	}
	return t, nil
}

// slotLogInvWeights returns −log w_g = (1−a)·log(g+1) for the S slots g of
// a query region: the power-law weights w_g = (g+1)^(a−1) Zoology samples
// slots with (their normalisation does not matter for sampling). Logs keep
// any power_a free of under- and overflow.
func slotLogInvWeights(space int, a float64) []float64 {
	inv := make([]float64, space)
	for g := range inv {
		inv[g] = (1 - a) * math.Log(float64(g+1))
	}
	return inv
}

// mqarTask generates MQAR batches; train and test hold at least one setting.
type mqarTask struct {
	vocab            int
	powerA           float64
	randomNonQueries bool
	train, test      []MQARSetting
	segments         bool // test came from test_curriculum
	maxLen           int
	// slotWeights maps a query region's slot count to its −log weights
	// (read-only after Build, so batches may be generated concurrently).
	slotWeights map[int][]float64
	// numTrain and numTest are the fixed sets' sizes per setting (0:
	// fresh sequences); perms caches the current epoch's shuffle.
	numTrain, numTest int
	perms             *permCache
}

// maxMQARExamples bounds num_examples and num_test_examples (an epoch's
// shuffle holds one int32 per example).
const maxMQARExamples = 1 << 26

// permCache holds the last epoch permutation computed per training
// setting, so a batch costs O(batch) and not a shuffle of the whole set;
// the mutex keeps concurrent Batch calls safe.
type permCache struct {
	mu    sync.Mutex
	byKey map[uint64]*epochPerm
}

type epochPerm struct {
	epoch int64
	perm  []int32
}

// at returns the example at position j of the given epoch of the set keyed
// by s (n examples).
func (c *permCache) at(s uint64, epoch int64, n int, j int64) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKey == nil {
		c.byKey = map[uint64]*epochPerm{}
	}
	p := c.byKey[s]
	if p == nil {
		p = &epochPerm{epoch: math.MinInt64}
		c.byKey[s] = p
	}
	if p.epoch != epoch {
		p.perm, p.epoch = epochPermutation(s, epoch, n, p.perm), epoch
	}
	return p.perm[j]
}

// TrainExamples is an epoch's size: num_examples per training setting, 0
// when training streams fresh sequences.
func (t *mqarTask) TrainExamples() int { return t.numTrain * len(t.train) }

var _ Segmented = (*mqarTask)(nil)

func (t *mqarTask) Vocab() int { return t.vocab }

// SeqLen is the longest sequence of any setting; batches of shorter
// settings have their own length (Batch.L).
func (t *mqarTask) SeqLen() int { return t.maxLen }

// EvalSegments returns one segment per test_curriculum entry (none without
// a test curriculum: the task's own eval set is then the single setting).
func (t *mqarTask) EvalSegments() []Segment {
	if !t.segments {
		return nil
	}
	segs := make([]Segment, len(t.test))
	for i, s := range t.test {
		one := []MQARSetting{s}
		segs[i] = Segment{Name: s.name(), Task: &mqarTask{vocab: t.vocab, powerA: t.powerA, randomNonQueries: t.randomNonQueries,
			train: one, test: one, maxLen: s.SeqLen, slotWeights: t.slotWeights, numTest: t.numTest, perms: t.perms}}
	}
	return segs
}

// mqarStream is the key that, hashed with the seed and a setting, gives the
// seed of the setting's streams: settings draw from independent streams.
const mqarStream = 0x3a9c_a11b_ac1d_0123

// Batch generates batch index of a split at the setting the curriculum
// assigns to it (round robin over the train or test list) and fills every
// sequence from its own stream (see seqRand), so sequence i does not depend
// on the batch size.
func (t *mqarTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	list := t.train
	if split == Eval {
		list = t.test
	}
	n := int64(len(list))
	s := list[((index%n)+n)%n]
	b := newBatch(size, s.SeqLen)
	g := mqarGen{t: t, s: s, inv: t.slotWeights[(s.SeqLen-2*s.NumKVPairs)/2]}
	setSeed := hashWords(mqarStream, seed, uint64(s.SeqLen), uint64(s.NumKVPairs))
	L := s.SeqLen
	for i := range size {
		g.fill(t.exampleRand(setSeed, split, index/n, index, size, i), b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L])
	}
	return b
}

// exampleRand is the stream of sequence i of batch index (the j-th batch of
// its setting, batches of size): its own stream when the split streams
// fresh data; with a fixed set, that of the example it holds. Example e of
// a fixed set is seqRand(setSeed, split, −1−e, 0), apart from every
// streamed sequence (whose index is ≥ 0). Training takes the examples at
// positions j·size .. j·size+size−1 of an endless run of epochs, each a
// fresh permutation of the set (a batch may straddle two); evaluation
// takes test examples j·size+i mod num_test_examples in order.
func (t *mqarTask) exampleRand(setSeed uint64, split Split, j, index int64, size, i int) *rand.Rand {
	n := t.numTrain
	if split == Eval {
		n = t.numTest
	}
	if n == 0 {
		return seqRand(setSeed, split, index, i)
	}
	pos := j*int64(size) + int64(i)
	e := floorMod(pos, int64(n))
	if split == Train {
		e = int64(t.perms.at(hashWords(mqarEpochStream, setSeed), floorDiv(pos, int64(n)), n, e))
	}
	return seqRand(setSeed, split, -1-e, 0)
}

// mqarEpochStream keys the per-epoch shuffles of a fixed training set.
const mqarEpochStream = 0x3a9c_e90c_5eed_0456

// mqarGen holds the scratch space of one batch's sequences.
type mqarGen struct {
	t            *mqarTask
	s            MQARSetting
	inv          []float64
	keys, values []int32
	swaps        map[int]int
	slots        []slotKey
}

type slotKey struct {
	key  float64
	slot int
}

// fill writes one sequence; in is all 0 and tg all Ignore on entry. Draw order: keys,
// values, slot keys, then filler in position order.
func (g *mqarGen) fill(r *rand.Rand, in, tg []int32) {
	K, V := g.s.NumKVPairs, g.t.vocab
	half := V / 2
	g.keys = g.sampleDistinct(r, 1, half-1, K, g.keys)
	g.values = g.sampleDistinct(r, half, V-half, K, g.values)
	for k := range K {
		in[2*k], in[2*k+1] = g.keys[k], g.values[k]
	}
	// Weighted sampling without replacement (Efraimidis & Spirakis 2006):
	// give slot g the key E_g/w_g with E_g ~ Exp(1); the K smallest keys are
	// distributed as K successive draws each ∝ w_g among the slots left,
	// which is what numpy's choice(replace=False, p=w) does. The keys are
	// compared as logs, log E_g − log w_g.
	g.slots = g.slots[:0]
	for s, negLogW := range g.inv {
		g.slots = append(g.slots, slotKey{math.Log(r.ExpFloat64()) + negLogW, s})
	}
	slices.SortFunc(g.slots, func(a, b slotKey) int { return cmp.Compare(a.key, b.key) })
	ctx := 2 * K
	for k := range K {
		p := ctx + 2*g.slots[k].slot
		in[p], tg[p] = g.keys[k], g.values[k]
	}
	// The query region is all 0 but the queries (keys are >= 1): 0 is the
	// filler, or marks where a random one goes.
	if g.t.randomNonQueries {
		for p := ctx; p < len(in); p++ {
			if in[p] == 0 {
				in[p] = int32(r.IntN(V))
			}
		}
	}
}

// sampleDistinct returns k distinct tokens of [lo, lo+n) in uniformly
// random order: the first k steps of a Fisher–Yates shuffle of 0..n−1, with
// the swapped entries kept in a map so that the cost is O(k), not O(n).
func (g *mqarGen) sampleDistinct(r *rand.Rand, lo, n, k int, dst []int32) []int32 {
	if g.swaps == nil {
		g.swaps = map[int]int{}
	}
	clear(g.swaps)
	at := func(i int) int {
		if v, ok := g.swaps[i]; ok {
			return v
		}
		return i
	}
	dst = dst[:0]
	for i := range k {
		j := i + r.IntN(n-i)
		vi, vj := at(i), at(j)
		g.swaps[j] = vi
		dst = append(dst, int32(lo+vj))
	}
	return dst
}

// Decode renders sequence i as an input line and a target line, column
// aligned: token ids as numbers, '|' before the query region (after the 2K
// key-value positions, K being the number of scored positions), '.' for unscored targets and,
// without random_non_queries, for the filler token 0. Ids outside the vocab
// show as '?'. Sequences longer than 32 positions wrap into labelled rows.
func (t *mqarTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("mqar: no sequence %d in a batch of %d", i, b.B)
	}
	in, tg := b.Inputs[i*b.L:(i+1)*b.L], b.Targets[i*b.L:(i+1)*b.L]
	id := func(tok int32) string {
		if tok >= 0 && int(tok) < t.vocab {
			return strconv.Itoa(int(tok))
		}
		return "?"
	}
	ins, tgs := make([]string, b.L), make([]string, b.L)
	for p := range b.L {
		ins[p], tgs[p] = id(in[p]), "."
		if in[p] == 0 && !t.randomNonQueries {
			ins[p] = "."
		}
		if tg[p] != Ignore {
			tgs[p] = id(tg[p])
		}
	}
	// Every key is queried once, so the scored positions count the pairs.
	K := 0
	for _, v := range tg {
		if v != Ignore {
			K++
		}
	}
	return renderRows(ins, tgs, 1, 2*K)
}

func init() {
	Register(Spec{
		Name: "mqar",
		Doc:  "Zoology multi-query associative recall: K key-value pairs, then each key queried once (power-law placement); curricula and per-setting eval",
		New: func() Config {
			return &MQARConfig{Name: "mqar", Vocab: 8192, SeqLen: 256, NumKVPairs: 16, PowerA: 0.01, RandomNonQueries: true}
		},
	})
}
