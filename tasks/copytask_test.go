package tasks

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// copyCase is one task setting under test; both copying tasks share it.
type copyCase struct {
	task             string
	seqLen, k, vocab int
}

func (c copyCase) build(t testing.TB) Task {
	t.Helper()
	var cfg Config
	switch c.task {
	case "selective_copy":
		cfg = &SelectiveCopyConfig{Name: c.task, SeqLen: c.seqLen, NumTokens: c.k, Vocab: c.vocab}
	case "copying":
		cfg = &CopyingConfig{Name: c.task, SeqLen: c.seqLen, NumTokens: c.k, Vocab: c.vocab}
	default:
		t.Fatalf("no such copy task %q", c.task)
	}
	task, err := cfg.Build()
	if err != nil {
		t.Fatalf("%+v: %v", c, err)
	}
	return task
}

var copyTaskNames = []string{"selective_copy", "copying"}

// checkCopySequence checks every structural invariant of sequence i and
// returns the first violation, naming the position.
func checkCopySequence(task Task, b Batch, i int, selective bool, k, vocab int) error {
	L := b.L
	in, tg := b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L]
	isData := func(tok int32) bool { return tok >= tokData && int64(tok) < int64(tokData)+int64(vocab) }
	if task.Vocab() != vocab+2 {
		return fmt.Errorf("Vocab() = %d, want %d", task.Vocab(), vocab+2)
	}
	var data []int32
	for p := range L - k {
		switch {
		case in[p] == tokNoise:
		case isData(in[p]):
			// Reading in position order gives sorted, distinct positions.
			data = append(data, in[p])
		default:
			return fmt.Errorf("position %d (before the markers): input %d is neither noise nor data", p, in[p])
		}
		if tg[p] != Ignore {
			return fmt.Errorf("position %d (before the markers): target %d is scored", p, tg[p])
		}
		if !selective && (p < k) != isData(in[p]) {
			return fmt.Errorf("copying position %d: input %d, want data exactly at 0..%d", p, in[p], k-1)
		}
	}
	if len(data) != k {
		return fmt.Errorf("%d data tokens before the markers, want %d", len(data), k)
	}
	for j := range k {
		p := L - k + j
		if in[p] != tokMarker {
			return fmt.Errorf("position %d (copy region): input %d, want marker %d", p, in[p], tokMarker)
		}
		if tg[p] != data[j] {
			return fmt.Errorf("position %d: target %d, want data token %d = %d", p, tg[p], j, data[j])
		}
	}
	return nil
}

func TestCopyTasksInvariants(t *testing.T) {
	cases := []copyCase{
		{seqLen: 3, k: 1, vocab: 2},      // smallest legal: one noise token
		{seqLen: 9, k: 4, vocab: 2},      // L = 2K+1
		{seqLen: 20, k: 4, vocab: 10},    // the Decode example
		{seqLen: 64, k: 16, vocab: 16},   // paper K and vocab, short L
		{seqLen: 100, k: 1, vocab: 1000}, // wide values
		{seqLen: 257, k: 16, vocab: 16},  // L not a power of two
	}
	for _, name := range copyTaskNames {
		for n, c := range cases {
			c.task = name
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				task := c.build(t)
				if task.SeqLen() != c.seqLen {
					t.Fatalf("SeqLen() = %d, want %d", task.SeqLen(), c.seqLen)
				}
				for _, split := range []Split{Train, Eval} {
					for index := range int64(8) {
						b := task.Batch(split, 7, index, 16)
						if b.B != 16 || b.L != c.seqLen || len(b.Inputs) != 16*c.seqLen || len(b.Targets) != 16*c.seqLen {
							t.Fatalf("batch shape B=%d L=%d len=%d/%d", b.B, b.L, len(b.Inputs), len(b.Targets))
						}
						for i := range b.B {
							if err := checkCopySequence(task, b, i, name == "selective_copy", c.k, c.vocab); err != nil {
								t.Fatalf("%s batch %d sequence %d: %v\n%s", split, index, i, err, task.Decode(b, i))
							}
						}
					}
				}
			})
		}
	}
}

