package tasks

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func buildMQAR(t testing.TB, c MQARConfig) Task {
	t.Helper()
	if c.PowerA == 0 {
		c.PowerA = 0.01
	}
	task, err := c.Build()
	if err != nil {
		t.Fatalf("%+v: %v", c, err)
	}
	return task
}

// checkMQARSequence checks every structural invariant of sequence i for K
// pairs and returns the first violation, naming the position.
func checkMQARSequence(b Batch, i, K, V int, randomFiller bool) error {
	L, half := b.L, int32(V/2)
	in, tg := b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L]
	value := map[int32]int32{}
	var keys, values []int32
	for k := range K {
		key, val := in[2*k], in[2*k+1]
		if key < 1 || key >= half {
			return fmt.Errorf("position %d: key %d outside [1, %d)", 2*k, key, half)
		}
		if val < half || val >= int32(V) {
			return fmt.Errorf("position %d: value %d outside [%d, %d)", 2*k+1, val, half, V)
		}
		if slices.Contains(keys, key) || slices.Contains(values, val) {
			return fmt.Errorf("pair %d (%d, %d) repeats a key or value", k, key, val)
		}
		keys, values = append(keys, key), append(values, val)
		value[key] = val
		if tg[2*k] != Ignore || tg[2*k+1] != Ignore {
			return fmt.Errorf("pair %d is scored", k)
		}
	}
	queried := map[int32]bool{}
	for p := 2 * K; p < L; p++ {
		if tg[p] == Ignore {
			if !randomFiller && in[p] != 0 {
				return fmt.Errorf("position %d: filler %d, want 0", p, in[p])
			}
			if in[p] < 0 || in[p] >= int32(V) {
				return fmt.Errorf("position %d: token %d outside the vocab", p, in[p])
			}
			continue
		}
		if (p-2*K)%2 != 0 {
			return fmt.Errorf("position %d: a query at an odd offset of the query region", p)
		}
		want, ok := value[in[p]]
		if !ok || queried[in[p]] {
			return fmt.Errorf("position %d: query %d is not a key, or a key queried twice", p, in[p])
		}
		if tg[p] != want {
			return fmt.Errorf("position %d: target %d for key %d, want its value %d", p, tg[p], in[p], want)
		}
		queried[in[p]] = true
	}
	if len(queried) != K {
		return fmt.Errorf("%d keys queried, want all %d", len(queried), K)
	}
	return nil
}

func TestMQARInvariants(t *testing.T) {
	cases := []struct {
		vocab, seqLen, k int
		random           bool
	}{
		{4, 4, 1, false},       // smallest legal: one key, one slot
		{8, 12, 3, true},       // every key of [1, 4) used
		{16, 16, 3, false},     // the doc example
		{64, 40, 10, true},     // L = 4K: every slot holds a query
		{8192, 256, 16, true},  // Zoology Fig. 2 setting
		{8192, 1024, 64, true}, // long
		{101, 50, 7, false},    // odd vocab
	}
	for n, c := range cases {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			task := buildMQAR(t, MQARConfig{Vocab: c.vocab, SeqLen: c.seqLen, NumKVPairs: c.k, RandomNonQueries: c.random})
			if task.Vocab() != c.vocab || task.SeqLen() != c.seqLen {
				t.Fatalf("Vocab %d SeqLen %d", task.Vocab(), task.SeqLen())
			}
			for _, split := range []Split{Train, Eval} {
				for index := range int64(5) {
					b := task.Batch(split, 2, index, 12)
					if b.B != 12 || b.L != c.seqLen || len(b.Inputs) != 12*c.seqLen {
						t.Fatalf("batch shape B=%d L=%d len=%d", b.B, b.L, len(b.Inputs))
					}
					for i := range b.B {
						if err := checkMQARSequence(b, i, c.k, c.vocab, c.random); err != nil {
							t.Fatalf("%s batch %d sequence %d: %v\n%s", split, index, i, err, task.Decode(b, i))
						}
					}
				}
			}
		})
	}
}

