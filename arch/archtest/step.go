package archtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/nn"
)

// StepOptions are CheckStepMatchesForward's settings.
type StepOptions struct {
	Vocab, B, L int
	// Chunks are the patterns of step sizes to run, each summing to L: one
	// token at a time, uneven pieces that cut through the arch's own
	// blocks or chunks, the whole sequence at once.
	Chunks [][]int
	Err    ErrFunc // nil is Abs
	Tol    float64 // bound on the worst error (strict: err < Tol)
	// AlsoInit runs every case at the model's own initialization as well
	// as randomized.
	AlsoInit bool
	// StateBytes is the size the state must report with n tokens of each
	// of B sequences consumed; it is checked at NewState (n = 0) and after
	// every step. nil skips it.
	StateBytes func(c arch.Config, B, n int) int64
	Randomize  Randomizer
	// MaxLen is the model's Env.MaxLen (0: L). Below L, a state that takes
	// room for MaxLen tokens at its first step must grow past it (attention
	// with RoPE or no positions, which has no length limit).
	MaxLen int
}

// CheckStepMatchesForward checks that step mode (arch.Stepper: NewState,
// then Step over the sequence in pieces, the state carried between them)
// gives the logits Forward gives on the whole sequence, for every chunk
// pattern; that the state reports its size; and that Free releases it.
func CheckStepMatchesForward(t testing.TB, b nn.Backend, cases []Case, o StepOptions) {
	t.Helper()
	errf, randomize := orAbs(o.Err), orDefault(o.Randomize)
	B, L, vocab := o.B, o.L, o.Vocab
	for _, chunks := range o.Chunks {
		if n := sum(chunks); n != L {
			t.Fatalf("chunks %v sum to %d, not L = %d", chunks, n, L)
		}
	}
	rng := rand.New(rand.NewPCG(31, 32))
	ids := randomIDs(rng, B*L, vocab)
	randomized := []bool{true}
	if o.AlsoInit {
		randomized = []bool{false, true}
	}
	for _, c := range cases {
		for _, random := range randomized {
			maxLen := L
			if o.MaxLen > 0 {
				maxLen = o.MaxLen
			}
			m := stepper(t, b, c, vocab, maxLen, 7)
			name := c.Name
			if random {
				randomize(b, m.Params(), rng)
			} else {
				name += " at init"
			}
			want := Logits(b, m, ids, B, L)
			for _, chunks := range o.Chunks {
				st := m.NewState(B)
				checkBytes := func(n int) {
					t.Helper()
					if o.StateBytes == nil {
						return
					}
					if got, want := st.Bytes(), o.StateBytes(c.Config, B, n); got != want {
						t.Errorf("%s chunks %v: state Bytes %d after %d tokens, want %d", name, chunks, got, n, want)
					}
				}
				checkBytes(0)
				pos := 0
				var w worst
				for _, T := range chunks {
					got := stepLogits(poison(b), m, st, chunkIDs(ids, B, L, pos, T), B, T)
					for s := range B {
						for j := range T * vocab {
							g, f := got[(s*T)*vocab+j], want[(s*L+pos)*vocab+j]
							w.add(errf(g, f), func() string {
								return fmt.Sprintf("seq %d pos %d logit %d: step %.15g, forward %.15g", s, pos+j/vocab, j%vocab, g, f)
							})
						}
					}
					pos += T
					checkBytes(pos)
				}
				t.Logf("%s chunks %v: worst err %.2g", name, chunks, w.err)
				if !(w.err < o.Tol) {
					t.Errorf("%s chunks %v: step logits differ from Forward by %.3g at %s", name, chunks, w.err, w.where)
				}
				st.Free()
				if st.Bytes() != 0 {
					t.Errorf("%s: Bytes %d after Free", name, st.Bytes())
				}
				if ls, ok := m.(arch.LastStepper); ok {
					checkStepLast(t, b, ls, ids, want, B, L, vocab, chunks, name, errf, o.Tol)
				}
			}
		}
	}
}

