package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Token ids shared by selective_copy and copying. Noise and marker come first
// so that data value v (0 ≤ v < vocab) is always token v+2, whatever vocab is.
const (
	tokNoise  int32 = 0 // blank filler; also what a model sees between data tokens
	tokMarker int32 = 1 // "output the next data token now"
	tokData   int32 = 2 // data value v is token tokData+v
)

// copyTask generates both copying tasks; they differ only in where the K data
// tokens sit among the first L−K positions (see SelectiveCopyConfig and
// CopyingConfig for the layout and worked examples).
type copyTask struct {
	name                     string
	seqLen, numTokens, vocab int
	selective                bool
}

func (t *copyTask) Vocab() int  { return t.vocab + int(tokData) }
func (t *copyTask) SeqLen() int { return t.seqLen }

// Batch fills every sequence from its own stream (see seqRand), so sequence
// i does not depend on the batch size.
func (t *copyTask) Batch(split Split, seed uint64, index int64, size int) Batch {
	b := newBatch(size, t.seqLen)
	for i := range size {
		r := seqRand(seed, split, index, i)
		in := b.Inputs[i*t.seqLen : (i+1)*t.seqLen]
		tg := b.Targets[i*t.seqLen : (i+1)*t.seqLen]
		if t.selective {
			t.fillSelective(r, in, tg)
		} else {
			t.fillContiguous(r, in, tg)
		}
	}
	return b
}

// fillContiguous writes one copying sequence: data at 0..K−1, noise, K
// markers; in is all noise and tg all Ignore on entry.
func (t *copyTask) fillContiguous(r *rand.Rand, in, tg []int32) {
	L, K := t.seqLen, t.numTokens
	for k := range K {
		v := tokData + int32(r.IntN(t.vocab))
		in[k] = v
		tg[L-K+k] = v
	}
	for p := L - K; p < L; p++ {
		in[p] = tokMarker
	}
}

// fillSelective writes one selective_copy sequence: K data tokens at sorted
// distinct random positions of 0..L−K−1, K markers after them; in is all
// noise and tg all Ignore on entry.
//
// Positions are a uniform K-subset drawn by Floyd's algorithm (K draws, no
// allocation: the sequence itself is the membership set, marked with
// tokMarker, which cannot otherwise occur before L−K). A left-to-right scan
// then turns the marks into data tokens in position order, so the k-th data
// token read is the k-th one to copy. Values are drawn i.i.d. in that order,
// independent of the positions.
func (t *copyTask) fillSelective(r *rand.Rand, in, tg []int32) {
	L, K := t.seqLen, t.numTokens
	N := L - K
	for j := N - K; j < N; j++ {
		p := r.IntN(j + 1)
		if in[p] == tokMarker {
			p = j
		}
		in[p] = tokMarker
	}
	k := 0
	for p := range N {
		if in[p] != tokMarker {
			continue
		}
		v := tokData + int32(r.IntN(t.vocab))
		in[p] = v
		tg[N+k] = v
		k++
	}
	for p := N; p < L; p++ {
		in[p] = tokMarker
	}
}

