package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// gemmCase is a GemmArgs with padding: leading dimensions wider than the
// rows (padA, padB, padC), batch strides longer than a matrix (padStride),
// an A or B shared by every batch (stride 0), one C that every batch
// updates in turn (sharedC: StrideC = 0, so the batch sums into it), or
// matrices that start off, 2·off and 3·off elements into their buffers.
type gemmCase struct {
	transA, transB   bool
	m, n, k          int
	alpha, beta      float64
	batch            int
	padA, padB, padC int
	padStride        int
	sharedA, sharedB bool
	sharedC          bool
	off              int
}

func (c gemmCase) args() nn.GemmArgs {
	g := nn.GemmArgs{TransA: c.transA, TransB: c.transB, M: c.m, N: c.n, K: c.k,
		Alpha: c.alpha, Beta: c.beta, Batch: c.batch, OffA: c.off, OffB: 2 * c.off, OffC: 3 * c.off}
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
		if c.sharedA {
			g.StrideA = 0
		}
		if c.sharedB {
			g.StrideB = 0
		}
		if c.sharedC {
			g.StrideC = 0
		}
	}
	return g
}

// gemmMask marks the elements of a rows×cols matrix per batch (offset
// off, leading dimension ld, batch stride) and returns the smallest buffer
// length that holds them.
func gemmMask(off, rows, cols, ld, stride, batch int) (mask []bool, n int) {
	n = off + (batch-1)*stride + (rows-1)*ld + cols
	mask = make([]bool, n)
	for p := 0; p < batch; p++ {
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				mask[off+p*stride+r*ld+c] = true
			}
		}
	}
	return mask, n
}

func testGemm(t *testing.T, b nn.Backend) {
	var cases []gemmCase
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		ta, tb := tr[0], tr[1]
		cases = append(cases,
			gemmCase{transA: ta, transB: tb, m: 1, n: 1, k: 1, alpha: 1, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 3, n: 5, k: 7, alpha: 1, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 7, n: 1, k: 13, alpha: -0.5, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 1, n: 11, k: 2, alpha: 2, beta: 1, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 17, n: 19, k: 23, alpha: 1, beta: 1, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 13, n: 11, k: 5, alpha: 1.5, beta: 0.5, batch: 1, padA: 3, padB: 1, padC: 2},
			gemmCase{transA: ta, transB: tb, m: 5, n: 6, k: 7, alpha: 1, batch: 3, padStride: 4},
			gemmCase{transA: ta, transB: tb, m: 4, n: 3, k: 9, alpha: 0.7, beta: 1, batch: 4, padA: 2, padB: 3, padC: 1, padStride: 5},
			gemmCase{transA: ta, transB: tb, m: 6, n: 5, k: 4, alpha: 1, batch: 3, sharedB: true},
			gemmCase{transA: ta, transB: tb, m: 64, n: 48, k: 40, alpha: 1, batch: 5, sharedA: true},
			gemmCase{transA: ta, transB: tb, m: 9, n: 10, k: 300, alpha: 1, beta: 1, batch: 4, sharedC: true},
			gemmCase{transA: ta, transB: tb, m: 131, n: 67, k: 150, alpha: 1, batch: 1},
			gemmCase{transA: ta, transB: tb, m: 33, n: 65, k: 129, alpha: 1, beta: 1, batch: 2, padA: 1, padC: 3},
			gemmCase{transA: ta, transB: tb, m: 7, n: 9, k: 5, alpha: 1, beta: 1, batch: 3, padA: 2, off: 5},
			gemmCase{transA: ta, transB: tb, m: 70, n: 40, k: 33, alpha: 1, batch: 2, sharedA: true, off: 7},
			gemmCase{transA: ta, transB: tb, m: 12, n: 10, k: 64, alpha: 1, beta: 1, batch: 3, sharedC: true, off: 3},
		)
	}
	cases = append(cases,
		gemmCase{m: 16, n: 8, k: 7, alpha: 1, batch: 3, sharedC: true}, // StrideC 0, Beta 0: the last batch wins
		gemmCase{m: 5, n: 6, k: 0, alpha: 1, beta: 0.5, batch: 2},      // K = 0 scales C
		gemmCase{m: 5, n: 6, k: 3, alpha: 0, batch: 1},                 // Alpha = 0, Beta = 0: C = 0, NaNs gone
	)
	desc := func(c gemmCase) string {
		tr := map[bool]string{false: "n", true: "t"}
		s := fmt.Sprintf("%s%s_%dx%dx%d_a%g_b%g_batch%d", tr[c.transA], tr[c.transB], c.m, c.n, c.k, c.alpha, c.beta, c.batch)
		if c.padA+c.padB+c.padC+c.padStride > 0 {
			s += "_padded"
		}
		if c.off > 0 {
			s += fmt.Sprintf("_off%d", c.off)
		}
		for _, sh := range []struct {
			on   bool
			name string
		}{{c.sharedA, "_sharedA"}, {c.sharedB, "_sharedB"}, {c.sharedC, "_sharedC"}} {
			if sh.on {
				s += sh.name
			}
		}
		return s
	}
	runCases(t, b, "Gemm", cases, desc, func(tt *tester, c gemmCase) {
		g := c.args()
		ra, ca := c.m, c.k
		if c.transA {
			ra, ca = c.k, c.m
		}
		rb, cb := c.k, c.n
		if c.transB {
			rb, cb = c.n, c.k
		}
		// A and B are NaN in their padding (and one guard past the end):
		// reading it poisons C. C is NaN everywhere when β = 0 (the NaNs
		// must not survive), random otherwise; its padding must not change.
		maskA, na := gemmMask(g.OffA, ra, ca, g.LDA, g.StrideA, c.batch)
		maskB, nb := gemmMask(g.OffB, rb, cb, g.LDB, g.StrideB, c.batch)
		maskC, nc := gemmMask(g.OffC, c.m, c.n, g.LDC, g.StrideC, c.batch)
		fill := func(mask []bool, n int) []float64 {
			v := nans(n + 1)
			for i, in := range mask {
				if in {
					v[i] = tt.rng.NormFloat64()
				}
			}
			return v
		}
		a, as := tt.upload(fill(maskA, na))
		bb, bs := tt.upload(fill(maskB, nb))
		cv := nans(nc + 1)
		if c.beta != 0 {
			cv = append(tt.randn(nc), math.NaN())
		}
		cbuf, before := tt.upload(cv)
		tt.b.Gemm(a, bb, cbuf, g)
		got := tt.b.Read(cbuf)
		want := refGemm(as, bs, before, g)
		var gc, wc []float64
		outside := make([]bool, nc+1)
		for i := range got {
			if i < nc && maskC[i] {
				gc, wc = append(gc, got[i]), append(wc, want[i])
			} else {
				outside[i] = true
			}
		}
		tt.fwd("C", gc, wc)
		tt.untouched("C", got, before, outside)
	})
}
