// Elementwise ops and activations (cpukernels/elementwise.go). Grid-stride
// loops over n elements; every op reads and writes index i only, so out may
// alias an input.

extern "C" __global__ void add(real* out, const real* a, const real* b, i64 n) {
    FOR_N(i, n) out[i] = a[i] + b[i];
}

extern "C" __global__ void mul(real* out, const real* a, const real* b, i64 n) {
    FOR_N(i, n) out[i] = a[i] * b[i];
}

// mul_backward: da += g⊙b, db += g⊙a; da or db may be null.
extern "C" __global__ void mul_backward(real* da, real* db, const real* a, const real* b, const real* g, i64 n) {
    FOR_N(i, n) {
        const real gi = g[i];
        if (da) da[i] += gi * b[i];
        if (db) db[i] += gi * a[i];
    }
}

// axpy: y += alpha·x, alpha rounded to real first (as cpukernels).
extern "C" __global__ void axpy(real* y, const real* x, double alpha, i64 n) {
    const real a = (real)alpha;
    FOR_N(i, n) y[i] += a * x[i];
}

extern "C" __global__ void scale(real* x, double s, i64 n) {
    const real a = (real)s;
    FOR_N(i, n) x[i] *= a;
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
extern "C" __global__ void add_bias(real* out, const real* x, const real* bias, i64 rows, i64 cols) {
    FOR_N(i, rows * cols) out[i] = x[i] + bias[i % cols];
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

// ACT_CASES stamps one grid-stride loop per activation kind, so the branch
// on kind is taken once per thread, not once per element.
#define ACT_CASES(BODY)                        \
    switch (kind) {                            \
    case 2: FOR_N(i, n) { BODY(2); } break;    \
    case 3: FOR_N(i, n) { BODY(3); } break;    \
    case 4: FOR_N(i, n) { BODY(4); } break;    \
    case 5: FOR_N(i, n) { BODY(5); } break;    \
    case 6: FOR_N(i, n) { BODY(6); } break;    \
    case 7: FOR_N(i, n) { BODY(7); } break;    \
    case 8: FOR_N(i, n) { BODY(8); } break;    \
    }

// act: out = f(x); results that would be subnormal become 0 (Identity is a
// copy and never reaches here; ReLU is exact).
extern "C" __global__ void act(real* out, const real* x, i64 kind, i64 n) {
    if (kind == 1) {
        FOR_N(i, n) out[i] = act_f(1, x[i]);
        return;
    }
#define ACT_F(K) out[i] = flush(act_f(K, x[i]))
    ACT_CASES(ACT_F)
#undef ACT_F
}

// act_backward: dx += f'(x)·dout (ReLU'(0) = 0; ReLU and Identity skip the
// flush, as cpukernels).
extern "C" __global__ void act_backward(real* dx, const real* x, const real* g, i64 kind, i64 n) {
    if (kind == 0) {
        FOR_N(i, n) dx[i] += g[i];
        return;
    }
    if (kind == 1) {
        FOR_N(i, n) if (x[i] > 0) dx[i] += g[i];
        return;
    }
#define ACT_DF(K) dx[i] = flush(dx[i] + act_df(K, x[i]) * g[i])
    ACT_CASES(ACT_DF)
#undef ACT_DF
}
