package gpukernels

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
	"seqbench/nn/backendtest"
)

// normShapes avoid d ≤ 2: there the true dx cancels to ~eps/var (RMSNorm at
// d = 1: s·w·g·(1 − x²/(x²+eps)); LayerNorm at d = 2, where x̂ = ±1), which
// float32 cannot resolve; the conformance suite covers those at its own
// tolerances. d = 64 and 768 take the warp-per-row kernels in float32, the
// others the block-per-row ones.
var normShapes = [][2]int{{1, 3}, {5, 7}, {300, 64}, {4096, 768}, {3, 5000}, {70000, 33}}

func TestGPURMSNorm(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, s := range normShapes {
			rows, d := s[0], s[1]
			t.Run(fmt.Sprintf("%s/%dx%d", dt, rows, d), func(t *testing.T) {
				ck := newChecker(t, dt, "RMSNorm", uint64(rows*d))
				x, w := ck.in(ck.randn(rows*d, 2)), ck.in(ck.randn(d, 1))
				out, rstd := ck.out(rows*d, false), ck.out(rows, false)
				ck.g.RMSNorm(out.g, rstd.g, x.g, w.g, rows, d, 1e-5)
				ck.c.RMSNorm(out.c, rstd.c, x.c, w.c, rows, d, 1e-5)
				ck.fwd("out", out)
				ck.fwd("rstd", rstd)

				// The backward reads the rstd each backend saved.
				g := ck.in(ck.randn(rows*d, 1))
				dx, dw := ck.acc(rows*d, false), ck.acc(d, false)
				ck.g.RMSNormBackward(dx.g, dw.g, x.g, w.g, rstd.g, g.g, rows, d)
				ck.c.RMSNormBackward(dx.c, dw.c, x.c, w.c, rstd.c, g.c, rows, d)
				ck.grad("dx", dx)
				ck.grad("dw", dw)
				dw = ck.acc(d, false)
				ck.g.RMSNormBackward(nil, dw.g, x.g, w.g, rstd.g, g.g, rows, d)
				ck.c.RMSNormBackward(nil, dw.c, x.c, w.c, rstd.c, g.c, rows, d)
				ck.grad("dw_only", dw)
			})
		}
	}
}

func TestGPULayerNorm(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, s := range normShapes {
			for _, bias := range []bool{true, false} {
				rows, d := s[0], s[1]
				t.Run(fmt.Sprintf("%s/%dx%d/bias%v", dt, rows, d, bias), func(t *testing.T) {
					ck := newChecker(t, dt, "LayerNorm", uint64(rows*d))
					xs := ck.randn(rows*d, 2)
					for i := range xs {
						xs[i] += 3 // a mean far from 0
					}
					x, w := ck.in(xs), ck.in(ck.randn(d, 1))
					var b pair
					if bias {
						b = ck.in(ck.randn(d, 1))
					}
					out, mean, rstd := ck.out(rows*d, false), ck.out(rows, false), ck.out(rows, false)
					ck.g.LayerNorm(out.g, mean.g, rstd.g, x.g, w.g, b.g, rows, d, 1e-5)
					ck.c.LayerNorm(out.c, mean.c, rstd.c, x.c, w.c, b.c, rows, d, 1e-5)
					ck.fwd("out", out)
					ck.fwd("mean", mean)
					ck.fwd("rstd", rstd)

					g := ck.in(ck.randn(rows*d, 1))
					dx, dw := ck.acc(rows*d, false), ck.acc(d, false)
					var db pair
					if bias {
						db = ck.acc(d, false)
					}
					ck.g.LayerNormBackward(dx.g, dw.g, db.g, x.g, w.g, mean.g, rstd.g, g.g, rows, d)
					ck.c.LayerNormBackward(dx.c, dw.c, db.c, x.c, w.c, mean.c, rstd.c, g.c, rows, d)
					ck.grad("dx", dx)
					ck.grad("dw", dw)
					if bias {
						ck.grad("db", db)
					}
				})
			}
		}
	}
}

