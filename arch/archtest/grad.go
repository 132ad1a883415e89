package archtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"seqbench/arch"
	"seqbench/nn"
)

// Stencil estimates f′(x0) from values of f around x0 at step h.
type Stencil func(f func(x float64) float64, x0, h float64) float64

// Central4 is the 4-point central difference, truncation error O(h⁴):
//
//	(−f(x0+2h) + 8·f(x0+h) − 8·f(x0−h) + f(x0−2h)) / 12h
func Central4(f func(float64) float64, x0, h float64) float64 {
	return (-f(x0+2*h) + 8*f(x0+h) - 8*f(x0-h) + f(x0-2*h)) / (12 * h)
}

// Central6 is the 6-point central difference, truncation error O(h⁶), for
// models curved enough that Central4's O(h⁴) reaches the tolerance:
//
//	(f(x0+3h) − 9·f(x0+2h) + 45·f(x0+h) − 45·f(x0−h) + 9·f(x0−2h) − f(x0−3h)) / 60h
func Central6(f func(float64) float64, x0, h float64) float64 {
	return (f(x0+3*h) - 9*f(x0+2*h) + 45*f(x0+h) -
		45*f(x0-h) + 9*f(x0-2*h) - f(x0-3*h)) / (60 * h)
}

// GradOptions are CheckGradients's settings. The step and stencil are the
// architecture's: the truncation error of the stencil grows with how curved
// the loss is along a parameter (phase rates of S4D's kernel, products of
// Mamba's gates), and each arch's tests say why it chose its pair.
type GradOptions struct {
	Vocab, B, L int
	H           float64 // finite-difference step
	Stencil     Stencil // nil is Central4
	Tol         float64 // bound on the worst relative error (strict: err < Tol)
	Randomize   Randomizer
}

// gradFloor is the magnitude below which gradients are compared absolutely
// (the exactly-zero gradient of a key bias, of an embedding row no token
// uses), and gradSample the number of elements checked in a larger tensor.
const (
	gradFloor  = 1e-6
	gradSample = 24
)

// CheckGradients checks every parameter's gradient of the full model in
// float64 (b must compute in float64) against finite differences of the
// loss: every element of tensors up to 24 elements, 24 random ones of
// larger. The loss is the cross-entropy of random targets with one ignored
// row (which must contribute nothing); the error is
// |numeric − analytic| / max(|numeric|, |analytic|, 1e-6).
func CheckGradients(t testing.TB, b nn.Backend, cases []Case, o GradOptions) {
	t.Helper()
	if b.DType() != nn.Float64 {
		t.Fatalf("CheckGradients needs a float64 backend, got %v", b.DType())
	}
	stencil, randomize := o.Stencil, orDefault(o.Randomize)
	if stencil == nil {
		stencil = Central4
	}
	B, L, h := o.B, o.L, o.H
	rng := rand.New(rand.NewPCG(11, 12))
	ids, targets := make([]int32, B*L), make([]int32, B*L)
	for i := range ids {
		ids[i], targets[i] = int32(rng.IntN(o.Vocab)), int32(rng.IntN(o.Vocab))
	}
	targets[3] = -1 // an ignored row must contribute nothing
	for _, c := range cases {
		m := Build(t, b, c, o.Vocab, L, 2)
		ps := m.Params()
		randomize(b, ps, rng)
		analytic := func(be nn.Backend, viaLoss bool) [][]float64 {
			nn.ZeroGrads(b, ps)
			var tp *nn.Tape
			var l *nn.Tensor
			if viaLoss {
				tp = nn.NewTape(be, true)
				l, _ = arch.LossAndArgmax(tp, m, ids, targets, B, L, -1, nil)
			} else {
				_, tp, l = loss(be, m, ids, targets, B, L, true)
			}
			tp.Backward(l)
			gs := make([][]float64, len(ps))
			for i, p := range ps {
				gs[i] = b.Read(p.T.Grad())
			}
			tp.Release()
			return gs
		}
		grads := analytic(b, false)
		checkFreedUnread(t, c.Name, ps, grads, analytic(poisoned{b}, false))
		// Training's loss (the head and loss in chunks, arch.LossModel) is
		// the same op: with these small vocabularies, bit for bit.
		checkSameGrads(t, c.Name+" (training's loss)", ps, grads, analytic(poisoned{b}, true))
		var w worst
		for pi, p := range ps {
			grad := grads[pi]
			x := b.Read(p.T.Data)
			idx := rng.Perm(len(x))
			if len(idx) > gradSample {
				idx = idx[:gradSample]
			}
			for _, i := range idx {
				at := func(v float64) float64 {
					old := x[i]
					x[i] = v
					b.Write(p.T.Data, x)
					f, eval, _ := loss(b, m, ids, targets, B, L, false)
					eval.Release()
					x[i] = old
					b.Write(p.T.Data, x)
					return f
				}
				num := stencil(at, x[i], h)
				e := math.Abs(num-grad[i]) / math.Max(gradFloor, math.Max(math.Abs(num), math.Abs(grad[i])))
				w.add(e, func() string {
					return fmt.Sprintf("%s[%d]: analytic %.12g, numeric %.12g", p.Name, i, grad[i], num)
				})
			}
		}
		t.Logf("%s: worst rel err %.2g at %s", c.Name, w.err, w.where)
		if !(w.err < o.Tol) {
			t.Errorf("%s: gradient check failed, rel err %.3g at %s", c.Name, w.err, w.where)
		}
	}
}

