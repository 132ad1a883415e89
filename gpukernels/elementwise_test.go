package gpukernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"seqbench/nn"
)

// Sizes that end mid-block, fill one block, span many, and need the grid
// stride (more elements than maxGrid·256 threads).
var ewSizes = []int{1, 7, 256, 1000, 65537, 3<<20 + 5}

var activations = []nn.Activation{nn.Identity, nn.ReLU, nn.GELU, nn.GELUTanh, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Exp}

func TestGPUElementwise(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, n := range ewSizes {
			t.Run(fmt.Sprintf("%s/n%d", dt, n), func(t *testing.T) {
				ck := newChecker(t, dt, "Elementwise", uint64(n))
				a, b := ck.in(ck.randn(n, 1)), ck.in(ck.randn(n, 1))

				out := ck.out(n, true)
				ck.g.Add(out.g, a.g, b.g)
				ck.c.Add(out.c, a.c, b.c)
				ck.fwd("Add", out)

				out = ck.out(n, true)
				ck.g.Mul(out.g, a.g, b.g)
				ck.c.Mul(out.c, a.c, b.c)
				ck.fwd("Mul", out)

				g := ck.in(ck.randn(n, 1))
				da, db := ck.acc(n, true), ck.acc(n, true)
				ck.g.MulBackward(da.g, db.g, a.g, b.g, g.g)
				ck.c.MulBackward(da.c, db.c, a.c, b.c, g.c)
				ck.grad("MulBackward/da", da)
				ck.grad("MulBackward/db", db)
				db = ck.acc(n, true)
				ck.g.MulBackward(nil, db.g, a.g, b.g, g.g)
				ck.c.MulBackward(nil, db.c, a.c, b.c, g.c)
				ck.grad("MulBackward/db_only", db)

				y := ck.acc(n, true)
				ck.g.Axpy(-0.37, a.g, y.g)
				ck.c.Axpy(-0.37, a.c, y.c)
				ck.fwd("Axpy", y)

				x := ck.in(ck.randn(n, 1))
				ck.g.Scale(x.g, 1.7)
				ck.c.Scale(x.c, 1.7)
				x.before = make([]float64, n) // compare the values, not a change
				ck.fwd("Scale", x)
			})
		}
	}
}

// actInputs are n values that reach every branch: around 0 (kept away from
// ReLU's kink), saturated tails, softplus's threshold, and exp's flush.
func actInputs(ck *checker, n int) []float64 {
	xs := ck.randn(n, 3)
	special := []float64{-1000, -100, -88, -30, -20, -5, 5, 19.9, 20.1, 30, 80}
	for i := range xs {
		if i%17 == 3 {
			xs[i] = special[(i/17)%len(special)]
		}
		if math.Abs(xs[i]) < 1e-3 {
			xs[i] = 0.5
		}
	}
	return xs
}

func TestGPUActivations(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, n := range []int{1, 5, 1000, 1 << 20} {
			for _, kind := range activations {
				t.Run(fmt.Sprintf("%s/%s/n%d", dt, kind, n), func(t *testing.T) {
					ck := newChecker(t, dt, "Act", uint64(n)*16+uint64(kind))
					xs := actInputs(ck, n)
					if kind == nn.Exp {
						for i := range xs {
							xs[i] = math.Min(xs[i], 30) // keep exp finite in float32
						}
					}
					x := ck.in(xs)
					out := ck.out(n, true)
					ck.g.Act(kind, out.g, x.g)
					ck.c.Act(kind, out.c, x.c)
					ck.fwd(kind.String(), out)

					g := ck.in(ck.randn(n, 1))
					dx := ck.acc(n, true)
					ck.g.ActBackward(kind, dx.g, x.g, g.g)
					ck.c.ActBackward(kind, dx.c, x.c, g.c)
					ck.grad(kind.String()+"'", dx)
				})
			}
		}
	}
}

func TestGPURowOps(t *testing.T) {
	needGPU(t)
	shapes := [][2]int{{1, 1}, {3, 7}, {1000, 33}, {257, 1024}, {100000, 3}, {5, 70000}}
	for _, dt := range dtypes {
		for _, s := range shapes {
			rows, cols := s[0], s[1]
			t.Run(fmt.Sprintf("%s/%dx%d", dt, rows, cols), func(t *testing.T) {
				ck := newChecker(t, dt, "RowOps", uint64(rows*cols))
				x, bias := ck.in(ck.randn(rows*cols, 1)), ck.in(ck.randn(cols, 1))
				out := ck.out(rows*cols, false)
				ck.g.AddBias(out.g, x.g, bias.g, rows, cols)
				ck.c.AddBias(out.c, x.c, bias.c, rows, cols)
				ck.fwd("AddBias", out)

				sum := ck.acc(cols, false)
				ck.g.SumRows(sum.g, x.g, rows, cols)
				ck.c.SumRows(sum.c, x.c, rows, cols)
				ck.grad("SumRows", sum)
			})
		}
	}
}

