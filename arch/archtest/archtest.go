// Package archtest is the conformance suite of the architectures: exported
// checks that take an architecture's configs and verify the contract every
// arch.Model shares (docs/DESIGN.md "Testing": parameter count, full-model
// gradient check, causality, step mode equal to Forward, a short training
// run that must learn, config errors that name the field). Each arch
// package's tests call them with its own configs, shapes and tolerances and
// keep only what is its own (reference forward loops, init values, FLOPs
// hand counts, parameter names), so the architectures are held to one
// standard that cannot drift apart — as nn/backendtest does for backends.
//
// The checks report through testing.TB and loop over their cases without
// subtests, naming the case in every message; the seeds are fixed, so a
// check run twice reports the same numbers.
package archtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/nn"
)

// Case is one configuration of an architecture under test; Name labels it
// in every message.
type Case struct {
	Name   string
	Config arch.Config
	// LowpState builds with arch.Env.LowpState (step-mode states in the
	// activations' type on a mixed backend).
	LowpState bool
}

// Cases labels each config by name(config).
func Cases[C arch.Config](name func(C) string, cs ...C) []Case {
	out := make([]Case, len(cs))
	for i, c := range cs {
		out[i] = Case{Name: name(c), Config: c}
	}
	return out
}

// Build builds c.Config on b with the given vocabulary, longest length and
// seed, failing t on an error.
func Build(t testing.TB, b nn.Backend, c Case, vocab, maxLen int, seed uint64) arch.Model {
	t.Helper()
	m, err := c.Config.Build(arch.Env{Backend: b, Vocab: vocab, MaxLen: maxLen, RNG: rand.New(rand.NewPCG(seed, 1)),
		LowpState: c.LowpState})
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	return m
}

// stepper is Build for the checks of step mode.
func stepper(t testing.TB, b nn.Backend, c Case, vocab, maxLen int, seed uint64) arch.Stepper {
	t.Helper()
	m := Build(t, b, c, vocab, maxLen, seed)
	s, ok := m.(arch.Stepper)
	if !ok {
		t.Fatalf("%s: %T has no step mode (arch.Stepper)", c.Name, m)
	}
	return s
}

// Logits runs Forward on a tape that does not record and returns the logits
// (B·L, vocab) as host values.
func Logits(b nn.Backend, m arch.Model, ids []int32, B, L int) []float64 {
	tp := nn.NewTape(b, false)
	defer tp.Release()
	return b.Read(m.Forward(tp, ids, B, L).Data)
}

// stepLogits is Logits for one Step.
func stepLogits(b nn.Backend, m arch.Stepper, st arch.State, ids []int32, B, T int) []float64 {
	tp := nn.NewTape(b, false)
	defer tp.Release()
	return b.Read(m.Step(tp, st, ids, B, T).Data)
}

// loss is the mean cross-entropy of the model's logits against targets
// (−1 ignored); the caller releases the tape.
func loss(b nn.Backend, m arch.Model, ids, targets []int32, B, L int, record bool) (float64, *nn.Tape, *nn.Tensor) {
	tp := nn.NewTape(b, record)
	l, _ := tp.CrossEntropy(m.Forward(tp, ids, B, L), targets, -1)
	return b.Read(l.Data)[0], tp, l
}

