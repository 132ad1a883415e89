package nn

import (
	"fmt"
	"math"
)

// AdamW is decoupled-weight-decay Adam over a fixed parameter list. The
// moments live on the parameters' backend, so a step never leaves the
// device. Defaults are torch.optim.AdamW's (β1 0.9, β2 0.999, eps 1e-8);
// change the fields before the first Step for other settings.
type AdamW struct {
	Beta1, Beta2, Eps float64
	// WeightDecay applies to the Params with Decay set, or to every Param
	// when DecayAll is set (Zoology's and MAD's plain AdamW over all
	// parameters); a Param whose Group says NoDecay never decays.
	WeightDecay float64
	DecayAll    bool
	// BaseLR is the schedule's peak learning rate, against which a group's
	// MaxLR is compared (see ParamGroup); 0 compares with the lr of each
	// Step instead.
	BaseLR float64
	// Steps counts the updates taken; Step uses Steps+1 for the bias
	// correction. Restore it together with the moments when resuming.
	Steps int

	b      Backend
	slots  []AdamSlot
	copies *Casts // KeepCopies', or nil
	// ts and args are the last step's update, rewritten in place each
	// step (a captured StepClipped reads them again at each launch).
	ts   []AdamWTensor
	args AdamWArgs
}

// ParamGroup is the optimizer setting of parameters that train apart from
// the rest (torch's param groups), as the S4 repository's kernel
// parameters: lr min(1e-3, lr), no weight decay.
type ParamGroup struct {
	Name string
	// MaxLR caps the group's peak learning rate: with BaseLR above it, the
	// group follows the same schedule scaled by MaxLR/BaseLR (a torch
	// scheduler scales each group's own initial lr). 0 is no cap.
	MaxLR float64
	// NoDecay exempts the group from weight decay under every policy.
	NoDecay bool
}

// AdamSlot is one parameter and its first and second moments (torch's
// exp_avg and exp_avg_sq), exposed for checkpointing.
type AdamSlot struct {
	Param Param
	M, V  Buffer
}

// NewAdamW allocates zeroed moments for every distinct tensor of params. A
// tensor listed twice (tied weights) is updated once, with the Decay of its
// first listing: two updates would double its learning rate.
func NewAdamW(b Backend, params []Param, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay, b: b}
	seen := map[*Tensor]bool{}
	for _, p := range params {
		if seen[p.T] {
			continue
		}
		seen[p.T] = true
		if p.T.Grad() == nil {
			panic(fmt.Sprintf("nn.NewAdamW: parameter %s has no gradient buffer (use NewParam)", p.Name))
		}
		n := p.T.Len()
		o.slots = append(o.slots, AdamSlot{Param: p, M: b.Alloc(n), V: b.Alloc(n)})
	}
	return o
}

// Step applies one update with learning rate lr from the gradients now in
// the parameters' buffers.
func (o *AdamW) Step(lr float64) { o.StepScaled(lr, 1) }

// StepScaled is Step from the gradients multiplied by scale (ClipFactor's),
// the product taken in the update's own pass (AdamWArgs.GradScale): the
// clip without ClipGradNorm's pass over every gradient, which is left
// unchanged. The update is Scale-then-Step's bit for bit.
func (o *AdamW) StepScaled(lr, scale float64) {
	o.next(lr)
	a := o.args
	a.GradScale = scale
	AdamWEach(o.b, o.ts, a)
}

// StepClipped is GradNorm, ClipFactor(norm, maxNorm) and StepScaled in one
// (AdamWClipped: on the device where the backend can), guarded by loss:
// when the norm or loss[0] is not finite nothing is updated. The norm,
// loss[0] and whether the update was skipped are left in stats
// (NewStepStats; ReadStats after the step). Nothing is read back on a
// ClippedAdamW backend, so the call can be captured in a graph, which
// then rereads the tensors' learning rates and the step count that each
// StepClipped before a launch writes (ReplayStep).
func (o *AdamW) StepClipped(lr, maxNorm float64, loss, stats Buffer) {
	o.next(lr)
	AdamWClipped(o.b, o.ts, &o.args, maxNorm, loss, stats)
}

