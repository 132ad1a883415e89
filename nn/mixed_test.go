package nn_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

// countingBF16 counts the casts (Copy calls) of the cpu-bfloat16 backend.
type countingBF16 struct {
	*cpukernels.BF16
	copies int
}

func (c *countingBF16) Copy(dst, src nn.Buffer) { c.copies++; c.BF16.Copy(dst, src) }

// tiedLM is an embedding, an RMSNorm and a tied head, the mixed path's
// casts in small: the table feeds a gather and a GEMM.
func tiedLM(tp *nn.Tape, emb, norm *nn.Tensor, ids, targets []int32) (*nn.Tensor, *nn.Tensor) {
	h := tp.RMSNorm(tp.Embedding(emb, ids), norm, 1e-5)
	logits := tp.Linear(h, emb, nil)
	loss, _ := tp.CrossEntropy(logits, targets, -100)
	return logits, loss
}

// On cpu-bfloat16 a tape stores activations in bfloat16 and the loss in
// float32, casts a weight once however often it is used, and accumulates
// the weights' gradients into their float32 buffers; the gradients match
// the float32 run's within bfloat16's rounding.
func TestMixedTapeBF16(t *testing.T) {
	const V, d, n = 11, 8, 13
	rng := rand.New(rand.NewPCG(4, 5))
	embVals, normVals := layerRandn(rng, V*d), layerRandn(rng, d)
	for i := range normVals {
		normVals[i] = 1 + 0.1*normVals[i]
	}
	ids, targets := make([]int32, n), make([]int32, n)
	for i := range ids {
		ids[i], targets[i] = int32(rng.IntN(V)), int32(rng.IntN(V))
	}
	run := func(b nn.Backend) (logits, loss *nn.Tensor, demb, dnorm []float64, tp *nn.Tape, emb *nn.Tensor) {
		emb, norm := nn.NewParam(b, V, d), nn.NewParam(b, d)
		// The masters hold bfloat16-exact values, so both runs start from
		// the same weights.
		for i := range embVals {
			embVals[i] = nn.RoundBF16From64(embVals[i])
		}
		b.Write(emb.Data, embVals)
		b.Write(norm.Data, normVals)
		tp = nn.NewTape(b, true)
		logits, loss = tiedLM(tp, emb, norm, ids, targets)
		tp.Backward(loss)
		return logits, loss, b.Read(emb.Grad()), b.Read(norm.Grad()), tp, emb
	}
	_, loss32, demb32, dnorm32, tp32, _ := run(cpukernels.New[float32]())
	if tp32.ActDType() != nn.Float32 {
		t.Fatalf("float32 tape stores activations in %v", tp32.ActDType())
	}
	be := &countingBF16{BF16: cpukernels.NewBF16()}
	logits, loss, demb, dnorm, tp, emb := run(be)
	defer tp.Release()
	if tp.ActDType() != nn.BFloat16 {
		t.Fatalf("cpu-bfloat16 tape stores activations in %v", tp.ActDType())
	}
	for name, c := range map[string]struct {
		buf  nn.Buffer
		want nn.DType
	}{"logits": {logits.Data, nn.BFloat16}, "loss": {loss.Data, nn.Float32},
		"emb": {emb.Data, nn.Float32}, "emb grad": {emb.Grad(), nn.Float32}} {
		if got := nn.DTypeOf(be, c.buf); got != c.want {
			t.Errorf("%s is %v, want %v", name, got, c.want)
		}
	}
	if be.copies != 1 {
		t.Errorf("the tied table was cast %d times, want once", be.copies)
	}
	l32, l16 := tp32.B.Read(loss32.Data)[0], be.Read(loss.Data)[0]
	if math.Abs(l16-l32) > 4*nn.BF16UnitRoundoff*math.Abs(l32) {
		t.Errorf("loss %v, float32 %v", l16, l32)
	}
	// A few roundings of u = 2⁻⁸ along the chain (embedding exact, norm
	// output, logits, dlogits, dh): well under 10u norm-wise.
	relErr := func(got, want []float64) float64 {
		num, den := 0.0, 0.0
		for i := range got {
			num += (got[i] - want[i]) * (got[i] - want[i])
			den += want[i] * want[i]
		}
		return math.Sqrt(num / den)
	}
	if e := relErr(demb, demb32); e > 10*nn.BF16UnitRoundoff || e == 0 {
		t.Errorf("emb grad rel err %g against float32 (want in (0, 10u])", e)
	}
	if e := relErr(dnorm, dnorm32); e > 10*nn.BF16UnitRoundoff || e == 0 {
		t.Errorf("norm grad rel err %g against float32 (want in (0, 10u])", e)
	}
}