func TestMQARDeterministic(t *testing.T) {
	cfg := MQARConfig{Vocab: 256, SeqLen: 64, NumKVPairs: 8, RandomNonQueries: true}
	task := buildMQAR(t, cfg)
	ref := task.Batch(Train, 1, 3, 8)
	if got := buildMQAR(t, cfg).Batch(Train, 1, 3, 8); !reflect.DeepEqual(got, ref) {
		t.Error("a second task from the same config gave a different batch")
	}
	for what, other := range map[string]Batch{
		"seed":  task.Batch(Train, 2, 3, 8),
		"index": task.Batch(Train, 1, 4, 8),
		"split": task.Batch(Eval, 1, 3, 8),
	} {
		if reflect.DeepEqual(other.Inputs, ref.Inputs) {
			t.Errorf("another %s gave the same inputs", what)
		}
	}
	small, big := task.Batch(Eval, 5, 2, 3), task.Batch(Eval, 5, 2, 7)
	if !reflect.DeepEqual(small.Inputs, big.Inputs[:3*64]) || !reflect.DeepEqual(small.Targets, big.Targets[:3*64]) {
		t.Error("batch of 3 is not the first 3 sequences of the batch of 7")
	}
	// Filler does not move anything else: without random_non_queries the
	// same stream gives the same pairs and queries.
	cfg.RandomNonQueries = false
	plain := buildMQAR(t, cfg).Batch(Train, 1, 3, 8)
	if !reflect.DeepEqual(plain.Targets, ref.Targets) || !reflect.DeepEqual(plain.Inputs[:16], ref.Inputs[:16]) {
		t.Error("random_non_queries changed the pairs or the queries")
	}
}

// TestMQARKeysUniform: with vocab 8 the keys come from {1, 2, 3}; the 6
// ordered pairs of two distinct keys must be equally likely, and the values
// likewise over {4..7} (12 ordered pairs).
func TestMQARKeysUniform(t *testing.T) {
	task := buildMQAR(t, MQARConfig{Vocab: 8, SeqLen: 8, NumKVPairs: 2})
	keys, values := map[[2]int32]int{}, map[[2]int32]int{}
	for index := range int64(30) {
		b := task.Batch(Train, 3, index, 100)
		for i := range b.B {
			in := b.Inputs[i*8:]
			keys[[2]int32{in[0], in[2]}]++
			values[[2]int32{in[1], in[3]}]++
		}
	}
	if len(keys) != 6 || len(values) != 12 {
		t.Fatalf("saw %d key pairs and %d value pairs, want 6 and 12", len(keys), len(values))
	}
	// Far-tail thresholds (p < 1e-4 for 5 and 11 dof); the seed is fixed.
	if chi2 := chiSquare(mapCounts(keys)); chi2 > 26 {
		t.Errorf("key pairs: chi-square %.1f over 5 dof: %v", chi2, keys)
	}
	if chi2 := chiSquare(mapCounts(values)); chi2 > 36 {
		t.Errorf("value pairs: chi-square %.1f over 11 dof: %v", chi2, values)
	}
}

func mapCounts[K comparable](m map[K]int) []int {
	var c []int
	for _, v := range m {
		c = append(c, v)
	}
	return c
}

// TestMQARPowerLaw checks the query slots against the exact distribution of
// Zoology's sampler (successive draws without replacement, each ∝
// w_g = (g+1)^(a−1)): for K = 2 over S = 5 slots, the unordered slot set
// {g, h} has probability w_g/W·w_h/(W−w_g) + w_h/W·w_g/(W−w_h).
func TestMQARPowerLaw(t *testing.T) {
	const K, S = 2, 5
	for _, a := range []float64{0.01, 0.5, 1, 3} {
		task := buildMQAR(t, MQARConfig{Vocab: 16, SeqLen: 2*K + 2*S, NumKVPairs: K, PowerA: a})
		w, W := make([]float64, S), 0.0
		for g := range w {
			w[g] = math.Pow(float64(g+1), a-1)
			W += w[g]
		}
		counts := map[[2]int]int{}
		const batches, size = 40, 100
		for index := range int64(batches) {
			b := task.Batch(Train, 8, index, size)
			for i := range size {
				var set []int
				for p := 2 * K; p < b.L; p++ {
					if b.Targets[i*b.L+p] != Ignore {
						set = append(set, (p-2*K)/2)
					}
				}
				counts[[2]int{set[0], set[1]}]++
			}
		}
		chi2, n := 0.0, float64(batches*size)
		for g := range S {
			for h := g + 1; h < S; h++ {
				p := w[g]/W*w[h]/(W-w[g]) + w[h]/W*w[g]/(W-w[h])
				d := float64(counts[[2]int{g, h}]) - n*p
				chi2 += d * d / (n * p)
			}
		}
		// 9 dof; p < 1e-4 beyond 33.7. The seed is fixed.
		if chi2 > 34 {
			t.Errorf("power_a %v: chi-square %.1f over 9 dof, counts %v", a, chi2, counts)
		}
	}
}