// randomIDs draws n token ids in [0, vocab).
func randomIDs(rng *rand.Rand, n, vocab int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

// Randomizer replaces a model's initialization before a check, so that
// every path carries values (and gradients) large enough to compare.
type Randomizer func(b nn.Backend, ps []nn.Param, rng *rand.Rand)

// Randomize is the default Randomizer: every element 0.5·N(0, 1), norm
// weights (names containing "norm" and ending in "weight") 1 + 0.5·N(0, 1).
func Randomize(b nn.Backend, ps []nn.Param, rng *rand.Rand) {
	RandomizeBy(b, ps, rng, func(name string, _, r float64) float64 { return O1(name, r) })
}

// AsBuilt is the Randomizer that keeps the model's own initialization:
// the regime a training run starts in, where bfloat16's errors are those
// of training rather than of O(1) weights in every layer.
func AsBuilt(nn.Backend, []nn.Param, *rand.Rand) {}

// orDefault is r, or Randomize where r is nil.
func orDefault(r Randomizer) Randomizer {
	if r == nil {
		return Randomize
	}
	return r
}

// RandomizeBy draws r = 0.5·N(0, 1) for every element of every parameter, in
// order, and sets the element to value(parameter name, old value, r). An
// architecture whose parameters need other ranges (decay rates, step sizes)
// passes its own value, falling back on O1.
func RandomizeBy(b nn.Backend, ps []nn.Param, rng *rand.Rand, value func(name string, old, r float64) float64) {
	for _, p := range ps {
		v := b.Read(p.T.Data)
		for i := range v {
			r := 0.5 * rng.NormFloat64()
			v[i] = value(p.Name, v[i], r)
		}
		b.Write(p.T.Data, v)
	}
}

// O1 is Randomize's value for an element: 1 + r for a norm weight, r for
// anything else.
func O1(name string, r float64) float64 {
	if strings.Contains(name, "norm") && strings.HasSuffix(name, "weight") {
		return 1 + r
	}
	return r
}

// ErrFunc measures a value got against the reference want.
type ErrFunc func(got, want float64) float64

// Abs is the absolute error |got − want|.
func Abs(got, want float64) float64 { return math.Abs(got - want) }

// Rel is the relative error |got − want| / max(|want|, floor): relative for
// large values, absolute (scaled by 1/floor) near zero.
func Rel(floor float64) ErrFunc {
	return func(got, want float64) float64 { return math.Abs(got-want) / max(math.Abs(want), floor) }
}

// orAbs is e, or Abs where e is nil.
func orAbs(e ErrFunc) ErrFunc {
	if e == nil {
		return Abs
	}
	return e
}

// worst tracks the largest error and where it was; a NaN error is the worst
// of all and stays.
type worst struct {
	err   float64
	where string
}

// add records e if it is worse than what is held; where is called only then.
func (w *worst) add(e float64, where func() string) {
	if math.IsNaN(w.err) {
		return
	}
	if math.IsNaN(e) || e > w.err {
		w.err, w.where = e, where()
	}
}

// paramNames lists the parameters as name[shape], in order.
func paramNames(ps []nn.Param) []string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = fmt.Sprintf("%s%v", p.Name, p.T.Shape)
	}
	return names
}

// nameEntry is one name[shape] of a CheckParamNames list, or its "...".
var nameEntry = regexp.MustCompile(`[^\s\[]+\[[^\]]*\]|\.\.\.`)

// CheckParamNames pins an architecture's parameter names and shapes
// against its PyTorch original's: want lists name[shape] entries separated
// by spaces, the whole list, or a head and a tail around one "..." that
// stands for any entries between them.
func CheckParamNames(t testing.TB, ps []nn.Param, want string) {
	t.Helper()
	entries := nameEntry.FindAllString(want, -1)
	if strings.Join(entries, " ") != strings.Join(strings.Fields(want), " ") {
		t.Fatalf("CheckParamNames: %q is not a list of name[shape] entries", want)
	}
	names := paramNames(ps)
	gap := slices.Index(entries, "...")
	if gap < 0 {
		if got, want := strings.Join(names, " "), strings.Join(entries, " "); got != want {
			t.Errorf("names:\n got %s\nwant %s", got, want)
		}
		return
	}
	head, tail := entries[:gap], entries[gap+1:]
	if len(names) < len(head)+len(tail) {
		t.Fatalf("%d parameters, want at least %d: %s", len(names), len(head)+len(tail), strings.Join(names, " "))
	}
	if got, want := strings.Join(names[:len(head)], " "), strings.Join(head, " "); got != want {
		t.Errorf("names:\n got %s\nwant %s", got, want)
	}
	if got, want := strings.Join(names[len(names)-len(tail):], " "), strings.Join(tail, " "); got != want {
		t.Errorf("last names:\n got %s\nwant %s", got, want)
	}
}