// Under mixed precision an op's output is an activation (bfloat16) when an
// input is one, float32 when every input is float32 (a parameter and what
// is computed from it alone, such as Mamba's A = −exp(A_log)).
func TestMixedTapeOutputTypes(t *testing.T) {
	be := cpukernels.NewBF16()
	tp := nn.NewTape(be, true)
	defer tp.Release()
	p := nn.NewParam(be, 2, 3)
	be.Write(p.Data, []float64{0.1, 0.2, 0.3, 0.4, 0.5, 1.0 / 3})
	a := tp.Act(nn.Exp, p)
	if got := nn.DTypeOf(be, a.Data); got != nn.Float32 {
		t.Errorf("exp of a float32 parameter is %v, want float32", got)
	}
	if got := be.Read(a.Data)[5]; got != float64(float32(math.Exp(float64(float32(1.0/3))))) {
		t.Errorf("exp of a float32 parameter was rounded: %v", got)
	}
	x := tp.Embedding(p, []int32{1, 0})
	for name, o := range map[string]*nn.Tensor{"embedding": x, "x+a": tp.Add(x, a), "a+x": tp.Add(a, x), "silu(x)": tp.Act(nn.SiLU, x)} {
		if got := nn.DTypeOf(be, o.Data); got != nn.BFloat16 {
			t.Errorf("%s is %v, want bfloat16", name, got)
		}
	}
}

// A tape on a backend of one type cannot allocate another.
func TestTapeAllocAsNeedsMixed(t *testing.T) {
	tp := nn.NewTape(cpukernels.New[float32](), false)
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("AllocAs(bfloat16) on cpu-float32 did not panic")
		}
	}()
	tp.AllocAs(3, nn.BFloat16)
}

// NewParamAs allocates a bfloat16 leaf with a bfloat16 gradient on a mixed
// backend (an op's output from it is an activation, its gradient
// accumulates in bfloat16), is NewParam in the backend's own type, and
// panics for a type the backend lacks.
func TestNewParamAs(t *testing.T) {
	be := cpukernels.NewBF16()
	x := nn.NewParamAs(be, nn.BFloat16, 2, 2)
	be.Write(x.Data, []float64{1, 2, 3, 1 + 1.0/256})
	tp := nn.NewTape(be, true)
	defer tp.Release()
	y := tp.Act(nn.SiLU, x)
	if got := nn.DTypeOf(be, y.Data); got != nn.BFloat16 {
		t.Errorf("silu of a bfloat16 leaf is %v, want bfloat16", got)
	}
	loss, _ := tp.CrossEntropy(y, []int32{0, 1}, -1)
	tp.Backward(loss)
	if got := nn.DTypeOf(be, x.Grad()); got != nn.BFloat16 {
		t.Errorf("the leaf's gradient is %v, want bfloat16", got)
	}
	if got := be.Read(x.Data)[3]; got != 1 {
		t.Errorf("1 + 2⁻⁸ was stored as %v, want 1 (the tie rounds to even)", got)
	}
	if p := nn.NewParamAs(be, nn.Float32, 3); nn.DTypeOf(be, p.Data) != nn.Float32 || nn.DTypeOf(be, p.Grad()) != nn.Float32 {
		t.Error("NewParamAs(float32) is not a float32 parameter")
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("NewParamAs(bfloat16) on cpu-float32 did not panic")
		}
	}()
	nn.NewParamAs(cpukernels.New[float32](), nn.BFloat16, 3)
}