func TestMQARCurricula(t *testing.T) {
	train := []MQARSetting{{64, 4}, {128, 8}, {64, 4}}
	test := []MQARSetting{{64, 16}, {256, 32}}
	task := buildMQAR(t, MQARConfig{Vocab: 512, SeqLen: 2, NumKVPairs: 99, TrainCurriculum: train, TestCurriculum: test})
	if task.SeqLen() != 256 {
		t.Errorf("SeqLen %d, want the longest setting 256", task.SeqLen())
	}
	for index := range int64(7) {
		b := task.Batch(Train, 1, index, 4)
		s := train[index%3]
		if b.L != s.SeqLen {
			t.Fatalf("train batch %d: L %d, want %d", index, b.L, s.SeqLen)
		}
		for i := range b.B {
			if err := checkMQARSequence(b, i, s.NumKVPairs, 512, false); err != nil {
				t.Fatalf("train batch %d sequence %d: %v", index, i, err)
			}
		}
		e := task.Batch(Eval, 1, index, 2)
		if s := test[index%2]; e.L != s.SeqLen || checkMQARSequence(e, 1, s.NumKVPairs, 512, false) != nil {
			t.Fatalf("eval batch %d: not setting %+v", index, s)
		}
	}
	// The repeated setting draws fresh sequences (the index differs).
	if reflect.DeepEqual(task.Batch(Train, 1, 0, 2).Inputs, task.Batch(Train, 1, 2, 2).Inputs) {
		t.Error("batches 0 and 2 of the same setting are equal")
	}
	segs := task.(Segmented).EvalSegments()
	if len(segs) != 2 || segs[0].Name != "L=64,kv=16" || segs[1].Name != "L=256,kv=32" {
		t.Fatalf("segments %+v", segs)
	}
	for i, seg := range segs {
		if seg.Task.SeqLen() != test[i].SeqLen || seg.Task.Vocab() != 512 {
			t.Errorf("segment %s: SeqLen %d", seg.Name, seg.Task.SeqLen())
		}
		// A segment is its setting alone, whatever the batch index.
		for index := range int64(3) {
			b := seg.Task.Batch(Eval, 1, index, 2)
			if b.L != test[i].SeqLen || checkMQARSequence(b, 0, test[i].NumKVPairs, 512, false) != nil {
				t.Errorf("segment %s batch %d is not its setting", seg.Name, index)
			}
		}
	}
	// Without a test curriculum there are no segments: the own eval set is
	// the single setting.
	single := buildMQAR(t, MQARConfig{Vocab: 512, SeqLen: 32, NumKVPairs: 2, TrainCurriculum: train})
	if s := single.(Segmented).EvalSegments(); len(s) != 0 {
		t.Errorf("no test curriculum: %d segments", len(s))
	}
	if b := single.Batch(Eval, 1, 1, 2); b.L != 32 {
		t.Errorf("eval batch without a test curriculum: L %d, want the single setting's 32", b.L)
	}
	if single.SeqLen() != 128 {
		t.Errorf("SeqLen %d, want 128 (train curriculum and the single eval setting)", single.SeqLen())
	}
}

func TestMQARDecode(t *testing.T) {
	task := buildMQAR(t, MQARConfig{Vocab: 16, SeqLen: 8, NumKVPairs: 2})
	b := newBatch(1, 8)
	copy(b.Inputs, []int32{3, 12, 1, 9, 1, 0, 3, 0})
	b.Targets[4], b.Targets[6] = 9, 12
	want := "input :  3 12  1  9  |  1  .  3  .\ntarget:  .  .  .  .  |  9  . 12  ."
	if got := task.Decode(b, 0); got != want {
		t.Errorf("Decode:\n%s\nwant:\n%s", got, want)
	}
	b.Inputs[0], b.Targets[6] = 16, -5
	if got := task.Decode(b, 0); !strings.HasPrefix(got, "input :  ?") || !strings.HasSuffix(got, "|  9  .  ?  .") {
		t.Errorf("Decode with bad tokens:\n%s", got)
	}
	if got := task.Decode(b, 1); !strings.Contains(got, "no sequence") {
		t.Errorf("Decode(b, 1) = %q", got)
	}
	long := buildMQAR(t, MQARConfig{Vocab: 8192, SeqLen: 100, NumKVPairs: 20, RandomNonQueries: true})
	lines := strings.Split(long.Decode(long.Batch(Train, 1, 0, 1), 0), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[6], "input  @96: ") {
		t.Errorf("wrapped Decode:\n%s", strings.Join(lines, "\n"))
	}
	for r := 0; r < len(lines); r += 2 {
		if len(lines[r]) != len(lines[r+1]) {
			t.Errorf("row %d: input %d chars, target %d", r/2, len(lines[r]), len(lines[r+1]))
		}
	}
	if strings.Count(strings.Join(lines, ""), "|") != 2 {
		t.Errorf("want one separator per line pair at position 40:\n%s", strings.Join(lines, "\n"))
	}
}