func TestCopyTasksDeterministic(t *testing.T) {
	for _, name := range copyTaskNames {
		task := copyCase{name, 64, 8, 16}.build(t)
		ref := task.Batch(Train, 1, 3, 8)
		if got := task.Batch(Train, 1, 3, 8); !reflect.DeepEqual(got, ref) {
			t.Errorf("%s: same arguments gave a different batch", name)
		}
		// A fresh task from an equal config must agree too: no hidden state.
		if got := (copyCase{name, 64, 8, 16}).build(t).Batch(Train, 1, 3, 8); !reflect.DeepEqual(got, ref) {
			t.Errorf("%s: a second task from the same config gave a different batch", name)
		}
		for what, other := range map[string]Batch{
			"seed":  task.Batch(Train, 2, 3, 8),
			"index": task.Batch(Train, 1, 4, 8),
			"split": task.Batch(Eval, 1, 3, 8),
		} {
			if reflect.DeepEqual(other.Inputs, ref.Inputs) {
				t.Errorf("%s: another %s gave the same inputs", name, what)
			}
		}
	}
}

// TestCopyTasksPrefix: sequence i does not depend on the batch size.
func TestCopyTasksPrefix(t *testing.T) {
	for _, name := range copyTaskNames {
		task := copyCase{name, 48, 6, 16}.build(t)
		small, big := task.Batch(Eval, 5, 2, 8), task.Batch(Eval, 5, 2, 16)
		n := 8 * 48
		if !reflect.DeepEqual(small.Inputs, big.Inputs[:n]) || !reflect.DeepEqual(small.Targets, big.Targets[:n]) {
			t.Errorf("%s: batch of 8 is not the first 8 sequences of the batch of 16", name)
		}
		if empty := task.Batch(Train, 5, 2, 0); empty.B != 0 || len(empty.Inputs) != 0 || len(empty.Targets) != 0 {
			t.Errorf("%s: batch of size 0: %+v", name, empty)
		}
	}
}

// TestSelectiveCopyUniform checks the distribution, not just the structure:
// a bias in the positions (say, toward the start) would let a model score
// without selecting. With L−K = 6 and K = 3 each of the C(6,3) = 20 position
// sets must be equally likely, and each of the 4 values too.
func TestSelectiveCopyUniform(t *testing.T) {
	const L, K, V, batches, size = 9, 3, 4, 50, 80
	task := copyCase{"selective_copy", L, K, V}.build(t)
	sets := map[[K]int]int{}
	values := make([]int, V)
	for index := range int64(batches) {
		b := task.Batch(Train, 11, index, size)
		for i := range size {
			var set [K]int
			n := 0
			for p := range L - K {
				if tok := b.Inputs[i*L+p]; tok != tokNoise {
					set[n] = p
					n++
					values[tok-tokData]++
				}
			}
			sets[set]++
		}
	}
	if len(sets) != 20 {
		t.Fatalf("saw %d distinct position sets, want all 20", len(sets))
	}
	counts := make([]int, 0, len(sets))
	for _, c := range sets {
		counts = append(counts, c)
	}
	// Thresholds are far in the tail (p < 1e-4 for 19 and 3 degrees of
	// freedom); the seed is fixed, so this is not flaky.
	if chi2 := chiSquare(counts); chi2 > 50 {
		t.Errorf("position sets: chi-square %.1f over 19 dof, counts %v", chi2, sets)
	}
	if chi2 := chiSquare(values); chi2 > 22 {
		t.Errorf("values: chi-square %.1f over 3 dof, counts %v", chi2, values)
	}
}

// chiSquare is Pearson's statistic of counts against a uniform expectation.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	want := float64(total) / float64(len(counts))
	s := 0.0
	for _, c := range counts {
		d := float64(c) - want
		s += d * d / want
	}
	return s
}

func TestCopyDecode(t *testing.T) {
	task := copyCase{"selective_copy", 20, 4, 10}.build(t)
	b := newBatch(1, 20)
	for k, p := range []int{0, 3, 5, 9} {
		v := []int32{7, 3, 9, 2}[k] + tokData
		b.Inputs[p], b.Targets[16+k] = v, v
	}
	for p := 16; p < 20; p++ {
		b.Inputs[p] = tokMarker
	}
	want := "input : 7 . . 3 . 9 . . . 2 . . . . . . | > > > >\n" +
		"target: . . . . . . . . . . . . . . . . | 7 3 9 2"
	if got := task.Decode(b, 0); got != want {
		t.Errorf("Decode:\n%s\nwant:\n%s", got, want)
	}

	// Bad tokens show as '?', bad indexes as a message, never a panic.
	b.Inputs[1], b.Targets[2] = 99, 1
	if got := task.Decode(b, 0); !strings.HasPrefix(got, "input : 7 ? . 3") || !strings.HasPrefix(strings.Split(got, "\n")[1], "target: . . ?") {
		t.Errorf("Decode with bad tokens:\n%s", got)
	}
	for _, i := range []int{-1, 1} {
		if got := task.Decode(b, i); !strings.Contains(got, "no sequence") {
			t.Errorf("Decode(b, %d) = %q", i, got)
		}
	}
}

