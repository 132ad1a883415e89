package cuda

import (
	"fmt"
	"sync"
)

// cuBLAS constants (cublasOperation_t, cublasMath_t).
const (
	blasOpN = 0
	blasOpT = 1

	// MathDefault keeps full float32 products; MathTF32 lets cuBLAS use the
	// tensor cores' TF32 mode (10-bit mantissa inputs, rel err ~1e-3).
	MathDefault = 0
	MathTF32    = 3
	// MathExactReduce (CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION,
	// or'ed into a mode) keeps a bfloat16 GEMM's split-K partial sums in
	// float32, so its C is the float32 sum rounded once, as the reference.
	MathExactReduce = 16

	// cudaDataType_t and cublasComputeType_t values.
	DataFloat32    = 0  // CUDA_R_32F
	DataBFloat16   = 14 // CUDA_R_16BF
	computeFloat32 = 68 // CUBLAS_COMPUTE_32F
	gemmDefault    = -1 // CUBLAS_GEMM_DEFAULT
)

// BLAS is cuBLAS (libcublas), bound at run time.
type BLAS struct {
	Path string

	cublasCreate              func(h *uintptr) int32
	cublasDestroy             func(h uintptr) int32
	cublasSetStream           func(h, s uintptr) int32
	cublasSetMathMode         func(h uintptr, mode int32) int32
	cublasGetVersion          func(h uintptr, v *int32) int32
	cublasGetStatusName       func(s int32) *byte // optional (cuBLAS ≥ 11.4)
	cublasSgemmStridedBatched func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a uint64, lda int32, sa int64,
		b uint64, ldb int32, sb int64, beta *float32, c uint64, ldc int32, sc int64, batch int32) int32
	cublasDgemmStridedBatched func(h uintptr, ta, tb int32, m, n, k int32, alpha *float64, a uint64, lda int32, sa int64,
		b uint64, ldb int32, sb int64, beta *float64, c uint64, ldc int32, sc int64, batch int32) int32
	cublasGemmStridedBatchedEx func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a uint64, at int32, lda int32,
		sa int64, b uint64, bt int32, ldb int32, sb int64, beta *float32, c uint64, ct int32, ldc int32, sc int64,
		batch int32, compute int32, algo int32) int32
}

var (
	blasOnce sync.Once
	blasVal  *BLAS
	blasErr  error
)

// LoadBLAS dlopens libcublas (CUDA 13, then 12, then the unversioned name).
func LoadBLAS() (*BLAS, error) {
	blasOnce.Do(func() { blasVal, blasErr = loadBLAS() })
	return blasVal, blasErr
}