// The bfloat16 builds of the norm, embedding, cross-entropy and RoPE
// families at the shapes of their float32 tests, wider than
// backendtest.RunBF16's (the warp-per-row norms at d = 768 and 1024, rows
// past one grid, a 50257-word vocabulary): on cuda-bfloat16 each op gets
// its activations in bfloat16 and its parameters and statistics in float32
// (docs/PRECISION.md), and is compared with the float64 CPU reference fed
// the values as stored. The tolerances are nn/backendtest/bf16.go's: u plus
// the float32 forward tolerance for a bfloat16 output written once,
// u·‖before + added‖/‖added‖ plus the float32 gradient tolerance for a
// bfloat16 buffer accumulated into, the float32 tolerances for float32
// outputs.

// bfChecker is a float32 checker whose backend is also cuda-bfloat16.
type bfChecker struct {
	*checker
	m *BF16Backend
}

func newBFChecker(t *testing.T, family string, seed uint64) *bfChecker {
	ck := newChecker(t, nn.Float32, family, seed)
	m, err := newBF16(ck.g)
	if err != nil {
		t.Fatal(err)
	}
	return &bfChecker{ck, m}
}

// inAs uploads vals into a new buffer of type dt; the reference gets the
// values as stored (rounded once to bfloat16 or float32).
func (b *bfChecker) inAs(dt nn.DType, vals []float64) pair {
	g := b.m.AllocAs(len(vals), dt)
	b.t.Cleanup(func() { b.g.Free(g) })
	b.g.Write(g, vals)
	stored := b.g.Read(g)
	c := b.c.Alloc(len(vals))
	b.c.Write(c, stored)
	return pair{g: g, c: c, n: len(vals), before: stored}
}

// outAs is an output of n elements of type dt poisoned with NaN, followed
// by guard NaNs.
func (b *bfChecker) outAs(dt nn.DType, n int) pair {
	p := b.inAs(dt, nanSlice(n+guard))
	p.n = n
	return p
}

// accAs is an accumulator of n elements of type dt holding scale·N(0, 1)
// (zeros for scale 0, a fresh gradient), followed by guard sentinels.
func (b *bfChecker) accAs(dt nn.DType, n int, scale float64) pair {
	vals := make([]float64, n, n+guard)
	if scale != 0 {
		vals = b.randn(n, scale)
	}
	for range guard {
		vals = append(vals, 1234.5)
	}
	p := b.inAs(dt, vals)
	p.n, p.acc = n, true
	return p
}

// outH checks a bfloat16 output written once, outF a float32 one.
func (b *bfChecker) outH(name string, p pair) {
	b.t.Helper()
	b.check(name, p, nn.BF16UnitRoundoff+b.fwdTol)
}

func (b *bfChecker) outF(name string, p pair) { b.t.Helper(); b.check(name, p, b.fwdTol) }

// accH checks a bfloat16 accumulator: its sum before + added is rounded
// once, u relative to itself, so u·‖before + added‖/‖added‖ relative to
// what the op added.
func (b *bfChecker) accH(name string, p pair) {
	b.t.Helper()
	got, want := b.values(name, p)
	var sa, sw float64
	for i, w := range want {
		a := p.before[i] + w
		sa += a * a
		sw += w * w
	}
	tol := b.gradTol
	if sw > 0 {
		tol += nn.BF16UnitRoundoff * math.Sqrt(sa/sw)
	}
	b.closeBF(name, got, want, tol)
}

// accF checks a float32 accumulator (a master's gradient).
func (b *bfChecker) accF(name string, p pair) { b.t.Helper(); b.check(name, p, b.gradTol) }

func (b *bfChecker) check(name string, p pair, tol float64) {
	b.t.Helper()
	got, want := b.values(name, p)
	b.closeBF(name, got, want, tol)
}

