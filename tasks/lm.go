package tasks

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"seqbench/data"
)

// LMConfig is next-token prediction on token files: byte-level corpora made
// by `seqbench data prepare`, or llm.c / nanoGPT `.bin` shards (GPT-2 BPE).
// Each sequence is a window of seq_len+1 consecutive tokens at a random
// offset of the split's files (taken as one stream): inputs are its first
// seq_len tokens, targets the next token at every position, all scored.
//
// Worked example (seq_len 4; byte-level corpus "the cat sat"):
//
//	window : t h e ␠ c     (offset 0)
//	inputs : t h e ␠
//	targets: h e ␠ c
type LMConfig struct {
	Name   string `yaml:"name"`
	Train  string `yaml:"train"`   // file or glob of the training split
	Val    string `yaml:"val"`     // file or glob of the validation split
	SeqLen int    `yaml:"seq_len"` // tokens per sequence
	// Vocab is the vocabulary size; 0 takes it from the files' header
	// (byte-level files record 256; llm.c's GPT-2 shards record none, so
	// they need vocab: 50257).
	Vocab int `yaml:"vocab"`
}

// Validate checks the fields and that both globs match files.
func (c *LMConfig) Validate() error {
	switch {
	case c.Name != "lm":
		return fmt.Errorf("field task.name: %q is not allowed (this config is for lm)", c.Name)
	case c.SeqLen < 1:
		return fmt.Errorf("field task.seq_len: %d is not allowed (must be >= 1)", c.SeqLen)
	case c.Vocab < 0 || c.Vocab > 1<<16:
		return fmt.Errorf("field task.vocab: %d is not allowed (0 for the files' header, or 1..65536)", c.Vocab)
	}
	for _, f := range []struct{ field, glob string }{{"train", c.Train}, {"val", c.Val}} {
		if f.glob == "" {
			return fmt.Errorf("field task.%s: missing (a token file or glob, e.g. from `seqbench data prepare`)", f.field)
		}
		if m, err := filepath.Glob(f.glob); err != nil || len(m) == 0 {
			return fmt.Errorf("field task.%s: %q is not allowed (no file matches it)", f.field, f.glob)
		}
	}
	return nil
}

// Build opens the token files (llm.c shards, byte-level or GPT-2, told
// apart by their header) without loading them: batches read their windows
// from disk. Every token is checked against the vocabulary once here.
func (c *LMConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t := &lmTask{seqLen: c.SeqLen, vocab: c.Vocab, bytes: true}
	for _, s := range []struct {
		glob string
		dst  **data.Stream
	}{{c.Train, &t.train}, {c.Val, &t.val}} {
		st, err := data.OpenStream(s.glob)
		if err != nil {
			return nil, err
		}
		*s.dst = st
		if t.vocab == 0 {
			t.vocab = st.Vocab
		}
		if st.Kind != data.KindBytes {
			t.bytes = false
		}
		if st.Len() < int64(c.SeqLen+1) {
			return nil, fmt.Errorf("field task.seq_len: %d is not allowed (%s holds only %d tokens)", c.SeqLen, s.glob, st.Len())
		}
	}
	if t.vocab == 0 {
		return nil, fmt.Errorf("field task.vocab: 0 is not allowed (the files do not record their vocabulary; GPT-2 shards need vocab: 50257)")
	}
	for _, st := range []*data.Stream{t.train, t.val} {
		if err := st.Check(t.vocab); err != nil {
			return nil, fmt.Errorf("field task.vocab: %d is not allowed (%w)", t.vocab, err)
		}
	}
	return t, nil
}

type lmTask struct {
	seqLen, vocab int
	bytes         bool
	train, val    *data.Stream
}

func (t *lmTask) Vocab() int  { return t.vocab }
func (t *lmTask) SeqLen() int { return t.seqLen }

func (t *lmTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	stream := t.train
	if split == Eval {
		stream = t.val
	}
	b := newBatch(size, t.seqLen)
	window := make([]uint16, t.seqLen+1)
	for i := range size {
		off := seqRand(seed, split, index, i).Int64N(stream.Len() - int64(t.seqLen))
		if err := stream.Read(off, window); err != nil {
			// The files were checked at Build; failing to read them now
			// (deleted, truncated, a disk error) cannot be trained through.
			panic(fmt.Sprintf("lm task: reading the %s split: %v", split, err))
		}
		for j := range t.seqLen {
			b.Inputs[i*t.seqLen+j] = int32(window[j])
			b.Targets[i*t.seqLen+j] = int32(window[j+1])
		}
	}
	return b
}

// LossMetrics converts the mean loss (nats per token) into bits per byte
// for byte-level corpora and perplexity otherwise.
func (t *lmTask) LossMetrics(loss float64) map[string]float64 {
	if t.bytes {
		return map[string]float64{"bits_per_byte": loss / math.Ln2}
	}
	return map[string]float64{"perplexity": math.Exp(loss)}
}

func (t *lmTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B {
		return fmt.Sprintf("(no sequence %d in a batch of %d)", i, b.B)
	}
	seq := b.Inputs[i*b.L : (i+1)*b.L]
	if !t.bytes && t.vocab == data.GPT2Vocab {
		ids := make([]uint16, len(seq))
		for j, tok := range seq {
			ids[j] = uint16(tok)
		}
		if s, err := data.NewGPT2().Decode(ids); err == nil {
			return fmt.Sprintf("GPT-2 text: %q", s)
		}
	}
	if !t.bytes {
		return fmt.Sprint("tokens: ", seq)
	}
	var s strings.Builder
	for _, tok := range seq {
		s.WriteByte(byte(tok))
	}
	return fmt.Sprintf("text: %q", s.String())
}

func init() {
	Register(Spec{
		Name: "lm",
		Doc:  "language modelling on token files (byte-level from `seqbench data prepare`, or llm.c/nanoGPT .bin shards)",
		New:  func() Config { return &LMConfig{Name: "lm", SeqLen: 256} },
	})
}

// TokensPerSequence is seq_len: every position of a sequence is a scored
// target, so a token budget converts to steps by it.
func (c *LMConfig) TokensPerSequence() int { return c.SeqLen }
