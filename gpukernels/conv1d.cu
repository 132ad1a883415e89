// Causal depthwise Conv1D (cpukernels/conv1d.go) over x (B, C, L) with
// weight (C, W), optional bias (C), activation identity or SiLU, and an
// optional carried state (B, C, W−1) holding the inputs before t = 0.
//
// The forward gives a thread to an output element: blockIdx.y walks the
// rows (b, c), the threads of a block consecutive t of one row, so the W
// reads of every window are coalesced across the warp (and the overlapping
// windows come from L1). The weight gradient is a per-channel reduction
// over (b, t): a block per channel, summed in double with block_sum (a
// fixed order, so the result is the same run to run).

// conv_at is x[r, j] of the row prefixed by its carried inputs: j ≥ −S,
// state[r, S + j] below 0 (zeros without a state). The state is real or,
// with stbf, bfloat16 (state_ref).
__device__ __forceinline__ real conv_at(const act_t* xr, state_ref sr, i64 S, i64 j) {
    if (j >= 0) return xr[j];
    return sr ? sr[S + j] : (real)0;
}

// conv1d_fwd: out[r, t] = act(bias[c] + Σ_k w[c, k]·x[r, t − W + 1 + k]).
extern "C" __global__ void conv1d_fwd(act_t* out, const act_t* x, const real* w, const real* bias, const real* state,
                                      i64 stbf, i64 rows, i64 C, i64 L, i64 W, i64 silu) {
    const i64 S = W - 1;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 c = r % C;
        const act_t* xr = x + r * L;
        const real* wr = w + c * W;
        const state_ref sr = state_of(state, stbf).at(r * S);
        const real b0 = bias ? bias[c] : (real)0;
        for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < L; t += (i64)gridDim.x * blockDim.x) {
            real p = b0;
            for (i64 k = 0; k < W; k++) p += wr[k] * conv_at(xr, sr, S, t - S + k);
            if (silu) p *= r_sigmoid(p);
            out[r * L + t] = p;
        }
    }
}

// conv1d_state: state[r, :] ← the last W−1 entries of [state[r, :], x[r, :]]
// (step mode). One thread a row, walking j upwards: it reads state[r, L + j]
// before anything overwrites it (writes go only to indices ≤ j).
extern "C" __global__ void conv1d_state(real* state, i64 stbf, const act_t* x, i64 rows, i64 L, i64 S) {
    FOR_N(r, rows) {
        const state_ref sr = state_of(state, stbf).at(r * S);
        const act_t* xr = x + r * L;
        for (i64 j = 0; j < S; j++) sr.set(j, (L + j < S) ? sr[L + j] : (real)xr[L + j - S]);
    }
}

// conv1d_step: Conv1D at L = 1 (a decoded token), a thread a row: out[r]
// in conv1d_fwd's order of sums, then the state shifted by one
// (conv1d_state at L = 1) in the same pass. conv1d_fwd's grid gives a
// block to a row's positions, so at L = 1 each block would run one thread.
extern "C" __global__ void conv1d_step(act_t* out, real* state, i64 stbf, const act_t* x, const real* w,
                                       const real* bias, i64 rows, i64 C, i64 W, i64 silu) {
    const i64 S = W - 1;
    FOR_N(r, rows) {
        const real* wr = w + (r % C) * W;
        const state_ref sr = state_of(state, stbf).at(r * S);
        const real xv = x[r];
        real p = bias ? bias[r % C] : (real)0;
        for (i64 k = 0; k < S; k++) p += wr[k] * (sr ? sr[k] : (real)0);
        p += wr[S] * xv;
        if (silu) p *= r_sigmoid(p);
        out[r] = p;
        if (sr && S > 0) {
            for (i64 j = 0; j + 1 < S; j++) sr.set(j, sr[j + 1]);
            sr.set(S - 1, xv);
        }
    }
}

// conv1d_dp: dp = dout·SiLU'(p) with p the recomputed pre-activation (zero
// initial state): SiLU'(p) = σ(p)·(1 + p·(1 − σ(p))).
extern "C" __global__ void conv1d_dp(real* dp, const act_t* x, const real* w, const real* bias, const act_t* dout,
                                     i64 rows, i64 C, i64 L, i64 W) {
    const i64 S = W - 1;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 c = r % C;
        const act_t* xr = x + r * L;
        const real* wr = w + c * W;
        const real b0 = bias ? bias[c] : (real)0;
        for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < L; t += (i64)gridDim.x * blockDim.x) {
            real p = b0;
            for (i64 k = 0; k < W; k++) p += wr[k] * conv_at(xr, state_of(nullptr, 0), S, t - S + k);
            const real s = r_sigmoid(p);
            dp[r * L + t] = dout[r * L + t] * s * ((real)1 + p * ((real)1 - s));
        }
    }
}