// closeBF is close with the error recorded under bfloat16.
func (b *bfChecker) closeBF(name string, got, want []float64, tol float64) {
	b.t.Helper()
	err, _ := backendtest.RelErr(got, want)
	record(fmt.Sprintf("%s/%s bfloat16", b.family, name), err)
	backendtest.AssertClose(b.t, name, got, want, tol)
}

// bfNormShapes: d = 64, 768 and 1024 take the warp-per-row kernels (1024
// fills all WPT groups of a lane), the others the block-per-row ones
// (1028: just past the warp form's 1024).
var bfNormShapes = [][2]int{{5, 7}, {300, 64}, {4096, 768}, {16, 1024}, {7, 1028}, {3, 5000}, {2000, 33}}

func TestGPUNormsBFloat16(t *testing.T) {
	needGPU(t)
	const h, f = nn.BFloat16, nn.Float32
	for _, s := range bfNormShapes {
		rows, d := s[0], s[1]
		n := rows * d
		t.Run(fmt.Sprintf("RMSNorm/%dx%d", rows, d), func(t *testing.T) {
			b := newBFChecker(t, "RMSNorm", uint64(n))
			x, w := b.inAs(h, b.randn(n, 2)), b.inAs(f, b.randn(d, 1))
			out, rstd := b.outAs(h, n), b.outAs(f, rows)
			b.g.RMSNorm(out.g, rstd.g, x.g, w.g, rows, d, 1e-5)
			b.c.RMSNorm(out.c, rstd.c, x.c, w.c, rows, d, 1e-5)
			b.outH("out", out)
			b.outF("rstd", rstd)

			g := b.inAs(h, b.randn(n, 1))
			dx, dw := b.accAs(h, n, 1), b.accAs(f, d, 1)
			b.g.RMSNormBackward(dx.g, dw.g, x.g, w.g, rstd.g, g.g, rows, d)
			b.c.RMSNormBackward(dx.c, dw.c, x.c, w.c, rstd.c, g.c, rows, d)
			b.accH("dx", dx)
			b.accF("dw", dw)
		})
		for _, bias := range []bool{true, false} {
			t.Run(fmt.Sprintf("LayerNorm/%dx%d/bias%v", rows, d, bias), func(t *testing.T) {
				b := newBFChecker(t, "LayerNorm", uint64(n))
				xs := b.randn(n, 2)
				for i := range xs {
					xs[i] += 3 // a mean far from 0
				}
				x, w := b.inAs(h, xs), b.inAs(f, b.randn(d, 1))
				var bb, db pair
				if bias {
					bb, db = b.inAs(f, b.randn(d, 1)), b.accAs(f, d, 1)
				}
				out, mean, rstd := b.outAs(h, n), b.outAs(f, rows), b.outAs(f, rows)
				b.g.LayerNorm(out.g, mean.g, rstd.g, x.g, w.g, bb.g, rows, d, 1e-5)
				b.c.LayerNorm(out.c, mean.c, rstd.c, x.c, w.c, bb.c, rows, d, 1e-5)
				b.outH("out", out)
				b.outF("mean", mean)
				b.outF("rstd", rstd)

				g := b.inAs(h, b.randn(n, 1))
				dx, dw := b.accAs(h, n, 1), b.accAs(f, d, 1)
				b.g.LayerNormBackward(dx.g, dw.g, db.g, x.g, w.g, mean.g, rstd.g, g.g, rows, d)
				b.c.LayerNormBackward(dx.c, dw.c, db.c, x.c, w.c, mean.c, rstd.c, g.c, rows, d)
				b.accH("dx", dx)
				b.accF("dw", dw)
				if bias {
					b.accF("db", db)
				}
			})
		}
	}
}

