package tasks

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func buildInduction(t testing.TB, vocab, seqLen int, evalLengths ...int) Task {
	t.Helper()
	task, err := (&InductionHeadsConfig{Vocab: vocab, SeqLen: seqLen, EvalLengths: evalLengths}).Build()
	if err != nil {
		t.Fatalf("vocab %d seq_len %d: %v", vocab, seqLen, err)
	}
	return task
}

// checkInductionSequence checks every structural invariant of sequence i
// and returns the first violation, naming the position.
func checkInductionSequence(b Batch, i, vocab int) error {
	L, special := b.L, int32(vocab)
	in, tg := b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L]
	first := -1
	for p := range L - 1 {
		switch tok := in[p]; {
		case tok == special && first >= 0:
			return fmt.Errorf("position %d: a second special token (the first is at %d)", p, first)
		case tok == special:
			first = p
		case tok < 0 || tok >= special:
			return fmt.Errorf("position %d: token %d is neither ordinary (< %d) nor special", p, tok, vocab)
		}
		if tg[p] != Ignore {
			return fmt.Errorf("position %d: target %d is scored; only L-1 is", p, tg[p])
		}
	}
	switch {
	case first < 0 || first > L-3:
		return fmt.Errorf("first special token at %d, want one in 0..%d", first, L-3)
	case in[L-1] != special:
		return fmt.Errorf("last position holds %d, want the special token %d", in[L-1], special)
	case tg[L-1] != in[first+1]:
		return fmt.Errorf("target %d, want the token after the first special token, %d", tg[L-1], in[first+1])
	}
	return nil
}

func TestInductionHeadsInvariants(t *testing.T) {
	cases := []struct{ vocab, seqLen int }{
		{2, 3},     // smallest legal: special, target, special
		{2, 4},     //
		{16, 64},   // paper vocab, CPU length
		{16, 256},  // paper training length
		{1000, 37}, // wide vocab, odd length
	}
	for n, c := range cases {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			task := buildInduction(t, c.vocab, c.seqLen)
			if task.Vocab() != c.vocab+1 || task.SeqLen() != c.seqLen {
				t.Fatalf("Vocab %d SeqLen %d, want %d and %d", task.Vocab(), task.SeqLen(), c.vocab+1, c.seqLen)
			}
			for _, split := range []Split{Train, Eval} {
				for index := range int64(6) {
					b := task.Batch(split, 3, index, 16)
					if b.B != 16 || b.L != c.seqLen || len(b.Inputs) != 16*c.seqLen || len(b.Targets) != 16*c.seqLen {
						t.Fatalf("batch shape B=%d L=%d len=%d/%d", b.B, b.L, len(b.Inputs), len(b.Targets))
					}
					for i := range b.B {
						if err := checkInductionSequence(b, i, c.vocab); err != nil {
							t.Fatalf("%s batch %d sequence %d: %v\n%s", split, index, i, err, task.Decode(b, i))
						}
					}
				}
			}
		})
	}
}

