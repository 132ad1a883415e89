// Elementwise ops and activations (cpukernels/elementwise.go). Grid-stride
// loops over n elements; every op reads and writes index i only, so out may
// alias an input.
//
// Operands are activations (act_t): in the bfloat16 build every operand is
// bfloat16, loaded exactly, computed in float and rounded once when
// stored. An op whose operands mix float32 and bfloat16 runs the *_mixed
// kernels of the bfloat16 build instead (end of this file).
//
// In the bfloat16 build the one-type kernels walk 8 elements (16 bytes of
// each operand) a thread when every pointer is 16-byte aligned (the
// allocator's buffers are; a view need not be): the group loop covers
// [0, s = n rounded down to 8) and the scalar loop FOR_FROM(i, s, n) the
// rest, or everything when a pointer is unaligned. In the float builds s is
// 0 and the scalar loop is the whole kernel.

// FOR_FROM is FOR_N over [s, n).
#define FOR_FROM(i, s, n) \
    for (i64 i = (s) + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

#if ACT_IS_BF16
// K8 loops k over a group's 8 elements, unrolled (the arrays stay in
// registers).
#define K8 _Pragma("unroll") for (int k = 0; k < 8; k++)
#endif

extern "C" __global__ void add(act_t* out, const act_t* a, const act_t* b, i64 n) {
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(out) && al16(a) && al16(b)) {
        s = n / 8 * 8;
        FOR_N(j, n / 8) {
            float x[8], y[8];
            ld8(a, j, x);
            ld8(b, j, y);
            K8 x[k] += y[k];
            st8(out, j, x);
        }
    }
#endif
    FOR_FROM(i, s, n) out[i] = a[i] + b[i];
}

extern "C" __global__ void mul(act_t* out, const act_t* a, const act_t* b, i64 n) {
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(out) && al16(a) && al16(b)) {
        s = n / 8 * 8;
        FOR_N(j, n / 8) {
            float x[8], y[8];
            ld8(a, j, x);
            ld8(b, j, y);
            K8 x[k] *= y[k];
            st8(out, j, x);
        }
    }
#endif
    FOR_FROM(i, s, n) out[i] = a[i] * b[i];
}

// mul_backward: da += g⊙b, db += g⊙a; da or db may be null.
extern "C" __global__ void mul_backward(act_t* da, act_t* db, const act_t* a, const act_t* b, const act_t* g, i64 n) {
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(da) && al16(db) && al16(a) && al16(b) && al16(g)) {
        s = n / 8 * 8;
        FOR_N(j, n / 8) {
            float gv[8], v[8], d[8];
            ld8(g, j, gv);
            if (da) {
                ld8(b, j, v);
                ld8(da, j, d);
                K8 d[k] += gv[k] * v[k];
                st8(da, j, d);
            }
            if (db) {
                ld8(a, j, v);
                ld8(db, j, d);
                K8 d[k] += gv[k] * v[k];
                st8(db, j, d);
            }
        }
    }
#endif
    FOR_FROM(i, s, n) {
        const real gi = g[i];
        if (da) da[i] += gi * b[i];
        if (db) db[i] += gi * a[i];
    }
}

// axpy: y += alpha·x, alpha rounded to real first (as cpukernels).
extern "C" __global__ void axpy(act_t* y, const act_t* x, double alpha, i64 n) {
    const real a = (real)alpha;
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(y) && al16(x)) {
        s = n / 8 * 8;
        FOR_N(j, n / 8) {
            float yv[8], xv[8];
            ld8(y, j, yv);
            ld8(x, j, xv);
            K8 yv[k] += a * xv[k];
            st8(y, j, yv);
        }
    }
#endif
    FOR_FROM(i, s, n) y[i] += a * x[i];
}

extern "C" __global__ void scale(act_t* x, double factor, i64 n) {
    const real a = (real)factor;
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(x)) {
        s = n / 8 * 8;
        FOR_N(j, n / 8) {
            float v[8];
            ld8(x, j, v);
            K8 v[k] *= a;
            st8(x, j, v);
        }
    }
