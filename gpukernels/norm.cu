// RMSNorm and LayerNorm (cpukernels/norm.go), statistics in double. The
// weight and bias gradients are column sums over rows: reduce.cu's
// col_partial / col_finish.
//
// x, out, dout (g) and dx are activations (act_t: bf16 in the bfloat16
// build); w, b, mean and rstd stay real (float32 under bf16). A bf16 dx is
// accumulated by load, add in float, round once.
//
// Two forms of each kernel. The general one gives a block to a row
// (grid-stride over rows) and reduces through block_sum. The *_warp one
// (float32 and bfloat16 builds, d % 4 == 0, d ≤ 1024, the usual model
// widths) gives a warp to a row: the row stays in registers as up to 8
// float4 per lane (loaded as float4, or as 4 packed bf16 in the bfloat16
// build), so it is read from memory once with 8 loads in flight per lane,
// and the reductions are warp shuffles with no block barrier. (A register
// cache in the block form was measured slower: its register use cut the
// occupancy that the barrier-bound block form depends on.)

extern "C" __global__ void rmsnorm_fwd(act_t* out, real* rstd, const act_t* x, const real* w, i64 rows, i64 d,
                                        double eps) {
    __shared__ double sh[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const act_t* xr = x + r * d;
        act_t* orow = out + r * d;
        double ss = 0;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            const double v = (double)xr[c];
            ss += v * v;
        }
        ss = block_sum(ss, sh);
        const double s = 1.0 / sqrt(ss / (double)d + eps);
        if (threadIdx.x == 0) rstd[r] = (real)s;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) orow[c] = (real)((double)xr[c] * s * (double)w[c]);
    }
}

// rmsnorm_bwd_dx: dx[r,c] += s·w[c]·g[r,c] − s³/d·x[r,c]·Σ_k g[r,k]·w[k]·x[r,k].
extern "C" __global__ void rmsnorm_bwd_dx(act_t* dx, const act_t* x, const real* w, const real* rstd, const act_t* g,
                                          i64 rows, i64 d) {
    __shared__ double sh[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const act_t *xr = x + r * d, *gr = g + r * d;
        act_t* dr = dx + r * d;
        double dot = 0;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) dot += (double)gr[c] * (double)w[c] * (double)xr[c];
        dot = block_sum(dot, sh);
        const double s = (double)rstd[r];
        const double k = s * s * s * dot / (double)d;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x)
            dr[c] += (real)(s * (double)w[c] * (double)gr[c] - k * (double)xr[c]);
    }
}

// layernorm_fwd: out = (x − mean)·rstd·w + b (b may be null).
extern "C" __global__ void layernorm_fwd(act_t* out, real* mean, real* rstd, const act_t* x, const real* w,
                                         const real* b, i64 rows, i64 d, double eps) {
    __shared__ double sh[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const act_t* xr = x + r * d;
        act_t* orow = out + r * d;
        double mu = 0;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) mu += (double)xr[c];
        mu = block_sum(mu, sh) / (double)d;
        double ss = 0;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            const double v = (double)xr[c] - mu;
            ss += v * v;
        }
        ss = block_sum(ss, sh);
        const double s = 1.0 / sqrt(ss / (double)d + eps);
        if (threadIdx.x == 0) {
            mean[r] = (real)mu;
            rstd[r] = (real)s;
        }
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            double y = ((double)xr[c] - mu) * s * (double)w[c];
            if (b) y += (double)b[c];
            orow[c] = (real)y;
        }
    }
}

// layernorm_bwd_dx: with x̂ = (x − mean)·s and ĝ = g·w,
// dx += s·(ĝ − Σĝ/d − x̂·Σ(ĝ·x̂)/d).
extern "C" __global__ void layernorm_bwd_dx(act_t* dx, const act_t* x, const real* w, const real* mean,
                                            const real* rstd, const act_t* g, i64 rows, i64 d) {
    __shared__ double sh[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const act_t *xr = x + r * d, *gr = g + r * d;
        act_t* dr = dx + r * d;
        const double mu = (double)mean[r], s = (double)rstd[r];
        double m1 = 0, m2 = 0;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            const double gh = (double)gr[c] * (double)w[c];
            m1 += gh;
            m2 += gh * ((double)xr[c] - mu) * s;
        }
        m1 = block_sum(m1, sh) / (double)d;
        m2 = block_sum(m2, sh) / (double)d;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            const double gh = (double)gr[c] * (double)w[c];
            dr[c] += (real)(s * (gh - m1 - ((double)xr[c] - mu) * s * m2));
        }
    }
}

