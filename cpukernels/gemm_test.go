package cpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"seqbench/nn"
)

// gemmTestCase is one product with its storage: leading dimensions wider
// than the matrices (by padLD for A, 2·padLD for B, 3·padLD for C) and
// padStride elements between batches.
type gemmTestCase struct {
	g         nn.GemmArgs
	padLD     int
	padStride int
}

// storage fills in leading dimensions and batch strides and returns the
// stored shapes of A and B.
func (c *gemmTestCase) storage() (ra, ca, rb, cb int) {
	g := &c.g
	ra, ca = g.M, g.K
	if g.TransA {
		ra, ca = ca, ra
	}
	rb, cb = g.K, g.N
	if g.TransB {
		rb, cb = cb, rb
	}
	g.LDA, g.LDB, g.LDC = ca+c.padLD, cb+2*c.padLD, g.N+3*c.padLD
	if g.Batch > 1 {
		g.StrideA = ra*g.LDA + c.padStride
		g.StrideB = rb*g.LDB + c.padStride
		g.StrideC = g.M*g.LDC + c.padStride
	}
	return ra, ca, rb, cb
}

// gemmTestRef is the float64 reference with, per element of C, the bound
// Σ|α·a·b| + |β·c| that scales the rounding error of a length-K sum.
func gemmTestRef(a, b, c []float64, g nn.GemmArgs) (want, scale []float64) {
	want, scale = append([]float64(nil), c...), make([]float64, len(c))
	for p := 0; p < g.Batch; p++ {
		for i := 0; i < g.M; i++ {
			for j := 0; j < g.N; j++ {
				s, abs := 0.0, 0.0
				for k := 0; k < g.K; k++ {
					ai := p*g.StrideA + i*g.LDA + k
					if g.TransA {
						ai = p*g.StrideA + k*g.LDA + i
					}
					bi := p*g.StrideB + k*g.LDB + j
					if g.TransB {
						bi = p*g.StrideB + j*g.LDB + k
					}
					s += a[ai] * b[bi]
					abs += math.Abs(a[ai] * b[bi])
				}
				ci := p*g.StrideC + i*g.LDC + j
				want[ci], scale[ci] = g.Alpha*s, math.Abs(g.Alpha)*abs
				if g.Beta != 0 { // β = 0 drops C, NaN included
					want[ci] += g.Beta * c[ci]
					scale[ci] += math.Abs(g.Beta * c[ci])
				}
			}
		}
	}
	return want, scale
}

// gemmTestSentinel marks C elements outside every C_p: they must not change.
const gemmTestSentinel = -7777

func testGemmCase[T Float](t *testing.T, be *Backend[T], c gemmTestCase, rng *rand.Rand) {
	t.Helper()
	g := &c.g
	ra, ca, rb, cb := c.storage()
	size := func(rows, cols, ld, stride int) int { return (g.Batch-1)*stride + (rows-1)*ld + cols }
	// Padding of A and B holds NaN: reading it poisons C.
	fill := func(n, rows, cols, ld, stride int) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = math.NaN()
		}
		for p := 0; p < g.Batch; p++ {
			for r := 0; r < rows; r++ {
				for q := 0; q < cols; q++ {
					// Round to T so that the reference sees the inputs the kernel does.
					x[p*stride+r*ld+q] = float64(T(rng.NormFloat64()))
				}
			}
		}
		return x
	}
	a := fill(size(ra, ca, g.LDA, g.StrideA), ra, ca, g.LDA, g.StrideA)
	b := fill(size(rb, cb, g.LDB, g.StrideB), rb, cb, g.LDB, g.StrideB)
	nc := size(g.M, g.N, g.LDC, g.StrideC) + 1 // one guard past the end
	cv := make([]float64, nc)
	inC := make([]bool, nc)
	for p := 0; p < g.Batch; p++ {
		for i := 0; i < g.M; i++ {
			for j := 0; j < g.N; j++ {
				inC[p*g.StrideC+i*g.LDC+j] = true
			}
		}
	}
	for i := range cv {
		switch {
		case !inC[i]:
			cv[i] = gemmTestSentinel
		case g.Beta == 0:
			cv[i] = math.NaN() // must not survive
		default:
			cv[i] = float64(T(rng.NormFloat64()))
		}
	}
	ab, bb, cbuf := be.Alloc(len(a)), be.Alloc(len(b)), be.Alloc(nc)
	be.Write(ab, a)
	be.Write(bb, b)
	be.Write(cbuf, cv)
	be.Gemm(ab, bb, cbuf, *g)
	got := be.Read(cbuf)
	want, scale := gemmTestRef(a, b, cv, *g)

	// A sum of K products rounds at most K+2 times (the kernel adds KC-long
	// partial sums into C, which is no worse).
	var z T
	eps := 0x1p-52
	if _, ok := any(z).(float32); ok {
		eps = 0x1p-23
	}
	worst, wi, wratio := 0.0, -1, 0.0
	for i := range got {
		if !inC[i] {
			if got[i] != gemmTestSentinel {
				t.Fatalf("%+v: element %d outside C changed to %g", *g, i, got[i])
			}
			continue
		}
		err := math.Abs(got[i] - want[i])
		tol := float64(g.K+2)*eps*scale[i] + 1e-300
		if r := err / tol; !(r <= wratio) {
			worst, wi, wratio = err, i, r
		}
	}
	if wratio > 1 || math.IsNaN(wratio) {
		p := wi / max(g.StrideC, 1)
		if g.Batch == 1 {
			p = 0
		}
		off := wi - p*g.StrideC
		t.Fatalf("%+v: worst C[batch %d, row %d, col %d] = %g, want %g (err %g, %.3g× the bound)",
			*g, p, off/g.LDC, off%g.LDC, got[wi], want[wi], worst, wratio)
	}
}

