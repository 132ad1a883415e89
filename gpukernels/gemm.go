package gpukernels

import (
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

// Gemm computes, for p < Batch, C_p = Alpha·op(A_p)·op(B_p) + Beta·C_p in
// row-major storage (see nn.GemmArgs) through cuBLAS, which is column-major.
// A row-major matrix read as column-major is its transpose, so the product
// runs as Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B as its first operand and A as
// its second, with the same transpose flags and leading dimensions, and
// m = N, n = M. A stride of 0 (one matrix shared by every batch) passes
// through. When the C_p overlap (StrideC smaller than one C, e.g. 0 to sum
// the batch into one C), the batches run one after another, in order, as in
// cpukernels. K = 0 or Alpha = 0 only scales C by Beta (0 overwrites NaN).
//
// A and B are both of the backend's type or both bfloat16; C is of either
// type. With bfloat16 A and B the products and sums are float32 (a
// product of two bfloat16 values is exact in float32) and a bfloat16 C is
// the float32 result rounded once.
func (be *Backend) Gemm(a, b, c nn.Buffer, args nn.GemmArgs) {
	const op = "Gemm"
	g := args
	na, nb, nc, err := g.Lens()
	check(op, err)
	ad, bd, cd := be.buf(a, na, op, "a"), be.buf(b, nb, op, "b"), be.buf(c, nc, op, "c")
	if be.actType(op, arg{"a", ad}, arg{"b", bd}) != nn.BFloat16 {
		be.wantOwn(op, arg{"c", cd})
	}
	if g.M == 0 || g.N == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	be.gemm(op, ad, bd, cd, g)
}

// gemm is Gemm's body for checked arguments, inside an op (the fused ops
// call it with their lock held).
func (be *Backend) gemm(op string, ad, bd, cd *Buffer, g nn.GemmArgs) {
	if g.M == 0 || g.N == 0 {
		return
	}
	overlap := g.Batch > 1 && g.StrideC < (g.M-1)*g.LDC+g.N
	if g.K == 0 || g.Alpha == 0 {
		if g.Beta == 1 {
			return
		}
		k := be.fnAs(op, cd.dt, "elementwise", "scale_block")
		for p := 0; p < g.Batch; p++ {
			be.launch(op, k, dim(be.blocksFor(g.M*g.N, 256)), dim(256), 0, pArg(cd), iArg(g.OffC+p*g.StrideC), iArg(g.LDC),
				iArg(g.M), iArg(g.N), fArg(g.Beta))
		}
		return
	}
	es, ces := uint64(ad.esize()), uint64(cd.esize())
	call := func(p0, batch int) {
		s := cuda.GemmStrided{
			TransA: g.TransB, TransB: g.TransA, M: g.N, N: g.M, K: g.K,
			A: bd.ptr + uint64(g.OffB+p0*g.StrideB)*es, LDA: g.LDB, SA: int64(g.StrideB),
			B: ad.ptr + uint64(g.OffA+p0*g.StrideA)*es, LDB: g.LDA, SB: int64(g.StrideA),
			C: cd.ptr + uint64(g.OffC+p0*g.StrideC)*ces, LDC: g.LDC, SC: int64(g.StrideC),
			Batch: batch,
		}
		// cuBLAS wants leading dimensions ≥ 1 even for a single column.
		s.LDA, s.LDB, s.LDC = max(s.LDA, 1), max(s.LDB, 1), max(s.LDC, 1)
		var err error
		be.profStart(op)
		switch {
		case ad.dt == nn.BFloat16:
			err = be.blas.GemmEx(s, cuda.DataBFloat16, blasType[cd.dt], float32(g.Alpha), float32(g.Beta))
		case be.dtype == nn.Float64:
			err = be.blas.Dgemm(s, g.Alpha, g.Beta)
		default:
			err = be.blas.Sgemm(s, float32(g.Alpha), float32(g.Beta))
		}
		be.queued(op, err)
		if be.syncEach {
			be.wait(op)
		}
	}
	if overlap {
		for p := 0; p < g.Batch; p++ {
			call(p, 1)
		}
		return
	}
	call(0, g.Batch)
}

// SetTF32 switches float32 GEMMs to the tensor cores' TF32 mode (on) or
// full float32 products (off, the default).
func (be *Backend) SetTF32(on bool) error {
	be.mu.Lock()
	defer be.mu.Unlock()
	if err := be.dev.Lock(); err != nil {
		return err
	}
	defer be.dev.Unlock()
	if err := be.blas.SetMathMode(mathMode(on)); err != nil {
		return err
	}
	be.tf32 = on
	return nil
}

// blasType is cuBLAS's name of a GEMM operand's type.
var blasType = map[nn.DType]int{nn.Float32: cuda.DataFloat32, nn.BFloat16: cuda.DataBFloat16}

// mathMode is cuBLAS's math mode: TF32 for float32 GEMMs when asked, and
// always float32 partial sums for the bfloat16 ones.
func mathMode(tf32 bool) int {
	if tf32 {
		return cuda.MathTF32 | cuda.MathExactReduce
	}
	return cuda.MathDefault | cuda.MathExactReduce
}