// Tapes that share Casts copy each weight once between them, give the
// results of tapes with their own casts bit for bit, and leave the copies
// to Casts.Free; a recording tape may not share them.
func TestSharedCasts(t *testing.T) {
	const V, d, n = 11, 8, 5
	b := &countingBF16{BF16: cpukernels.NewBF16()}
	rng := rand.New(rand.NewPCG(6, 7))
	emb, norm := nn.NewParam(b, V, d), nn.NewParam(b, d)
	b.Write(emb.Data, layerRandn(rng, V*d))
	b.Write(norm.Data, layerRandn(rng, d))
	ids := []int32{1, 4, 9, 2, 0}
	targets := []int32{3, 3, 7, 1, 10}
	logitsOf := func(tp *nn.Tape) []float64 {
		defer tp.Release()
		logits, _ := tiedLM(tp, emb, norm, ids[:n], targets[:n])
		return b.Read(logits.Data)
	}
	own := logitsOf(nn.NewTape(b, false))
	ownCopies := b.copies
	if ownCopies == 0 {
		t.Fatal("a bfloat16 tape made no cast of the float32 table")
	}

	casts := nn.NewCasts(b)
	b.copies = 0
	for i := range 3 {
		got := logitsOf(nn.NewTape(b, false).ShareCasts(casts))
		for j := range own {
			if got[j] != own[j] {
				t.Fatalf("tape %d sharing casts: logit %d is %v, own casts give %v", i, j, got[j], own[j])
			}
		}
	}
	if b.copies != ownCopies {
		t.Errorf("three tapes sharing casts copied %d times, one tape alone %d", b.copies, ownCopies)
	}
	if want := int64(V * d * 2); casts.Bytes() != want {
		t.Errorf("casts hold %d bytes, want the bfloat16 table's %d", casts.Bytes(), want)
	}
	casts.Free()
	if casts.Bytes() != 0 {
		t.Errorf("freed casts hold %d bytes", casts.Bytes())
	}

	for _, c := range []struct {
		name, want string
		f          func()
	}{
		{"recording", "recording tape", func() { nn.NewTape(b, true).ShareCasts(nn.NewCasts(b)) }},
		{"other backend", "casts of backend", func() { nn.NewTape(b, false).ShareCasts(nn.NewCasts(cpukernels.NewBF16())) }},
		{"freed", "were freed", func() { nn.NewTape(b, false).ShareCasts(casts) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), c.want) {
					t.Errorf("panic %v, want one saying %q", p, c.want)
				}
			}()
			c.f()
		})
	}
}

// Tape.Derived computes a weight's derived value once for all the tapes
// that share Casts (and frees it with them), and every time elsewhere.
func TestDerived(t *testing.T) {
	b := cpukernels.New[float32]()
	w := nn.NewParam(b, 3)
	b.Write(w.Data, []float64{0, 1, -2})
	calls := 0
	squareExp := func(tp *nn.Tape) *nn.Tensor {
		calls++
		return tp.Mul(tp.Act(nn.Exp, w), tp.Act(nn.Exp, w))
	}
	want := []float64{1, math.Exp(2), math.Exp(-4)}
	casts := nn.NewCasts(b)
	for range 3 {
		tp := nn.NewTape(b, false).ShareCasts(casts)
		got := b.Read(tp.Derived(w, "e2", squareExp).Data)
		tp.Release() // the derived value outlives the tape
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-5*want[i] {
				t.Fatalf("derived[%d] = %v, want %v", i, got[i], want[i])
			}
		}
	}
	if calls != 1 {
		t.Errorf("three tapes sharing casts computed it %d times, want once", calls)
	}
	if casts.Bytes() != 3*4 {
		t.Errorf("casts hold %d bytes, want the derived value's 12", casts.Bytes())
	}
	casts.Free()
	tp := nn.NewTape(b, true)
	defer tp.Release()
	tp.Derived(w, "e2", squareExp)
	tp.Derived(w, "e2", squareExp)
	if calls != 3 {
		t.Errorf("a tape of its own computed it %d times in two calls, want every time", calls-1)
	}
}

// AdamW.KeepCopies: training tapes that share the optimizer's copies make
// the bfloat16 copy of a weight once, in the first forward; every step
// after reads the copy the update wrote in its own pass. The losses and the
// weights are those of tapes that cast every step, bit for bit, also
// across ResetCopies (after which the next forward casts again).
func TestAdamWKeepCopies(t *testing.T) {
	const steps = 5
	lm := newTinyLM(8)
	train := func(keep bool) (losses, emb, norm []float64, casts int) {
		b := &countingBF16{BF16: cpukernels.NewBF16()}
		e, nm, params := lm.params(b)
		opt := nn.NewAdamW(b, params, 0.1)
		defer opt.Free()
		for step := range steps {
			if keep && step == 3 {
				opt.ResetCopies()
			}
			tp := nn.NewTape(b, true)
			if keep {
				tp.ShareCasts(opt.KeepCopies())
			}
			_, loss := tiedLM(tp, e, nm, lm.ids, lm.targets)
			losses = append(losses, b.Read(loss.Data)[0])
			nn.ZeroGrads(b, params)
			tp.Backward(loss)
			nn.ClipGradNorm(b, params, 1)
			opt.Step(1e-2)
			tp.Release()
		}
		return losses, b.Read(e.Data), b.Read(nm.Data), b.copies
	}
	lossOwn, embOwn, normOwn, castsOwn := train(false)
	lossKept, embKept, normKept, castsKept := train(true)
	same := func(name string, got, want []float64) {
		t.Helper()
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("%s[%d] = %v with kept copies, %v with a cast every step", name, i, got[i], want[i])
			}
		}
	}
	same("loss", lossKept, lossOwn)
	same("emb", embKept, embOwn)
	same("norm", normKept, normOwn)
	if castsOwn != steps {
		t.Errorf("tapes of their own cast the table %d times in %d steps, want every step", castsOwn, steps)
	}
	if castsKept != 2 {
		t.Errorf("with kept copies the table was cast %d times, want twice (the first step, the one after ResetCopies)", castsKept)
	}
	if nn.NewAdamW(cpukernels.New[float32](), nil, 0).KeepCopies() != nil {
		t.Error("KeepCopies on a float32 backend returned copies")
	}
}