func TestGemm(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testGemm(t, New[float64]()) })
	t.Run("float32", func(t *testing.T) { testGemm(t, New[float32]()) })
}

func testGemm[T Float](t *testing.T, be *Backend[T]) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 3, 17, 65, 130}
	// (α, β) cycle through overwrite, accumulate and general scaling; the
	// padding of leading dimensions cycles too.
	ab := [][2]float64{{1, 0}, {1, 1}, {0.75, -0.5}, {-2, 0}}
	n := 0
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, m := range sizes {
				for _, nn_ := range sizes {
					for _, k := range sizes {
						if min(m, nn_, k) >= 17 && max(m, nn_, k) >= 130 {
							continue // big enough below; keeps the test fast
						}
						n++
						c := gemmTestCase{
							g: nn.GemmArgs{TransA: ta, TransB: tb, M: m, N: nn_, K: k,
								Alpha: ab[n%4][0], Beta: ab[n%4][1], Batch: 1},
							padLD: n % 3,
						}
						testGemmCase(t, be, c, rng)
					}
				}
			}
		}
	}
	// Batches with gaps between them, big enough to take the parallel path.
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, beta := range []float64{0, 1} {
				testGemmCase(t, be, gemmTestCase{g: nn.GemmArgs{TransA: ta, TransB: tb, M: 65, N: 130, K: 70,
					Alpha: 1, Beta: beta, Batch: 3}, padLD: 1, padStride: 5}, rng)
				testGemmCase(t, be, gemmTestCase{g: nn.GemmArgs{TransA: ta, TransB: tb, M: 3, N: 5, K: 7,
					Alpha: 1, Beta: beta, Batch: 3}, padLD: 2, padStride: 1}, rng)
			}
		}
	}
	// Rows over MC, N over one NC block, K over one KC slice (float64) and
	// over two (both types).
	testGemmCase(t, be, gemmTestCase{g: nn.GemmArgs{M: gemmMC + 2, N: gemmNC + 7, K: 300,
		Alpha: 1, Beta: 0.5, Batch: 1}, padLD: 1}, rng)
	testGemmCase(t, be, gemmTestCase{g: nn.GemmArgs{TransA: true, TransB: true, M: 40, N: 70, K: 2*gemmKCBytes/4 + 1,
		Alpha: -1, Beta: 0, Batch: 1}}, rng)
	// Many tiny products: the unpacked loop, split among workers by batch.
	testGemmCase(t, be, gemmTestCase{g: nn.GemmArgs{TransB: true, M: 2, N: 3, K: 2, Alpha: 1, Beta: 1,
		Batch: 3 * gemmParallelMin / 12}, padLD: 1, padStride: 1}, rng)
	// K = 0 leaves β·C.
	testGemmCase(t, be, gemmTestCase{g: nn.GemmArgs{M: 4, N: 5, K: 0, Alpha: 1, Beta: 0.5, Batch: 2}, padStride: 1}, rng)
}