// poisoned is a backend that overwrites every buffer it is asked to free
// with NaN first: a buffer the tape frees during the step (a used
// gradient, a dropped activation) that an adjoint still reads turns the
// gradients NaN instead of reading stale values that happen to be right.
// Its buffers allocated without a fill (nn.UninitAllocator: an op's
// result, which a GPU does not zero) hold NaN too, so an op that reads
// its result before writing all of it shows the same way.
type poisoned struct{ nn.Backend }

func (p poisoned) Free(x nn.Buffer) {
	p.Backend.Fill(x, math.NaN())
	p.Backend.Free(x)
}

// poison is b as poisoned, or b itself where it is mixed-precision (the
// wrapper would hide its AllocAs and take the tape off the mixed path).
func poison(b nn.Backend) nn.Backend {
	if m, ok := b.(nn.MixedBackend); ok && m.ActDType() != m.DType() {
		return b
	}
	return poisoned{b}
}

func (p poisoned) AllocUninit(n int, dt nn.DType) nn.Buffer {
	if dt != p.DType() {
		panic(fmt.Sprintf("archtest: a %v result on a %v backend", dt, p.DType()))
	}
	x := p.Backend.Alloc(n)
	p.Backend.Fill(x, math.NaN())
	return x
}

// checkFreedUnread fails when the gradients computed on a poisoned backend
// differ from the plain ones: something freed during the step was read.
func checkFreedUnread(t testing.TB, name string, ps []nn.Param, want, got [][]float64) {
	t.Helper()
	if i, j, ok := firstDiff(want, got); !ok {
		t.Errorf("%s: %s[%d] is %g when freed and unfilled buffers are poisoned, %g otherwise: the step reads a buffer after freeing it, or an op's result before writing it",
			name, ps[i].Name, j, got[i][j], want[i][j])
	}
}

// checkSameGrads fails when got differs from want in any bit.
func checkSameGrads(t testing.TB, name string, ps []nn.Param, want, got [][]float64) {
	t.Helper()
	if i, j, ok := firstDiff(want, got); !ok {
		t.Errorf("%s: %s[%d] is %g, %g through Forward and CrossEntropy", name, ps[i].Name, j, got[i][j], want[i][j])
	}
}

// firstDiff is the first element where got's bits differ from want's.
func firstDiff(want, got [][]float64) (i, j int, same bool) {
	for i := range want {
		for j := range want[i] {
			if math.Float64bits(want[i][j]) != math.Float64bits(got[i][j]) {
				return i, j, false
			}
		}
	}
	return 0, 0, true
}