// GradNorm, ClipFactor and AdamW.StepScaled clip in the update's own
// pass: the losses, weights and norms are ClipGradNorm-then-Step's bit for
// bit, on float32 and on cpu-bfloat16, with the clip active at every step.
func TestStepScaledIsClipThenStep(t *testing.T) {
	const steps = 4
	lm := newTinyLM(10)
	train := func(b nn.Backend, fused bool) (out []float64) {
		e, nm, params := lm.params(b)
		opt := nn.NewAdamW(b, params, 0.1)
		defer opt.Free()
		for range steps {
			tp := nn.NewTape(b, true)
			_, loss := tiedLM(tp, e, nm, lm.ids, lm.targets)
			nn.ZeroGrads(b, params)
			tp.Backward(loss)
			var norm float64
			if fused {
				norm = nn.GradNorm(b, params)
				if nn.ClipFactor(norm, 0.01) == 1 {
					t.Fatalf("norm %v: the clip at 0.01 is not active", norm)
				}
				opt.StepScaled(1e-2, nn.ClipFactor(norm, 0.01))
			} else {
				norm = nn.ClipGradNorm(b, params, 0.01)
				opt.Step(1e-2)
			}
			out = append(out, b.Read(loss.Data)[0], norm)
			tp.Release()
		}
		return append(append(out, b.Read(e.Data)...), b.Read(nm.Data)...)
	}
	for name, mk := range map[string]func() nn.Backend{
		"float32":  func() nn.Backend { return cpukernels.New[float32]() },
		"bfloat16": func() nn.Backend { return cpukernels.NewBF16() },
	} {
		want, got := train(mk(), false), train(mk(), true)
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("%s: value %d is %v with StepScaled, %v with ClipGradNorm and Step", name, i, got[i], want[i])
			}
		}
	}
	for _, c := range []struct{ norm, max, want float64 }{
		{2, 1, 1 / (2 + 1e-6)}, {0.5, 1, 1}, {2, 0, 1}, {math.NaN(), 1, 1}, {math.Inf(1), 1, 1},
	} {
		if got := nn.ClipFactor(c.norm, c.max); got != c.want {
			t.Errorf("ClipFactor(%v, %v) = %v, want %v", c.norm, c.max, got, c.want)
		}
	}
}

// tinyLM is tiedLM's weights and data drawn from one seed, for the tests
// that train it for a few steps.
type tinyLM struct {
	embVals, normVals []float64
	ids, targets      []int32
}

func newTinyLM(seed uint64) *tinyLM {
	const V, d, n = 11, 8, 13
	rng := rand.New(rand.NewPCG(seed, seed+1))
	lm := &tinyLM{embVals: layerRandn(rng, V*d), normVals: layerRandn(rng, d),
		ids: make([]int32, n), targets: make([]int32, n)}
	for i := range lm.ids {
		lm.ids[i], lm.targets[i] = int32(rng.IntN(V)), int32(rng.IntN(V))
	}
	return lm
}

// params makes the embedding (decayed) and the norm weight on b.
func (lm *tinyLM) params(b nn.Backend) (emb, norm *nn.Tensor, ps []nn.Param) {
	emb, norm = nn.NewParam(b, 11, 8), nn.NewParam(b, 8)
	b.Write(emb.Data, lm.embVals)
	b.Write(norm.Data, lm.normVals)
	return emb, norm, []nn.Param{{Name: "emb", T: emb, Decay: true}, {Name: "norm", T: norm}}
}