#endif
    FOR_FROM(i, s, n) x[i] *= a;
}

extern "C" __global__ void fill(real* x, double v, i64 n) {
    const real a = (real)v;
    FOR_N(i, n) x[i] = a;
}

// scale_block: C[off + r·ld + c] = beta·C (0 when beta is 0, NaNs included)
// over a rows×cols block; the GEMM's K = 0 or Alpha = 0 path.
extern "C" __global__ void scale_block(act_t* c, i64 off, i64 ld, i64 rows, i64 cols, double beta) {
    const real b = (real)beta;
    FOR_N(e, rows * cols) {
        act_t* p = c + off + (e / cols) * ld + e % cols;
        *p = beta == 0.0 ? (real)0 : (real)*p * b;
    }
}

// add_bias: out[r, c] = x[r, c] + bias[c].
extern "C" __global__ void add_bias(act_t* out, const act_t* x, const act_t* bias, i64 rows, i64 cols) {
    const i64 n = rows * cols;
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(out) && al16(x)) {
        s = n / 8 * 8;
        FOR_N(j, n / 8) {
            float v[8];
            ld8(x, j, v);
            i64 c = 8 * j % cols;
            K8 {
                v[k] += bias[c];
                if (++c == cols) c = 0;
            }
            st8(out, j, v);
        }
    }
#endif
    FOR_FROM(i, s, n) out[i] = x[i] + bias[i % cols];
}

// sigmoid_ is 1/(1+exp(−x)) without overflow for large |x|.
__device__ __forceinline__ real sigmoid_(real x) {
    if (x >= 0) return (real)1 / ((real)1 + r_exp(-x));
    const real e = r_expc(x);
    return e / ((real)1 + e);
}

#define INV_SQRT2 ((real)0.70710678118654752440)
#define INV_SQRT2PI ((real)0.3989422804014327)
#define GELU_C ((real)0.7978845608028654)
#define GELU_K ((real)0.044715)

// Activation kinds are nn.Activation's values: Identity 0, ReLU 1, GELU 2,
// GELUTanh 3, SiLU 4, Sigmoid 5, Tanh 6, Softplus 7, Exp 8.
__device__ __forceinline__ real act_f(i64 kind, real x) {
    switch (kind) {
    case 1: return (x != x) ? x : (x > 0 ? x : (real)0);
    case 2: return (real)0.5 * x * r_erfc(-x * INV_SQRT2);
    case 3: return x * sigmoid_((real)2 * GELU_C * (x + GELU_K * x * x * x));
    case 4: return x * sigmoid_(x);
    case 5: return sigmoid_(x);
    case 6: return r_tanh(x);
    case 7: return x > (real)20 ? x : r_log1p(r_expc(x));
    case 8: return r_expc(x);
    }
    return x;
}

__device__ __forceinline__ real act_df(i64 kind, real x) {
    switch (kind) {
    case 2: return (real)0.5 * r_erfc(-x * INV_SQRT2) + x * INV_SQRT2PI * r_expc((real)-0.5 * x * x);
    case 3: {
        const real s = sigmoid_((real)2 * GELU_C * (x + GELU_K * x * x * x));
        return s + (real)2 * x * s * ((real)1 - s) * GELU_C * ((real)1 + (real)3 * GELU_K * x * x);
    }
    case 4: {
        const real s = sigmoid_(x);
        return s * ((real)1 + x * ((real)1 - s));
    }
    case 5: {
        const real s = sigmoid_(x);
        return s * ((real)1 - s);
    }
    case 6: {
        const real t = r_tanh(x);
        return (real)1 - t * t;
    }
    case 7: return x > (real)20 ? (real)1 : sigmoid_(x);
    case 8: return r_expc(x);
    }
    return (real)1;
}