// TestCopyDecodeWrap: long sequences wrap into labelled rows of 32 with the
// input and target rows of equal width and every cell aligned.
func TestCopyDecodeWrap(t *testing.T) {
	for _, name := range copyTaskNames {
		task := copyCase{name, 70, 5, 16}.build(t)
		b := task.Batch(Train, 1, 0, 2)
		lines := strings.Split(task.Decode(b, 1), "\n")
		if len(lines) != 6 {
			t.Fatalf("%s: %d lines, want 3 row pairs:\n%s", name, len(lines), strings.Join(lines, "\n"))
		}
		for r := 0; r < len(lines); r += 2 {
			in, tg := lines[r], lines[r+1]
			label := fmt.Sprintf("@%-2d: ", 32*(r/2))
			if !strings.HasPrefix(in, "input  "+label) || !strings.HasPrefix(tg, "target "+label) {
				t.Errorf("%s row %d labels: %q / %q", name, r/2, in[:14], tg[:14])
			}
			if len(in) != len(tg) {
				t.Errorf("%s row %d: input %d chars, target %d", name, r/2, len(in), len(tg))
			}
			// Cells are 2 wide (vocab 16) and joined by one space, so the
			// separating spaces fall on the same columns in both lines.
			cells := in[len(label)+7:]
			if len(cells)%3 != 2 {
				t.Errorf("%s row %d: %d chars of cells, not a whole number of 2-wide cells", name, r/2, len(cells))
			}
			for c := len(label) + 7 + 2; c < min(len(in), len(tg)); c += 3 {
				if in[c] != ' ' || tg[c] != ' ' {
					t.Errorf("%s row %d: column %d is not a cell boundary in both lines:\n%s\n%s", name, r/2, c, in, tg)
					break
				}
			}
		}
		// The separator sits before position 65 = L−K, in the last row, in
		// the same column of both lines; cells are 2 wide for vocab 16.
		in, tg := lines[4], lines[5]
		col := strings.Index(in, "|")
		if col < 0 || strings.Index(tg, "|") != col || strings.Count(in[col:], ">") != 5 {
			t.Errorf("%s: separator misplaced:\n%s\n%s", name, in, tg)
		}
	}
}

// TestCopyDocExamples: the worked examples in the doc comments are real
// outputs of the generators, not hand-written approximations.
func TestCopyDocExamples(t *testing.T) {
	for _, f := range []struct{ task, file string }{
		{"selective_copy", "selective_copy.go"},
		{"copying", "copying.go"},
	} {
		src, err := os.ReadFile(f.file)
		if err != nil {
			t.Fatal(err)
		}
		task := copyCase{f.task, 12, 3, 4}.build(t)
		b := task.Batch(Train, 4, 0, 1)
		want := []string{"inputs : " + rawIDs(b.Inputs), "targets: " + rawIDs(b.Targets)}
		want = append(want, strings.Split(task.Decode(b, 0), "\n")...)
		for _, line := range want {
			if !strings.Contains(string(src), "//\t"+line+"\n") {
				t.Errorf("%s: doc comment lacks the generated line %q", f.file, line)
			}
		}
	}
}

// rawIDs formats token ids as the doc comments show them, '_' for Ignore.
func rawIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		if id == Ignore {
			s[i] = "_"
		} else {
			s[i] = fmt.Sprint(id)
		}
	}
	return strings.Join(s, " ")
}

func ExampleSelectiveCopyConfig() {
	task, err := (&SelectiveCopyConfig{SeqLen: 12, NumTokens: 3, Vocab: 4}).Build()
	if err != nil {
		panic(err)
	}
	b := task.Batch(Train, 4, 0, 1)
	fmt.Println(b.Inputs)
	fmt.Println(b.Targets)
	fmt.Println(task.Decode(b, 0))
	// Output:
	// [0 5 0 0 0 0 3 0 2 1 1 1]
	// [-100 -100 -100 -100 -100 -100 -100 -100 -100 5 3 2]
	// input : . 3 . . . . 1 . 0 | > > >
	// target: . . . . . . . . . | 3 1 0
}

func ExampleCopyingConfig() {
	task, err := (&CopyingConfig{SeqLen: 12, NumTokens: 3, Vocab: 4}).Build()
	if err != nil {
		panic(err)
	}
	b := task.Batch(Train, 4, 0, 1)
	fmt.Println(task.Decode(b, 0))
	// Output:
	// input : 3 2 3 . . . . . . | > > >
	// target: . . . . . . . . . | 3 2 3
}
