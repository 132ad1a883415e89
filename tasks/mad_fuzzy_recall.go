package tasks

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// MADFuzzyRecallConfig is MAD's fuzzy in-context recall (registered as
// mad_fuzzy_in_context_recall), multi-query as the MAD benchmark runs it:
// in-context recall where keys and values are motifs of 1..k_motif_size and
// 1..v_motif_size adjacent tokens, so the model must group tokens into
// units before it can recall.
//
// Token ids, with V = vocab and S = V − 1: key tokens [0, S/2), value
// tokens [S/2, S), and V−1 is the pad token. A motif of size m is m
// distinct tokens of its range in random order (uniform among all such
// m-permutations, as MAD's choice from the list of permutations). Layout,
// generated as MAD's generate_fuzzy_in_context_recall_instance does, for
// L = seq_len:
//
//  1. The probe: a key motif kp (training: size uniform in 1..k_motif_size;
//     evaluation: always k_motif_size) and a value motif vp (size uniform in
//     1..v_motif_size); kvps = |kp|+|vp|; a position probe_idx uniform in
//     [0, L − 2·kvps).
//  2. While the sequence is shorter than L − kvps − k_motif_size −
//     v_motif_size: draw a key size and a value size (as for the probe);
//     if the sequence has reached probe_idx and the probe is not in yet,
//     append kp vp (not scored); else append a key motif k of the drawn size
//     and its value: vp if k = kp (the probe then counts as in), the value k
//     got before in this sequence, or else a fresh value motif of the drawn
//     size. A value is scored when its key appeared before.
//  3. Append kp vp, the value scored (always, as in MAD).
//  4. Pad at the front with the pad token to L+1 tokens.
//
// The model reads the first L tokens (SeqLen() = seq_len) and predicts the
// next one at each position. Training targets are every next token (MAD
// trains on the shifted inputs); evaluation targets are the scored value
// tokens: at the position before each token of such a value, its token.
//
// As in MAD, the probe can miss its slot: when the loop ends before
// reaching probe_idx (possible when kvps < k_motif_size+v_motif_size), the
// final probe asks for a key that was never shown, unless kp occurred by
// chance. Those targets are unanswerable; MAD's data has them too.
//
// Worked example (vocab 12, seq_len 24, k_motif_size 2, v_motif_size 2;
// eval split, seed 6, batch 0, sequence 0), raw token ids ('_' = Ignore;
// key tokens 0..4, value tokens 5..10, pad 11):
//
//	inputs : 11 11 11 11 11 1 2 5 6 2 3 6 9 2 3 6 9 2 4 5 8 1 2 5
//	targets:  _  _  _  _  _ _ _ _ _ _ _ _ _ _ 6 9 _ _ _ _ _ _ 5 6
//
// After five pad tokens come the pairs (1 2)(5 6), the probe, placed
// first; (2 3)(6 9) twice, the second value scored; (2 4)(5 8); and the
// final probe (1 2)(5 6), whose last value token is the one after the
// inputs. Decode shows pad tokens and unscored targets as '.':
//
//	input : . . . . . 1 2 5 6 2 3 6 9 2 3 6 9 2 4 5 8 1 2 5
//	target: . . . . . . . . . . . . . . 6 9 . . . . . . 5 6
type MADFuzzyRecallConfig struct {
	Name             string `yaml:"name"`
	Vocab            int    `yaml:"vocab"`   // all token ids, pad included (MAD's vocab_size)
	SeqLen           int    `yaml:"seq_len"` // L, the tokens the model reads
	KMotifSize       int    `yaml:"k_motif_size"`
	VMotifSize       int    `yaml:"v_motif_size"`
	NumTrainExamples int    `yaml:"num_train_examples"`
	NumTestExamples  int    `yaml:"num_test_examples"`
}

const madFuzzyName = "mad_fuzzy_in_context_recall"

func (c *MADFuzzyRecallConfig) common() madCommon {
	return madCommon{task: madFuzzyName, name: c.Name, vocab: c.Vocab, seqLen: c.SeqLen,
		numTrain: c.NumTrainExamples, numTest: c.NumTestExamples,
		minVocab: 2*max(c.KMotifSize, c.VMotifSize) + 1, vocabWhy: "the key and value halves of vocab−1 must each hold a motif of distinct tokens, plus the pad id",
		minSeqLen: 2*(c.KMotifSize+c.VMotifSize) + 1, seqLenWhy: "MAD draws the probe position in [0, seq_len − 2·(k_motif_size+v_motif_size))"}
}

// Validate checks the fields: motif sizes in [1, 64], vocab large enough
// for a motif of distinct tokens in each half, seq_len >=
// 2·(k_motif_size+v_motif_size)+1, example counts >= 1.
func (c *MADFuzzyRecallConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"k_motif_size", c.KMotifSize}, {"v_motif_size", c.VMotifSize}} {
		if f.v < 1 || f.v > 64 {
			return fmt.Errorf("field task.%s: %d is not allowed (must be in [1, 64])", f.name, f.v)
		}
	}
	return c.common().validate()
}

// ExampleCounts returns num_train_examples and num_test_examples.
func (c *MADFuzzyRecallConfig) ExampleCounts() (int, int) {
	return c.NumTrainExamples, c.NumTestExamples
}

