package tasks

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// madTaskNames are the six MAD tasks in MAD's order.
var madTaskNames = []string{
	"mad_in_context_recall", "mad_fuzzy_in_context_recall", "mad_noisy_in_context_recall",
	"mad_selective_copying", "mad_compression", "mad_memorization",
}

func buildMADYAML(t testing.TB, src string) Task {
	t.Helper()
	cfg, err := decodeTaskYAML(t, src)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	task, err := cfg.Build()
	if err != nil {
		t.Fatalf("%s: Build: %v", src, err)
	}
	return task
}

// The registered defaults are MAD's baseline settings
// (mad-lab configs/tasks/*.yml baseline, MADConfig defaults for the rest).
func TestMADDefaultsAreMADBaselines(t *testing.T) {
	want := map[string]string{
		"mad_in_context_recall":       "{Name:mad_in_context_recall Vocab:16 SeqLen:128 NoiseVocab:0 FracNoise:0 NumTrainExamples:12800 NumTestExamples:1280}",
		"mad_noisy_in_context_recall": "{Name:mad_noisy_in_context_recall Vocab:32 SeqLen:128 NoiseVocab:16 FracNoise:0.2 NumTrainExamples:12800 NumTestExamples:1280}",
		"mad_fuzzy_in_context_recall": "{Name:mad_fuzzy_in_context_recall Vocab:16 SeqLen:128 KMotifSize:3 VMotifSize:3 NumTrainExamples:12800 NumTestExamples:1280}",
		"mad_selective_copying":       "{Name:mad_selective_copying Vocab:16 SeqLen:256 NumTokens:16 NumTrainExamples:12800 NumTestExamples:1280}",
		"mad_compression":             "{Name:mad_compression Vocab:16 SeqLen:32 NumTrainExamples:12800 NumTestExamples:1280}",
		"mad_memorization":            "{Name:mad_memorization Vocab:256 SeqLen:32 NumTrainExamples:256 NumTestExamples:1280}",
	}
	shape := map[string][2]int{ // Vocab(), SeqLen() of the built task
		"mad_in_context_recall": {16, 127}, "mad_noisy_in_context_recall": {32, 127},
		"mad_fuzzy_in_context_recall": {16, 128}, "mad_selective_copying": {16, 256},
		"mad_compression": {16 + 32, 64}, "mad_memorization": {256, 32},
	}
	for _, name := range madTaskNames {
		cfg, err := decodeTaskYAML(t, "name: "+name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := strings.Replace(fmt.Sprintf("%+v", cfg), "task:"+name+" ", "", 1)
		if got != "&"+want[name] {
			t.Errorf("%s defaults:\n got %s\nwant &%s", name, got, want[name])
		}
		mc, ok := cfg.(MADConfig)
		if !ok {
			t.Fatalf("%s: config is not a MADConfig", name)
		}
		if tr, te := mc.ExampleCounts(); te != 1280 || (tr != 12800 && tr != 256) {
			t.Errorf("%s: ExampleCounts %d, %d", name, tr, te)
		}
		task, err := cfg.Build()
		if err != nil {
			t.Fatal(err)
		}
		if s := shape[name]; task.Vocab() != s[0] || task.SeqLen() != s[1] {
			t.Errorf("%s: Vocab %d SeqLen %d, want %v", name, task.Vocab(), task.SeqLen(), s)
		}
		if spec, _ := Lookup(name); spec.Doc == "" || strings.Contains(spec.Doc, "\n") {
			t.Errorf("%s: Doc must be one line: %q", name, spec.Doc)
		}
	}
}

// seqOf returns sequence i of a batch (inputs and targets).
func seqOf(b Batch, i int) (in, tg []int32) {
	return b.Inputs[i*b.L : (i+1)*b.L], b.Targets[i*b.L : (i+1)*b.L]
}

// checkRecall checks one in-context recall sequence; it returns whether
// the sequence is consistent and counts noise pairs.
func checkRecall(b Batch, i int, split Split, V, Nn, L int) (noisePairs int, err error) {
	in, tg := seqOf(b, i)
	if b.L != L-1 {
		return 0, fmt.Errorf("batch length %d, want seq_len-1 = %d", b.L, L-1)
	}
	full := append(slices.Clone(in), tg[L-2])
	S := int32(V - Nn)
	value := map[int32]int32{}
	scoredWant := make([]bool, L)
	for p := range L / 2 {
		k, v := full[2*p], full[2*p+1]
		if k >= S && v >= S && k < int32(V) && v < int32(V) && p < L/2-1 {
			noisePairs++
			continue
		}
		if k < 0 || k >= S/2 || v < S/2 || v >= S {
			return 0, fmt.Errorf("pair %d (%d, %d) is neither a key-value pair nor noise", p, k, v)
		}
		if old, ok := value[k]; ok {
			if old != v {
				return 0, fmt.Errorf("pair %d: key %d has value %d, earlier %d", p, k, v, old)
			}
			scoredWant[2*p+1] = true
		} else if p == L/2-1 {
			return 0, fmt.Errorf("the final probe key %d was not shown before", k)
		}
		value[k] = v
	}
	if noisePairs == L/2-1 {
		return 0, fmt.Errorf("every pair before the probe is noise")
	}
	for j := range L - 1 {
		switch {
		case split == Train && tg[j] != full[j+1]:
			return 0, fmt.Errorf("train target %d at %d, want the next token %d", tg[j], j, full[j+1])
		case split == Eval && scoredWant[j+1] != (tg[j] != Ignore):
			return 0, fmt.Errorf("eval position %d scored %v, want %v", j, tg[j] != Ignore, scoredWant[j+1])
		case split == Eval && tg[j] != Ignore && tg[j] != full[j+1]:
			return 0, fmt.Errorf("eval target %d at %d, want %d", tg[j], j, full[j+1])
		}
	}
	return noisePairs, nil
}

func TestMADRecallInvariants(t *testing.T) {
	cases := []struct {
		name       string
		V, Nn, L   int
		frac       float64
		extra      string
		batches, B int
	}{
		{"mad_in_context_recall", 16, 0, 128, 0, "", 2, 64},
		{"mad_in_context_recall", 4, 0, 4, 0, "", 4, 16},
		{"mad_noisy_in_context_recall", 32, 16, 128, 0.2, "", 2, 64},
		{"mad_noisy_in_context_recall", 144, 16, 256, 0.8, "", 1, 64},
		{"mad_noisy_in_context_recall", 5, 3, 6, 0.9, "", 8, 16},
	}
	for _, c := range cases {
		src := fmt.Sprintf("name: %s\nvocab: %d\nseq_len: %d\nnoise_vocab: %d\nfrac_noise: %v\nnum_train_examples: 100\nnum_test_examples: 50",
			c.name, c.V, c.L, c.Nn, c.frac)
		task := buildMADYAML(t, src)
		noise, pairs := 0, 0
		for _, split := range []Split{Train, Eval} {
			for idx := range c.batches {
				b := task.Batch(split, 7, int64(idx), c.B)
				for i := range c.B {
					n, err := checkRecall(b, i, split, c.V, c.Nn, c.L)
					if err != nil {
						t.Fatalf("%s V=%d L=%d %v batch %d seq %d: %v\n%s", c.name, c.V, c.L, split, idx, i, err, task.Decode(b, i))
					}
					noise += n
					pairs += c.L/2 - 2 // the never-noise pair and the probe are never noise
				}
			}
		}
		// Noise pairs are Bernoulli(frac) draws over the other pairs.
		if got := float64(noise) / float64(pairs); pairs > 1000 && math.Abs(got-c.frac) > 0.03 {
			t.Errorf("%s frac_noise %v: noise fraction %.3f", c.name, c.frac, got)
		}
	}
}

// checkFuzzy checks one fuzzy recall sequence and reports whether its
// final probe was answerable.
func checkFuzzy(b Batch, i int, split Split, V, L, km, vm int) (answerable bool, err error) {
	in, tg := seqOf(b, i)
	if b.L != L {
		return false, fmt.Errorf("batch length %d, want %d", b.L, L)
	}
	pad := int32(V - 1)
	S := int32(V - 1)
	full := append(slices.Clone(in), tg[L-1])
	start := 0
	for start < len(full) && full[start] == pad {
		start++
	}
	if start < 2 {
		return false, fmt.Errorf("%d pad tokens in front, want >= 2", start)
	}
	// Split into alternating key runs and value runs.
	type run struct{ lo, hi int }
	var runs []run
	for p := start; p < len(full); {
		isKey := full[p] < S/2
		q := p
		for q < len(full) && full[q] != pad && (full[q] < S/2) == isKey && full[q] >= 0 && full[q] < S {
			q++
		}
		if q == p {
			return false, fmt.Errorf("token %d at %d is out of range (pad inside the sequence?)", full[p], p)
		}
		if (len(runs)%2 == 0) != isKey {
			return false, fmt.Errorf("run at %d: keys and values do not alternate", p)
		}
		runs = append(runs, run{p, q})
		p = q
	}
	if len(runs)%2 != 0 {
		return false, fmt.Errorf("the sequence ends in a key")
	}
	seen := map[string]string{}
	scoredWant := make([]bool, len(full))
	for r := 0; r < len(runs); r += 2 {
		k, v := full[runs[r].lo:runs[r].hi], full[runs[r+1].lo:runs[r+1].hi]
		if len(k) > km || len(v) > vm || (split == Eval && len(k) != km) {
			return false, fmt.Errorf("pair %d: key %v value %v: sizes outside the motif sizes", r/2, k, v)
		}
		for _, m := range [][]int32{k, v} {
			for a := range m {
				if slices.Contains(m[:a], m[a]) {
					return false, fmt.Errorf("motif %v repeats a token", m)
				}
			}
		}
		old, shown := seen[fmt.Sprint(k)]
		if shown && old != fmt.Sprint(v) {
			return false, fmt.Errorf("key %v has value %v, earlier %s", k, v, old)
		}
		last := r == len(runs)-2
		if last {
			answerable = shown
		}
		if shown || last {
			for p := runs[r+1].lo; p < runs[r+1].hi; p++ {
				scoredWant[p] = true
			}
		}
		seen[fmt.Sprint(k)] = fmt.Sprint(v)
	}
	for j := range L {
		switch {
		case split == Train && tg[j] != full[j+1]:
			return false, fmt.Errorf("train target %d at %d, want the next token %d", tg[j], j, full[j+1])
		case split == Eval && scoredWant[j+1] != (tg[j] != Ignore):
			return false, fmt.Errorf("eval position %d scored %v, want %v", j, tg[j] != Ignore, scoredWant[j+1])
		case split == Eval && tg[j] != Ignore && tg[j] != full[j+1]:
			return false, fmt.Errorf("eval target %d at %d, want %d", tg[j], j, full[j+1])
		}
	}
	return answerable, nil
}

func TestMADFuzzyRecallInvariants(t *testing.T) {
	cases := []struct{ V, L, km, vm int }{{16, 128, 3, 3}, {128, 256, 3, 3}, {12, 24, 2, 2}, {4, 5, 1, 1}, {7, 13, 3, 3}}
	for _, c := range cases {
		task := buildMADYAML(t, fmt.Sprintf("name: mad_fuzzy_in_context_recall\nvocab: %d\nseq_len: %d\nk_motif_size: %d\nv_motif_size: %d\nnum_train_examples: 64\nnum_test_examples: 64",
			c.V, c.L, c.km, c.vm))
		missed, n := 0, 0
		for _, split := range []Split{Train, Eval} {
			for idx := range 4 {
				b := task.Batch(split, 3, int64(idx), 32)
				for i := range 32 {
					ok, err := checkFuzzy(b, i, split, c.V, c.L, c.km, c.vm)
					if err != nil {
						t.Fatalf("%+v %v batch %d seq %d: %v\n%s", c, split, idx, i, err, task.Decode(b, i))
					}
					n++
					if !ok {
						missed++
					}
				}
			}
		}
		// MAD's probe can miss its slot (see the config's comment), rarely
		// at MAD's sizes.
		if c.L >= 128 && float64(missed) > 0.1*float64(n) {
			t.Errorf("%+v: %d of %d final probes unanswerable", c, missed, n)
		}
	}
}

func TestMADSelectiveCopyingInvariants(t *testing.T) {
	for _, c := range []struct{ V, L, K int }{{16, 256, 16}, {128, 1024, 96}, {3, 4, 1}, {6, 12, 3}} {
		task := buildMADYAML(t, fmt.Sprintf("name: mad_selective_copying\nvocab: %d\nseq_len: %d\nnum_tokens: %d\nnum_train_examples: 50\nnum_test_examples: 50", c.V, c.L, c.K))
		blank, cp := int32(c.V-2), int32(c.V-1)
		before := make([]float64, c.K) // mean blanks before data token j
		n := 0
		for _, split := range []Split{Train, Eval} {
			for idx := range 3 {
				b := task.Batch(split, 11, int64(idx), 40)
				for i := range b.B {
					in, tg := seqOf(b, i)
					var data []int32
					gap := 0
					for p := range c.L - c.K - 1 {
						switch {
						case in[p] == blank:
							gap++
						case in[p] >= 0 && in[p] < blank:
							before[len(data)] += float64(gap)
							data, gap = append(data, in[p]), 0
						default:
							t.Fatalf("%+v: token %d at %d", c, in[p], p)
						}
						if tg[p] != Ignore {
							t.Fatalf("%+v: target at %d", c, p)
						}
					}
					if len(data) != c.K || in[c.L-c.K-2] == blank || in[c.L-c.K-1] != cp {
						t.Fatalf("%+v: %d data tokens, last data at L-K-2 %v, copy token at L-K-1 %v\n%s",
							c, len(data), in[c.L-c.K-2] != blank, in[c.L-c.K-1] == cp, task.Decode(b, i))
					}
					for k := range c.K {
						if in[c.L-c.K+k] != blank || tg[c.L-c.K+k] != data[k] || tg[c.L-c.K-1] != Ignore {
							t.Fatalf("%+v: copy position %d: input %d target %d, want blank and %d", c, k, in[c.L-c.K+k], tg[c.L-c.K+k], data[k])
						}
					}
					n++
				}
			}
		}
		// Each blank picks its gap uniformly: L−2K−1 blanks over K gaps.
		if c.L == 256 {
			mean := float64(c.L-2*c.K-1) / float64(c.K)
			for j := range before {
				if got := before[j] / float64(n); math.Abs(got-mean) > 0.25*mean {
					t.Errorf("%+v: %.2f blanks before data token %d on average, want %.2f", c, got, j, mean)
				}
			}
		}
	}
}

func TestMADCompressionInvariants(t *testing.T) {
	for _, c := range []struct{ V, L int }{{16, 32}, {128, 256}, {2, 2}} {
		task := buildMADYAML(t, fmt.Sprintf("name: mad_compression\nvocab: %d\nseq_len: %d\nnum_train_examples: 50\nnum_test_examples: 50", c.V, c.L))
		for _, split := range []Split{Train, Eval} {
			b := task.Batch(split, 5, 1, 30)
			if b.L != 2*c.L || task.Vocab() != c.V+c.L {
				t.Fatalf("%+v: length %d vocab %d", c, b.L, task.Vocab())
			}
			for i := range b.B {
				in, tg := seqOf(b, i)
				for p := range c.L {
					if (p < c.L-1 && (in[p] < 0 || in[p] >= int32(c.V-1))) || (p == c.L-1 && in[p] != int32(c.V-1)) || tg[p] != Ignore {
						t.Fatalf("%+v: position %d: input %d target %d", c, p, in[p], tg[p])
					}
					if in[c.L+p] != int32(c.V+p) || tg[c.L+p] != in[p] {
						t.Fatalf("%+v: decode position %d: input %d target %d, want %d and %d", c, p, in[c.L+p], tg[c.L+p], c.V+p, in[p])
					}
				}
			}
		}
	}
}

// The memorization map is one fixed injective map per seed, shared by the
// training and test sets; keys are drawn uniformly.
func TestMADMemorizationFixedMap(t *testing.T) {
	for _, V := range []int{256, 3, 9} {
		task := buildMADYAML(t, fmt.Sprintf("name: mad_memorization\nvocab: %d\nnum_train_examples: 64\nnum_test_examples: 32", V))
		S := int32(V - 1)
		maps := map[uint64]map[int32]int32{}
		for _, seed := range []uint64{1, 2} {
			m := map[int32]int32{}
			count := map[int32]int{}
			for _, split := range []Split{Train, Eval} {
				for idx := range 5 {
					b := task.Batch(split, seed, int64(idx), 16)
					for i := range b.B {
						in, tg := seqOf(b, i)
						for p := 0; p < b.L; p += 2 {
							k, ins, v := in[p], in[p+1], tg[p+1]
							if k < 0 || k >= S/2 || ins != int32(V-1) || tg[p] != Ignore || v < S/2 || v >= S {
								t.Fatalf("V=%d: pair %d: (%d, %d) target %d", V, p/2, k, ins, v)
							}
							if old, ok := m[k]; ok && old != v {
								t.Fatalf("V=%d seed %d: key %d maps to %d and %d", V, seed, k, old, v)
							}
							m[k] = v
							count[k]++
						}
					}
				}
			}
			inv := map[int32]bool{}
			for _, v := range m {
				if inv[v] {
					t.Fatalf("V=%d: two keys map to %d", V, v)
				}
				inv[v] = true
			}
			if V == 256 && len(m) != 127 {
				t.Errorf("V=256: %d keys seen in 2560 draws, want all 127", len(m))
			}
			maps[seed] = m
		}
		if V == 256 && fmt.Sprint(maps[1]) == fmt.Sprint(maps[2]) {
			t.Errorf("seeds 1 and 2 give the same map")
		}
	}
}

// madSmall are configs of every MAD task small enough to enumerate a
// training set, large enough that distinct examples differ.
var madSmall = []string{
	"name: mad_in_context_recall\nseq_len: 32",
	"name: mad_noisy_in_context_recall\nseq_len: 32",
	"name: mad_fuzzy_in_context_recall\nseq_len: 32",
	"name: mad_selective_copying\nseq_len: 40\nnum_tokens: 8",
	"name: mad_compression\nseq_len: 16",
	"name: mad_memorization\nseq_len: 16",
}

func seqKey(b Batch, i int) string {
	in, tg := seqOf(b, i)
	return fmt.Sprint(in, tg)
}

// The training stream is a fixed set of num_train_examples sequences, each
// epoch a new permutation of it; the eval stream cycles through the test
// set in order; the two sets are disjoint; everything is a pure function of
// the arguments.
func TestMADFixedSets(t *testing.T) {
	const N, NT, B = 12, 8, 4
	for _, src := range madSmall {
		task := buildMADYAML(t, src+fmt.Sprintf("\nnum_train_examples: %d\nnum_test_examples: %d", N, NT))
		name := strings.SplitN(src, "\n", 2)[0]
		epoch := func(e int) (keys []string) {
			for idx := e * N / B; idx < (e+1)*N/B; idx++ {
				b := task.Batch(Train, 9, int64(idx), B)
				for i := range B {
					keys = append(keys, seqKey(b, i))
				}
			}
			return keys
		}
		e0, e1, e2 := epoch(0), epoch(1), epoch(2)
		set := func(k []string) []string { s := slices.Clone(k); slices.Sort(s); return s }
		if s := slices.Compact(set(e0)); len(s) != N {
			t.Errorf("%s: epoch 0 holds %d distinct sequences, want %d", name, len(s), N)
		}
		if !slices.Equal(set(e0), set(e1)) || !slices.Equal(set(e0), set(e2)) {
			t.Errorf("%s: the epochs hold different example sets", name)
		}
		if slices.Equal(e0, e1) && slices.Equal(e1, e2) {
			t.Errorf("%s: every epoch has the same order (no reshuffle)", name)
		}
		// A batch straddling two epochs: positions 10..13 are the last two of
		// epoch 0 and the first two of epoch 1.
		b := task.Batch(Train, 9, 0, 14)
		if seqKey(b, 10) != e0[10] || seqKey(b, 12) != e1[0] {
			t.Errorf("%s: a batch of 14 does not follow the epoch stream", name)
		}
		// Eval: batches 0 and 1 are the 8 test examples; batch 2 wraps.
		var test []string
		for idx := range 3 {
			b := task.Batch(Eval, 9, int64(idx), B)
			for i := range B {
				test = append(test, seqKey(b, i))
			}
		}
		if !slices.Equal(test[:B], test[2*B:]) {
			t.Errorf("%s: eval batch 2 does not wrap to batch 0", name)
		}
		// Eval targets differ from training targets for the recall tasks,
		// so compare inputs for disjointness.
		inputs := func(split Split, idx, size int) map[string]bool {
			m := map[string]bool{}
			b := task.Batch(split, 9, int64(idx), size)
			for i := range size {
				in, _ := seqOf(b, i)
				m[fmt.Sprint(in)] = true
			}
			return m
		}
		tr, te := inputs(Train, 0, N), inputs(Eval, 0, NT)
		for k := range te {
			if tr[k] {
				t.Errorf("%s: a test example is also a training example", name)
			}
		}
		// Determinism and seed dependence.
		a, a2, other := task.Batch(Train, 9, 5, 3), task.Batch(Train, 9, 5, 3), task.Batch(Train, 10, 5, 3)
		if fmt.Sprint(a) != fmt.Sprint(a2) {
			t.Errorf("%s: the same arguments gave different batches", name)
		}
		if fmt.Sprint(a) == fmt.Sprint(other) {
			t.Errorf("%s: seeds 9 and 10 gave the same batch", name)
		}
		// Batch 0 of size 2 is the first two sequences of batch 0 of size 4.
		small, big := task.Batch(Eval, 9, 0, 2), task.Batch(Eval, 9, 0, 4)
		if seqKey(small, 1) != seqKey(big, 1) {
			t.Errorf("%s: eval batch 0 depends on the batch size", name)
		}
	}
}

// The doc comments' worked examples are what the generators produce.
func TestMADDocExamples(t *testing.T) {
	cases := []struct {
		src            string
		split          Split
		seed           uint64
		inputs, target string
		decode         string
	}{
		{"name: mad_noisy_in_context_recall\nvocab: 8\nseq_len: 12\nnoise_vocab: 2\nfrac_noise: 0.3", Eval, 6,
			"[7 6 0 5 7 6 0 5 2 5 2]", "[_ _ _ _ _ _ 5 _ _ _ 5]",
			"input : 7 6 0 5 7 6 0 5 2 5 | 2\ntarget: . . . . . . 5 . . . | 5"},
		{"name: mad_fuzzy_in_context_recall\nvocab: 12\nseq_len: 24\nk_motif_size: 2\nv_motif_size: 2", Eval, 6,
			"[11 11 11 11 11 1 2 5 6 2 3 6 9 2 3 6 9 2 4 5 8 1 2 5]", "[_ _ _ _ _ _ _ _ _ _ _ _ _ _ 6 9 _ _ _ _ _ _ 5 6]",
			"input : . . . . . 1 2 5 6 2 3 6 9 2 3 6 9 2 4 5 8 1 2 5\ntarget: . . . . . . . . . . . . . . 6 9 . . . . . . 5 6"},
		{"name: mad_selective_copying\nvocab: 6\nseq_len: 12\nnum_tokens: 3", Eval, 1,
			"[4 4 4 0 4 2 4 2 5 4 4 4]", "[_ _ _ _ _ _ _ _ _ 0 2 2]",
			"input : . . . 0 . 2 . 2 | > . . .\ntarget: . . . . . . . . | . 0 2 2"},
		{"name: mad_compression\nvocab: 5\nseq_len: 6", Eval, 4,
			"[2 0 3 3 2 4 5 6 7 8 9 10]", "[_ _ _ _ _ _ 2 0 3 3 2 4]",
			"input : 2 0 3 3 2 # | > > > > > >\ntarget: . . . . . . | 2 0 3 3 2 #"},
		{"name: mad_memorization\nvocab: 9\nseq_len: 8", Eval, 3,
			"[0 8 1 8 3 8 2 8]", "[_ 7 _ 4 _ 6 _ 5]",
			"input : 0 > 1 > 3 > 2 >\ntarget: . 7 . 4 . 6 . 5"},
	}
	for _, c := range cases {
		task := buildMADYAML(t, c.src+"\nnum_train_examples: 10\nnum_test_examples: 10")
		b := task.Batch(c.split, c.seed, 0, 1)
		tg := strings.ReplaceAll(fmt.Sprint(b.Targets), "-100", "_")
		if got := fmt.Sprint(b.Inputs); got != c.inputs || tg != c.target {
			t.Errorf("%s:\n got %s\n     %s\nwant %s\n     %s", c.src, got, tg, c.inputs, c.target)
		}
		if got := task.Decode(b, 0); got != c.decode {
			t.Errorf("%s: Decode\n%s\nwant\n%s", c.src, got, c.decode)
		}
	}
}

func TestMADDecodeErrors(t *testing.T) {
	for _, src := range madSmall {
		task := buildMADYAML(t, src+"\nnum_train_examples: 4\nnum_test_examples: 4")
		b := task.Batch(Eval, 1, 0, 2)
		for _, i := range []int{-1, 2} {
			if got := task.Decode(b, i); !strings.Contains(got, "no sequence") {
				t.Errorf("%s: Decode(%d) = %q", src, i, got)
			}
		}
		if got := task.Decode(Batch{B: 3, L: b.L, Inputs: b.Inputs, Targets: b.Targets}, 2); !strings.Contains(got, "no sequence") {
			t.Errorf("%s: Decode of a short batch = %q", src, got)
		}
		b.Inputs[0], b.Targets[b.L-1] = int32(task.Vocab()), -7
		got := task.Decode(b, 0)
		if !strings.Contains(got, "?") {
			t.Errorf("%s: an out-of-vocab token is not shown as '?':\n%s", src, got)
		}
		if strings.Count(got, "?") < 2 {
			t.Errorf("%s: the out-of-vocab input and target should both show as '?':\n%s", src, got)
		}
	}
}

func TestMADConfigDecode(t *testing.T) {
	cases := []struct {
		src  string
		want []string // substrings of the error; nil: valid
	}{
		{src: "name: mad_in_context_recall\nvocab: 2\nseq_len: 4"},
		{src: "name: mad_noisy_in_context_recall\nvocab: 144\nfrac_noise: 0.8"},
		{src: "name: mad_fuzzy_in_context_recall\nvocab: 7\nseq_len: 13"},
		{src: "name: mad_selective_copying\nseq_len: 34"},
		{src: "name: mad_memorization\nvocab: 8192"},
		{src: "name: mad_in_context_recall\nseq_len: 127", want: []string{"task.seq_len", "127", "even"}},
		{src: "name: mad_in_context_recall\nseq_len: 2", want: []string{"task.seq_len", "2", "4 <= seq_len"}},
		{src: "name: mad_in_context_recall\nvocab: 1", want: []string{"task.vocab", "1", "2 <= vocab"}},
		{src: "name: mad_noisy_in_context_recall\nvocab: 17", want: []string{"task.vocab", "17", "18 <= vocab"}},
		{src: "name: mad_noisy_in_context_recall\nfrac_noise: 1", want: []string{"task.frac_noise", "1", "[0, 1)"}},
		{src: "name: mad_noisy_in_context_recall\nfrac_noise: .nan", want: []string{"task.frac_noise", "NaN"}},
		{src: "name: mad_in_context_recall\nfrac_noise: 0.5", want: []string{"task.noise_vocab", "0", "frac_noise 0.5"}},
		{src: "name: mad_in_context_recall\nnoise_vocab: -1", want: []string{"task.noise_vocab", "-1"}},
		{src: "name: mad_in_context_recall\nnum_train_examples: 0", want: []string{"task.num_train_examples", "0"}},
		{src: "name: mad_memorization\nnum_test_examples: 16777217", want: []string{"task.num_test_examples", "16777217"}},
		{src: "name: mad_fuzzy_in_context_recall\nk_motif_size: 0", want: []string{"task.k_motif_size", "0"}},
		{src: "name: mad_fuzzy_in_context_recall\nvocab: 6", want: []string{"task.vocab", "6", "7 <= vocab"}},
		{src: "name: mad_fuzzy_in_context_recall\nseq_len: 12", want: []string{"task.seq_len", "12", "13 <= seq_len"}},
		{src: "name: mad_selective_copying\nseq_len: 33", want: []string{"task.seq_len", "33", "34 <= seq_len", "2·num_tokens+1"}},
		{src: "name: mad_selective_copying\nnum_tokens: 0", want: []string{"task.num_tokens", "0"}},
		{src: "name: mad_selective_copying\nvocab: 2", want: []string{"task.vocab", "2", "3 <= vocab"}},
		{src: "name: mad_compression\nseq_len: 1", want: []string{"task.seq_len", "1"}},
		{src: "name: mad_compression\nvocab: 16777210\nseq_len: 32", want: []string{"task.seq_len", "32", "decode tokens"}},
		{src: "name: mad_memorization\nseq_len: 31", want: []string{"task.seq_len", "31", "even"}},
		{src: "name: mad_memorization\nvocab: 16777217", want: []string{"task.vocab", "16777217"}},
		{src: "name: mad_memorization\nvocab_size: 64", want: []string{"vocab_size", "known", "vocab"}},
		{src: "name: mad_compression\nnoise_vocab: 2", want: []string{"noise_vocab"}},
	}
	for n, c := range cases {
		cfg, err := decodeTaskYAML(t, c.src)
		if c.want == nil {
			if err != nil {
				t.Errorf("case %d: %v", n, err)
			} else if _, err := cfg.Build(); err != nil {
				t.Errorf("case %d: Build: %v", n, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("case %d: no error for\n%s", n, c.src)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error %q lacks %q", n, err, w)
			}
		}
	}
	// Build checks a config made in code, the name included; a recall
	// config made in code without a name is the plain task.
	rc := &MADRecallConfig{Vocab: 8, SeqLen: 8, NumTrainExamples: 1, NumTestExamples: 1}
	if task, err := rc.Build(); err != nil || !strings.Contains(task.Decode(task.Batch(Eval, 1, 0, 1), 5), "no sequence") {
		t.Errorf("recall config made in code: %v", err)
	}
	rc.Name = "mad_noisy_in_context_recall"
	if _, err := rc.Build(); err != nil {
		t.Errorf("noisy recall config made in code: %v", err)
	}
	rc.Name = "mad_recall"
	if _, err := rc.Build(); err == nil || !strings.Contains(err.Error(), "task.name") {
		t.Errorf("recall config with a wrong name: %v", err)
	}
	// Build checks a config made in code, the name included.
	c := &MADMemorizationConfig{Name: "mad_compression", Vocab: 8, SeqLen: 8, NumTrainExamples: 1, NumTestExamples: 1}
	if _, err := c.Build(); err == nil || !strings.Contains(err.Error(), "task.name") {
		t.Errorf("Build with a wrong name: %v", err)
	}
}