// ReplayStep advances o by one step at lr without updating anything:
// what a replay of a graph that captured StepClipped reads (the tensors'
// learning rates, the step count) is rewritten for it.
func (o *AdamW) ReplayStep(lr float64) { o.next(lr) }

// next counts a step at lr and rewrites the update's tensors and
// arguments in place (a captured update reads them again at each
// launch).
func (o *AdamW) next(lr float64) {
	o.Steps++
	if len(o.ts) != len(o.slots) {
		o.ts = make([]AdamWTensor, len(o.slots))
	}
	for i, s := range o.slots {
		t := &o.ts[i]
		t.P, t.G, t.M, t.V = s.Param.T.Data, s.Param.T.Grad(), s.M, s.V
		t.LR, t.WeightDecay, t.Copy = o.LR(s.Param, lr), o.Decay(s.Param), nil
		if o.copies != nil {
			if c, ok := o.copies.m[s.Param.T]; ok {
				t.Copy = c.Data
			}
		}
	}
	o.args = AdamWArgs{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, Step: o.Steps}
}

// KeepCopies makes o keep the activation-type copies of its parameters
// that a mixed-precision forward reads, and returns them for the training
// tapes to share (Tape.ShareCasts): a parameter's first forward makes its
// copy, and every Step after rewrites it in the update's own pass
// (AdamWArgs.Copy), so that a step no longer casts every weight again
// (torch's autocast casts each weight once a step; this gives the same
// copies without that pass). A step's results are the same bit for bit.
// Where o's backend is not mixed it keeps none and returns nil. Whatever
// changes the parameters outside Step (loading a checkpoint, a broadcast
// from another rank) must call ResetCopies before the next forward.
func (o *AdamW) KeepCopies() *Casts {
	if m, ok := o.b.(MixedBackend); !ok || m.ActDType() == o.b.DType() {
		return nil
	}
	if o.copies == nil {
		o.copies = NewCasts(o.b)
		o.copies.train = true
	}
	return o.copies
}

// StepTape is a recording tape for one training step on o's backend. Under
// mixed precision it shares the weight copies o keeps (KeepCopies), which
// the update rewrites in its own pass: the step casts no weight.
func (o *AdamW) StepTape() *Tape {
	tp := NewTape(o.b, true)
	if c := o.KeepCopies(); c != nil {
		tp.ShareCasts(c)
	}
	return tp
}

// ResetCopies drops KeepCopies' copies (the next forward makes them again
// from the parameters as they are then).
func (o *AdamW) ResetCopies() {
	if o.copies != nil {
		o.copies.clear()
	}
}

// LR is the learning rate p takes at a step whose schedule gives lr: lr, or
// less where p's group caps it.
func (o *AdamW) LR(p Param, lr float64) float64 {
	g := p.Group
	if g == nil || g.MaxLR <= 0 {
		return lr
	}
	if o.BaseLR <= 0 {
		return min(lr, g.MaxLR)
	}
	if o.BaseLR > g.MaxLR {
		return lr * (g.MaxLR / o.BaseLR)
	}
	return lr
}

// Decay is the weight decay p takes: WeightDecay where the policy (Decay,
// or DecayAll) includes it and its group does not exempt it, else 0.
func (o *AdamW) Decay(p Param) float64 {
	if (p.Decay || o.DecayAll) && (p.Group == nil || !p.Group.NoDecay) {
		return o.WeightDecay
	}
	return 0
}

// Slots lists the distinct parameters with their moments.
func (o *AdamW) Slots() []AdamSlot { return o.slots }

// Free returns the moment buffers and any kept copies to the backend; o
// must not be used again.
func (o *AdamW) Free() {
	for _, s := range o.slots {
		o.b.Free(s.M)
		o.b.Free(s.V)
	}
	o.slots = nil
	if o.copies != nil {
		o.copies.Free()
		o.copies = nil
	}
}

