package data

import (
	"fmt"
	"strings"

	"github.com/tiktoken-go/tokenizer/codec"
)

// GPT-2's byte-pair encoding (tiktoken's r50k_base): 50,000 merges over the
// 256 bytes plus <|endoftext|>.
const (
	GPT2Vocab = 50257
	GPT2EOT   = 50256 // <|endoftext|>, which starts every document
)

// Encoder turns one document into tokens. An Encoder is used by one
// goroutine at a time; preparation makes one per worker.
type Encoder interface {
	Encode(doc []byte) ([]uint16, error)
}

// GPT2 encodes text as GPT-2 does (the r50k_base ranks, embedded in the
// tokenizer module, so it works offline). Each document is preceded by
// <|endoftext|>, as llm.c's and nanoGPT's data scripts do, so a model sees
// where one ends and the next begins. Invalid UTF-8 becomes U+FFFD (as
// Python's errors="replace" reading does); text spelling "<|endoftext|>" is
// ordinary text, never the special token.
type GPT2 struct{ c *codec.Codec }

// NewGPT2 builds an encoder (the vocabulary is loaded once per process).
func NewGPT2() *GPT2 {
	c := codec.NewR50kBase()
	c.SetErrorMode(codec.ErrorModeReplace)
	return &GPT2{c: c}
}

// Encode returns <|endoftext|> followed by the document's tokens.
func (g *GPT2) Encode(doc []byte) ([]uint16, error) {
	ids, _, err := g.c.Encode(string(doc))
	if err != nil {
		return nil, err
	}
	out := make([]uint16, 0, len(ids)+1)
	out = append(out, GPT2EOT)
	for _, id := range ids {
		if id >= GPT2Vocab {
			return nil, fmt.Errorf("GPT-2 tokenizer gave id %d, outside its vocabulary of %d", id, GPT2Vocab)
		}
		out = append(out, uint16(id))
	}
	return out, nil
}

// Decode returns the text of GPT-2 token ids (for showing examples);
// <|endoftext|> is written out, which the codec's Decode does not know.
func (g *GPT2) Decode(ids []uint16) (string, error) {
	var s strings.Builder
	var run []uint
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		t, err := g.c.Decode(run)
		s.WriteString(t)
		run = run[:0]
		return err
	}
	for _, id := range ids {
		if id == GPT2EOT {
			if err := flush(); err != nil {
				return "", err
			}
			s.WriteString("<|endoftext|>")
			continue
		}
		run = append(run, uint(id))
	}
	if err := flush(); err != nil {
		return "", err
	}
	return s.String(), nil
}
