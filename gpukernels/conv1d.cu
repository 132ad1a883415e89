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
// state[r, S + j] below 0 (zeros without a state).
__device__ __forceinline__ real conv_at(const act_t* xr, const real* sr, i64 S, i64 j) {
    if (j >= 0) return xr[j];
    return sr ? sr[S + j] : (real)0;
}

// conv1d_fwd: out[r, t] = act(bias[c] + Σ_k w[c, k]·x[r, t − W + 1 + k]).
extern "C" __global__ void conv1d_fwd(act_t* out, const act_t* x, const real* w, const real* bias, const real* state,
                                      i64 rows, i64 C, i64 L, i64 W, i64 silu) {
    const i64 S = W - 1;
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 c = r % C;
        const act_t* xr = x + r * L;
        const real* wr = w + c * W;
        const real* sr = state ? state + r * S : nullptr;
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
extern "C" __global__ void conv1d_state(real* state, const act_t* x, i64 rows, i64 L, i64 S) {
    FOR_N(r, rows) {
        real* sr = state + r * S;
        const act_t* xr = x + r * L;
        for (i64 j = 0; j < S; j++) sr[j] = (L + j < S) ? sr[L + j] : (real)xr[L + j - S];
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
            for (i64 k = 0; k < W; k++) p += wr[k] * conv_at(xr, nullptr, S, t - S + k);
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