// The backward kernels read the gradient of the pre-activation, g: the
// float scratch dp that conv1d_dp wrote (SiLU), or dout itself (identity,
// an activation's gradient). Each kernel takes both pointers and runs its
// body on the one given (dp when not null), so the loops read one type.

// conv1d_dx: dx[r, u] += Σ_k w[c, k]·g[r, u + W − 1 − k]  (g is 0 past L).
template <class G>
__device__ __forceinline__ void conv1d_dx_body(act_t* dx, const G* g, const real* w, i64 rows, i64 C, i64 L, i64 W) {
    const i64 S = W - 1;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const G* dr = g + r * L;
        const real* wr = w + (r % C) * W;
        for (i64 u = (i64)blockIdx.x * blockDim.x + threadIdx.x; u < L; u += (i64)gridDim.x * blockDim.x) {
            real s = 0;
            for (i64 k = 0; k < W; k++) {
                const i64 t = u + S - k;
                if (t < L) s += wr[k] * (real)dr[t];
            }
            dx[r * L + u] += s;
        }
    }
}

extern "C" __global__ void conv1d_dx(act_t* dx, const real* dp, const act_t* dout, const real* w, i64 rows, i64 C,
                                     i64 L, i64 W) {
    if (dp) conv1d_dx_body(dx, dp, w, rows, C, L, W);
    else conv1d_dx_body(dx, dout, w, rows, C, L, W);
}

// conv1d_dw: a block per channel c, for each tap k,
//
//	dw[c, k] += Σ_{b,t} g[b, c, t]·x[b, c, t − W + 1 + k]    dbias[c] += Σ_{b,t} g[b, c, t]
//
// in one pass over the channel's rows for up to CONV_TAPS taps (the bias
// counts as tap W), each thread summing its share in registers, then one
// block_sum per tap (a fixed order).
#define CONV_TAPS 8
template <class G>
__device__ __forceinline__ void conv1d_dw_body(real* dw, real* dbias, const act_t* x, const G* g, i64 B, i64 C, i64 L,
                                               i64 W, double* sh) {
    const i64 S = W - 1;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        for (i64 k0 = 0; k0 <= W; k0 += CONV_TAPS) {
            double acc[CONV_TAPS];
#pragma unroll
            for (int j = 0; j < CONV_TAPS; j++) acc[j] = 0;
            for (i64 b = 0; b < B; b++) {
                const act_t* xr = x + (b * C + c) * L;
                const G* gr = g + (b * C + c) * L;
                for (i64 t = threadIdx.x; t < L; t += blockDim.x) {
                    const double gt = (double)(real)gr[t];
#pragma unroll
                    for (int j = 0; j < CONV_TAPS; j++) {
                        const i64 k = k0 + j, idx = t - S + k;
                        if (k == W) acc[j] += gt;
                        else if (k < W && idx >= 0) acc[j] += gt * (double)(real)xr[idx];
                    }
                }
            }
            for (int j = 0; j < CONV_TAPS && k0 + j <= W; j++) {
                const double s = block_sum(acc[j], sh);
                const i64 k = k0 + j;
                if (threadIdx.x == 0) {
                    if (k == W) {
                        if (dbias) dbias[c] = (real)((double)dbias[c] + s);
                    } else if (dw) {
                        dw[c * W + k] = (real)((double)dw[c * W + k] + s);
                    }
                }
            }
        }
    }
}

extern "C" __global__ void conv1d_dw(real* dw, real* dbias, const act_t* x, const real* dp, const act_t* dout, i64 B,
                                     i64 C, i64 L, i64 W) {
    __shared__ double sh[32];
    if (dp) conv1d_dw_body(dw, dbias, x, dp, B, C, L, W, sh);
    else conv1d_dw_body(dw, dbias, x, dout, B, C, L, W, sh);
}

// The tiled kernels (Backend.conv1dTiled; NOTES.md "Conv1D"): W ≤ 4, a
// thread owns CONV_CT consecutive positions of one row, read and written
// with 16-byte loads and stores where the run is whole and aligned, its W−1
// (backward: 2(W−1)) neighbours read one by one (from L1: the neighbouring
// threads read them too). blockIdx.x tiles the row, blockIdx.y walks the
// rows with a grid stride.

