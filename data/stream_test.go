package data

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A stream over three shards reads any window, across file boundaries, as
// the concatenation of their tokens.
func TestStreamReadsAcrossShards(t *testing.T) {
	dir := t.TempDir()
	var all []uint16
	for i, n := range []int{5, 1, 7} {
		toks := make([]uint16, n)
		for j := range toks {
			toks[j] = uint16(1000*i + j)
		}
		all = append(all, toks...)
		if err := WriteShard(filepath.Join(dir, "s_"+string(rune('a'+i))+".bin"), toks, 0, KindUnknown); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenStream(filepath.Join(dir, "s_*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 13 || s.Kind != KindUnknown || s.Vocab != 0 {
		t.Fatalf("len %d kind %d vocab %d", s.Len(), s.Kind, s.Vocab)
	}
	for off := range 13 {
		for n := 0; off+n <= 13; n++ {
			got := make([]uint16, n)
			if err := s.Read(int64(off), got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, all[off:off+n]) {
				t.Fatalf("Read(%d, %d) = %v, want %v", off, n, got, all[off:off+n])
			}
		}
	}
	if err := s.Read(10, make([]uint16, 4)); err == nil {
		t.Fatal("a window past the end was read")
	}
	if err := s.Check(2003); err == nil || !strings.Contains(err.Error(), "token 2003 at position 3") || !strings.Contains(err.Error(), "s_c.bin") {
		t.Fatalf("Check: %v", err)
	}
	if err := s.Check(2007); err != nil {
		t.Fatal(err)
	}
}

// A corrupted header is refused when the stream opens, naming the file
// and what is wrong.
func TestStreamCorruptHeader(t *testing.T) {
	good := shardBytes(t, []uint16{1, 2, 3}, 256, KindBytes)
	set := func(i int, v int32) []byte {
		c := bytes.Clone(good)
		binary.LittleEndian.PutUint32(c[4*i:], uint32(v))
		return c
	}
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{good[:100], "shorter than the 1024-byte header"},
		{set(0, 42), "magic number 42, want 20240520"},
		{set(1, 2), "version 2 not supported"},
		{set(2, 9), "truncated: the header promises 9 tokens"},
		{set(2, 1), "promises 1 tokens"},
		{set(3, 1<<20), "vocabulary size 1048576"},
	} {
		p := filepath.Join(t.TempDir(), "bad.bin")
		os.WriteFile(p, c.b, 0o644)
		_, err := OpenStream(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.bin") {
			t.Errorf("error %v, want it to name the file and mention %q", err, c.want)
		}
	}
	if _, err := OpenStream(filepath.Join(t.TempDir(), "none*.bin")); err == nil {
		t.Error("an empty glob opened")
	}
}
