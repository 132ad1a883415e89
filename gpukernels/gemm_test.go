package gpukernels

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// gemmCase is a GemmArgs with padding: leading dimensions wider than the
// rows, batch strides longer than a matrix, a matrix shared by every batch
// (stride 0), or one C summed over the batch (StrideC = 0).
type gemmCase struct {
	transA, transB   bool
	m, n, k          int
	alpha, beta      float64
	batch            int
	padA, padB, padC int
	padStride        int
	sharedA, sharedB bool
	sharedC          bool
}

func (c gemmCase) args() (g nn.GemmArgs, na, nb, nc int) {
	g = nn.GemmArgs{TransA: c.transA, TransB: c.transB, M: c.m, N: c.n, K: c.k, Alpha: c.alpha, Beta: c.beta, Batch: c.batch}
	ra, ca := c.m, c.k
	if c.transA {
		ra, ca = c.k, c.m
	}
	rb, cb := c.k, c.n
	if c.transB {
		rb, cb = c.n, c.k
	}
	g.LDA, g.LDB, g.LDC = ca+c.padA, cb+c.padB, c.n+c.padC
	if c.batch > 1 {
		g.StrideA = ra*g.LDA + c.padStride
		g.StrideB = rb*g.LDB + c.padStride
		g.StrideC = c.m*g.LDC + c.padStride
	}
	if c.sharedA {
		g.StrideA = 0
	}
	if c.sharedB {
		g.StrideB = 0
	}
	if c.sharedC {
		g.StrideC = 0
	}
	size := func(stride, rows, cols, ld int) int {
		if rows == 0 || cols == 0 {
			return 1
		}
		return (c.batch-1)*stride + (rows-1)*ld + cols
	}
	return g, size(g.StrideA, ra, ca, g.LDA), size(g.StrideB, rb, cb, g.LDB), size(g.StrideC, c.m, c.n, g.LDC)
}

func TestGPUGemm(t *testing.T) {
	needGPU(t)
	var cases []gemmCase
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		ta, tb := tr[0], tr[1]
		cases = append(cases,
			gemmCase{transA: ta, transB: tb, m: 1, n: 1, k: 1, alpha: 1, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 7, n: 1, k: 13, alpha: -0.5, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 1, n: 11, k: 2, alpha: 2, beta: 1, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 33, n: 65, k: 129, alpha: 1, beta: 0.5, batch: 2, padA: 1, padC: 3, padStride: 5},
			gemmCase{transA: ta, transB: tb, m: 257, n: 511, k: 384, alpha: 1, batch: 1, padB: 2},
			gemmCase{transA: ta, transB: tb, m: 64, n: 48, k: 40, alpha: 1, batch: 5, sharedA: true},
			gemmCase{transA: ta, transB: tb, m: 6, n: 5, k: 4, alpha: 1, batch: 3, sharedB: true},
			gemmCase{transA: ta, transB: tb, m: 9, n: 10, k: 300, alpha: 1, beta: 1, batch: 4, sharedC: true},
		)
	}
	cases = append(cases,
		gemmCase{m: 16, n: 8, k: 7, alpha: 1, beta: 0, batch: 3, sharedC: true}, // StrideC 0, Beta 0: the last batch wins
		gemmCase{m: 5, n: 6, k: 0, alpha: 1, beta: 0.5, batch: 2},               // K = 0 scales C
		gemmCase{m: 5, n: 6, k: 3, alpha: 0, beta: 0, batch: 1},                 // Alpha = 0, Beta = 0: C = 0, NaNs gone
		gemmCase{m: 1024, n: 1024, k: 1024, alpha: 1, batch: 1},
		gemmCase{transB: true, m: 4096, n: 50257 % 4096, k: 256, alpha: 1, batch: 1},
	)
	for _, dt := range dtypes {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%s/%02d_%dx%dx%d_tA%v_tB%v_b%d", dt, i, c.m, c.n, c.k, c.transA, c.transB, c.batch), func(t *testing.T) {
				ck := newChecker(t, dt, "Gemm", uint64(i))
				g, na, nb, nc := c.args()
				a, b := ck.in(ck.randn(na, 1)), ck.in(ck.randn(nb, 1))
				var cc pair
				if c.beta == 0 {
					cc = ck.out(nc, false) // NaN must not survive Beta = 0
				} else {
					cc = ck.acc(nc, false)
					cc.acc = false // compare C itself
				}
				ck.g.Gemm(a.g, b.g, cc.g, g)
				ck.c.Gemm(a.c, b.c, cc.c, g)
				got, want := ck.values("C", cc)
				// Elements of C outside every C_p keep their values on both
				// backends; compare only those the product defines.
				mask := make([]bool, len(got))
				for p := 0; p < c.batch; p++ {
					for r := 0; r < c.m; r++ {
						for j := 0; j < c.n; j++ {
							mask[p*g.StrideC+r*g.LDC+j] = true
						}
					}
				}
				var gs, ws []float64
				for i, in := range mask {
					if in {
						gs, ws = append(gs, got[i]), append(ws, want[i])
					} else if !same(got[i], cc.before[i]) {
						t.Errorf("C[%d] outside the product changed from %v to %v", i, cc.before[i], got[i])
						break
					}
				}
				for _, v := range gs {
					if math.IsNaN(v) {
						t.Fatalf("NaN in C")
					}
				}
				ck.close("C", gs, ws, ck.fwdTol)
			})
		}
	}
}

// TestGPUGemmTF32 checks the TF32 opt-in against its looser bound.
func TestGPUGemmTF32(t *testing.T) {
	ck := newChecker(t, nn.Float32, "Gemm", 99)
	c := gemmCase{m: 512, n: 384, k: 1024, alpha: 1, batch: 2, transB: true}
	g, na, nb, nc := c.args()
	a, b, out := ck.in(ck.randn(na, 1)), ck.in(ck.randn(nb, 1)), ck.out(nc, false)
	if err := ck.g.SetTF32(true); err != nil {
		t.Fatal(err)
	}
	defer ck.g.SetTF32(false)
	ck.g.Gemm(a.g, b.g, out.g, g)
	ck.c.Gemm(a.c, b.c, out.c, g)
	got, want := ck.values("C", out)
	ck.close("C_tf32", got, want, 5e-3)
}
