package tasks

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// decodeTaskYAML parses src as a task block and runs it through Decode, as
// the experiment loader does with the `task:` node.
func decodeTaskYAML(t testing.TB, src string) (Config, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Load([]byte(src), &doc); err != nil {
		t.Skipf("not YAML: %v", err)
	}
	node := &doc
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	return Decode(node)
}

func TestCopyConfigDefaults(t *testing.T) {
	for _, name := range copyTaskNames {
		cfg, err := decodeTaskYAML(t, "name: "+name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		task, err := cfg.Build()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if task.SeqLen() != 256 || task.Vocab() != 18 {
			t.Errorf("%s defaults: SeqLen %d Vocab %d, want 256 and 16+2", name, task.SeqLen(), task.Vocab())
		}
		if spec, _ := Lookup(name); spec.Doc == "" || strings.Contains(spec.Doc, "\n") {
			t.Errorf("%s: Doc must be one line: %q", name, spec.Doc)
		}
	}
}

func TestCopyConfigDecode(t *testing.T) {
	cases := []struct {
		src  string
		want []string // substrings of the error; nil means no error
	}{
		0: {src: "name: selective_copy\nseq_len: 4096\nnum_tokens: 16\nvocab: 16"},
		1: {src: "name: copying\nseq_len: 33\nnum_tokens: 16"},
		2: {src: "name: selective_copy\nseq_len: 3\nnum_tokens: 1\nvocab: 2"},
		3: {src: "name: selective_copy\nvocab: 2147483645"},
		4: {src: "name: selective_copy\nseq_len: 20\nnum_tokens: 16",
			want: []string{"task.seq_len", "20", "seq_len >= 2*num_tokens+1 = 33"}},
		5:  {src: "name: copying\nseq_len: 32", want: []string{"task.seq_len", "32", "copying needs", "= 33"}},
		6:  {src: "name: selective_copy\nseq_len: 64\nnum_token: 4", want: []string{"num_token"}},
		7:  {src: "name: selective_copyy\nseq_len: 64", want: []string{"unknown task", "selective_copyy", "copying", "selective_copy"}},
		8:  {src: "name: selective_copy\nseq_len: 256.5", want: []string{"256.5"}},
		9:  {src: "name: selective_copy\nnum_tokens: 0", want: []string{"task.num_tokens", "0", ">= 1"}},
		10: {src: "name: copying\nnum_tokens: -3", want: []string{"task.num_tokens", "-3"}},
		11: {src: "name: selective_copy\nvocab: 1", want: []string{"task.vocab", "1", ">= 2"}},
		12: {src: "name: selective_copy\nvocab: 2147483646", want: []string{"task.vocab", "2147483646", "2147483645"}},
		// 2·num_tokens+1 overflows int: must still be rejected.
		13: {src: "name: selective_copy\nnum_tokens: 4611686018427387904", want: []string{"task.seq_len", "256", "9223372036854775809"}},
		14: {src: "name: selective_copy\nseq_len: -5", want: []string{"task.seq_len", "-5"}},
		15: {src: "seq_len: 64", want: []string{"no `name`", "selective_copy"}},
		16: {src: "name: copying\nseq_len: [1, 2]", want: []string{"line 2"}}, // the YAML library names the line, not the field
		17: {src: "name: selective_copy\nvocab: 16\nvocab_counts: all"},
		18: {src: "name: copying\nvocab: 4\nvocab_counts: all"},
		19: {src: "name: selective_copy\nvocab: 3\nvocab_counts: all", want: []string{"task.vocab", "3", "vocab_counts all", ">= 4"}},
		20: {src: "name: copying\nvocab_counts: tokens", want: []string{"task.vocab_counts", `"tokens"`, "data", "all"}},
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
				t.Errorf("case %d: error %q does not mention %q", n, err, w)
			}
		}
	}
}

// TestCopyConfigBuildValidates: configs made in code get the same checks.
func TestCopyConfigBuildValidates(t *testing.T) {
	for _, cfg := range []Config{
		&SelectiveCopyConfig{SeqLen: 8, NumTokens: 4, Vocab: 16},
		&CopyingConfig{SeqLen: 8, NumTokens: 4, Vocab: 16},
		&SelectiveCopyConfig{Name: "copying", SeqLen: 64, NumTokens: 4, Vocab: 16},
	} {
		if _, err := cfg.Build(); err == nil {
			t.Errorf("%+v: Build accepted an invalid config", cfg)
		}
	}
}

// FuzzCopyConfig: no task block makes Decode, Build or Batch panic, and
// every accepted config generates well-formed sequences.
func FuzzCopyConfig(f *testing.F) {
	for _, s := range []string{
		"name: selective_copy",
		"name: copying\nseq_len: 9\nnum_tokens: 4\nvocab: 2",
		"name: selective_copy\nseq_len: 20\nnum_tokens: 16",
		"name: selective_copy\nnum_tokens: 4611686018427387904",
		"name: copying\nvocab: 1e9",
		"name: selective_copy\nseq_len: 0x40\nnum_tokens: 0o7",
		"name: [selective_copy]",
		"{name: copying, seq_len: 5, num_tokens: 2, extra: 1}",
		"name: selective_copy\nvocab: 4\nvocab_counts: all",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := decodeTaskYAML(t, src)
		if err != nil {
			return
		}
		task, err := cfg.Build()
		if err != nil {
			t.Fatalf("Decode accepted what Build rejects: %v", err)
		}
		if task.SeqLen() > 1<<12 {
			return // valid, but too long to generate on every fuzz input
		}
		var k, vocab int
		switch c := cfg.(type) {
		case *SelectiveCopyConfig:
			k, vocab = c.NumTokens, dataValues(c.Vocab, c.VocabCounts)
		case *CopyingConfig:
			k, vocab = c.NumTokens, dataValues(c.Vocab, c.VocabCounts)
		default:
			return
		}
		b := task.Batch(Train, 1, 0, 2)
		for i := range b.B {
			if err := checkCopySequence(task, b, i, task.(*copyTask).selective, k, vocab); err != nil {
				t.Fatalf("%v\n%s", err, task.Decode(b, i))
			}
		}
	})
}

// vocab_counts all counts noise and marker in vocab: the papers' "vocab 16"
// is 16 token ids, 14 data values; the default counts data values only.
func TestCopyVocabCounts(t *testing.T) {
	for _, name := range copyTaskNames {
		for _, tc := range []struct {
			extra      string
			ids, datas int
		}{{"", 18, 16}, {"\nvocab_counts: data", 18, 16}, {"\nvocab_counts: all", 16, 14}} {
			cfg, err := decodeTaskYAML(t, "name: "+name+"\nvocab: 16"+tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			task, err := cfg.Build()
			if err != nil {
				t.Fatal(err)
			}
			if task.Vocab() != tc.ids || task.(*copyTask).vocab != tc.datas {
				t.Errorf("%s%q: %d ids, %d data values; want %d, %d", name, tc.extra, task.Vocab(), task.(*copyTask).vocab, tc.ids, tc.datas)
			}
			b := task.Batch(Train, 1, 0, 64)
			for _, tok := range b.Inputs {
				if int(tok) >= tc.ids {
					t.Fatalf("%s%q: token %d outside %d ids", name, tc.extra, tok, tc.ids)
				}
			}
		}
	}
}