// Decode renders sequence i as an input line and a target line, column
// aligned: data tokens are shown as their value 0..vocab−1 (token id − 2),
// noise and unscored targets as '.', markers as '>', and '|' stands before
// the first marker position L−K. Sequences longer than 32 positions wrap
// into rows of 32 labelled with their first position (@0, @32, ...).
// Token ids outside the task's vocab show as '?', so a corrupted batch is
// visible rather than hidden.
func (t *copyTask) Decode(b Batch, i int) string {
	if i < 0 || i >= b.B || len(b.Inputs) < b.B*b.L || len(b.Targets) < b.B*b.L {
		return fmt.Sprintf("%s: no sequence %d in a batch of %d", t.name, i, b.B)
	}
	in := b.Inputs[i*b.L : (i+1)*b.L]
	tg := b.Targets[i*b.L : (i+1)*b.L]
	w := len(strconv.Itoa(t.vocab - 1))
	cell := func(s string) string { return strings.Repeat(" ", max(w-len(s), 0)) + s }
	value := func(tok int32) string {
		if tok >= tokData && int64(tok) < int64(tokData)+int64(t.vocab) {
			return cell(strconv.Itoa(int(tok - tokData)))
		}
		return cell("?")
	}
	inCell := func(tok int32) string {
		switch tok {
		case tokNoise:
			return cell(".")
		case tokMarker:
			return cell(">")
		}
		return value(tok)
	}
	tgCell := func(tok int32) string {
		if tok == Ignore {
			return cell(".")
		}
		return value(tok)
	}

	const perRow = 32
	sep := b.L - t.numTokens
	var sb strings.Builder
	for start := 0; start < b.L; start += perRow {
		end := min(start+perRow, b.L)
		var inRow, tgRow []string
		for p := start; p < end; p++ {
			if p == sep {
				inRow = append(inRow, cell("|"))
				tgRow = append(tgRow, cell("|"))
			}
			inRow = append(inRow, inCell(in[p]))
			tgRow = append(tgRow, tgCell(tg[p]))
		}
		inLabel, tgLabel := "input : ", "target: "
		if b.L > perRow {
			pos := fmt.Sprintf("@%-*d", len(strconv.Itoa(b.L-1)), start)
			inLabel, tgLabel = "input  "+pos+": ", "target "+pos+": "
		}
		if start > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(inLabel + strings.Join(inRow, " ") + "\n")
		sb.WriteString(tgLabel + strings.Join(tgRow, " "))
	}
	return sb.String()
}

// dataValues is the number of distinct data values a copy task's vocab
// field gives under vocab_counts: vocab itself ("data", the default), or
// vocab less the noise and marker tokens ("all").
func dataValues(vocab int, counts string) int {
	if counts == "all" {
		return vocab - int(tokData)
	}
	return vocab
}

// validateCopyFields checks the fields both copying tasks share.
//
// seq_len ≥ 2·num_tokens+1 leaves at least one noise token before the
// markers, so there is always something to skip (selective_copy) or to wait
// through (copying).
// Bounds are checked without forming 2·num_tokens+1 in int, which could
// overflow and wrongly accept a huge num_tokens.
func validateCopyFields(task, name string, seqLen, numTokens, vocab int, counts string) error {
	if name != "" && name != task {
		return fmt.Errorf("field task.name: %q is not allowed (this config is for %s)", name, task)
	}
	if numTokens < 1 {
		return fmt.Errorf("field task.num_tokens: %d is not allowed (%s needs num_tokens >= 1)", numTokens, task)
	}
	switch counts {
	case "", "data":
		if vocab < 2 {
			return fmt.Errorf("field task.vocab: %d is not allowed (%s needs vocab >= 2 distinct data values)", vocab, task)
		}
		if int64(vocab) > math.MaxInt32-int64(tokData) {
			return fmt.Errorf("field task.vocab: %d is not allowed (token ids are int32: vocab <= %d)", vocab, math.MaxInt32-int64(tokData))
		}
	case "all":
		if vocab < 2+int(tokData) {
			return fmt.Errorf("field task.vocab: %d is not allowed (with vocab_counts all, %s needs vocab >= 4: noise, marker and 2 data values)", vocab, task)
		}
		if int64(vocab) > math.MaxInt32 {
			return fmt.Errorf("field task.vocab: %d is not allowed (token ids are int32: vocab <= %d)", vocab, math.MaxInt32)
		}
	default:
		return fmt.Errorf("field task.vocab_counts: %q is not allowed (one of \"data\" (the default), \"all\")", counts)
	}
	if (seqLen-1)/2 < numTokens {
		return fmt.Errorf("field task.seq_len: %d is not allowed (%s needs seq_len >= 2*num_tokens+1 = %d)",
			seqLen, task, 2*uint64(numTokens)+1)
	}
	return nil
}
