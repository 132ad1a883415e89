// Package backendtest is the conformance suite of nn.Backend. Run checks
// every op of a backend against naive float64 references written in this
// package (plain loops, independent of any kernel package): forwards
// directly, backwards as vector-Jacobian products by central finite
// differences of the reference forward. cpukernels and gpukernels call the
// same Run, so the two cannot drift apart.
//
// Every case runs on fresh random inputs from a fixed seed. Outputs are
// poisoned with NaN before the call; shaped buffers carry one guard element
// past the end that must come back untouched (NaN after an overwritten
// output, a finite sentinel after an accumulated gradient), and inputs carry
// a NaN tail so that an over-read poisons the result. Gradient buffers are
// pre-filled with random values and the check is on after − before, which
// tests the accumulate semantics of every backward.
package backendtest

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"seqbench/nn"
)

// Run checks every op of b against float64 references. It is called from the
// tests of every backend (cpukernels now, gpukernels later).
func Run(t *testing.T, b nn.Backend) {
	t.Run("Memory", func(t *testing.T) { testMemory(t, b) })
	t.Run("Fill", func(t *testing.T) { testFill(t, b) })
	t.Run("Copy", func(t *testing.T) { testCopy(t, b) })
	t.Run("CopyBlock", func(t *testing.T) { testCopyBlock(t, b) })
	t.Run("Permute", func(t *testing.T) { testPermute(t, b) })
	t.Run("Add", func(t *testing.T) { testAdd(t, b) })
	t.Run("Mul", func(t *testing.T) { testMul(t, b) })
	t.Run("MulBackward", func(t *testing.T) { testMulBackward(t, b) })
	t.Run("Axpy", func(t *testing.T) { testAxpy(t, b) })
	t.Run("Scale", func(t *testing.T) { testScale(t, b) })
	t.Run("Act", func(t *testing.T) { testAct(t, b) })
	t.Run("ActBackward", func(t *testing.T) { testActBackward(t, b) })
	t.Run("AddBias", func(t *testing.T) { testAddBias(t, b) })
	t.Run("SumRows", func(t *testing.T) { testSumRows(t, b) })
	t.Run("Sum", func(t *testing.T) { testSum(t, b) })
	t.Run("SumSquares", func(t *testing.T) { testSumSquares(t, b) })
	t.Run("SumSquaresEach", func(t *testing.T) { testSumSquaresEach(t, b) })
	t.Run("Gemm", func(t *testing.T) { testGemm(t, b) })
	t.Run("RMSNorm", func(t *testing.T) { testRMSNorm(t, b) })
	t.Run("LayerNorm", func(t *testing.T) { testLayerNorm(t, b) })
	t.Run("Embedding", func(t *testing.T) { testEmbedding(t, b) })
	t.Run("CrossEntropy", func(t *testing.T) { testCrossEntropy(t, b) })
	t.Run("ArgmaxRows", func(t *testing.T) { testArgmaxRows(t, b) })
	t.Run("RoPE", func(t *testing.T) { testRoPE(t, b) })
	t.Run("Attention", func(t *testing.T) { testAttention(t, b) })
	t.Run("AttentionDropout", func(t *testing.T) { testAttentionDropout(t, b) })
	t.Run("AttentionCached", func(t *testing.T) { testAttentionCached(t, b, b.DType()) })
	t.Run("StepPositions", func(t *testing.T) { testStepPositions(t, b, b.DType()) })
	t.Run("AdamW", func(t *testing.T) { testAdamW(t, b) })
	t.Run("AdamWEach", func(t *testing.T) { testAdamWEach(t, b) })
	t.Run("Contracts", func(t *testing.T) { testContracts(t, b) })
	for _, c := range fusedCases {
		t.Run(c.name, func(t *testing.T) {
			if p, ok := b.(Partial); ok && p.Lacks(c.name) {
				t.Skipf("%s does not have %s yet", b.Name(), c.name)
			}
			c.test(t, b)
		})
	}
}

// Partial is implemented by a backend that lacks some fused ops (the CUDA
// backend while its sequence kernels are being written): Run skips the
// fused cases it lacks, naming them, instead of failing them.
type Partial interface{ Lacks(op string) bool }

// fusedCases are the tests of the fused sequence ops (nn.SeqOps); each op
// family's file adds its own from an init function.
var fusedCases []struct {
	name string
	test func(*testing.T, nn.Backend)
}

func registerFused(name string, test func(*testing.T, nn.Backend)) {
	fusedCases = append(fusedCases, struct {
		name string
		test func(*testing.T, nn.Backend)
	}{name, test})
}

// Tolerances on the norm-wise relative error (see RelErr), by precision.
const (
	fwdTol64, gradTol64 = 1e-10, 1e-6
	fwdTol32, gradTol32 = 1e-5, 1e-3
)

// gradGuard follows every accumulated buffer: accumulating into it or
// overwriting it changes it, and NaN would not show an accumulation.
const gradGuard = 1234.5

// tester is one case's view of the backend: a seeded RNG, the tolerances of
// the backend's precision, and the buffers to free when the case ends.
type tester struct {
	*testing.T
	b               nn.Backend
	rng             *rand.Rand
	fwdTol, gradTol float64
	bufs            []nn.Buffer
}