func TestInductionHeadsDeterministic(t *testing.T) {
	task := buildInduction(t, 16, 64)
	ref := task.Batch(Train, 1, 3, 8)
	if got := buildInduction(t, 16, 64).Batch(Train, 1, 3, 8); !reflect.DeepEqual(got, ref) {
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
	small, big := task.Batch(Eval, 5, 2, 4), task.Batch(Eval, 5, 2, 9)
	if !reflect.DeepEqual(small.Inputs, big.Inputs[:4*64]) || !reflect.DeepEqual(small.Targets, big.Targets[:4*64]) {
		t.Error("batch of 4 is not the first 4 sequences of the batch of 9")
	}
	if empty := task.Batch(Train, 5, 2, 0); empty.B != 0 || len(empty.Inputs) != 0 {
		t.Errorf("batch of size 0: %+v", empty)
	}
}

// TestInductionHeadsUniform: the first special token's position must be
// uniform over 0..L−3 (a bias toward the end would let a model score by
// looking only at recent tokens) and the target uniform over the vocab.
func TestInductionHeadsUniform(t *testing.T) {
	const L, V, batches, size = 10, 5, 40, 100
	task := buildInduction(t, V, L)
	pos, targets := make([]int, L-2), make([]int, V)
	for index := range int64(batches) {
		b := task.Batch(Train, 9, index, size)
		for i := range size {
			for p := range L - 2 {
				if b.Inputs[i*L+p] == V {
					pos[p]++
				}
			}
			targets[b.Targets[i*L+L-1]]++
		}
	}
	// Far-tail thresholds (p < 1e-4 for 7 and 4 dof); the seed is fixed.
	if chi2 := chiSquare(pos); chi2 > 30 {
		t.Errorf("positions: chi-square %.1f over 7 dof, counts %v", chi2, pos)
	}
	if chi2 := chiSquare(targets); chi2 > 24 {
		t.Errorf("targets: chi-square %.1f over 4 dof, counts %v", chi2, targets)
	}
}

func TestInductionHeadsSegments(t *testing.T) {
	task := buildInduction(t, 16, 32, 64, 32, 1000)
	seg, ok := task.(Segmented)
	if !ok {
		t.Fatal("induction_heads is not Segmented")
	}
	segs := seg.EvalSegments()
	var names []string
	for _, s := range segs {
		names = append(names, s.Name)
	}
	if want := []string{"L=64", "L=32", "L=1000"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("segments %v, want %v", names, want)
	}
	for i, L := range []int{64, 32, 1000} {
		st := segs[i].Task
		if st.SeqLen() != L || st.Vocab() != 17 {
			t.Errorf("segment %s: SeqLen %d Vocab %d", segs[i].Name, st.SeqLen(), st.Vocab())
		}
		b := st.Batch(Eval, 1, 0, 3)
		for j := range 3 {
			if err := checkInductionSequence(b, j, 16); err != nil {
				t.Errorf("segment %s sequence %d: %v", segs[i].Name, j, err)
			}
		}
		if sub, ok := st.(Segmented); ok && len(sub.EvalSegments()) != 0 {
			t.Errorf("segment %s has segments of its own", segs[i].Name)
		}
	}
	// The segment at the training length generates the task's own
	// sequences; other lengths draw from their own streams, so their
	// prefixes differ from the training sequences'.
	if !reflect.DeepEqual(segs[1].Task.Batch(Eval, 1, 0, 2), task.Batch(Eval, 1, 0, 2)) {
		t.Error("segment L=32 differs from the task at its own length 32")
	}
	if a, b := segs[0].Task.Batch(Eval, 1, 0, 1), task.Batch(Eval, 1, 0, 1); reflect.DeepEqual(a.Inputs[:30], b.Inputs[:30]) {
		t.Error("lengths 64 and 32 share their first tokens: streams are not independent of the length")
	}
	if s := buildInduction(t, 16, 32).(Segmented).EvalSegments(); len(s) != 0 {
		t.Errorf("no eval_lengths: %d segments", len(s))
	}
}

func TestInductionHeadsDecode(t *testing.T) {
	task := buildInduction(t, 16, 6)
	b := newBatch(1, 6)
	copy(b.Inputs, []int32{3, 16, 12, 0, 7, 16})
	b.Targets[5] = 12
	want := "input :  3  * 12  0  7  *\ntarget:  .  .  .  .  . 12"
	if got := task.Decode(b, 0); got != want {
		t.Errorf("Decode:\n%s\nwant:\n%s", got, want)
	}
	b.Inputs[0], b.Targets[5] = 17, -3
	if got := task.Decode(b, 0); !strings.HasPrefix(got, "input :  ?") || !strings.HasSuffix(got, " ?") {
		t.Errorf("Decode with bad tokens:\n%s", got)
	}
	for _, i := range []int{-1, 1} {
		if got := task.Decode(b, i); !strings.Contains(got, "no sequence") {
			t.Errorf("Decode(b, %d) = %q", i, got)
		}
	}
	long := buildInduction(t, 16, 70)
	lines := strings.Split(long.Decode(long.Batch(Train, 1, 0, 1), 0), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[4], "input  @64: ") || len(lines[0]) != len(lines[1]) {
		t.Errorf("wrapped Decode:\n%s", strings.Join(lines, "\n"))
	}
}

func TestInductionHeadsConfig(t *testing.T) {
	cfg, err := decodeTaskYAML(t, "name: induction_heads")
	if err != nil {
		t.Fatal(err)
	}
	task, err := cfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	if task.SeqLen() != 256 || task.Vocab() != 17 || len(task.(Segmented).EvalSegments()) != 0 {
		t.Errorf("defaults: SeqLen %d Vocab %d, want 256 and 16+1, no segments", task.SeqLen(), task.Vocab())
	}
	cases := []struct {
		src  string
		want []string // substrings of the error; nil means no error
	}{
		0:  {src: "name: induction_heads\nseq_len: 256\neval_lengths: [64, 128, 1048576]"},
		1:  {src: "name: induction_heads\nvocab: 2\nseq_len: 3"},
		2:  {src: "name: induction_heads\nvocab: 1", want: []string{"line 2", "task.vocab", "1", "2 <= vocab"}},
		3:  {src: "name: induction_heads\nseq_len: 2", want: []string{"line 2", "task.seq_len", "2", "3 <= seq_len"}},
		4:  {src: "name: induction_heads\neval_lengths: [64, 2]", want: []string{"line 2", "task.eval_lengths", "2 (entry 1)"}},
		5:  {src: "name: induction_heads\neval_lengths: [64, 64]", want: []string{"task.eval_lengths", "64 (entry 1)", "twice"}},
		6:  {src: "name: induction_heads\neval_lengths: [2147483647]", want: []string{"task.eval_lengths", "2147483647"}},
		7:  {src: "name: induction_heads\neval_length: [64]", want: []string{"eval_length", "known", "eval_lengths"}},
		8:  {src: "name: induction_heads\nvocab: 2147483647", want: []string{"task.vocab", "2147483647"}},
		9:  {src: "name: induction_heads\neval_lengths: 64", want: []string{"line 2", "[]int"}},
		10: {src: "name: induction_heads\nloss_on: all"},
		11: {src: "name: induction_heads\nloss_on: last"},
		12: {src: "name: induction_heads\nloss_on: first", want: []string{"line 2", "task.loss_on", `"first"`, "last", "all"}},
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

// TestInductionHeadsDocExample: the worked example in the doc comment is a
// real output of the generator.
func TestInductionHeadsDocExample(t *testing.T) {
	checkDocExample(t, "induction_heads.go", buildInduction(t, 4, 12))
}

// checkDocExample checks that file's doc comment holds sequence 0 of train
// batch 0 (seed 4) of task, raw and decoded, and the same sequence of each
// extra task decoded.
func checkDocExample(t *testing.T, file string, task Task, extra ...Task) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b := task.Batch(Train, 4, 0, 1)
	want := []string{"inputs : " + rawIDs(b.Inputs), "targets: " + rawIDs(b.Targets)}
	want = append(want, strings.Split(task.Decode(b, 0), "\n")...)
	for _, x := range extra {
		want = append(want, strings.Split(x.Decode(x.Batch(Train, 4, 0, 1), 0), "\n")...)
	}
	for _, line := range want {
		if !strings.Contains(string(src), "//\t"+line+"\n") {
			t.Errorf("%s: doc comment lacks the generated line %q", file, line)
		}
	}
}

func ExampleInductionHeadsConfig() {
	task, err := (&InductionHeadsConfig{Vocab: 4, SeqLen: 12, EvalLengths: []int{64, 1024}}).Build()
	if err != nil {
		panic(err)
	}
	b := task.Batch(Train, 4, 0, 1)
	fmt.Println(task.Decode(b, 0))
	for _, s := range task.(Segmented).EvalSegments() {
		fmt.Println(s.Name, s.Task.SeqLen())
	}
	// Output:
	// input : 1 2 2 * 1 2 0 1 3 3 1 *
	// target: . . . . . . . . . . . 1
	// L=64 64
	// L=1024 1024
}

// loss_on: all keeps the sequences and the final recall target and adds a
// next-token target at every other position of training sequences only;
// eval sets (and segments) score the recall alone, as with loss_on: last.
func TestInductionHeadsLossOnAll(t *testing.T) {
	build := func(lossOn string) Task {
		task, err := (&InductionHeadsConfig{Vocab: 6, SeqLen: 20, EvalLengths: []int{40}, LossOn: lossOn}).Build()
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	last, all := build(""), build("all")
	if !reflect.DeepEqual(build("last").Batch(Train, 3, 2, 8), last.Batch(Train, 3, 2, 8)) {
		t.Error("loss_on last differs from the default")
	}
	for _, split := range []Split{Train, Eval} {
		want, got := last.Batch(split, 3, 2, 8), all.Batch(split, 3, 2, 8)
		if !reflect.DeepEqual(got.Inputs, want.Inputs) {
			t.Fatalf("%v: loss_on all changed the inputs", split)
		}
		if split == Eval {
			if !reflect.DeepEqual(got.Targets, want.Targets) {
				t.Error("eval: loss_on all changed the targets")
			}
			continue
		}
		for i := range got.B {
			for p := range got.L {
				k := i*got.L + p
				w := want.Targets[k]
				if p < got.L-1 {
					w = got.Inputs[k+1]
				}
				if got.Targets[k] != w {
					t.Fatalf("train seq %d pos %d: target %d, want %d", i, p, got.Targets[k], w)
				}
			}
		}
	}
	seg := all.(Segmented).EvalSegments()[0].Task
	if b := seg.Batch(Eval, 3, 0, 4); checkInductionSequence(b, 0, 6) != nil {
		t.Errorf("segment: %v", checkInductionSequence(b, 0, 6))
	}
}