// ACT_CASES stamps one loop LOOP (a grid-stride loop header) per
// activation kind, so the branch on kind is taken once per thread, not once
// per element.
#define ACT_CASES(LOOP, BODY)             \
    switch (kind) {                       \
    case 2: LOOP { BODY(2); } break;      \
    case 3: LOOP { BODY(3); } break;      \
    case 4: LOOP { BODY(4); } break;      \
    case 5: LOOP { BODY(5); } break;      \
    case 6: LOOP { BODY(6); } break;      \
    case 7: LOOP { BODY(7); } break;      \
    case 8: LOOP { BODY(8); } break;      \
    }

// act: out = f(x); results that would be subnormal become 0 (Identity is a
// copy and never reaches here; ReLU is exact).
extern "C" __global__ void act(act_t* out, const act_t* x, i64 kind, i64 n) {
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(out) && al16(x)) {
        s = n / 8 * 8;
        if (kind == 1) {
            FOR_N(j, n / 8) {
                float v[8];
                ld8(x, j, v);
                K8 v[k] = act_f(1, v[k]);
                st8(out, j, v);
            }
        } else {
#define ACT_F8(K)                            \
    float v[8];                              \
    ld8(x, j, v);                            \
    K8 v[k] = flush(act_f(K, v[k]));         \
    st8(out, j, v)
            ACT_CASES(FOR_N(j, n / 8), ACT_F8)
#undef ACT_F8
        }
    }
#endif
    if (kind == 1) {
        FOR_FROM(i, s, n) out[i] = act_f(1, x[i]);
        return;
    }
#define ACT_F(K) out[i] = flush(act_f(K, x[i]))
    ACT_CASES(FOR_FROM(i, s, n), ACT_F)
#undef ACT_F
}

// act_backward: dx += f'(x)·dout (ReLU'(0) = 0; ReLU and Identity skip the
// flush, as cpukernels).
extern "C" __global__ void act_backward(act_t* dx, const act_t* x, const act_t* g, i64 kind, i64 n) {
    i64 s = 0;
#if ACT_IS_BF16
    if (al16(dx) && al16(x) && al16(g)) {
        s = n / 8 * 8;
        if (kind == 0 || kind == 1) {
            FOR_N(j, n / 8) {
                float d[8], xv[8], gv[8];
                ld8(dx, j, d);
                ld8(g, j, gv);
                if (kind == 1) ld8(x, j, xv);
                K8 if (kind == 0 || xv[k] > 0) d[k] += gv[k];
                st8(dx, j, d);
            }
        } else {
#define ACT_DF8(K)                                           \
    float d[8], xv[8], gv[8];                                \
    ld8(dx, j, d);                                           \
    ld8(x, j, xv);                                           \
    ld8(g, j, gv);                                           \
    K8 d[k] = flush(d[k] + act_df(K, xv[k]) * gv[k]);        \
    st8(dx, j, d)
            ACT_CASES(FOR_N(j, n / 8), ACT_DF8)
#undef ACT_DF8
        }
    }
#endif
    if (kind == 0) {
        FOR_FROM(i, s, n) dx[i] += g[i];
        return;
    }
    if (kind == 1) {
        FOR_FROM(i, s, n) if (x[i] > 0) dx[i] += g[i];
        return;
    }
#define ACT_DF(K) dx[i] = flush(dx[i] + act_df(K, x[i]) * g[i])
    ACT_CASES(FOR_FROM(i, s, n), ACT_DF)
#undef ACT_DF
}

#if ACT_IS_BF16
// The mixed kernels, for ops whose operands are each float32 or bfloat16 on
// their own (docs/PRECISION.md: a float32 dropout mask times a bfloat16
// activation, a bfloat16 dout summed into a float32 gradient). Bit k of
// `types` is set when the kernel's k-th pointer parameter (from 0, in order)
// is bfloat16. A type is the same for every thread, so the branch in ld and
// st is uniform; values are computed in float and rounded once when stored,
// as in the one-type kernels above.
__device__ __forceinline__ bool is_h(i64 types, int k) { return (types >> k) & 1; }