#if !REAL_IS_DOUBLE
// WPT is the groups of four a lane holds: rows of up to 32·4·WPT = 1024 elements.
#define WPT 8

// WARP_ROWS loops r over the rows of this warp (grid-stride, a warp a row).
#define WARP_ROWS(r)                                                       \
    const int lane = threadIdx.x & 31;                                     \
    const i64 warp0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;   \
    const i64 nwarps = ((i64)gridDim.x * blockDim.x) >> 5;                 \
    const int d4 = (int)(d / 4);                                           \
    for (i64 r = warp0; r < rows; r += nwarps)

// ld4 reads the four activations p[4·c4 .. 4·c4+4) as a float4: one 16-byte
// float4 in the float32 build, four bf16 packed in one 8-byte uint2 in the
// bfloat16 build (element 0 in the low half of .x: little-endian), each
// widened exactly. st4 writes them back, each rounded once to bf16 as the
// bf16 type's assignment does.
__device__ __forceinline__ float4 ld4(const act_t* p, int c4) {
#if ACT_IS_BF16
    const uint2 q = reinterpret_cast<const uint2*>(p)[c4];
    return make_float4(__uint_as_float(q.x << 16), __uint_as_float(q.x & 0xffff0000u), __uint_as_float(q.y << 16),
                       __uint_as_float(q.y & 0xffff0000u));
#else
    return reinterpret_cast<const float4*>(p)[c4];
#endif
}
__device__ __forceinline__ void st4(act_t* p, int c4, float4 v) {
#if ACT_IS_BF16
    uint2 q;
    q.x = (unsigned)bf16_bits(v.x) | ((unsigned)bf16_bits(v.y) << 16);
    q.y = (unsigned)bf16_bits(v.z) | ((unsigned)bf16_bits(v.w) << 16);
    reinterpret_cast<uint2*>(p)[c4] = q;
#else
    reinterpret_cast<float4*>(p)[c4] = v;
#endif
}

// ROW4 loads a row's groups of four c = lane + 32k (zeros past d4) into v.
#define ROW4(v, row)                                                       \
    _Pragma("unroll") for (int k = 0; k < WPT; k++) {                      \
        const int c_ = lane + 32 * k;                                      \
        v[k] = c_ < d4 ? ld4(row, c_) : make_float4(0.f, 0.f, 0.f, 0.f);   \
    }

__device__ __forceinline__ double dot4(const float4& a, const float4& b) {
    return (double)a.x * b.x + (double)a.y * b.y + (double)a.z * b.z + (double)a.w * b.w;
}
__device__ __forceinline__ double dot4w(const float4& a, const float4& b, const float4& w) {
    return (double)a.x * b.x * w.x + (double)a.y * b.y * w.y + (double)a.z * b.z * w.z + (double)a.w * b.w * w.w;
}

extern "C" __global__ void rmsnorm_fwd_warp(act_t* out, float* rstd, const act_t* x, const float* w, i64 rows,
                                            i64 d, double eps) {
    const float4* w4 = reinterpret_cast<const float4*>(w);
    WARP_ROWS(r) {
        float4 v[WPT];
        ROW4(v, x + r * d);
        double ss = 0;
#pragma unroll
        for (int k = 0; k < WPT; k++) ss += dot4(v[k], v[k]);
        ss = warp_sum(ss);
        const double s = 1.0 / sqrt(ss / (double)d + eps);
        if (lane == 0) rstd[r] = (float)s;
        act_t* orow = out + r * d;
#pragma unroll
        for (int k = 0; k < WPT; k++) {
            const int c = lane + 32 * k;
            if (c < d4) {
                const float4 ww = w4[c];
                st4(orow, c,
                    make_float4((float)(v[k].x * s * ww.x), (float)(v[k].y * s * ww.y), (float)(v[k].z * s * ww.z),
                                (float)(v[k].w * s * ww.w)));
            }
        }
    }
}

extern "C" __global__ void rmsnorm_bwd_dx_warp(act_t* dx, const act_t* x, const float* w, const float* rstd,
                                               const act_t* g, i64 rows, i64 d) {
    const float4* w4 = reinterpret_cast<const float4*>(w);
    WARP_ROWS(r) {
        float4 xv[WPT], gv[WPT];
        ROW4(xv, x + r * d);
        ROW4(gv, g + r * d);
        double dot = 0;
#pragma unroll
        for (int k = 0; k < WPT; k++) {
            const int c = lane + 32 * k;
            if (c < d4) dot += dot4w(gv[k], xv[k], w4[c]);
        }
        dot = warp_sum(dot);
        const double s = (double)rstd[r];
        const double k3 = s * s * s * dot / (double)d;
        act_t* drow = dx + r * d;
#pragma unroll
        for (int k = 0; k < WPT; k++) {
            const int c = lane + 32 * k;
            if (c < d4) {
                const float4 ww = w4[c];
                float4 t = ld4(drow, c);
                t.x += (float)(s * ww.x * gv[k].x - k3 * xv[k].x);
                t.y += (float)(s * ww.y * gv[k].y - k3 * xv[k].y);
                t.z += (float)(s * ww.z * gv[k].z - k3 * xv[k].z);
                t.w += (float)(s * ww.w * gv[k].w - k3 * xv[k].w);
                st4(drow, c, t);
            }
        }
    }
}