func loadBLAS() (*BLAS, error) {
	h, path, err := openFirst("libcublas.so.13", "libcublas.so.12", "libcublas.so")
	if err != nil {
		return nil, fmt.Errorf("cuBLAS did not load: %w", err)
	}
	b := &BLAS{Path: path}
	syms := []symbol{
		sym(&b.cublasCreate, "cublasCreate_v2"),
		sym(&b.cublasDestroy, "cublasDestroy_v2"),
		sym(&b.cublasSetStream, "cublasSetStream_v2"),
		sym(&b.cublasSetMathMode, "cublasSetMathMode"),
		sym(&b.cublasGetVersion, "cublasGetVersion_v2"),
		optSym(&b.cublasGetStatusName, "cublasGetStatusName"),
		sym(&b.cublasSgemmStridedBatched, "cublasSgemmStridedBatched"),
		sym(&b.cublasDgemmStridedBatched, "cublasDgemmStridedBatched"),
		sym(&b.cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx"),
	}
	if _, err := bindAll(h, path, syms); err != nil {
		return nil, err
	}
	return b, nil
}

var blasStatusNames = map[int32]string{
	0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
	7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

func (b *BLAS) check(call string, s int32) error {
	if s == 0 {
		return nil
	}
	name, ok := blasStatusNames[s]
	if b.cublasGetStatusName != nil {
		name, ok = cString(b.cublasGetStatusName(s)), true
	}
	if !ok {
		name = fmt.Sprintf("cublasStatus %d", s)
	}
	return &Error{Call: call, Code: int(s), Name: name}
}

// Handle is a cuBLAS handle bound to one stream. Create and use it with the
// device's context current (Device.Lock).
type Handle struct {
	b *BLAS
	h uintptr
}

// NewHandle creates a handle whose work goes to stream s.
func (b *BLAS) NewHandle(s uintptr) (*Handle, error) {
	var h uintptr
	if err := b.check("cublasCreate_v2", b.cublasCreate(&h)); err != nil {
		return nil, err
	}
	if err := b.check("cublasSetStream_v2", b.cublasSetStream(h, s)); err != nil {
		b.cublasDestroy(h)
		return nil, err
	}
	return &Handle{b: b, h: h}, nil
}

func (h *Handle) Destroy() error { return h.b.check("cublasDestroy_v2", h.b.cublasDestroy(h.h)) }

// Version is cuBLAS's version number, e.g. 130000.
func (h *Handle) Version() (int, error) {
	var v int32
	err := h.b.check("cublasGetVersion_v2", h.b.cublasGetVersion(h.h, &v))
	return int(v), err
}

// SetMathMode chooses MathDefault or MathTF32.
func (h *Handle) SetMathMode(mode int) error {
	return h.b.check("cublasSetMathMode", h.b.cublasSetMathMode(h.h, int32(mode)))
}

// GemmStrided is one cuBLAS strided batched GEMM in cuBLAS's column-major
// terms: C_p = alpha·op(A_p)·op(B_p) + beta·C_p, op(A) m×k, op(B) k×n.
type GemmStrided struct {
	TransA, TransB bool
	M, N, K        int
	A, B, C        uint64
	LDA, LDB, LDC  int
	SA, SB, SC     int64
	Batch          int
}

func blasOp(t bool) int32 {
	if t {
		return blasOpT
	}
	return blasOpN
}

func (g *GemmStrided) check() error {
	const max32 = 1<<31 - 1
	for _, v := range []int{g.M, g.N, g.K, g.LDA, g.LDB, g.LDC, g.Batch} {
		if v < 0 || v > max32 {
			return fmt.Errorf("cuda: GEMM dimension %d outside cuBLAS's 32-bit range (%+v)", v, *g)
		}
	}
	return nil
}

// Sgemm runs a float32 strided batched GEMM (cublasSgemmStridedBatched).
func (h *Handle) Sgemm(g GemmStrided, alpha, beta float32) error {
	if err := g.check(); err != nil {
		return err
	}
	return h.b.check("cublasSgemmStridedBatched", h.b.cublasSgemmStridedBatched(h.h, blasOp(g.TransA), blasOp(g.TransB),
		int32(g.M), int32(g.N), int32(g.K), &alpha, g.A, int32(g.LDA), g.SA, g.B, int32(g.LDB), g.SB,
		&beta, g.C, int32(g.LDC), g.SC, int32(g.Batch)))
}

// Dgemm runs a float64 strided batched GEMM (cublasDgemmStridedBatched).
func (h *Handle) Dgemm(g GemmStrided, alpha, beta float64) error {
	if err := g.check(); err != nil {
		return err
	}
	return h.b.check("cublasDgemmStridedBatched", h.b.cublasDgemmStridedBatched(h.h, blasOp(g.TransA), blasOp(g.TransB),
		int32(g.M), int32(g.N), int32(g.K), &alpha, g.A, int32(g.LDA), g.SA, g.B, int32(g.LDB), g.SB,
		&beta, g.C, int32(g.LDC), g.SC, int32(g.Batch)))
}

// GemmEx runs a strided batched GEMM with A and B of type ab and C of
// type c (DataFloat32 or DataBFloat16), products and sums in float32
// (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F).
func (h *Handle) GemmEx(g GemmStrided, ab, c int, alpha, beta float32) error {
	if err := g.check(); err != nil {
		return err
	}
	return h.b.check("cublasGemmStridedBatchedEx", h.b.cublasGemmStridedBatchedEx(h.h, blasOp(g.TransA), blasOp(g.TransB),
		int32(g.M), int32(g.N), int32(g.K), &alpha, g.A, int32(ab), int32(g.LDA), g.SA, g.B, int32(ab), int32(g.LDB), g.SB,
		&beta, g.C, int32(c), int32(g.LDC), g.SC, int32(g.Batch), computeFloat32, gemmDefault))
}
