// Package data reads and writes token files: llm.c / nanoGPT `.bin` shards
// (a 256-int32 header, then uint16 tokens), which is also the format of the
// byte-level corpora `seqbench data prepare` makes.
package data

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"seqbench/internal/atomicfile"
)

// Shard header layout (little-endian int32 words). Words 0..2 are llm.c's;
// words 3 and 4 are seqbench's own and zero in llm.c's files, which is how
// a GPT-2 shard is told from a byte-level one.
const (
	HeaderWords = 256
	HeaderBytes = HeaderWords * 4
	Magic       = 20240520
	Version     = 1 // uint16 tokens
	wordVocab   = 3 // vocabulary size (0: not recorded)
	wordKind    = 4 // KindBytes for byte-level files
)

// Kinds of token file, recorded in header word 4.
const (
	KindUnknown = 0 // llm.c / nanoGPT shards (GPT-2 BPE by convention)
	KindBytes   = 1 // one token per byte, vocabulary 256
)

// Shard is a token file in memory.
type Shard struct {
	Path   string
	Vocab  int // from the header; 0 when not recorded
	Kind   int
	Tokens []uint16
}

// Parse decodes a shard, checking the header against the data: a wrong
// magic or version, a token count that disagrees with the file size, or a
// truncated file each give an error naming the file and the numbers.
func Parse(path string, b []byte) (*Shard, error) {
	if len(b) < HeaderBytes {
		return nil, fmt.Errorf("%s: %d bytes is shorter than the %d-byte header of a token shard", path, len(b), HeaderBytes)
	}
	word := func(i int) int32 { return int32(binary.LittleEndian.Uint32(b[4*i:])) }
	if m := word(0); m != Magic {
		return nil, fmt.Errorf("%s: magic number %d, want %d (an llm.c / nanoGPT .bin shard)", path, m, Magic)
	}
	if v := word(1); v != Version {
		return nil, fmt.Errorf("%s: version %d not supported (only %d: uint16 tokens)", path, v, Version)
	}
	n := int64(word(2))
	body := int64(len(b) - HeaderBytes)
	switch {
	case n < 0:
		return nil, fmt.Errorf("%s: negative token count %d in the header", path, n)
	case body < 2*n:
		return nil, fmt.Errorf("%s: truncated: the header promises %d tokens (%d bytes) but %d bytes follow it", path, n, 2*n, body)
	case body > 2*n:
		return nil, fmt.Errorf("%s: %d bytes follow the header but it promises %d tokens (%d bytes)", path, body, n, 2*n)
	}
	s := &Shard{Path: path, Vocab: int(word(wordVocab)), Kind: int(word(wordKind)), Tokens: make([]uint16, n)}
	if s.Vocab < 0 || s.Vocab > 1<<16 {
		return nil, fmt.Errorf("%s: vocabulary size %d in the header is outside [0, 65536]", path, s.Vocab)
	}
	for i := range s.Tokens {
		s.Tokens[i] = binary.LittleEndian.Uint16(b[HeaderBytes+2*i:])
	}
	if s.Vocab > 0 {
		for i, t := range s.Tokens {
			if int(t) >= s.Vocab {
				return nil, fmt.Errorf("%s: token %d at position %d is not below the vocabulary size %d", path, t, i, s.Vocab)
			}
		}
	}
	return s, nil
}

// ReadShard reads and parses a shard file.
func ReadShard(path string) (*Shard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// ReadShards reads every file matching a glob pattern, in sorted order.
func ReadShards(pattern string) ([]*Shard, error) {
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no token file matches %q", pattern)
	}
	sort.Strings(paths)
	shards := make([]*Shard, len(paths))
	for i, p := range paths {
		if shards[i], err = ReadShard(p); err != nil {
			return nil, err
		}
	}
	return shards, nil
}

// WriteShard writes tokens as a shard (atomically: temp file + rename).
func WriteShard(path string, tokens []uint16, vocab, kind int) error {
	return atomicfile.Write(path, func(w io.Writer) error { return encode(w, tokens, vocab, kind) })
}

func encode(w io.Writer, tokens []uint16, vocab, kind int) error {
	if int64(len(tokens)) > 1<<31-1 {
		return fmt.Errorf("%d tokens do not fit one shard's int32 count; split the corpus", len(tokens))
	}
	header := make([]int32, HeaderWords)
	header[0], header[1], header[2] = Magic, Version, int32(len(tokens))
	header[wordVocab], header[wordKind] = int32(vocab), int32(kind)
	if err := binary.Write(w, binary.LittleEndian, header); err != nil {
		return err
	}
	return binary.Write(w, binary.LittleEndian, tokens)
}
