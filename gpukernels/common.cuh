// common.cuh is prepended to every kernel family by the Go launcher, after
// the lines that define REAL (float or double) and REAL_IS_DOUBLE.
//
// Conventions of every kernel in this package:
// - extern "C" names, so the launcher finds them unmangled;
// - every parameter is 8 bytes: a pointer, a long long (i64) or a double,
//   in the order the Go launcher passes them as a []uint64;
// - blockDim.x is a multiple of 32 (block_sum shuffles whole warps);
// - reductions add in an order fixed by the shape and the launch
//   configuration, never by timing: results are the same run to run.

typedef REAL real;
typedef long long i64;

// act_t is the element type of activations: real in the float32 and float64
// builds, bf16 in the bfloat16 build (ACT_IS_BF16, REAL float), where
// parameters, statistics and states stay float (docs/PRECISION.md). A kernel
// declares its activation pointers act_t* and its others real*; it computes in
// real, so an act_t is read as a float and written rounded once.
//
// bf16 holds the 16 high bits of a float32. Reading one is exact;
// assigning a float rounds to nearest with ties to even, NaN to 0x7FC0, as
// nn.BF16FromFloat32 (the CPU reference) does. The constructors are
// explicit so that a mixed expression (cond ? x[i] : 0.f) converts the bf16,
// never the float.
__device__ __forceinline__ unsigned short bf16_bits(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
__device__ __forceinline__ float bf16_float(unsigned short h) { return __uint_as_float((unsigned)h << 16); }

struct bf16 {
    unsigned short bits;
    bf16() = default;
    __device__ explicit bf16(float f) : bits(bf16_bits(f)) {}
    __device__ explicit bf16(double d) : bits(bf16_bits((float)d)) {}
    __device__ operator float() const { return bf16_float(bits); }
    __device__ bf16& operator=(float f) {
        bits = bf16_bits(f);
        return *this;
    }
    __device__ bf16& operator=(double d) { return *this = (float)d; }
    __device__ bf16& operator+=(float v) { return *this = (float)*this + v; }
    __device__ bf16& operator-=(float v) { return *this = (float)*this - v; }
    __device__ bf16& operator*=(float v) { return *this = (float)*this * v; }
};
static_assert(sizeof(bf16) == 2, "bf16 is two bytes");

// h8 is 8 bfloat16 values, one 16-byte load or store.
struct alignas(16) h8 {
    bf16 v[8];
};

__device__ __forceinline__ bool al16(const void* p) { return ((unsigned long long)p & 15) == 0; }

// ld8 reads group j (elements 8j..8j+7) of p as floats, exactly.
__device__ __forceinline__ void ld8(const bf16* p, i64 j, float* v) {
    const h8 w = ((const h8*)p)[j];
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = w.v[k];
}

// st8 writes v to group j of p, each value rounded once.
__device__ __forceinline__ void st8(bf16* p, i64 j, const float* v) {
    h8 w;
#pragma unroll
    for (int k = 0; k < 8; k++) w.v[k] = v[k];
    ((h8*)p)[j] = w;
}

#if ACT_IS_BF16
typedef bf16 act_t;
#else
typedef real act_t;
#endif

// state_ref is a carried state (a scan's or SSD's H0 and hT, a conv's
// state): real, or, in the bfloat16 build with bf set, bfloat16 (a mixed
// backend's decode state, nn.SeqOps), read exactly into real and written
// rounded once. Kernels take it as (real* p, i64 bf).
struct state_ref {
    real* p;
    i64 bf;
    __device__ explicit operator bool() const { return p != nullptr; }
    __device__ real operator[](i64 i) const {
#if ACT_IS_BF16
        if (bf) return (real) reinterpret_cast<const bf16*>(p)[i];
#endif
        return p[i];
    }
    __device__ void set(i64 i, real v) const {
#if ACT_IS_BF16
        if (bf) {
            reinterpret_cast<bf16*>(p)[i] = v;
            return;
        }
#endif
        p[i] = v;
    }
    // at is the state from element o on.
    __device__ state_ref at(i64 o) const {
        if (!p) return *this;
#if ACT_IS_BF16
        if (bf) return state_ref{reinterpret_cast<real*>(reinterpret_cast<bf16*>(p) + o), bf};
#endif
        return state_ref{p + o, bf};
    }
};
__device__ __forceinline__ state_ref state_of(const real* p, i64 bf) { return state_ref{const_cast<real*>(p), bf}; }

#if REAL_IS_DOUBLE
// Arguments of exp below this give exactly 0 (cpukernels' expLimit).
#define EXP_MIN (-708.0)
#define MIN_NORMAL 2.2250738585072014e-308
#else
#define EXP_MIN (-87.0f)
#define MIN_NORMAL 1.1754943508222875e-38f
#endif

#define R_INF ((real)__int_as_float(0x7f800000))

// FOR_N is a grid-stride loop over [0, n).
#define FOR_N(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

__device__ __forceinline__ float r_exp(float x) { return expf(x); }
__device__ __forceinline__ double r_exp(double x) { return exp(x); }
__device__ __forceinline__ float r_log(float x) { return logf(x); }
__device__ __forceinline__ double r_log(double x) { return log(x); }
__device__ __forceinline__ float r_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double r_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float r_erfc(float x) { return erfcf(x); }
__device__ __forceinline__ double r_erfc(double x) { return erfc(x); }
__device__ __forceinline__ float r_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double r_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float r_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double r_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float r_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double r_abs(double x) { return fabs(x); }

// r_expc is exp(x), exactly 0 below EXP_MIN (NaN propagates).
__device__ __forceinline__ real r_expc(real x) { return x < (real)EXP_MIN ? (real)0 : r_exp(x); }

// r_sigmoid is 1/(1+exp(−x)) without overflow for large |x| (cpukernels'
// sigmoid); NaN propagates.
__device__ __forceinline__ real r_sigmoid(real x) {
    if (x >= (real)0) return (real)1 / ((real)1 + r_expc(-x));
    const real e = r_expc(x);
    return e / ((real)1 + e);
}

// r_softplus is torch's softplus: x above 20, else log(1 + exp(x)).
__device__ __forceinline__ real r_softplus(real x) { return x > (real)20 ? x : r_log1p(r_expc(x)); }

// softplus_dt is a step size dt + bias (raw), softplus'ed when asked as
// Mamba does, writing d(result)/d(raw) to *sp (the selective scan's δ,
// SSD's dt).
__device__ __forceinline__ real softplus_dt(real raw, i64 softplus, real* sp) {
    if (softplus && raw <= (real)20) {
        *sp = r_sigmoid(raw);
        return r_log1p(r_expc(raw));
    }
    *sp = (real)1;
    return raw;
}

// flush gives 0 where v would be subnormal (docs/DESIGN.md "Subnormal floats").
__device__ __forceinline__ real flush(real v) { return r_abs(v) < (real)MIN_NORMAL ? (real)0 : v; }

// nanmax is max(a, b) that returns NaN when either is NaN, as Go's max.
__device__ __forceinline__ real nanmax(real a, real b) { return (a != a || a > b) ? a : b; }

__device__ __forceinline__ i64 imin(i64 a, i64 b) { return a < b ? a : b; }
__device__ __forceinline__ i64 imax(i64 a, i64 b) { return a > b ? a : b; }

// TILE_LB is how many elements a thread loads per round in tile_batch.
#define TILE_LB 8

// tile_batch walks i over [0, total) in block-stride order, TILE_LB
// elements a thread at a time: load(i, j) for all of them first, then
// use(i, j), so that their global loads are in flight together (one
// memory latency per round instead of one per element). j < TILE_LB
// indexes the caller's register arrays.
template <class Load, class Use>
__device__ __forceinline__ void tile_batch(int total, Load load, Use use) {
    for (int i0 = threadIdx.x; i0 < total; i0 += TILE_LB * (int)blockDim.x) {
#pragma unroll
        for (int j = 0; j < TILE_LB; j++) {
            const int i = i0 + j * (int)blockDim.x;
            if (i < total) load(i, j);
        }
#pragma unroll
        for (int j = 0; j < TILE_LB; j++) {
            const int i = i0 + j * (int)blockDim.x;
            if (i < total) use(i, j);
        }
    }
}

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ real warp_max(real v) {
    for (int o = 16; o > 0; o >>= 1) v = nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// lane_sum adds v over aligned groups of NS lanes (NS a power of two ≤ 32),
// every lane of a group getting the group's sum.
__device__ __forceinline__ real lane_sum(real v, int NS) {
    for (int o = NS >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// block_sum returns the sum of v over the block to every thread; sh holds
// 32 doubles of shared memory. All threads of the block must call it.
__device__ double block_sum(double v, double* sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); // sh may still be read by a previous call
    if (lane == 0) sh[w] = v;
    __syncthreads();
    return warp_sum(lane < nw ? sh[lane] : 0.0);
}

// block_max is block_sum's maximum (NaN wins); sh holds 32 reals.
__device__ real block_max(real v, real* sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    return warp_max(lane < nw ? sh[lane] : -R_INF);
}