func TestMQARConfig(t *testing.T) {
	cfg, err := decodeTaskYAML(t, "name: mqar")
	if err != nil {
		t.Fatal(err)
	}
	task, err := cfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.(*MQARConfig); task.Vocab() != 8192 || task.SeqLen() != 256 || c.NumKVPairs != 16 || c.PowerA != 0.01 || !c.RandomNonQueries {
		t.Errorf("defaults: %+v", c)
	}
	cases := []struct {
		src  string
		want []string // substrings of the error; nil means no error
	}{
		0: {src: "name: mqar\nseq_len: 512\nnum_kv_pairs: 64\nrandom_non_queries: false"},
		1: {src: "name: mqar\nvocab: 64\ntrain_curriculum: [{seq_len: 64, num_kv_pairs: 4}]\ntest_curriculum:\n  - {seq_len: 64, num_kv_pairs: 8}\n  - {seq_len: 128, num_kv_pairs: 16}"},
		2: {src: "name: mqar\nvocab: 4\nseq_len: 4\nnum_kv_pairs: 1"},
		3: {src: "name: mqar\nseq_len: 255", want: []string{"line 2", "task.seq_len", "255", "even"}},
		4: {src: "name: mqar\nseq_len: 60\nnum_kv_pairs: 16", want: []string{"line 2", "task.seq_len", "60", "4*num_kv_pairs = 64"}},
		5: {src: "name: mqar\nvocab: 16\nnum_kv_pairs: 8\nseq_len: 32", want: []string{"line 3", "task.num_kv_pairs", "8", "vocab/2 - 1 = 7"}},
		6: {src: "name: mqar\nnum_kv_pairs: 0", want: []string{"task.num_kv_pairs", "0", ">= 1"}},
		7: {src: "name: mqar\nvocab: 3", want: []string{"task.vocab", "3", "4 <= vocab"}},
		8: {src: "name: mqar\npower_a: 0", want: []string{"task.power_a", "0", "> 0"}},
		9: {src: "name: mqar\npower_a: .nan", want: []string{"task.power_a", "NaN"}},
		10: {src: "name: mqar\ntrain_curriculum:\n  - {seq_len: 64, num_kv_pairs: 4}\n  - {seq_len: 64, num_kv_pairs: 32}",
			want: []string{"line 3", "task.train_curriculum", "num_kv_pairs: 32} (entry 1)", "4*num_kv_pairs = 128"}},
		11: {src: "name: mqar\ntest_curriculum: [{seq_len: 64, num_kv_pairs: 4}, {seq_len: 64, num_kv_pairs: 4}]",
			want: []string{"task.test_curriculum", "(entry 1)", "twice"}},
		12: {src: "name: mqar\ntrain_curriculum: [{seq_len: 64, kv_pairs: 4}]", want: []string{"kv_pairs", "known", "num_kv_pairs"}},
		13: {src: "name: mqar\ntest_curriculum: [{seq_len: 64}]", want: []string{"task.test_curriculum", "num_kv_pairs: 0}", ">= 1"}},
		// With both curricula the single setting is unused, so its
		// (invalid here) values are not checked.
		14: {src: "name: mqar\nvocab: 32\ntrain_curriculum: [{seq_len: 16, num_kv_pairs: 4}]\ntest_curriculum: [{seq_len: 32, num_kv_pairs: 8}]"},
		15: {src: "name: mqar\nvocab: 32\ntrain_curriculum: [{seq_len: 16, num_kv_pairs: 4}]", want: []string{"task.num_kv_pairs", "16"}},
		16: {src: "name: mqar\nvocab: 2147483648", want: []string{"2147483648"}},
		17: {src: "name: mqar\nnum_examples: 100000\nnum_test_examples: 3000"},
		18: {src: "name: mqar\nnum_examples: -1", want: []string{"task.num_examples", "-1"}},
		19: {src: "name: mqar\nnum_test_examples: 1000000000", want: []string{"task.num_test_examples", "1000000000"}},
	}
	for n, c := range cases {
		_, err := decodeTaskYAML(t, c.src)
		if c.want == nil {
			if err != nil {
				t.Errorf("case %d: %v", n, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("case %d: no error, want one mentioning %q", n, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error %q lacks %q", n, err, w)
			}
		}
	}
}

// TestMQARDocExample: the worked examples in the doc comment are real
// outputs of the generator.
func TestMQARDocExample(t *testing.T) {
	plain := buildMQAR(t, MQARConfig{Vocab: 16, SeqLen: 16, NumKVPairs: 3})
	random := buildMQAR(t, MQARConfig{Vocab: 16, SeqLen: 16, NumKVPairs: 3, RandomNonQueries: true})
	checkDocExample(t, "mqar.go", plain, random)
}

func BenchmarkMQARBatch(b *testing.B) {
	task := buildMQAR(b, MQARConfig{Vocab: 8192, SeqLen: 512, NumKVPairs: 64, RandomNonQueries: true})
	for i := range b.N {
		task.Batch(Train, 1, int64(i), 64)
	}
}

// num_examples: training draws from a fixed set of N sequences, each epoch
// every one exactly once in a fresh order (batches may straddle epochs);
// the set depends on the seed; num_test_examples: the eval set cycles
// through its N_test sequences in order, segments included. Zero keeps the
// streamed batches.
func TestMQARFixedSets(t *testing.T) {
	const N, NTest, B = 12, 6, 5
	c := MQARConfig{Vocab: 64, SeqLen: 16, NumKVPairs: 2, RandomNonQueries: true}
	streamed := buildMQAR(t, c)
	c.NumExamples, c.NumTestExamples = N, NTest
	fixed := buildMQAR(t, c)
	if got := fixed.(FixedTrainSet).TrainExamples(); got != N {
		t.Errorf("TrainExamples %d, want %d", got, N)
	}
	if got := streamed.(FixedTrainSet).TrainExamples(); got != 0 {
		t.Errorf("streamed TrainExamples %d, want 0", got)
	}
	// Three epochs of 12 examples in batches of 5: positions 0..35.
	var seen []string
	for index := range int64(8) {
		b := fixed.Batch(Train, 3, index, B)
		for i := range b.B {
			if err := checkMQARSequence(b, i, 2, 64, true); err != nil {
				t.Fatal(err)
			}
			seen = append(seen, seqKey(b, i))
		}
	}
	epochs := [][]string{seen[:N], seen[N : 2*N], seen[2*N : 3*N]}
	set := slices.Clone(epochs[0])
	slices.Sort(set)
	if len(slices.Compact(slices.Clone(set))) != N {
		t.Fatalf("epoch 0 repeats an example")
	}
	for e, ep := range epochs[1:] {
		sorted := slices.Clone(ep)
		slices.Sort(sorted)
		if !slices.Equal(sorted, set) {
			t.Errorf("epoch %d is not the same set of examples", e+1)
		}
		if slices.Equal(ep, epochs[0]) {
			t.Errorf("epoch %d has epoch 0's order", e+1)
		}
	}
	if seqKey(fixed.Batch(Train, 4, 0, B), 0) == seen[0] {
		t.Error("another seed gave the same first example")
	}
	if !reflect.DeepEqual(fixed.Batch(Train, 3, 2, B), fixed.Batch(Train, 3, 2, B)) {
		t.Error("a batch is not a pure function of its arguments")
	}
	// The eval set: 6 test examples in order, batch 1 of 3 holding 3..5,
	// batch 2 starting over; not the streamed eval sequences.
	e0, e1, e2 := fixed.Batch(Eval, 3, 0, 3), fixed.Batch(Eval, 3, 1, 3), fixed.Batch(Eval, 3, 2, 3)
	if !reflect.DeepEqual(e0, e2) || reflect.DeepEqual(e0, e1) {
		t.Error("the test set does not cycle every 6 examples")
	}
	if reflect.DeepEqual(e0, streamed.Batch(Eval, 3, 0, 3)) {
		t.Error("the fixed test set equals the streamed eval batch")
	}
	for _, b := range []Batch{e0, e1} {
		for i := range b.B {
			for _, tr := range seen[:N] {
				if seqKey(b, i) == tr {
					t.Error("a test example is a training example")
				}
			}
		}
	}
	// A segment's test set is its setting's: the single-setting task with
	// the same test curriculum entry gives the same sequences.
	c.TestCurriculum = []MQARSetting{{SeqLen: 16, NumKVPairs: 2}}
	seg := buildMQAR(t, c).(Segmented).EvalSegments()[0].Task
	if !reflect.DeepEqual(seg.Batch(Eval, 3, 1, 3), e1) {
		t.Error("the segment's test set differs from the task's")
	}
}