// conv_vec is 16 bytes of activations: one vector load or store.
union conv_vec {
    uint4 u;
    act_t e[16 / sizeof(act_t)];
};

// conv_ld reads the n ≤ CONV_CT elements at p into v (zeros past n).
__device__ __forceinline__ void conv_ld(const act_t* p, i64 n, real* v) {
    constexpr int per = 16 / (int)sizeof(act_t);
    if (n == CONV_CT && al16(p)) {
#pragma unroll
        for (int j = 0; j < CONV_CT / per; j++) {
            conv_vec w;
            w.u = ((const uint4*)p)[j];
#pragma unroll
            for (int k = 0; k < per; k++) v[j * per + k] = (real)w.e[k];
        }
        return;
    }
#pragma unroll
    for (int k = 0; k < CONV_CT; k++) v[k] = k < n ? (real)p[k] : (real)0;
}

// conv_st writes the first n ≤ CONV_CT of v to p, each rounded once.
__device__ __forceinline__ void conv_st(act_t* p, i64 n, const real* v) {
    constexpr int per = 16 / (int)sizeof(act_t);
    if (n == CONV_CT && al16(p)) {
#pragma unroll
        for (int j = 0; j < CONV_CT / per; j++) {
            conv_vec w;
#pragma unroll
            for (int k = 0; k < per; k++) w.e[k] = (act_t)v[j * per + k];
            ((uint4*)p)[j] = w.u;
        }
        return;
    }
#pragma unroll
    for (int k = 0; k < CONV_CT; k++)
        if (k < n) p[k] = (act_t)v[k];
}

// conv1d_fwd_tiled<W>: conv1d_fwd, the same sums in the same order.
template <int W>
__device__ __forceinline__ void conv1d_fwd_tiled(act_t* out, const act_t* x, const real* w, const real* bias,
                                                 const real* state, i64 stbf, i64 rows, i64 C, i64 L, i64 silu) {
    constexpr int S = W - 1;
    const i64 t0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * CONV_CT;
    if (t0 >= L) return;
    const i64 n = L - t0 < CONV_CT ? L - t0 : CONV_CT;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 c = r % C;
        const act_t* xr = x + r * L;
        const state_ref sr = state_of(state, stbf).at(r * S);
        real wk[W];
#pragma unroll
        for (int k = 0; k < W; k++) wk[k] = w[c * W + k];
        const real b0 = bias ? bias[c] : (real)0;
        real xv[S + CONV_CT]; // xv[m] = x[r, t0 − S + m]
#pragma unroll
        for (int m = 0; m < S; m++) xv[m] = conv_at(xr, sr, S, t0 - S + m);
        conv_ld(xr + t0, n, xv + S);
        real o[CONV_CT];
#pragma unroll
        for (int i = 0; i < CONV_CT; i++) {
            real p = b0;
#pragma unroll
            for (int k = 0; k < W; k++) p += wk[k] * xv[i + k];
            if (silu) p *= r_sigmoid(p);
            o[i] = p;
        }
        conv_st(out + r * L + t0, n, o);
    }
}