extern "C" __global__ void layernorm_fwd_warp(act_t* out, float* mean, float* rstd, const act_t* x, const float* w,
                                              const float* b, i64 rows, i64 d, double eps) {
    const float4* w4 = reinterpret_cast<const float4*>(w);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    WARP_ROWS(r) {
        float4 v[WPT];
        ROW4(v, x + r * d);
        double mu = 0;
#pragma unroll
        for (int k = 0; k < WPT; k++) mu += (double)v[k].x + (double)v[k].y + (double)v[k].z + (double)v[k].w;
        mu = warp_sum(mu) / (double)d;
        double ss = 0;
#pragma unroll
        for (int k = 0; k < WPT; k++) {
            if (lane + 32 * k < d4) {
                const double a = v[k].x - mu, bb = v[k].y - mu, c = v[k].z - mu, e = v[k].w - mu;
                ss += a * a + bb * bb + c * c + e * e;
            }
        }
        ss = warp_sum(ss);
        const double s = 1.0 / sqrt(ss / (double)d + eps);
        if (lane == 0) {
            mean[r] = (float)mu;
            rstd[r] = (float)s;
        }
        act_t* orow = out + r * d;
#pragma unroll
        for (int k = 0; k < WPT; k++) {
            const int c = lane + 32 * k;
            if (c < d4) {
                const float4 ww = w4[c];
                const float4 bb = b ? b4[c] : make_float4(0.f, 0.f, 0.f, 0.f);
                st4(orow, c,
                    make_float4((float)((v[k].x - mu) * s * ww.x + bb.x), (float)((v[k].y - mu) * s * ww.y + bb.y),
                                (float)((v[k].z - mu) * s * ww.z + bb.z), (float)((v[k].w - mu) * s * ww.w + bb.w)));
            }
        }
    }
}

extern "C" __global__ void layernorm_bwd_dx_warp(act_t* dx, const act_t* x, const float* w, const float* mean,
                                                 const float* rstd, const act_t* g, i64 rows, i64 d) {
    const float4* w4 = reinterpret_cast<const float4*>(w);
    WARP_ROWS(r) {
        float4 xv[WPT], gv[WPT];
        ROW4(xv, x + r * d);
        ROW4(gv, g + r * d);
        const double mu = (double)mean[r], s = (double)rstd[r];
        double m1 = 0, m2 = 0;
#pragma unroll
        for (int k = 0; k < WPT; k++) {
            const int c = lane + 32 * k;
            if (c < d4) {
                const float4 ww = w4[c];
                const double g0 = (double)gv[k].x * ww.x, g1 = (double)gv[k].y * ww.y, g2 = (double)gv[k].z * ww.z,
                             g3 = (double)gv[k].w * ww.w;
                m1 += g0 + g1 + g2 + g3;
                m2 += (g0 * (xv[k].x - mu) + g1 * (xv[k].y - mu) + g2 * (xv[k].z - mu) + g3 * (xv[k].w - mu)) * s;
            }
        }
        m1 = warp_sum(m1) / (double)d;
        m2 = warp_sum(m2) / (double)d;
        act_t* drow = dx + r * d;
#pragma unroll
        for (int k = 0; k < WPT; k++) {
            const int c = lane + 32 * k;
            if (c < d4) {
                const float4 ww = w4[c];
                float4 t = ld4(drow, c);
                t.x += (float)(s * ((double)gv[k].x * ww.x - m1 - (xv[k].x - mu) * s * m2));
                t.y += (float)(s * ((double)gv[k].y * ww.y - m1 - (xv[k].y - mu) * s * m2));
                t.z += (float)(s * ((double)gv[k].z * ww.z - m1 - (xv[k].z - mu) * s * m2));
                t.w += (float)(s * ((double)gv[k].w * ww.w - m1 - (xv[k].w - mu) * s * m2));
                st4(drow, c, t);
            }
        }
    }
}
#endif