// checkStepLast runs the chunks through StepLast on a fresh state: each
// call's logits (B, vocab) must be the last rows of Forward's for it.
func checkStepLast(t testing.TB, b nn.Backend, m arch.LastStepper, ids []int32, want []float64, B, L, vocab int,
	chunks []int, name string, errf ErrFunc, tol float64) {
	t.Helper()
	st := m.NewState(B)
	defer st.Free()
	pos := 0
	var w worst
	for _, T := range chunks {
		tp := nn.NewTape(poison(b), false)
		out := m.StepLast(tp, st, chunkIDs(ids, B, L, pos, T), B, T)
		if len(out.Shape) != 2 || out.Shape[0] != B || out.Shape[1] != vocab {
			t.Fatalf("%s: StepLast shape %v, want [%d %d]", name, out.Shape, B, vocab)
		}
		got := b.Read(out.Data)
		tp.Release()
		last := pos + T - 1
		for s := range B {
			for j := range vocab {
				g, f := got[s*vocab+j], want[(s*L+last)*vocab+j]
				w.add(errf(g, f), func() string {
					return fmt.Sprintf("seq %d pos %d logit %d: StepLast %.15g, forward %.15g", s, last, j, g, f)
				})
			}
		}
		pos += T
	}
	if !(w.err < tol) {
		t.Errorf("%s chunks %v: StepLast logits differ from Forward by %.3g at %s", name, chunks, w.err, w.where)
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// Freed is what Step does with a state after Free.
type Freed int

const (
	// FreedPanics: Step on a freed state panics, saying "freed".
	FreedPanics Freed = iota
	// FreedRestarts: a freed state is empty again and Step starts over, as
	// on a new state.
	FreedRestarts
)

// CheckStepContract checks what every Stepper promises beyond its logits:
// the state carries from one Step to the next; a recording tape is refused
// ("inference-only"), and so are a batch other than the state's and ids
// that do not fill B·T (both "state for B=2"); after Free, Step does what
// freed says.
func CheckStepContract(t testing.TB, b nn.Backend, c Case, freed Freed) {
	t.Helper()
	const vocab = 7
	m := stepper(t, b, c, vocab, 8, 1)
	ids := []int32{1, 2, 3, 4} // B = 2, T = 2
	st := m.NewState(2)
	first := stepLogits(b, m, st, ids, 2, 2)
	if again := stepLogits(b, m, st, ids, 2, 2); again[len(again)-1] == first[len(first)-1] {
		t.Errorf("%s: the second step did not see the carried state", c.Name)
	}
	panics := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			t.Helper()
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), want) {
				t.Errorf("%s: %s: panic %v, want one saying %q", c.Name, what, r, want)
			}
		}()
		f()
	}
	panics("recording tape", "inference-only", func() { m.Step(nn.NewTape(b, true), st, ids, 2, 2) })
	panics("wrong batch", "state for B=2", func() { m.Step(nn.NewTape(b, false), st, ids[:3], 3, 1) })
	panics("batch mismatch", "state for B=2", func() { m.Step(nn.NewTape(b, false), st, ids, 4, 1) })
	panics("ids mismatch", "state for B=2", func() { m.Step(nn.NewTape(b, false), st, ids[:3], 2, 2) })
	st.Free()
	switch freed {
	case FreedPanics:
		panics("freed state", "freed", func() { m.Step(nn.NewTape(b, false), st, ids, 2, 2) })
	case FreedRestarts:
		if again := stepLogits(b, m, st, ids, 2, 2); !slices.Equal(again, first) {
			t.Errorf("%s: a freed state did not restart from empty", c.Name)
		}
		st.Free()
	}
}

// chunkIDs is tokens pos .. pos+T−1 of each of the B sequences of ids
// (B·L, batch-major), batch-major: one Step's input.
func chunkIDs(ids []int32, B, L, pos, T int) []int32 {
	chunk := make([]int32, 0, B*T)
	for s := range B {
		chunk = append(chunk, ids[s*L+pos:s*L+pos+T]...)
	}
	return chunk
}
