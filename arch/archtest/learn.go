package archtest

import (
	"math/rand/v2"
	"testing"

	"seqbench/nn"
)

// LearnOptions are CheckLearnsToCopy's settings.
type LearnOptions struct {
	Steps int     // AdamW steps
	LR    float64 // peak of the cosine schedule (20 warmup steps)
	Bound float64 // the smoothed loss must end below it
}

// The copy task of CheckLearnsToCopy: 16 sequences a batch of 4 random
// tokens out of 8, then the same 4 again.
const (
	copyVocab = 8
	copyBatch = 16
	copyHalf  = 4
)

// CheckLearnsToCopy trains the model of c (built with seed 1) for o.Steps
// steps of AdamW (weight decay 0.01, gradients clipped to norm 1) on the
// copy task — each sequence x1..x4 x1..x4, the loss counting only the
// predictions of the second copy, which need the model to carry the first
// (chance: log 8 ≈ 2.08) — and checks that the loss, smoothed over about
// 10 steps, ends below o.Bound. It is skipped with -short.
func CheckLearnsToCopy(t testing.TB, b nn.Backend, c Case, o LearnOptions) {
	t.Helper()
	if testing.Short() {
		t.Skip("training run")
	}
	const vocab, B, half = copyVocab, copyBatch, copyHalf
	const L = 2 * half
	m := Build(t, b, c, vocab, L, 1)
	ps := m.Params()
	opt := nn.NewAdamW(b, ps, 0.01)
	sched := nn.NewSchedule("cosine", o.LR, 20, o.Steps)
	rng := rand.New(rand.NewPCG(9, 9))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	last := 0.0
	for step := range o.Steps {
		for s := range B {
			for p := range half {
				tok := int32(rng.IntN(vocab))
				ids[s*L+p], ids[s*L+half+p] = tok, tok
			}
			for p := range L {
				targets[s*L+p] = -1
				if p >= half-1 && p < L-1 {
					targets[s*L+p] = ids[s*L+p+1]
				}
			}
		}
		nn.ZeroGrads(b, ps)
		f, tp, l := loss(b, m, ids, targets, B, L, true)
		tp.Backward(l)
		tp.Release()
		nn.ClipGradNorm(b, ps, 1)
		opt.Step(sched.At(step))
		last = 0.9*last + 0.1*f
		if step < 10 {
			last = f
		}
	}
	t.Logf("%s: smoothed copy loss after %d steps: %.3f", c.Name, o.Steps, last)
	if !(last < o.Bound) {
		t.Errorf("%s: copy loss %.3f after %d steps, want < %g", c.Name, last, o.Steps, o.Bound)
	}
}