// ld is element i of p, a bfloat16 buffer when h, else a float32 one.
__device__ __forceinline__ float ld(const void* p, bool h, i64 i) {
    return h ? (float)((const bf16*)p)[i] : ((const float*)p)[i];
}

// st stores v into element i of p (rounded once when h).
__device__ __forceinline__ void st(void* p, bool h, i64 i, float v) {
    if (h) {
        ((bf16*)p)[i] = v;
    } else {
        ((float*)p)[i] = v;
    }
}

extern "C" __global__ void add_mixed(void* out, const void* a, const void* b, i64 types, i64 n) {
    const bool ho = is_h(types, 0), ha = is_h(types, 1), hb = is_h(types, 2);
    FOR_N(i, n) st(out, ho, i, ld(a, ha, i) + ld(b, hb, i));
}

extern "C" __global__ void mul_mixed(void* out, const void* a, const void* b, i64 types, i64 n) {
    const bool ho = is_h(types, 0), ha = is_h(types, 1), hb = is_h(types, 2);
    FOR_N(i, n) st(out, ho, i, ld(a, ha, i) * ld(b, hb, i));
}

extern "C" __global__ void mul_backward_mixed(void* da, void* db, const void* a, const void* b, const void* g, i64 types,
                                              i64 n) {
    const bool hda = is_h(types, 0), hdb = is_h(types, 1), ha = is_h(types, 2), hb = is_h(types, 3),
               hg = is_h(types, 4);
    FOR_N(i, n) {
        const float gi = ld(g, hg, i);
        if (da) st(da, hda, i, ld(da, hda, i) + gi * ld(b, hb, i));
        if (db) st(db, hdb, i, ld(db, hdb, i) + gi * ld(a, ha, i));
    }
}

extern "C" __global__ void axpy_mixed(void* y, const void* x, double alpha, i64 types, i64 n) {
    const bool hy = is_h(types, 0), hx = is_h(types, 1);
    const float a = (float)alpha;
    FOR_N(i, n) st(y, hy, i, ld(y, hy, i) + a * ld(x, hx, i));
}

extern "C" __global__ void add_bias_mixed(void* out, const void* x, const void* bias, i64 types, i64 rows, i64 cols) {
    const bool ho = is_h(types, 0), hx = is_h(types, 1), hb = is_h(types, 2);
    FOR_N(i, rows * cols) st(out, ho, i, ld(x, hx, i) + ld(bias, hb, i % cols));
}

extern "C" __global__ void act_mixed(void* out, const void* x, i64 types, i64 kind, i64 n) {
    const bool ho = is_h(types, 0), hx = is_h(types, 1);
    if (kind == 1) {
        FOR_N(i, n) st(out, ho, i, act_f(1, ld(x, hx, i)));
        return;
    }
#define ACT_F(K) st(out, ho, i, flush(act_f(K, ld(x, hx, i))))
    ACT_CASES(FOR_N(i, n), ACT_F)
#undef ACT_F
}

extern "C" __global__ void act_backward_mixed(void* dx, const void* x, const void* g, i64 types, i64 kind, i64 n) {
    const bool hd = is_h(types, 0), hx = is_h(types, 1), hg = is_h(types, 2);
    if (kind == 0) {
        FOR_N(i, n) st(dx, hd, i, ld(dx, hd, i) + ld(g, hg, i));
        return;
    }
    if (kind == 1) {
        FOR_N(i, n) if (ld(x, hx, i) > 0) st(dx, hd, i, ld(dx, hd, i) + ld(g, hg, i));
        return;
    }
#define ACT_DF(K) st(dx, hd, i, flush(ld(dx, hd, i) + act_df(K, ld(x, hx, i)) * ld(g, hg, i)))
    ACT_CASES(FOR_N(i, n), ACT_DF)
#undef ACT_DF
}
#endif