// runCases runs f on each case in its own subtest named "NN_desc", seeded
// from op and the case number so that every backend sees the same inputs.
// A panic in the op fails the case with its stack instead of ending the run.
func runCases[C any](t *testing.T, b nn.Backend, op string, cases []C, desc func(C) string, f func(tt *tester, c C)) {
	h := fnv.New64a()
	h.Write([]byte(op))
	seed := h.Sum64()
	for i, c := range cases {
		t.Run(fmt.Sprintf("%02d_%s", i, desc(c)), func(t *testing.T) {
			tt := &tester{T: t, b: b, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
			tt.fwdTol, tt.gradTol = fwdTol32, gradTol32
			if b.DType() == nn.Float64 {
				tt.fwdTol, tt.gradTol = fwdTol64, gradTol64
			}
			t.Cleanup(func() {
				for _, buf := range tt.bufs {
					b.Free(buf)
				}
			})
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%s panicked: %v\n%s", op, r, debug.Stack())
				}
			}()
			f(tt, c)
		})
	}
}

func (tt *tester) alloc(n int) nn.Buffer {
	buf := tt.b.Alloc(n)
	tt.bufs = append(tt.bufs, buf)
	if buf.Len() != n {
		tt.Fatalf("Alloc(%d) returned a buffer of Len %d", n, buf.Len())
	}
	return buf
}

// upload writes vals into a new buffer of len(vals) elements and returns it
// with the values as the backend stores them (rounded to its precision).
func (tt *tester) upload(vals []float64) (nn.Buffer, []float64) {
	buf := tt.alloc(len(vals))
	tt.b.Write(buf, vals)
	return buf, tt.b.Read(buf)
}

func nans(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// input uploads vals followed by one NaN element that an op reading past the
// shape would carry into its result. It returns the stored values (len(vals)).
func (tt *tester) input(vals []float64) (nn.Buffer, []float64) {
	buf, stored := tt.upload(append(append([]float64(nil), vals...), math.NaN()))
	return buf, stored[:len(vals)]
}

// exact uploads vals with no guard, for ops whose length is the buffer's.
func (tt *tester) exact(vals []float64) (nn.Buffer, []float64) { return tt.upload(vals) }

// output allocates n NaN-poisoned elements plus a NaN guard.
func (tt *tester) output(n int) nn.Buffer {
	buf, _ := tt.upload(nans(n + 1))
	return buf
}

// result reads an output(n) buffer, checks its guard and returns n values.
func (tt *tester) result(name string, buf nn.Buffer, n int) []float64 {
	tt.Helper()
	got := tt.b.Read(buf)
	if len(got) != n+1 {
		tt.Fatalf("%s: Read returned %d elements, want %d", name, len(got), n+1)
	}
	if !math.IsNaN(got[n]) {
		tt.Errorf("%s: guard element [%d] past the output was overwritten with %v", name, n, got[n])
	}
	return got[:n]
}

// accum is a gradient (or other accumulated) buffer pre-filled with random
// values, optionally followed by the gradGuard sentinel.
type accum struct {
	buf    nn.Buffer
	before []float64 // as stored, guard included
	n      int
}

func (tt *tester) accum(n int, guard bool) accum {
	vals := tt.randn(n)
	if guard {
		vals = append(vals, gradGuard)
	}
	buf, before := tt.upload(vals)
	return accum{buf, before, n}
}

// delta reads an accum buffer back and returns after − before over its n
// elements, checking that the guard kept its value.
func (tt *tester) delta(name string, a accum) []float64 {
	tt.Helper()
	after := tt.b.Read(a.buf)
	if len(after) != len(a.before) {
		tt.Fatalf("%s: Read returned %d elements, want %d", name, len(after), len(a.before))
	}
	if len(a.before) > a.n && after[a.n] != a.before[a.n] {
		tt.Errorf("%s: guard element [%d] past the gradient changed from %v to %v", name, a.n, a.before[a.n], after[a.n])
	}
	d := make([]float64, a.n)
	for i := range d {
		d[i] = after[i] - a.before[i]
	}
	return d
}

// fwd and grad compare with the precision's forward and gradient tolerances.
func (tt *tester) fwd(name string, got, want []float64) {
	tt.Helper()
	AssertClose(tt, name, got, want, tt.fwdTol)
}

func (tt *tester) grad(name string, got, want []float64) {
	tt.Helper()
	AssertClose(tt, name, got, want, tt.gradTol)
}

// untouched checks that the elements of got outside the op's region (keep[i])
// equal their values before the op exactly (NaN equal to NaN).
func (tt *tester) untouched(name string, got, before []float64, keep []bool) {
	tt.Helper()
	bad := 0
	for i := range got {
		if !keep[i] || same(got[i], before[i]) {
			continue
		}
		if bad < 5 {
			tt.Errorf("%s: element [%d] outside the op's region changed from %v to %v", name, i, before[i], got[i])
		}
		bad++
	}
	if bad > 5 {
		tt.Errorf("%s: %d elements outside the op's region changed in all", name, bad)
	}
}

func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func (tt *tester) randn(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = tt.rng.NormFloat64()
	}
	return s
}

// randnAway draws N(0,1) values at least gap away from 0 (off ReLU's kink).
func (tt *tester) randnAway(n int, gap float64) []float64 {
	s := tt.randn(n)
	for i, v := range s {
		s[i] = math.Copysign(math.Abs(v)+gap, v)
	}
	return s
}

func (tt *tester) uniform(n int, lo, hi float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = lo + (hi-lo)*tt.rng.Float64()
	}
	return s
}

func (tt *tester) ids(n, V int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(tt.rng.IntN(V))
	}
	return s
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
