package archtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/arch"
	"seqbench/nn"
)

// AgreeOptions are CheckBackendsAgree's settings. Errors are relative, of
// the logits, of the loss and of each parameter's gradient, each measured
// as ‖got − want‖₂ / ‖want‖₂ over the whole tensor, so that a rounding
// error in one small element of a bfloat16 gradient does not dominate
// while a wrong row or a lost term does. Each must be below
// Tol + Slack·e, where e is Like's error on the same tensor (0 without
// Like): a low precision is held to the accuracy of a backend known to
// round correctly in it (cpukernels.NewBF16), not to a fixed bound that
// one model's conditioning would decide.
type AgreeOptions struct {
	Vocab, B, L int
	Tol         float64
	Like        nn.Backend
	Slack       float64
	Randomize   Randomizer
}

// CheckBackendsAgree builds every case on ref and on b (and Like) with the
// same parameters (ref's, randomized, written into the others) and checks
// that b gives ref's logits, loss and gradients of every parameter: the
// same model on another device or in another precision computes the same
// function. The loss is the cross-entropy of random targets with one
// ignored row.
func CheckBackendsAgree(t testing.TB, ref, b nn.Backend, cases []Case, o AgreeOptions) {
	t.Helper()
	randomize := orDefault(o.Randomize)
	rng := rand.New(rand.NewPCG(13, 14))
	ids, targets := randomIDs(rng, o.B*o.L, o.Vocab), randomIDs(rng, o.B*o.L, o.Vocab)
	targets[1] = -1
	for _, c := range cases {
		want := Build(t, ref, c, o.Vocab, o.L, 2)
		wp := want.Params()
		randomize(ref, wp, rng)
		wantRun := runStep(ref, want, ids, targets, o.B, o.L)
		// errs are a backend's errors against ref, tensor by tensor.
		errs := func(be nn.Backend) []float64 {
			m := Build(t, be, c, o.Vocab, o.L, 2)
			ps := m.Params()
			if wn, gn := fmt.Sprint(paramNames(wp)), fmt.Sprint(paramNames(ps)); wn != gn {
				t.Fatalf("%s: parameters on %s %s, on %s %s", c.Name, ref.Name(), wn, be.Name(), gn)
			}
			for i := range wp {
				be.Write(ps[i].T.Data, ref.Read(wp[i].T.Data))
			}
			return runStep(be, m, ids, targets, o.B, o.L).errors(wantRun)
		}
		got := errs(b)
		like := make([]float64, len(got))
		if o.Like != nil {
			like = errs(o.Like)
		}
		names := append([]string{"the logits", "the loss"}, make([]string, len(wp))...)
		for i, p := range wp {
			names[2+i] = p.Name + "'s gradient"
		}
		var w worst // of got / bound
		for i, e := range got {
			bound := o.Tol + o.Slack*like[i]
			w.add(e/bound, func() string {
				at := fmt.Sprintf("%s: rel err %.3g, bound %.3g", names[i], e, bound)
				if o.Like != nil {
					at += fmt.Sprintf(" (%s's %.3g)", o.Like.Name(), like[i])
				}
				return at
			})
		}
		t.Logf("%s: %s against %s: worst at %s", c.Name, b.Name(), ref.Name(), w.where)
		if !(w.err < 1) {
			t.Errorf("%s: %s differs from %s at %s", c.Name, b.Name(), ref.Name(), w.where)
		}
	}
}

// step is what one training step's forward and backward computed.
type step struct {
	loss   float64
	logits []float64
	grads  [][]float64
}

// errors are s's relative errors against want: the logits', the loss's,
// then each gradient's.
func (s step) errors(want step) []float64 {
	out := []float64{relL2(s.logits, want.logits), relL2([]float64{s.loss}, []float64{want.loss})}
	for i := range want.grads {
		out = append(out, relL2(s.grads[i], want.grads[i]))
	}
	return out
}

// runStep runs one training step's forward and backward on b.
func runStep(b nn.Backend, m arch.Model, ids, targets []int32, B, L int) step {
	ps := m.Params()
	nn.ZeroGrads(b, ps)
	tp := nn.NewTape(b, true)
	defer tp.Release()
	logits := m.Forward(tp, ids, B, L)
	l, _ := tp.CrossEntropy(logits, targets, -1)
	loss, out := b.Read(l.Data)[0], b.Read(logits.Data) // the backward may free both
	tp.Backward(l)
	gs := make([][]float64, len(ps))
	for i, p := range ps {
		gs[i] = b.Read(p.T.Grad())
	}
	return step{loss, out, gs}
}

// relL2 is ‖got − want‖₂ / ‖want‖₂ (the absolute norm where want is 0;
// NaN where either holds a NaN).
func relL2(got, want []float64) float64 {
	var d, n float64
	for i := range want {
		d += (got[i] - want[i]) * (got[i] - want[i])
		n += want[i] * want[i]
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}