// conv1d_bwd_tiled<W>: conv1d_dp, conv1d_dx and the first stage of
// conv1d_dw in one pass, with dp kept in registers. A thread needs dp at
// its positions and the W−1 after them (for dx), so it recomputes p there
// from x over [t0 − S, t0 + CONV_CT + S). dx (when given) gets the same
// sums in the same order as conv1d_dx. With part given, the block's sums
// Σ dp·x[t − S + k] (k < W) and Σ dp (k = W) over its positions, in double,
// go to part[(r·gridDim.x + blockIdx.x)·(W + 1) + k], summed over the rows
// of each channel by conv1d_dw_finish in a fixed order.
template <int W>
__device__ __forceinline__ void conv1d_bwd_tiled(act_t* dx, double* part, const act_t* x, const real* w,
                                                 const real* bias, const act_t* dout, i64 rows, i64 C, i64 L,
                                                 i64 silu, double* sh) {
    constexpr int S = W - 1;
    const i64 t0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * CONV_CT;
    const i64 n = t0 >= L ? 0 : (L - t0 < CONV_CT ? L - t0 : CONV_CT);
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 c = r % C;
        double acc[W + 1];
#pragma unroll
        for (int k = 0; k <= W; k++) acc[k] = 0;
        if (n > 0) {
            const act_t* xr = x + r * L;
            const act_t* gr = dout + r * L;
            real wk[W];
#pragma unroll
            for (int k = 0; k < W; k++) wk[k] = w[c * W + k];
            const real b0 = bias ? bias[c] : (real)0;
            // xv[m] = x[r, t0 − 2S + m], zero outside [0, L).
            real xv[2 * S + CONV_CT + S];
#pragma unroll
            for (int m = 0; m < 2 * S; m++) {
                const i64 t = t0 - 2 * S + m;
                xv[m] = t >= 0 ? (real)xr[t] : (real)0;
            }
            conv_ld(xr + t0, n, xv + 2 * S);
#pragma unroll
            for (int m = 0; m < S; m++) {
                const i64 t = t0 + CONV_CT + m;
                xv[2 * S + CONV_CT + m] = (n == CONV_CT && t < L) ? (real)xr[t] : (real)0;
            }
            // g[m] = dp at t0 − S + m for m in [S, 2S + CONV_CT): the
            // positions t0 .. t0 + CONV_CT + S − 1 (0 past L).
            real gv[CONV_CT];
            conv_ld(gr + t0, n, gv);
            real g[CONV_CT + S];
#pragma unroll
            for (int m = 0; m < CONV_CT + S; m++) {
                const i64 t = t0 + m;
                real d;
                if (m < CONV_CT) d = gv[m];
                else d = (n == CONV_CT && t < L) ? (real)gr[t] : (real)0;
                if (silu) {
                    real p = b0;
#pragma unroll
                    for (int k = 0; k < W; k++) p += wk[k] * xv[S + m + k];
                    const real s = r_sigmoid(p);
                    d = d * s * ((real)1 + p * ((real)1 - s));
                }
                g[m] = t < L ? d : (real)0;
            }
            if (dx) {
                real dv[CONV_CT];
                conv_ld(dx + r * L + t0, n, dv);
#pragma unroll
                for (int i = 0; i < CONV_CT; i++) {
                    real s = 0;
#pragma unroll
                    for (int k = 0; k < W; k++) s += wk[k] * g[i + S - k];
                    dv[i] += s;
                }
                conv_st(dx + r * L + t0, n, dv);
            }
            if (part) {
#pragma unroll
                for (int i = 0; i < CONV_CT; i++) {
                    const double gi = (double)g[i];
#pragma unroll
                    for (int k = 0; k < W; k++) acc[k] += gi * (double)xv[S + i + k];
                    acc[W] += gi;
                }
            }
        }
        if (part) {
#pragma unroll
            for (int k = 0; k <= W; k++) {
                const double s = block_sum(acc[k], sh);
                if (threadIdx.x == 0) part[(r * gridDim.x + blockIdx.x) * (W + 1) + k] = s;
            }
        }
    }
}

#define CONV1D_TILED(W)                                                                                                  \
    extern "C" __global__ void conv1d_fwd_tiled##W(act_t* out, const act_t* x, const real* w, const real* bias,          \
                                                    const real* state, i64 stbf, i64 rows, i64 C, i64 L, i64 silu) {     \
        conv1d_fwd_tiled<W>(out, x, w, bias, state, stbf, rows, C, L, silu);                                             \
    }                                                                                                                    \
    extern "C" __global__ void conv1d_bwd_tiled##W(act_t* dx, double* part, const act_t* x, const real* w,              \
                                                    const real* bias, const act_t* dout, i64 rows, i64 C, i64 L,         \
                                                    i64 silu) {                                                          \
        __shared__ double sh[32];                                                                                        \
        conv1d_bwd_tiled<W>(dx, part, x, w, bias, dout, rows, C, L, silu, sh);                                           \
    }
CONV1D_TILED(1)
CONV1D_TILED(2)
CONV1D_TILED(3)
CONV1D_TILED(4)

// conv1d_dw_finish: for channel c and tap k (k = W: the bias),
// dw[c, k] (dbias[c]) += Σ_b Σ_seg part[((b·C + c)·nseg + seg)·(W + 1) + k],
// b outer, seg inner: a fixed order.
extern "C" __global__ void conv1d_dw_finish(real* dw, real* dbias, const double* part, i64 B, i64 C, i64 nseg, i64 W) {
    FOR_N(i, C * (W + 1)) {
        const i64 c = i / (W + 1), k = i % (W + 1);
        double s = 0;
        for (i64 b = 0; b < B; b++)
            for (i64 seg = 0; seg < nseg; seg++) s += part[((b * C + c) * nseg + seg) * (W + 1) + k];
        if (k == W) {
            if (dbias) dbias[c] = (real)((double)dbias[c] + s);
        } else if (dw) {
            dw[c * W + k] = (real)((double)dw[c * W + k] + s);
        }
    }
}
