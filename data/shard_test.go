package data

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func shardBytes(t testing.TB, tokens []uint16, vocab, kind int) []byte {
	var buf bytes.Buffer
	if err := encode(&buf, tokens, vocab, kind); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestShardRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.bin")
	tokens := []uint16{0, 7, 65535, 3}
	if err := WriteShard(path, tokens, 0, KindUnknown); err != nil {
		t.Fatal(err)
	}
	s, err := ReadShard(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Vocab != 0 || s.Kind != KindUnknown || len(s.Tokens) != 4 || s.Tokens[2] != 65535 {
		t.Fatalf("got %+v", s)
	}
}

// malformedShard is a malformed shard and what its error must say.
type malformedShard struct {
	name string
	b    []byte
	want string
}

// malformedShards are the shards Parse must reject: the cases of
// TestShardErrors and seeds of FuzzParse.
func malformedShards(t testing.TB) []malformedShard {
	good := shardBytes(t, []uint16{1, 2, 3}, 256, KindBytes)
	setWord := func(b []byte, i int, v int32) []byte {
		c := bytes.Clone(b)
		binary.LittleEndian.PutUint32(c[4*i:], uint32(v))
		return c
	}
	return []malformedShard{
		{"empty", nil, "shorter than"},
		{"bad magic", setWord(good, 0, 42), "magic number 42"},
		{"bad version", setWord(good, 1, 7), "version 7"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"trailing", append(bytes.Clone(good), 0, 0), "promises 3 tokens"},
		{"negative count", setWord(good, 2, -1), "negative"},
		{"token past vocab", setWord(good, 3, 2), "not below the vocabulary size 2"},
		{"absurd vocab", setWord(good, 3, 1<<20), "vocabulary size"},
		{"absurd count", setWord(good, 2, 1<<30), "promises"},
		{"odd length", append(bytes.Clone(good), 0), "promises 3 tokens"},
	}
}

func TestShardErrors(t *testing.T) {
	for i, c := range malformedShards(t) {
		_, err := Parse("f.bin", c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d %s: error %v, want it to mention %q", i, c.name, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(shardBytes(f, []uint16{1, 2, 3}, 256, KindBytes))
	f.Add(shardBytes(f, nil, 0, 0))
	f.Add([]byte("not a shard"))
	for _, c := range malformedShards(f) {
		f.Add(c.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse("fuzz.bin", b)
		if err != nil {
			return
		}
		// What parses must re-encode to the same bytes.
		if got := shardBytes(t, s.Tokens, s.Vocab, s.Kind); !bytes.Equal(got[:12], b[:12]) || len(got) != len(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestPrepareBytes(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	os.MkdirAll(filepath.Join(text, "sub"), 0o755)
	os.MkdirAll(filepath.Join(text, ".git"), 0o755)
	os.WriteFile(filepath.Join(text, "a.txt"), []byte(strings.Repeat("hello world\n", 10)), 0o644)
	os.WriteFile(filepath.Join(text, "sub", "b.txt"), []byte(strings.Repeat("abc", 10)), 0o644)
	os.WriteFile(filepath.Join(text, ".git", "c"), []byte("skipped"), 0o644)
	p, err := PrepareBytes([]string{text}, filepath.Join(dir, "out", "corpus.bin"), 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if p.TrainTokens+p.ValTokens != 150 {
		t.Fatalf("%d + %d tokens, want 150", p.TrainTokens, p.ValTokens)
	}
	s, err := ReadShard(p.Train)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindBytes || s.Vocab != 256 || string(rune(s.Tokens[0])) != "h" {
		t.Fatalf("train shard %+v", s.Tokens[:5])
	}
	if _, err := PrepareBytes([]string{filepath.Join(dir, "none")}, filepath.Join(dir, "x.bin"), 0.1); err == nil {
		t.Fatal("missing folder accepted")
	}
	if _, err := PrepareBytes([]string{text}, filepath.Join(dir, "x.bin"), 1.5); err == nil {
		t.Fatal("val fraction 1.5 accepted")
	}
}
