package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// GPT-2 token ids known from GPT-2's own vocabulary (encoder.json /
// tiktoken's r50k_base): "Hello" 15496, " world" 995, " the" 262, "," 11,
// "!" 0 (the first byte-level token), "\n" 198, "\n\n" 628, " " 220, and the
// pangram as GPT-2 tokenizes it.
func TestGPT2KnownIDs(t *testing.T) {
	g := NewGPT2()
	cases := []struct {
		text string
		want []uint16
	}{
		{"Hello world", []uint16{15496, 995}},
		{" the", []uint16{262}},
		{"Hello, world!", []uint16{15496, 11, 995, 0}},
		{"The quick brown fox jumps over the lazy dog", []uint16{464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290}},
		{"\n", []uint16{198}},
		{"\n\n", []uint16{628}},
		{" ", []uint16{220}},
		// Text that spells the special token is ordinary text: <, |, end, of, text, |, >.
		{"<|endoftext|>", []uint16{27, 91, 437, 1659, 5239, 91, 29}},
	}
	for _, c := range cases {
		got, err := g.Encode([]byte(c.text))
		if err != nil {
			t.Fatal(err)
		}
		want := append([]uint16{GPT2EOT}, c.want...)
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, want)
		}
		back, err := g.Decode(got[1:])
		if err != nil || back != c.text {
			t.Errorf("Decode(Encode(%q)) = %q, %v", c.text, back, err)
		}
	}
	if s, err := g.Decode([]uint16{GPT2EOT}); err != nil || s != "<|endoftext|>" {
		t.Errorf("Decode(50256) = %q, %v; want <|endoftext|>", s, err)
	}
	// An invalid byte becomes U+FFFD (GPT-2 token 4210), as Python's
	// errors="replace" gives.
	if got, _ := g.Encode([]byte("a\xffb")); !slices.Equal(got, []uint16{GPT2EOT, 64, 4210, 65}) {
		t.Errorf("invalid UTF-8: %v", got)
	}
}