// A C shared by every batch (StrideC = 0) receives the batches in order.
func TestGemmSharedC(t *testing.T) {
	be := New[float64]()
	const m, n, k, batch = 40, 50, 60, 3
	a, b := make([]float64, batch*m*k), make([]float64, batch*k*n)
	for i := range a {
		a[i] = float64(i%13) - 6
	}
	for i := range b {
		b[i] = float64(i%7) - 3
	}
	want := make([]float64, m*n)
	for p := 0; p < batch; p++ {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				for q := 0; q < k; q++ {
					want[i*n+j] += a[p*m*k+i*k+q] * b[p*k*n+q*n+j]
				}
			}
		}
	}
	c := be.Alloc(m * n)
	be.Gemm(Buf[float64](a), Buf[float64](b), c, nn.GemmArgs{M: m, N: n, K: k, Alpha: 1, Beta: 1,
		LDA: k, LDB: n, LDC: n, StrideA: m * k, StrideB: k * n, Batch: batch})
	for i, v := range be.Read(c) {
		if v != want[i] { // small integers: exact
			t.Fatalf("C[%d] = %g, want %g", i, v, want[i])
		}
	}
}

// α = 0 reads neither A nor B, as BLAS: their NaNs do not reach C.
func TestGemmAlphaZero(t *testing.T) {
	be := New[float32]()
	nan := float32(math.NaN())
	a, b := Buf[float32]{nan, nan, nan, nan}, Buf[float32]{nan, nan, nan, nan}
	c := Buf[float32]{1, 2, 3, 4}
	be.Gemm(a, b, c, nn.GemmArgs{M: 2, N: 2, K: 2, Alpha: 0, Beta: 2, LDA: 2, LDB: 2, LDC: 2, Batch: 1})
	if fmt.Sprint(c) != "[2 4 6 8]" {
		t.Fatalf("C = %v, want [2 4 6 8]", c)
	}
}

func TestGemmBadArgs(t *testing.T) {
	be := New[float32]()
	ok := nn.GemmArgs{M: 2, N: 3, K: 4, Alpha: 1, LDA: 4, LDB: 3, LDC: 3, Batch: 1}
	for i, tc := range []struct {
		mod  func(g *nn.GemmArgs)
		na   int
		want string
	}{
		{func(g *nn.GemmArgs) {}, 7, "a holds 7 elements, needs 8"},
		{func(g *nn.GemmArgs) { g.LDA = 3 }, 8, "bad arguments"},
		{func(g *nn.GemmArgs) { g.Batch = 0 }, 8, "Batch ≥ 1"},
		{func(g *nn.GemmArgs) { g.Batch, g.StrideA = 2, 8 }, 8, "a holds 8 elements, needs 16"},
	} {
		g := ok
		tc.mod(&g)
		func() {
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, tc.want) {
					t.Errorf("case %d: panic %q, want it to mention %q", i, msg, tc.want)
				}
			}()
			be.Gemm(be.Alloc(tc.na), be.Alloc(12), be.Alloc(6*g.Batch), g)
		}()
	}
}

// BenchmarkGemm times square float32 products (float64 at 512 for
// comparison) and reports GFLOP/s, counting a multiply-add as 2 flops.
func BenchmarkGemm(b *testing.B) {
	for _, n := range []int{128, 512, 1024} {
		b.Run(fmt.Sprintf("float32/%d", n), func(b *testing.B) { benchGemm(b, New[float32](), n) })
	}
	b.Run("float64/512", func(b *testing.B) { benchGemm(b, New[float64](), 512) })
}

func benchGemm[T Float](b *testing.B, be *Backend[T], n int) {
	x := make([]float64, n*n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	a, bb, c := be.Alloc(n*n), be.Alloc(n*n), be.Alloc(n*n)
	be.Write(a, x)
	be.Write(bb, x)
	g := nn.GemmArgs{M: n, N: n, K: n, Alpha: 1, LDA: n, LDB: n, LDC: n, Batch: 1}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		be.Gemm(a, bb, c, g)
	}
	b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOP/s")
}