// ClipGradNorm scales the gradients of params so that their global L2 norm
// is at most maxNorm (torch.nn.utils.clip_grad_norm_, including its 1e-6 in
// the denominator) and returns the norm before clipping. A non-finite norm
// is returned as is and the gradients are left untouched: scaling by NaN
// would hide which step went wrong, so the caller's NaN guard decides.
// maxNorm ≤ 0 only measures. Tied tensors count once.
func ClipGradNorm(b Backend, params []Param, maxNorm float64) float64 {
	norm, grads := gradNorm(b, params)
	if s := ClipFactor(norm, maxNorm); s != 1 {
		for _, g := range grads {
			b.Scale(g, s)
		}
	}
	return norm
}

// GradNorm is the global L2 norm of params' gradients as ClipGradNorm
// measures it, without scaling them: with ClipFactor and
// AdamW.StepScaled, the clip in the update's own pass.
func GradNorm(b Backend, params []Param) float64 {
	norm, _ := gradNorm(b, params)
	return norm
}

// ClipFactor is what ClipGradNorm multiplies the gradients by for a norm:
// maxNorm/(norm + 1e-6) when maxNorm > 0 and norm is finite and above it,
// else 1.
func ClipFactor(norm, maxNorm float64) float64 {
	if maxNorm > 0 && norm > maxNorm && !math.IsInf(norm, 0) {
		return maxNorm / (norm + 1e-6)
	}
	return 1
}

// gradNorm is the norm and the distinct gradient buffers of params.
func gradNorm(b Backend, params []Param) (float64, []Buffer) {
	var grads []Buffer
	seen := map[*Tensor]bool{}
	for _, p := range params {
		g := p.T.Grad()
		if g == nil || seen[p.T] {
			continue
		}
		seen[p.T] = true
		grads = append(grads, g)
	}
	ss := 0.0
	for _, s := range SumSquaresEach(b, grads) {
		ss += s
	}
	return math.Sqrt(ss), grads
}

// Schedule is a learning-rate schedule over steps counted from 0: linear
// warmup Base·(step+1)/Warmup for step < Warmup (nanoGPT's form: it starts
// near 0, never at 0, so the first step already learns), then Base
// ("constant") or a cosine from Base at step Warmup down to Base·MinRatio
// at step Total, held there afterwards ("cosine").
//
// MinRatio is used as given, so a literal Schedule with MinRatio 0 decays to
// 0; NewSchedule sets DefaultMinRatio.
type Schedule struct {
	Kind          string // "constant" | "cosine"
	Base          float64
	Warmup, Total int
	MinRatio      float64
}

// DefaultMinRatio is the cosine floor as a fraction of Base (Chinchilla and
// nanoGPT decay to a tenth).
const DefaultMinRatio = 0.1

// NewSchedule returns a schedule with the default cosine floor.
func NewSchedule(kind string, base float64, warmup, total int) Schedule {
	return Schedule{Kind: kind, Base: base, Warmup: warmup, Total: total, MinRatio: DefaultMinRatio}
}

// Validate checks the schedule; errors use the train block's field names.
func (s Schedule) Validate() error {
	switch {
	case s.Kind != "constant" && s.Kind != "cosine":
		return fmt.Errorf("field schedule: %q is not allowed (one of constant, cosine)", s.Kind)
	case !(s.Base >= 0) || math.IsInf(s.Base, 0):
		return fmt.Errorf("field lr: %v is not allowed (a finite value ≥ 0)", s.Base)
	case s.Warmup < 0:
		return fmt.Errorf("field warmup: %d is not allowed (≥ 0)", s.Warmup)
	case s.Kind == "cosine" && s.Total <= s.Warmup:
		return fmt.Errorf("field warmup: %d is not allowed (cosine needs warmup < steps = %d)", s.Warmup, s.Total)
	case !(s.MinRatio >= 0 && s.MinRatio <= 1):
		return fmt.Errorf("field min_lr_ratio: %v is not allowed (in [0, 1])", s.MinRatio)
	}
	return nil
}

// At returns the learning rate for step (0-based).
func (s Schedule) At(step int) float64 {
	if step < s.Warmup {
		return s.Base * float64(step+1) / float64(s.Warmup)
	}
	if s.Kind != "cosine" {
		return s.Base
	}
	lo := s.Base * s.MinRatio
	if step >= s.Total {
		return lo
	}
	r := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	return lo + 0.5*(1+math.Cos(math.Pi*r))*(s.Base-lo)
}