func TestGPUReductions(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, n := range []int{0, 1, 7, 2048, 2049, 100003, 5<<20 + 1} {
			t.Run(fmt.Sprintf("%s/n%d", dt, n), func(t *testing.T) {
				ck := newChecker(t, dt, "Reduce", uint64(n))
				vals := ck.randn(n, 1)
				for i := range vals {
					vals[i] += 0.25 // a sum far from 0, so the relative error means something
				}
				x := ck.in(vals)
				got, want := ck.g.Sum(x.g), ck.c.Sum(x.c)
				ck.close("Sum", []float64{got}, []float64{want}, ck.fwdTol)
				got, want = ck.g.SumSquares(x.g), ck.c.SumSquares(x.c)
				ck.close("SumSquares", []float64{got}, []float64{want}, ck.fwdTol)
				if again := ck.g.SumSquares(x.g); again != got {
					t.Errorf("SumSquares is not deterministic: %v then %v", got, again)
				}
				if n > 0 {
					vals[n/2] = math.NaN()
					y := ck.in(vals)
					if s := ck.g.SumSquares(y.g); !math.IsNaN(s) {
						t.Errorf("SumSquares with a NaN = %v, want NaN", s)
					}
					vals[n/2] = math.Inf(1)
					y = ck.in(vals)
					if s := ck.g.SumSquares(y.g); !math.IsInf(s, 1) {
						t.Errorf("SumSquares with +Inf = %v, want +Inf", s)
					}
				}
			})
		}
	}
}

// TestElementwiseTypes checks, without a GPU, how an elementwise op picks
// its kernel from its operands' types: one type runs that type's build,
// a mix runs the bfloat16 build's *_mixed kernel with bit k set for a
// bfloat16 operand k (nil operands keep their bit clear), and a type the
// backend cannot hold panics naming the operand.
func TestElementwiseTypes(t *testing.T) {
	be := &Backend{dtype: nn.Float32}
	h, f := &Buffer{dt: nn.BFloat16}, &Buffer{dt: nn.Float32}
	cases := []struct {
		ops   []*Buffer
		at    nn.DType
		mixed bool
		types uint64
	}{
		{[]*Buffer{f, f, f}, nn.Float32, false, 0},
		{[]*Buffer{h, h, h}, nn.BFloat16, false, 7},
		{[]*Buffer{h, h, f}, nn.BFloat16, true, 3},
		{[]*Buffer{f, h, h}, nn.BFloat16, true, 6},
		{[]*Buffer{f, f, h}, nn.BFloat16, true, 4},
		{[]*Buffer{nil, h, f, h, h}, nn.BFloat16, true, 26},
		{[]*Buffer{nil, f, f}, nn.Float32, false, 0},
		{[]*Buffer{nil, h}, nn.BFloat16, false, 2},
	}
	for _, c := range cases {
		var ops []arg
		for k, b := range c.ops {
			ops = append(ops, arg{fmt.Sprint("op", k), b})
		}
		at, mixed, types := be.ewTypes("Test", ops...)
		if at != c.at || mixed != c.mixed || types != c.types {
			t.Errorf("ewTypes(%v) = %v, %v, %b; want %v, %v, %b", c.ops, at, mixed, types, c.at, c.mixed, c.types)
		}
	}
	defer func() {
		msg := fmt.Sprint(recover())
		if !strings.Contains(msg, "gpukernels.Test: b is float64, must be float32 or bfloat16") {
			t.Errorf("a float64 operand on the float32 backend panicked with %q", msg)
		}
	}()
	be.ewTypes("Test", arg{"a", f}, arg{"b", &Buffer{dt: nn.Float64}})
}

// StreamCounts counts what an op queues and how often the host waits:
// SumSquaresEach of three buffers is two kernels each and one download,
// one wait (plus one per launch when every launch is synchronised, as in
// the tests).
func TestGPUStreamCounts(t *testing.T) {
	be := gpu(t, nn.Float32)
	xs := []nn.Buffer{be.Alloc(1000), be.Alloc(5000), be.Alloc(7)}
	defer func() {
		for _, x := range xs {
			be.Free(x)
		}
	}()
	perLaunch := int64(0)
	if be.syncEach {
		perLaunch = 1
	}
	ops0, waits0 := be.StreamCounts()
	be.SumSquaresEach(xs)
	ops1, waits1 := be.StreamCounts()
	if ops, waits := ops1-ops0, waits1-waits0; ops != 7 || waits != 1+6*perLaunch {
		t.Errorf("SumSquaresEach of 3 buffers: %d operations and %d host waits, want 7 and %d", ops, waits, 1+6*perLaunch)
	}
	be.Scale(xs[0], 2)
	ops2, waits2 := be.StreamCounts()
	if ops, waits := ops2-ops1, waits2-waits1; ops != 1 || waits != perLaunch {
		t.Errorf("Scale: %d operations and %d host waits, want 1 and %d", ops, waits, perLaunch)
	}
}
