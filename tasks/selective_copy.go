package tasks

// SelectiveCopyConfig is the selective copying task of the Mamba paper
// (Gu & Dao 2023, App. E.1): K data tokens are scattered at random positions
// among noise, and after them the model must output the K data tokens in
// order, one per marker. Because the spacing changes from sequence to
// sequence, a fixed (LTI) convolution cannot solve it; the model has to
// decide per token what to keep (selection). CopyingConfig is the control
// with the data contiguous.
//
// Token ids: 0 noise, 1 marker, 2..vocab+1 the data values 0..vocab−1;
// Vocab() is vocab+2. Layout of one sequence of length L = seq_len with
// K = num_tokens:
//
//   - positions 0..L−K−1: noise, except K data tokens (values i.i.d. uniform)
//     at K distinct positions drawn uniformly, in increasing order;
//   - positions L−K..L−1: markers.
//
// The target at position L−K+k is the k-th data token (in position order);
// every other target is Ignore, so loss and accuracy count only the K copies
// and a causal model has read every data token before the first marker.
//
// Worked example (seq_len 12, num_tokens 3, vocab 4; train split, seed 4,
// batch 0, sequence 0), raw token ids, '_' = Ignore (−100):
//
//	inputs : 0 5 0 0 0 0 3 0 2 1 1 1
//	targets: _ _ _ _ _ _ _ _ _ 5 3 2
//
// and as Decode shows it (data as values 0..3, '.' noise / not scored,
// '>' marker, '|' before the first marker):
//
//	input : . 3 . . . . 1 . 0 | > > >
//	target: . . . . . . . . . | 3 1 0
type SelectiveCopyConfig struct {
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
func (c *SelectiveCopyConfig) Validate() error {
	return validateCopyFields("selective_copy", c.Name, c.SeqLen, c.NumTokens, c.Vocab, c.VocabCounts)
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *SelectiveCopyConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &copyTask{name: "selective_copy", seqLen: c.SeqLen, numTokens: c.NumTokens, vocab: dataValues(c.Vocab, c.VocabCounts), selective: true}, nil
}

func init() {
	Register(Spec{
		Name: "selective_copy",
		Doc:  "Mamba selective copying: recall K data tokens scattered at random among noise, in order, after K markers",
		New: func() Config {
			return &SelectiveCopyConfig{Name: "selective_copy", SeqLen: 256, NumTokens: 16, Vocab: 16}
		},
	})
}