// writeCorpus makes n small documents in a folder.
func writeCorpus(t *testing.T, n int) string {
	dir := filepath.Join(t.TempDir(), "text")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	for i := range n {
		sub := ""
		if i%3 == 0 {
			sub = "sub"
		}
		body := strings.Repeat(fmt.Sprintf("Document %d says hello to the world, %d times.\n", i, i), 1+i%5)
		if err := os.WriteFile(filepath.Join(dir, sub, fmt.Sprintf("doc%02d.txt", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readAll(t *testing.T, pattern string) (files [][]byte, tokens []uint16) {
	paths, _ := filepath.Glob(pattern)
	slices.Sort(paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
		s, err := Parse(p, b)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, s.Tokens...)
	}
	return files, tokens
}

// Shards are llm.c's format, split at ShardTokens, hold every document's
// tokens in path order, and are byte-identical for 1 and 5 workers.
func TestPrepareShardsGPT2(t *testing.T) {
	text := writeCorpus(t, 12)
	out := t.TempDir()
	var runs [][][]byte
	var prog bytes.Buffer
	for _, workers := range []int{1, 5} {
		p, err := PrepareShards(ShardOptions{Paths: []string{text}, Out: filepath.Join(out, fmt.Sprint(workers), "c.bin"),
			ValFraction: 0.2, ShardTokens: 100, Workers: workers, NewEncoder: func() Encoder { return NewGPT2() }, Progress: &prog})
		if err != nil {
			t.Fatal(err)
		}
		trainFiles, train := readAll(t, p.Train)
		valFiles, val := readAll(t, p.Val)
		if int64(len(train)) != p.TrainTokens || int64(len(val)) != p.ValTokens || len(trainFiles) != p.TrainShards || p.TrainShards < 3 {
			t.Fatalf("%+v: read %d train tokens in %d files, %d val", p, len(train), len(trainFiles), len(val))
		}
		for i, f := range trainFiles {
			h := f[:HeaderBytes]
			n := binary.LittleEndian.Uint32(h[8:])
			if i < len(trainFiles)-1 && n != 100 {
				t.Errorf("train shard %d holds %d tokens, want 100", i, n)
			}
			if !bytes.Equal(h[12:], make([]byte, HeaderBytes-12)) {
				t.Errorf("train shard %d: header words past the count are not 0", i)
			}
		}
		// Train then val of each document, in sorted path order.
		g := NewGPT2()
		var wantTrain, wantVal []uint16
		paths, _ := textFiles([]string{text})
		for _, path := range paths {
			b, _ := os.ReadFile(path)
			toks, _ := g.Encode(b)
			cut := len(toks) - int(float64(len(toks))*0.2)
			wantTrain, wantVal = append(wantTrain, toks[:cut]...), append(wantVal, toks[cut:]...)
		}
		if !slices.Equal(train, wantTrain) || !slices.Equal(val, wantVal) {
			t.Fatalf("workers %d: shards do not hold the documents' tokens in order", workers)
		}
		runs = append(runs, append(trainFiles, valFiles...))
	}
	if len(runs[0]) != len(runs[1]) {
		t.Fatalf("%d vs %d files", len(runs[0]), len(runs[1]))
	}
	for i := range runs[0] {
		if !bytes.Equal(runs[0][i], runs[1][i]) {
			t.Fatalf("file %d differs between 1 and 5 workers", i)
		}
	}
	if !strings.Contains(prog.String(), "tokenized 12/12 files") {
		t.Errorf("progress: %q", prog.String())
	}
}

// A second preparation with fewer shards leaves none of the first behind.
func TestPrepareShardsRemovesStale(t *testing.T) {
	text := writeCorpus(t, 6)
	out := filepath.Join(t.TempDir(), "c.bin")
	o := ShardOptions{Paths: []string{text}, Out: out, ValFraction: 0.1, ShardTokens: 50, NewEncoder: func() Encoder { return NewGPT2() }}
	if _, err := PrepareShards(o); err != nil {
		t.Fatal(err)
	}
	o.ShardTokens = 1 << 20
	p, err := PrepareShards(o)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(p.Train); len(m) != 1 || p.TrainShards != 1 {
		t.Fatalf("train shards %v", m)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

func TestPrepareShardsErrors(t *testing.T) {
	text := writeCorpus(t, 2)
	enc := func() Encoder { return NewGPT2() }
	out := filepath.Join(t.TempDir(), "c.bin")
	for _, c := range []struct {
		o    ShardOptions
		want string
	}{
		{ShardOptions{Paths: []string{text}, Out: out, ValFraction: 1, ShardTokens: 10, NewEncoder: enc}, "--val-fraction 1"},
		{ShardOptions{Paths: []string{text}, Out: out, ValFraction: 0.1, ShardTokens: 1, NewEncoder: enc}, "--shard-tokens 1"},
		{ShardOptions{Paths: []string{text}, Out: out, ValFraction: 0.1, ShardTokens: 10, Workers: -1, NewEncoder: enc}, "--workers -1"},
		{ShardOptions{Paths: []string{filepath.Join(text, "none")}, Out: out, ValFraction: 0.1, ShardTokens: 10, NewEncoder: enc}, "none"},
	} {
		if _, err := PrepareShards(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to mention %q", err, c.want)
		}
	}
}

// failOn is an encoder that fails on a document holding "bad".
type failOn struct{ g *GPT2 }

func (f failOn) Encode(doc []byte) ([]uint16, error) {
	if strings.Contains(string(doc), "bad") {
		return nil, fmt.Errorf("cannot encode")
	}
	return f.g.Encode(doc)
}

// A preparation that fails part-way leaves no shard behind, not even the
// ones it had completed.
func TestPrepareShardsFailureLeavesNothing(t *testing.T) {
	text := writeCorpus(t, 6)
	os.WriteFile(filepath.Join(text, "zz.txt"), []byte("a bad document"), 0o644)
	out := t.TempDir()
	_, err := PrepareShards(ShardOptions{Paths: []string{text}, Out: filepath.Join(out, "c.bin"), ValFraction: 0.1,
		ShardTokens: 20, Workers: 2, NewEncoder: func() Encoder { return failOn{NewGPT2()} }})
	if err == nil || !strings.Contains(err.Error(), "zz.txt: cannot encode") {
		t.Fatalf("error %v", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
