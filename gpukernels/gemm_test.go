package gpukernels

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

// The conformance suite (nn/backendtest "Gemm") checks every transpose,
// padding, shared operand and Alpha/Beta case at small sizes; these are
// the shapes large enough to take cuBLAS's other code paths.

// gemmArgs is the dense product of an M×K and a K×N matrix (B stored N×K
// when transB), batch after batch, with its buffer lengths.
func gemmArgs(m, n, k, batch int, transB bool) (g nn.GemmArgs, na, nb, nc int) {
	g = nn.GemmArgs{TransB: transB, M: m, N: n, K: k, Alpha: 1, LDA: k, LDB: n, LDC: n, Batch: batch,
		StrideA: m * k, StrideB: k * n, StrideC: m * n}
	if transB {
		g.LDB = k
	}
	return g, batch * m * k, batch * k * n, batch * m * n
}

func TestGPUGemm(t *testing.T) {
	needGPU(t)
	cases := []struct {
		m, n, k int
		transB  bool
	}{{1024, 1024, 1024, false}, {4096, 50257 % 4096, 256, true}}
	for _, dt := range dtypes {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%s/%dx%dx%d_tB%v", dt, c.m, c.n, c.k, c.transB), func(t *testing.T) {
				ck := newChecker(t, dt, "Gemm", uint64(i))
				g, na, nb, nc := gemmArgs(c.m, c.n, c.k, 1, c.transB)
				a, b, out := ck.in(ck.randn(na, 1)), ck.in(ck.randn(nb, 1)), ck.out(nc, false)
				ck.g.Gemm(a.g, b.g, out.g, g)
				ck.c.Gemm(a.c, b.c, out.c, g)
				ck.fwd("C", out)
			})
		}
	}
}

// TestGPUGemmTF32 checks the TF32 opt-in against its looser bound.
func TestGPUGemmTF32(t *testing.T) {
	ck := newChecker(t, nn.Float32, "Gemm", 99)
	g, na, nb, nc := gemmArgs(512, 384, 1024, 2, true)
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
