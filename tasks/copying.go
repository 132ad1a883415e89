package tasks

// CopyingConfig is the classic copying task, the control for selective_copy:
// the same tokens, lengths and scoring, but the K data tokens are contiguous
// at the start. The lag between a data token and its copy is then always
// L−K, so a fixed (LTI) convolution such as S4D can solve it; a model that
// solves copying but not selective_copy lacks selection, not memory.
//
// Token ids: 0 noise, 1 marker, 2..vocab+1 the data values 0..vocab−1;
// Vocab() is vocab+2. Layout of one sequence of length L = seq_len with
// K = num_tokens:
//
//   - positions 0..K−1: data tokens, values i.i.d. uniform;
//   - positions K..L−K−1: noise;
//   - positions L−K..L−1: markers.
//
// The target at position L−K+k is the data token at position k; every other
// target is Ignore.
//
// Worked example (seq_len 12, num_tokens 3, vocab 4; train split, seed 4,
// batch 0, sequence 0), raw token ids, '_' = Ignore (−100):
//
//	inputs : 5 4 5 0 0 0 0 0 0 1 1 1
//	targets: _ _ _ _ _ _ _ _ _ 5 4 5
//
// and as Decode shows it (data as values 0..3, '.' noise / not scored,
// '>' marker, '|' before the first marker):
//
//	input : 3 2 3 . . . . . . | > > >
//	target: . . . . . . . . . | 3 2 3
type CopyingConfig struct {
	Name      string `yaml:"name"`
	SeqLen    int    `yaml:"seq_len"`    // L, total input length
	NumTokens int    `yaml:"num_tokens"` // K, data tokens to copy
	Vocab     int    `yaml:"vocab"`      // distinct data values, or every token id (vocab_counts)
	// VocabCounts says what vocab counts: "data" (the default; empty is
	// data) the distinct data values, so the model sees vocab+2 token ids
	// with noise and marker; "all" every token id, the papers' convention
	// (the Mamba paper's "vocab 16" is 14 data values, noise and marker).
	VocabCounts string `yaml:"vocab_counts,omitempty"`
}

// Validate checks seq_len ≥ 2·num_tokens+1, num_tokens ≥ 1, at least 2
// data values, vocab_counts and that every token id fits int32.
func (c *CopyingConfig) Validate() error {
	return validateCopyFields("copying", c.Name, c.SeqLen, c.NumTokens, c.Vocab, c.VocabCounts)
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *CopyingConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &copyTask{name: "copying", seqLen: c.SeqLen, numTokens: c.NumTokens, vocab: dataValues(c.Vocab, c.VocabCounts)}, nil
}

func init() {
	Register(Spec{
		Name: "copying",
		Doc:  "copying control for selective_copy: K contiguous data tokens at the start, recalled in order after K markers",
		New: func() Config {
			return &CopyingConfig{Name: "copying", SeqLen: 256, NumTokens: 16, Vocab: 16}
		},
	})
}