// TestNormTypes: the norms' x, out, dout and dx are activations, all
// float32 or all bfloat16; w, b, mean, rstd, dw and db are float32. Any
// other combination panics naming the buffer before the device is touched
// (on a backend without one); the allowed ones pass the checks, shown on
// empty batches, which return right after them.
func TestNormTypes(t *testing.T) {
	// Closed: an op that got past its checks panics at once ("backend is
	// closed") instead of reaching for a device.
	be := devicelessBackend()
	buf := func(dt nn.DType) func(int) *Buffer {
		return func(n int) *Buffer { return &Buffer{n: n, dt: dt, be: be} }
	}
	h, f, d := buf(nn.BFloat16), buf(nn.Float32), buf(nn.Float64)
	const rows, D = 2, 4
	n := rows * D
	fwd := []struct {
		want                     string
		rms                      bool // RMSNorm takes these too (no mean, no b)
		out, rstd, mean, x, w, b *Buffer
	}{
		{"rstd is bfloat16, must be float32", true, h(n), h(rows), f(rows), h(n), f(D), nil},
		{"w is bfloat16, must be float32", true, h(n), f(rows), f(rows), h(n), h(D), nil},
		{"out is float32 but x is bfloat16", true, f(n), f(rows), f(rows), h(n), f(D), nil},
		{"x is float64, must be float32 or bfloat16", true, f(n), f(rows), f(rows), d(n), f(D), nil},
		{"mean is bfloat16, must be float32", false, h(n), f(rows), h(rows), h(n), f(D), f(D)},
		{"b is bfloat16, must be float32", false, h(n), f(rows), f(rows), h(n), f(D), h(D)},
	}
	for _, c := range fwd {
		if c.rms {
			expectPanic(t, "RMSNorm: "+c.want, func() { be.RMSNorm(c.out, c.rstd, c.x, c.w, rows, D, 1e-5) })
		}
		expectPanic(t, "LayerNorm: "+c.want, func() { be.LayerNorm(c.out, c.mean, c.rstd, c.x, c.w, c.b, rows, D, 1e-5) })
	}
	bwd := []struct {
		want                            string
		dx, dw, db, x, w, mean, rstd, g *Buffer
	}{
		{"dw is bfloat16, must be float32", h(n), h(D), nil, h(n), f(D), f(rows), f(rows), h(n)},
		{"rstd is bfloat16, must be float32", h(n), f(D), nil, h(n), f(D), f(rows), h(rows), h(n)},
		{"dx is float32 but x is bfloat16", f(n), nil, nil, h(n), f(D), f(rows), f(rows), h(n)},
		{"dout is float32 but x is bfloat16", nil, f(D), nil, h(n), f(D), f(rows), f(rows), f(n)},
	}
	for _, c := range bwd {
		expectPanic(t, "RMSNormBackward: "+c.want, func() { be.RMSNormBackward(c.dx, c.dw, c.x, c.w, c.rstd, c.g, rows, D) })
		expectPanic(t, "LayerNormBackward: "+c.want, func() {
			be.LayerNormBackward(c.dx, c.dw, c.db, c.x, c.w, c.mean, c.rstd, c.g, rows, D)
		})
	}
	expectPanic(t, "LayerNormBackward: db is bfloat16, must be float32", func() {
		be.LayerNormBackward(h(n), f(D), h(D), h(n), f(D), f(rows), f(rows), h(n), rows, D)
	})
	expectPanic(t, "LayerNormBackward: mean is bfloat16, must be float32", func() {
		be.LayerNormBackward(h(n), f(D), f(D), h(n), f(D), h(rows), f(rows), h(n), rows, D)
	})
	for _, act := range []func(int) *Buffer{f, h} {
		be.RMSNorm(act(0), f(0), act(0), f(D), 0, D, 1e-5)
		be.RMSNormBackward(act(0), f(D), act(0), f(D), f(0), act(0), 0, D)
		be.LayerNorm(act(0), f(0), f(0), act(0), f(D), f(D), 0, D, 1e-5)
		be.LayerNormBackward(act(0), f(D), f(D), act(0), f(D), f(0), f(0), act(0), 0, D)
	}
}