// Build validates again, so a config built in code gets the same checks as
// one decoded from YAML.
func (c *MADFuzzyRecallConfig) Build() (Task, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &madFuzzyTask{vocab: c.Vocab, seqLen: c.SeqLen, kMotif: c.KMotifSize, vMotif: c.VMotifSize,
		sets: madSets{key: madKey(madFuzzyName), numTrain: c.NumTrainExamples, numTest: c.NumTestExamples}}, nil
}

type madFuzzyTask struct {
	vocab, seqLen, kMotif, vMotif int
	sets                          madSets
}

func (t *madFuzzyTask) Vocab() int  { return t.vocab }
func (t *madFuzzyTask) SeqLen() int { return t.seqLen }
func (t *madFuzzyTask) pad() int32  { return int32(t.vocab - 1) }

func (t *madFuzzyTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	L := t.seqLen
	b := newBatch(size, L)
	g := &fuzzyGen{t: t, values: map[string][]int32{}, shown: map[string]bool{}}
	t.sets.forEach(split, seed, index, size, func(i int, r *rand.Rand) {
		g.fill(r, split)
		in, tg := b.Inputs[i*L:(i+1)*L], b.Targets[i*L:(i+1)*L]
		// g.seq has at most L tokens; the front is padding up to L+1.
		npad := L + 1 - len(g.seq)
		for p := range L + 1 {
			tok, sc := t.pad(), false
			if p >= npad {
				tok, sc = g.seq[p-npad], g.scored[p-npad]
			}
			if p < L {
				in[p] = tok
			}
			if p > 0 && (split == Train || sc) {
				tg[p-1] = tok
			}
		}
	})
	return b
}

// fuzzyGen is the scratch space of one batch's sequences.
type fuzzyGen struct {
	t      *madFuzzyTask
	seq    []int32
	scored []bool
	values map[string][]int32 // key motif -> its value in this sequence
	shown  map[string]bool    // key motifs shown so far
	buf    []int32
}

// motifKey is a map key for a motif.
func motifKey(m []int32) string {
	var sb strings.Builder
	for _, v := range m {
		fmt.Fprintf(&sb, "%d,", v)
	}
	return sb.String()
}

func (g *fuzzyGen) add(m []int32, scored bool) {
	g.seq = append(g.seq, m...)
	for range m {
		g.scored = append(g.scored, scored)
	}
}

// fill generates one sequence (without the front padding) into g.seq and
// g.scored, in MAD's draw order (see the type's comment).
func (g *fuzzyGen) fill(r *rand.Rand, split Split) {
	t := g.t
	S := t.vocab - 1
	nk, nv := S/2, S-S/2
	kSize := func() int {
		if split == Train {
			return 1 + r.IntN(t.kMotif)
		}
		return t.kMotif
	}
	vSize := func() int { return 1 + r.IntN(t.vMotif) }
	g.seq, g.scored = g.seq[:0], g.scored[:0]
	clear(g.values)
	clear(g.shown)
	kpSize := kSize()
	vpSize := vSize()
	kp := drawDistinct(r, 0, nk, kpSize, nil)
	vp := drawDistinct(r, nk, nv, vpSize, nil)
	kvps := kpSize + vpSize
	probeIdx := r.IntN(t.seqLen - 2*kvps)
	probeIn := false
	kpKey := motifKey(kp)
	g.values[kpKey] = vp
	for len(g.seq) < t.seqLen-kvps-t.kMotif-t.vMotif {
		ks, vs := kSize(), vSize()
		if len(g.seq) >= probeIdx && !probeIn {
			g.add(kp, false)
			g.add(vp, false)
			g.shown[kpKey], probeIn = true, true
			continue
		}
		g.buf = drawDistinct(r, 0, nk, ks, g.buf[:0])
		key := motifKey(g.buf)
		if key == kpKey {
			probeIn = true
		}
		v, ok := g.values[key]
		if !ok {
			v = drawDistinct(r, nk, nv, vs, nil)
			g.values[key] = v
		}
		g.add(g.buf, false)
		g.add(v, g.shown[key])
		g.shown[key] = true
	}
	g.add(kp, false)
	g.add(vp, true)
}

// Decode renders sequence i as token ids, the pad token and unscored
// targets as '.', ids outside the vocab as '?'.
func (t *madFuzzyTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("%s: no sequence %d in a batch of %d", madFuzzyName, i, b.B)
	}
	in, tg := madDecodeIDs(b, i, t.vocab)
	pad := fmt.Sprint(t.pad())
	for p := range in {
		if in[p] == pad {
			in[p] = "."
		}
	}
	return renderRows(in, tg, 1, -1)
}

func init() {
	Register(Spec{
		Name: madFuzzyName,
		Doc:  "MAD fuzzy in-context recall: keys and values are motifs of several adjacent tokens; fixed train/test sets",
		New: func() Config {
			return &MADFuzzyRecallConfig{Name: madFuzzyName, Vocab: 16, SeqLen: 128, KMotifSize: 3, VMotifSize: 3,
				NumTrainExamples: 12800, NumTestExamples: 1280}
		},
	})
}
