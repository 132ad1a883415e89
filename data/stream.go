package data

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Stream is the shards matching a glob, in sorted order, read as one
// sequence of tokens without loading them: Read fetches a window from the
// files on demand (the operating system's page cache does the rest), so a
// corpus of billions of tokens costs no memory.
type Stream struct {
	files  []*os.File
	paths  []string
	starts []int64 // token index where each file begins; starts[len] = Len
	Vocab  int     // from the headers (0 when none records it)
	Kind   int     // KindBytes when every file is byte-level
}

// OpenStream opens the shards matching pattern, checking each header
// against its file's size (magic, version, token count).
func OpenStream(pattern string) (*Stream, error) {
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no token file matches %q", pattern)
	}
	sort.Strings(paths)
	s := &Stream{paths: paths, starts: []int64{0}, Kind: KindBytes}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		h, err := readHeader(p, f)
		if err != nil {
			s.Close()
			return nil, err
		}
		if s.Vocab == 0 {
			s.Vocab = h.vocab
		}
		if h.kind != KindBytes {
			s.Kind = KindUnknown
		}
		s.starts = append(s.starts, s.starts[len(s.starts)-1]+h.tokens)
	}
	return s, nil
}

type header struct {
	tokens      int64
	vocab, kind int
}

// readHeader checks a shard's header against its size, with the same
// messages as Parse.
func readHeader(path string, f *os.File) (header, error) {
	st, err := f.Stat()
	if err != nil {
		return header{}, err
	}
	b := make([]byte, HeaderBytes)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, HeaderBytes), b); err != nil {
		return header{}, fmt.Errorf("%s: %d bytes is shorter than the %d-byte header of a token shard", path, st.Size(), HeaderBytes)
	}
	word := func(i int) int32 { return int32(binary.LittleEndian.Uint32(b[4*i:])) }
	if m := word(0); m != Magic {
		return header{}, fmt.Errorf("%s: magic number %d, want %d (an llm.c / nanoGPT .bin shard)", path, m, Magic)
	}
	if v := word(1); v != Version {
		return header{}, fmt.Errorf("%s: version %d not supported (only %d: uint16 tokens)", path, v, Version)
	}
	n, body := int64(word(2)), st.Size()-HeaderBytes
	switch {
	case n < 0:
		return header{}, fmt.Errorf("%s: negative token count %d in the header", path, n)
	case body < 2*n:
		return header{}, fmt.Errorf("%s: truncated: the header promises %d tokens (%d bytes) but %d bytes follow it", path, n, 2*n, body)
	case body > 2*n:
		return header{}, fmt.Errorf("%s: %d bytes follow the header but it promises %d tokens (%d bytes)", path, body, n, 2*n)
	}
	h := header{tokens: n, vocab: int(word(wordVocab)), kind: int(word(wordKind))}
	if h.vocab < 0 || h.vocab > 1<<16 {
		return header{}, fmt.Errorf("%s: vocabulary size %d in the header is outside [0, 65536]", path, h.vocab)
	}
	return h, nil
}

// Len is the number of tokens in all files.
func (s *Stream) Len() int64 { return s.starts[len(s.starts)-1] }

// Read fills dst with the tokens from position off on, across file
// boundaries. It is safe for concurrent use.
func (s *Stream) Read(off int64, dst []uint16) error {
	if off < 0 || off+int64(len(dst)) > s.Len() {
		return fmt.Errorf("tokens [%d, %d) are outside the stream of %d", off, off+int64(len(dst)), s.Len())
	}
	buf := make([]byte, 2*len(dst))
	for got := 0; got < len(dst); {
		i := sort.Search(len(s.files), func(i int) bool { return s.starts[i+1] > off })
		k := min(int64(len(dst)-got), s.starts[i+1]-off)
		b := buf[2*got : 2*got+2*int(k)]
		if _, err := s.files[i].ReadAt(b, HeaderBytes+2*(off-s.starts[i])); err != nil {
			return fmt.Errorf("%s: %w", s.paths[i], err)
		}
		for j := range int(k) {
			dst[got+j] = binary.LittleEndian.Uint16(b[2*j:])
		}
		got += int(k)
		off += k
	}
	return nil
}

// Check reads every token once, in chunks, and reports the first that is
// not below vocab, naming its file and position.
func (s *Stream) Check(vocab int) error {
	const chunk = 1 << 20
	buf := make([]byte, 2*chunk)
	for i, f := range s.files {
		n := s.starts[i+1] - s.starts[i]
		for pos := int64(0); pos < n; pos += chunk {
			k := min(chunk, n-pos)
			b := buf[:2*k]
			if _, err := f.ReadAt(b, HeaderBytes+2*pos); err != nil {
				return fmt.Errorf("%s: %w", s.paths[i], err)
			}
			for j := range int(k) {
				if t := int(binary.LittleEndian.Uint16(b[2*j:])); t >= vocab {
					return fmt.Errorf("%s: token %d at position %d is not below the vocabulary size %d", s.paths[i], t, pos+int64(j), vocab)
				}
			}
		}
	}
	return nil
}

// Close closes the files. A stream that is dropped without Close has them
// closed by the garbage collector (os.File's own cleanup), which is what
// tasks rely on: they have no Close.
func (s *Stream) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.files = nil
	return first
}
