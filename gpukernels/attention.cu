// Flash-style fused attention (cpukernels/attention.go): q (BH, Lq, Dh),
// k, v (BH, Lk, Dh), causal mask aligned to the end (query i sees key j iff
// j ≤ i + Lk − Lq). No O(L²) memory: a block holds one T×T tile of scores in
// shared memory at a time, T chosen by the launcher (≤ 32) so that the tiles
// fit the device's shared memory for the given Dh.
//
// Shared-memory rows are padded to DP = Dh + 1 elements: threads of a warp
// that read the same column of different rows then hit different banks.
//
// Grid: x = tiles (of queries for the forward and dq, of keys for dk/dv),
// y = (b, h) pairs (grid-stride). Every output row belongs to one block, so
// no atomics are used and results are deterministic.
//
// q, k, v, out, dout and the gradients dq, dk, dv are activations (act_t:
// bf16 in the bfloat16 build); lse, the backward's D (double) and every
// shared-memory tile are real, so a bf16 element is read once into float
// and a result rounded once when written (gradients: load, add, round).

#define DPAD(Dh) ((Dh) + 1)

// attn_lk is the forward's key count: Lk_, or with lkp (AttentionCached's
// filled rows, a position on the device) lkp[0] clamped to [Lq, ldk].
__device__ __forceinline__ i64 attn_lk(i64 Lk_, const real* lkp, i64 Lq, i64 ldk) {
    if (!lkp) return Lk_;
    const i64 n = (i64)lkp[0];
    return n < Lq ? Lq : (n > ldk ? ldk : n);
}

// attn_drop is nn.AttnDrop.Factor for pair index idx = (bh·Lq + i)·Lk + j:
// 1 when dropout is off (thr < 0), else 0 when the top 24 bits of the pair's
// hash (nn.AttnDropHash: splitmix64's output function of seed + idx·γ) are
// below thr, keep = 1/(1−P) otherwise. The generic kernels take the three
// (drop_seed, drop_thr, drop_keep) after their own parameters.
__device__ __forceinline__ real attn_drop(i64 seed, i64 thr, double keep, i64 idx) {
    if (thr < 0) return 1;
    unsigned long long x = (unsigned long long)seed + (unsigned long long)idx * 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (i64)(x >> 40) < thr ? (real)0 : (real)keep;
}

// attn_fwd: for each query row i of the tile, an online softmax over key
// tiles. k and v hold ldk ≥ Lk rows per (b, h), of which the first Lk are
// read (Lk for Attention; a step-mode cache's room for AttentionCached):
//
//	m_new = max(m, max_j s_ij);  p_ij = exp(s_ij − m_new)
//	l = l·exp(m − m_new) + Σ_j p_ij;  O_i = O_i·exp(m − m_new) + Σ_j p_ij·v_j
//
// then out_i = O_i / l and lse_i = m + log l. With dropout, O sums
// p_ij·attn_drop(ij)·v_j while l sums the undropped p_ij.
extern "C" __global__ void attn_fwd(act_t* out, real* lse, const act_t* q, const act_t* k, const act_t* v, i64 BH,
                                    i64 Lq, i64 Lk_, const real* lkp, i64 ldk, i64 Dh, double scale_, i64 causal,
                                    i64 T_, i64 drop_seed, i64 drop_thr, double drop_keep) {
    const i64 Lk = attn_lk(Lk_, lkp, Lq, ldk);
    extern __shared__ double smem_d[];
    const int T = (int)T_, D = (int)Dh, DP = DPAD(D), TP = T + 1;
    real* Qs = (real*)smem_d;
    real* Ks = Qs + T * DP;
    real* Vs = Ks + T * DP;
    real* Os = Vs + T * DP;
    real* S = Os + T * DP;
    real* rm = S + T * TP;
    real* rl = rm + T;
    real* rc = rl + T;
    const real scale = (real)scale_;
    const int tid = threadIdx.x, nt = blockDim.x;
    const i64 i0 = (i64)blockIdx.x * T;
    const int nq = (int)imin(T, Lq - i0);
    const i64 shift = Lk - Lq;
    const i64 jend = causal ? imin(Lk, i0 + nq + shift) : Lk;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        const act_t* qb = q + (bh * Lq + i0) * Dh;
        const act_t* kb = k + bh * ldk * Dh;
        const act_t* vb = v + bh * ldk * Dh;
        for (int e = tid; e < nq * D; e += nt) {
            const int i = e / D, c = e % D;
            Qs[i * DP + c] = qb[e];
            Os[i * DP + c] = 0;
        }
        for (int i = tid; i < T; i += nt) {
            rm[i] = -R_INF;
            rl[i] = 0;
        }
        __syncthreads();
        for (i64 j0 = 0; j0 < jend; j0 += T) {
            const int nk = (int)imin(T, Lk - j0);
            for (int e = tid; e < nk * D; e += nt) {
                const int j = e / D, c = e % D;
                Ks[j * DP + c] = kb[j0 * Dh + e];
                Vs[j * DP + c] = vb[j0 * Dh + e];
            }
            __syncthreads();
            for (int e = tid; e < nq * T; e += nt) {
                const int i = e / T, j = e % T;
                real s = -R_INF;
                if (j < nk && (!causal || j0 + j <= i0 + i + shift)) {
                    const real *qi = Qs + i * DP, *kj = Ks + j * DP;
                    real acc = 0;
                    for (int c = 0; c < D; c++) acc += qi[c] * kj[c];
                    s = scale * acc;
                }
                S[i * TP + j] = s;
            }
            __syncthreads();
            for (int i = tid; i < nq; i += nt) {
                real* Si = S + i * TP;
                const real mold = rm[i];
                real mx = mold;
                for (int j = 0; j < nk; j++) mx = nanmax(mx, Si[j]);
                real corr = 1, sum = 0;
                if (mx == -R_INF) {
                    for (int j = 0; j < nk; j++) Si[j] = 0; // no key visible yet
                } else {
                    corr = r_expc(mold - mx); // 0 while mold is −inf
                    const i64 idx0 = ((bh * Lq + i0 + i) * Lk + j0);
                    for (int j = 0; j < nk; j++) {
                        const real p = r_expc(Si[j] - mx);
                        Si[j] = p * attn_drop(drop_seed, drop_thr, drop_keep, idx0 + j);
                        sum += p;
                    }
                }
                rl[i] = rl[i] * corr + sum;
                rm[i] = mx;
                rc[i] = corr;
            }
            __syncthreads();
            for (int e = tid; e < nq * D; e += nt) {
                const int i = e / D, c = e % D;
                const real* Si = S + i * TP;
                real acc = Os[i * DP + c] * rc[i];
                for (int j = 0; j < nk; j++) acc += Si[j] * Vs[j * DP + c];
                Os[i * DP + c] = acc;
            }
            __syncthreads();
        }
        act_t* ob = out + (bh * Lq + i0) * Dh;
        for (int e = tid; e < nq * D; e += nt) {
            const int i = e / D, c = e % D;
            ob[e] = Os[i * DP + c] / rl[i];
        }
        for (int i = tid; i < nq; i += nt) lse[bh * Lq + i0 + i] = rm[i] + r_log(rl[i]);
        __syncthreads();
    }
}

// attn_bwd_pre: Dr[row] = Σ_c dout[row, c]·out[row, c] in double, one warp
// per row.
extern "C" __global__ void attn_bwd_pre(double* Dr, const act_t* out, const act_t* dout, i64 nrows, i64 Dh) {
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const i64 nwarps = ((i64)gridDim.x * blockDim.x) >> 5;
    const int lane = threadIdx.x & 31;
    for (i64 row = warp; row < nrows; row += nwarps) {
        double s = 0;
        for (i64 c = lane; c < Dh; c += 32) s += (double)dout[row * Dh + c] * (double)out[row * Dh + c];
        s = warp_sum(s);
        if (lane == 0) Dr[row] = s;
    }
}

// bwd_scores fills, for the query tile (Qs, dOs, ls, Ds: nq rows) and key
// tile (Ks, Vs: nk rows) of pair bh, with p = exp(scale·q_i·k_j − lse_i)
// and f = attn_drop(ij), P[i][j] = p·f and dS[i][j] = p·(f·dout_i·v_j − D_i)
// (0 outside the mask or the tile). P may be null (dq needs only dS).
__device__ __forceinline__ void bwd_scores(real* P, real* dS, const real* Qs, const real* dOs, const real* Ks,
                                           const real* Vs, const real* ls, const double* Ds, int nq, int nk, int T,
                                           int D, int DP, real scale, i64 i0, i64 j0, i64 shift, i64 causal, i64 bh,
                                           i64 Lq, i64 Lk, i64 drop_seed, i64 drop_thr, double drop_keep) {
    const int TP = T + 1;
    for (int e = threadIdx.x; e < T * T; e += blockDim.x) {
        const int i = e / T, j = e % T;
        real p = 0, ds = 0;
        if (i < nq && j < nk && (!causal || j0 + j <= i0 + i + shift)) {
            const real *qi = Qs + i * DP, *kj = Ks + j * DP, *gi = dOs + i * DP, *vj = Vs + j * DP;
            real s = 0, dp = 0;
            for (int c = 0; c < D; c++) {
                s += qi[c] * kj[c];
                dp += gi[c] * vj[c];
            }
            const real f = attn_drop(drop_seed, drop_thr, drop_keep, (bh * Lq + i0 + i) * Lk + j0 + j);
            const real e = r_expc(scale * s - ls[i]);
            p = e * f;
            ds = e * (f * dp - (real)Ds[i]);
        }
        if (P) P[i * TP + j] = p;
        dS[i * TP + j] = ds;
    }
}

// attn_bwd_dkdv: one block per key tile; for every query tile that sees it,
//
//	dv_j += Σ_i P_ij·dout_i;  dk_j += scale·Σ_i dS_ij·q_i
//
// accumulated in shared memory, then added to dk, dv (either may be null).
extern "C" __global__ void attn_bwd_dkdv(act_t* dk, act_t* dv, const act_t* q, const act_t* k, const act_t* v,
                                         const act_t* dout, const real* lse, const double* Dr, i64 BH, i64 Lq, i64 Lk,
                                         i64 Dh, double scale_, i64 causal, i64 T_, i64 drop_seed, i64 drop_thr,
                                         double drop_keep) {
    extern __shared__ double smem_d[];
    const int T = (int)T_, D = (int)Dh, DP = DPAD(D), TP = T + 1;
    double* Ds = smem_d;
    real* Ks = (real*)(Ds + T);
    real* Vs = Ks + T * DP;
    real* dKs = Vs + T * DP;
    real* dVs = dKs + T * DP;
    real* Qs = dVs + T * DP;
    real* dOs = Qs + T * DP;
    real* P = dOs + T * DP;
    real* dS = P + T * TP;
    real* ls = dS + T * TP;
    const real scale = (real)scale_;
    const int tid = threadIdx.x, nt = blockDim.x;
    const i64 j0 = (i64)blockIdx.x * T;
    const int nk = (int)imin(T, Lk - j0);
    const i64 shift = Lk - Lq;
    const i64 istart = causal ? imax(0, j0 - shift) : 0; // the first query that sees key j0

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        const act_t* kb = k + (bh * Lk + j0) * Dh;
        const act_t* vb = v + (bh * Lk + j0) * Dh;
        for (int e = tid; e < nk * D; e += nt) {
            const int j = e / D, c = e % D;
            Ks[j * DP + c] = kb[e];
            Vs[j * DP + c] = vb[e];
            dKs[j * DP + c] = 0;
            dVs[j * DP + c] = 0;
        }
        for (i64 i0 = istart; i0 < Lq; i0 += T) {
            const int nq = (int)imin(T, Lq - i0);
            const act_t* qb = q + (bh * Lq + i0) * Dh;
            const act_t* gb = dout + (bh * Lq + i0) * Dh;
            __syncthreads(); // the previous tile's P, dS, Qs, dOs are consumed
            for (int e = tid; e < nq * D; e += nt) {
                const int i = e / D, c = e % D;
                Qs[i * DP + c] = qb[e];
                dOs[i * DP + c] = gb[e];
            }
            for (int i = tid; i < nq; i += nt) {
                ls[i] = lse[bh * Lq + i0 + i];
                Ds[i] = Dr[bh * Lq + i0 + i];
            }
            __syncthreads();
            bwd_scores(P, dS, Qs, dOs, Ks, Vs, ls, Ds, nq, nk, T, D, DP, scale, i0, j0, shift, causal, bh, Lq, Lk,
                       drop_seed, drop_thr, drop_keep);
            __syncthreads();
            for (int e = tid; e < nk * D; e += nt) {
                const int j = e / D, c = e % D;
                real av = 0, ak = 0;
                for (int i = 0; i < nq; i++) {
                    av += P[i * TP + j] * dOs[i * DP + c];
                    ak += dS[i * TP + j] * Qs[i * DP + c];
                }
                dVs[j * DP + c] += av;
                dKs[j * DP + c] += scale * ak;
            }
        }
        __syncthreads();
        for (int e = tid; e < nk * D; e += nt) {
            const int j = e / D, c = e % D;
            const i64 o = (bh * Lk + j0) * Dh + e;
            if (dk) dk[o] += dKs[j * DP + c];
            if (dv) dv[o] += dVs[j * DP + c];
        }
        __syncthreads();
    }
}

// attn_bwd_dq: one block per query tile; dq_i += scale·Σ_j dS_ij·k_j over
// the key tiles the tile sees.
extern "C" __global__ void attn_bwd_dq(act_t* dq, const act_t* q, const act_t* k, const act_t* v, const act_t* dout,
                                       const real* lse, const double* Dr, i64 BH, i64 Lq, i64 Lk, i64 Dh, double scale_,
                                       i64 causal, i64 T_, i64 drop_seed, i64 drop_thr, double drop_keep) {
    extern __shared__ double smem_d[];
    const int T = (int)T_, D = (int)Dh, DP = DPAD(D), TP = T + 1;
    double* Ds = smem_d;
    real* Qs = (real*)(Ds + T);
    real* dOs = Qs + T * DP;
    real* dQs = dOs + T * DP;
    real* Ks = dQs + T * DP;
    real* Vs = Ks + T * DP;
    real* dS = Vs + T * DP;
    real* ls = dS + T * TP;
    const real scale = (real)scale_;
    const int tid = threadIdx.x, nt = blockDim.x;
    const i64 i0 = (i64)blockIdx.x * T;
    const int nq = (int)imin(T, Lq - i0);
    const i64 shift = Lk - Lq;
    const i64 jend = causal ? imin(Lk, i0 + nq + shift) : Lk;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        const act_t* qb = q + (bh * Lq + i0) * Dh;
        const act_t* gb = dout + (bh * Lq + i0) * Dh;
        const act_t* kb = k + bh * Lk * Dh;
        const act_t* vb = v + bh * Lk * Dh;
        for (int e = tid; e < nq * D; e += nt) {
            const int i = e / D, c = e % D;
            Qs[i * DP + c] = qb[e];
            dOs[i * DP + c] = gb[e];
            dQs[i * DP + c] = 0;
        }
        for (int i = tid; i < nq; i += nt) {
            ls[i] = lse[bh * Lq + i0 + i];
            Ds[i] = Dr[bh * Lq + i0 + i];
        }
        for (i64 j0 = 0; j0 < jend; j0 += T) {
            const int nk = (int)imin(T, Lk - j0);
            __syncthreads(); // the previous tile's Ks, Vs, dS are consumed
            for (int e = tid; e < nk * D; e += nt) {
                const int j = e / D, c = e % D;
                Ks[j * DP + c] = kb[j0 * Dh + e];
                Vs[j * DP + c] = vb[j0 * Dh + e];
            }
            __syncthreads();
            bwd_scores((real*)0, dS, Qs, dOs, Ks, Vs, ls, Ds, nq, nk, T, D, DP, scale, i0, j0, shift, causal, bh, Lq, Lk,
                       drop_seed, drop_thr, drop_keep);
            __syncthreads();
            for (int e = tid; e < nq * D; e += nt) {
                const int i = e / D, c = e % D;
                real acc = 0;
                for (int j = 0; j < nk; j++) acc += dS[i * TP + j] * Ks[j * DP + c];
                dQs[i * DP + c] += scale * acc;
            }
        }
        __syncthreads();
        act_t* dqb = dq + (bh * Lq + i0) * Dh;
        for (int e = tid; e < nq * D; e += nt) {
            const int i = e / D, c = e % D;
            dqb[e] += dQs[i * DP + c];
        }
        __syncthreads();
    }
}

#if !REAL_IS_DOUBLE
// ---------------------------------------------------------------------------
// Register-tiled fast path: float math (float32 or bfloat16 activations,
// staged in shared memory as float), head dim D ∈ {64, 128}. Tiles of 64
// queries × 64 keys; 256 threads as a 16×16 grid (ty = tid/16, tx = tid%16).
// A thread owns a 4×4 micro-tile of every 64×64 score tile (rows ty + 16a,
// columns tx + 16b) and 4·D/64 columns (4·tx + 64g ..) of every 64×D
// accumulator, reading shared memory as float4: 64 FMAs per 8 shared loads
// in QKᵀ, instead of the generic kernels' 2 loads per FMA. Tile rows are
// padded to D + 4 floats: float4-aligned, and the 8 threads of a quarter-warp
// that read 8 different rows hit 8 different bank groups.

// FBR, the fast kernels' tile (rows of Q, K, V a block holds), and
// FAST_THREADS, their block, come from attention.go (contract.go).

// load4 and store4 move four consecutive activations (16-byte aligned as
// float, 8-byte aligned as bf16: one uint2 of four bf16, element 0 in the
// low half) to and from a float4; store4 rounds each to the activation type
// once.
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float4 load4(const bf16* p) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    return make_float4(bf16_float((unsigned short)(u.x & 0xffffu)), bf16_float((unsigned short)(u.x >> 16)),
                       bf16_float((unsigned short)(u.y & 0xffffu)), bf16_float((unsigned short)(u.y >> 16)));
}
__device__ __forceinline__ void store4(bf16* p, float4 v) {
    uint2 u;
    u.x = (unsigned)bf16_bits(v.x) | (unsigned)bf16_bits(v.y) << 16;
    u.y = (unsigned)bf16_bits(v.z) | (unsigned)bf16_bits(v.w) << 16;
    *reinterpret_cast<uint2*>(p) = u;
}

// add4 adds v to the four activations at p: load, add in float, round once.
__device__ __forceinline__ void add4(act_t* p, float4 v) {
    float4 t = load4(p);
    t.x += v.x;
    t.y += v.y;
    t.z += v.z;
    t.w += v.w;
    store4(p, t);
}

// load_tile copies rows [0, n) of a row-major (·, D) tile of activations
// into shared memory as float (row stride D + 4); rows n ≤ r < 64 become
// zeros.
template <int D>
__device__ __forceinline__ void load_tile(float* s, const act_t* g, int n) {
    constexpr int SP = D + 4, V4 = D / 4;
    for (int e = threadIdx.x; e < FBR * V4; e += blockDim.x) {
        const int r = e / V4, c4 = e % V4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r < n) v = load4(g + (i64)r * D + 4 * c4);
        *reinterpret_cast<float4*>(s + r * SP + 4 * c4) = v;
    }
}

// tile_dot: acc[a][b] = Σ_c A[ty + 16a][c]·B[tx + 16b][c].
template <int D>
__device__ __forceinline__ void tile_dot(float acc[4][4], const float* A, const float* B, int ty, int tx) {
    constexpr int SP = D + 4;
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) acc[a][b] = 0.f;
#pragma unroll 4
    for (int c = 0; c < D; c += 4) {
        float4 av[4], bv[4];
#pragma unroll
        for (int a = 0; a < 4; a++) av[a] = *reinterpret_cast<const float4*>(A + (ty + 16 * a) * SP + c);
#pragma unroll
        for (int b = 0; b < 4; b++) bv[b] = *reinterpret_cast<const float4*>(B + (tx + 16 * b) * SP + c);
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int b = 0; b < 4; b++) {
                float t = acc[a][b];
                t = fmaf(av[a].x, bv[b].x, t);
                t = fmaf(av[a].y, bv[b].y, t);
                t = fmaf(av[a].z, bv[b].z, t);
                t = fmaf(av[a].w, bv[b].w, t);
                acc[a][b] = t;
            }
    }
}

__device__ __forceinline__ float f4get(const float4& v, int k) { return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w; }

// fma4: acc[0..3] += p·v.
__device__ __forceinline__ void fma4(float* acc, float p, const float4& v) {
    acc[0] = fmaf(p, v.x, acc[0]);
    acc[1] = fmaf(p, v.y, acc[1]);
    acc[2] = fmaf(p, v.z, acc[2]);
    acc[3] = fmaf(p, v.w, acc[3]);
}

// row16_max / row16_sum reduce over the 16 threads of one row group (lanes
// that differ in their low 4 bits).
__device__ __forceinline__ float row16_max(float v) {
    for (int o = 1; o < 16; o <<= 1) v = nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float row16_sum(float v) {
    for (int o = 1; o < 16; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// attn_fwd_fast: the forward of attn_fwd (same online softmax, k and v of
// ldk rows per (b, h)) with the scores, probabilities and output
// accumulators in registers.
template <int D>
__device__ void attn_fwd_fast(act_t* out, float* lse, const act_t* q, const act_t* k, const act_t* v, i64 BH, i64 Lq,
                              i64 Lk_, const real* lkp, i64 ldk, float scale, i64 causal) {
    const i64 Lk = attn_lk(Lk_, lkp, Lq, ldk);
    extern __shared__ float4 smem4[];
    constexpr int SP = D + 4, PP = FBR + 4, NV = D / 64;
    float* Qs = reinterpret_cast<float*>(smem4);
    float* Ks = Qs + FBR * SP;
    float* Vs = Ks + FBR * SP;
    float* Ps = Vs + FBR * SP;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const i64 i0 = (i64)blockIdx.x * FBR;
    const int nq = (int)imin(FBR, Lq - i0);
    const i64 shift = Lk - Lq;
    const i64 jend = causal ? imin(Lk, i0 + nq + shift) : Lk;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        load_tile<D>(Qs, q + (bh * Lq + i0) * D, nq);
        float o[4][4 * NV], m[4], l[4];
#pragma unroll
        for (int a = 0; a < 4; a++) {
            m[a] = -R_INF;
            l[a] = 0.f;
#pragma unroll
            for (int c = 0; c < 4 * NV; c++) o[a][c] = 0.f;
        }
        for (i64 j0 = 0; j0 < jend; j0 += FBR) {
            const int nk = (int)imin(FBR, Lk - j0);
            __syncthreads(); // Qs loaded; the previous tile's Ks, Vs, Ps consumed
            load_tile<D>(Ks, k + (bh * ldk + j0) * D, nk);
            load_tile<D>(Vs, v + (bh * ldk + j0) * D, nk);
            __syncthreads();
            float s[4][4];
            tile_dot<D>(s, Qs, Ks, ty, tx);
#pragma unroll
            for (int a = 0; a < 4; a++) {
                const int i = ty + 16 * a;
                float mx = m[a];
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    const int j = tx + 16 * b;
                    float x = scale * s[a][b];
                    if (j >= nk || (causal && j0 + j > i0 + i + shift)) x = -R_INF;
                    s[a][b] = x;
                    mx = nanmax(mx, x);
                }
                mx = row16_max(mx);
                float corr = 1.f, sum = 0.f;
                if (mx == -R_INF) {
#pragma unroll
                    for (int b = 0; b < 4; b++) s[a][b] = 0.f; // no key visible yet
                } else {
                    corr = r_expc(m[a] - mx);
#pragma unroll
                    for (int b = 0; b < 4; b++) {
                        s[a][b] = r_expc(s[a][b] - mx);
                        sum += s[a][b];
                    }
                }
                sum = row16_sum(sum);
                l[a] = l[a] * corr + sum;
                m[a] = mx;
#pragma unroll
                for (int c = 0; c < 4 * NV; c++) o[a][c] *= corr;
#pragma unroll
                for (int b = 0; b < 4; b++) Ps[i * PP + tx + 16 * b] = s[a][b];
            }
            __syncthreads();
            // O += P·V over the tile's keys (P is 0 and V rows are 0 past nk).
            const int nk4 = (nk + 3) & ~3;
            for (int j = 0; j < nk4; j += 4) {
                float4 pv[4];
#pragma unroll
                for (int a = 0; a < 4; a++) pv[a] = *reinterpret_cast<const float4*>(Ps + (ty + 16 * a) * PP + j);
#pragma unroll
                for (int jj = 0; jj < 4; jj++) {
#pragma unroll
                    for (int g = 0; g < NV; g++) {
                        const float4 vv = *reinterpret_cast<const float4*>(Vs + (j + jj) * SP + 4 * tx + 64 * g);
#pragma unroll
                        for (int a = 0; a < 4; a++) fma4(&o[a][4 * g], f4get(pv[a], jj), vv);
                    }
                }
            }
        }
#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int i = ty + 16 * a;
            if (i < nq) {
                const float inv = 1.f / l[a];
                act_t* orow = out + (bh * Lq + i0 + i) * D;
#pragma unroll
                for (int g = 0; g < NV; g++)
                    store4(orow + 4 * tx + 64 * g,
                           make_float4(o[a][4 * g] * inv, o[a][4 * g + 1] * inv, o[a][4 * g + 2] * inv, o[a][4 * g + 3] * inv));
                if (tx == 0) lse[bh * Lq + i0 + i] = m[a] + r_log(l[a]);
            }
        }
        __syncthreads(); // Qs is reloaded for the next (b, h)
    }
}

// scores_fast fills, for a query tile (Qs, dOs, ls, Ds) and a key tile (Ks,
// Vs), the thread's micro-tile p = exp(scale·q·k − lse) and ds = p·(dout·v − D)
// (0 outside the mask, past nq queries or past nk keys).
template <int D>
__device__ __forceinline__ void scores_fast(float p[4][4], float ds[4][4], const float* Qs, const float* dOs,
                                            const float* Ks, const float* Vs, const float* ls, const float* Ds, int nq,
                                            int nk, float scale, i64 i0, i64 j0, i64 shift, i64 causal, int ty, int tx) {
    float dp[4][4];
    tile_dot<D>(p, Qs, Ks, ty, tx);
    tile_dot<D>(dp, dOs, Vs, ty, tx);
#pragma unroll
    for (int a = 0; a < 4; a++) {
        const int i = ty + 16 * a;
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int j = tx + 16 * b;
            if (i < nq && j < nk && (!causal || j0 + j <= i0 + i + shift)) {
                p[a][b] = r_expc(scale * p[a][b] - ls[i]);
                ds[a][b] = p[a][b] * (dp[a][b] - Ds[i]);
            } else {
                p[a][b] = 0.f;
                ds[a][b] = 0.f;
            }
        }
    }
}

// load_stats copies lse and D of query rows [i0, i0 + nq) (0 past nq).
__device__ __forceinline__ void load_stats(float* ls, float* Ds, const float* lse, const double* Dr, i64 row0, int nq) {
    for (int t = threadIdx.x; t < FBR; t += blockDim.x) {
        ls[t] = t < nq ? lse[row0 + t] : 0.f;
        Ds[t] = t < nq ? (float)Dr[row0 + t] : 0.f;
    }
}

// attn_bwd_dkdv_fast: attn_bwd_dkdv with dK, dV of the block's 64 keys in
// registers (rows ty + 16a, columns 4·tx + 64g); P and dS go through shared
// memory transposed (PsT[j][i]) so the sums over queries read float4s.
template <int D>
__device__ void attn_bwd_dkdv_fast(act_t* dk, act_t* dv, const act_t* q, const act_t* k, const act_t* v,
                                   const act_t* dout, const float* lse, const double* Dr, i64 BH, i64 Lq, i64 Lk,
                                   float scale, i64 causal) {
    extern __shared__ float4 smem4[];
    constexpr int SP = D + 4, PP = FBR + 4, NV = D / 64;
    float* Ks = reinterpret_cast<float*>(smem4);
    float* Vs = Ks + FBR * SP;
    float* Qs = Vs + FBR * SP;
    float* dOs = Qs + FBR * SP;
    float* PsT = dOs + FBR * SP;
    float* dSsT = PsT + FBR * PP;
    float* ls = dSsT + FBR * PP;
    float* Ds = ls + FBR;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const i64 j0 = (i64)blockIdx.x * FBR;
    const int nk = (int)imin(FBR, Lk - j0);
    const i64 shift = Lk - Lq;
    const i64 istart = causal ? imax(0, j0 - shift) : 0;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        load_tile<D>(Ks, k + (bh * Lk + j0) * D, nk);
        load_tile<D>(Vs, v + (bh * Lk + j0) * D, nk);
        float dKa[4][4 * NV], dVa[4][4 * NV];
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int c = 0; c < 4 * NV; c++) dKa[a][c] = dVa[a][c] = 0.f;
        for (i64 i0 = istart; i0 < Lq; i0 += FBR) {
            const int nq = (int)imin(FBR, Lq - i0);
            __syncthreads(); // the previous tile's Qs, dOs, PsT, dSsT consumed
            load_tile<D>(Qs, q + (bh * Lq + i0) * D, nq);
            load_tile<D>(dOs, dout + (bh * Lq + i0) * D, nq);
            load_stats(ls, Ds, lse, Dr, bh * Lq + i0, nq);
            __syncthreads();
            float p[4][4], ds[4][4];
            scores_fast<D>(p, ds, Qs, dOs, Ks, Vs, ls, Ds, nq, nk, scale, i0, j0, shift, causal, ty, tx);
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    PsT[(tx + 16 * b) * PP + ty + 16 * a] = p[a][b];
                    dSsT[(tx + 16 * b) * PP + ty + 16 * a] = ds[a][b];
                }
            __syncthreads();
            // dV_j += Σ_i P_ij·dO_i;  dK_j += Σ_i dS_ij·Q_i  (rows past nq are 0)
            const int nq4 = (nq + 3) & ~3;
            for (int i = 0; i < nq4; i += 4) {
                float4 pv[4], sv[4];
#pragma unroll
                for (int a = 0; a < 4; a++) {
                    pv[a] = *reinterpret_cast<const float4*>(PsT + (ty + 16 * a) * PP + i);
                    sv[a] = *reinterpret_cast<const float4*>(dSsT + (ty + 16 * a) * PP + i);
                }
#pragma unroll
                for (int ii = 0; ii < 4; ii++) {
#pragma unroll
                    for (int g = 0; g < NV; g++) {
                        const float4 go = *reinterpret_cast<const float4*>(dOs + (i + ii) * SP + 4 * tx + 64 * g);
                        const float4 qq = *reinterpret_cast<const float4*>(Qs + (i + ii) * SP + 4 * tx + 64 * g);
#pragma unroll
                        for (int a = 0; a < 4; a++) {
                            fma4(&dVa[a][4 * g], f4get(pv[a], ii), go);
                            fma4(&dKa[a][4 * g], f4get(sv[a], ii), qq);
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int j = ty + 16 * a;
            if (j >= nk) continue;
            const i64 row = (bh * Lk + j0 + j) * D;
#pragma unroll
            for (int g = 0; g < NV; g++) {
                const int c = 4 * tx + 64 * g;
                if (dk)
                    add4(dk + row + c, make_float4(scale * dKa[a][4 * g], scale * dKa[a][4 * g + 1],
                                                   scale * dKa[a][4 * g + 2], scale * dKa[a][4 * g + 3]));
                if (dv) add4(dv + row + c, make_float4(dVa[a][4 * g], dVa[a][4 * g + 1], dVa[a][4 * g + 2], dVa[a][4 * g + 3]));
            }
        }
        __syncthreads(); // Ks, Vs are reloaded for the next (b, h)
    }
}

// attn_bwd_dq_fast: attn_bwd_dq with dQ of the block's 64 queries in
// registers (rows ty + 16a, columns 4·tx + 64g).
template <int D>
__device__ void attn_bwd_dq_fast(act_t* dq, const act_t* q, const act_t* k, const act_t* v, const act_t* dout,
                                 const float* lse, const double* Dr, i64 BH, i64 Lq, i64 Lk, float scale, i64 causal) {
    extern __shared__ float4 smem4[];
    constexpr int SP = D + 4, PP = FBR + 4, NV = D / 64;
    float* Qs = reinterpret_cast<float*>(smem4);
    float* dOs = Qs + FBR * SP;
    float* Ks = dOs + FBR * SP;
    float* Vs = Ks + FBR * SP;
    float* dSs = Vs + FBR * SP;
    float* ls = dSs + FBR * PP;
    float* Ds = ls + FBR;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const i64 i0 = (i64)blockIdx.x * FBR;
    const int nq = (int)imin(FBR, Lq - i0);
    const i64 shift = Lk - Lq;
    const i64 jend = causal ? imin(Lk, i0 + nq + shift) : Lk;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        load_tile<D>(Qs, q + (bh * Lq + i0) * D, nq);
        load_tile<D>(dOs, dout + (bh * Lq + i0) * D, nq);
        load_stats(ls, Ds, lse, Dr, bh * Lq + i0, nq);
        float dQa[4][4 * NV];
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int c = 0; c < 4 * NV; c++) dQa[a][c] = 0.f;
        for (i64 j0 = 0; j0 < jend; j0 += FBR) {
            const int nk = (int)imin(FBR, Lk - j0);
            __syncthreads(); // Qs, dOs, stats loaded; the previous tile's Ks, dSs consumed
            load_tile<D>(Ks, k + (bh * Lk + j0) * D, nk);
            load_tile<D>(Vs, v + (bh * Lk + j0) * D, nk);
            __syncthreads();
            float p[4][4], ds[4][4];
            scores_fast<D>(p, ds, Qs, dOs, Ks, Vs, ls, Ds, nq, nk, scale, i0, j0, shift, causal, ty, tx);
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) dSs[(ty + 16 * a) * PP + tx + 16 * b] = ds[a][b];
            __syncthreads();
            const int nk4 = (nk + 3) & ~3;
            for (int j = 0; j < nk4; j += 4) {
                float4 sv[4];
#pragma unroll
                for (int a = 0; a < 4; a++) sv[a] = *reinterpret_cast<const float4*>(dSs + (ty + 16 * a) * PP + j);
#pragma unroll
                for (int jj = 0; jj < 4; jj++) {
#pragma unroll
                    for (int g = 0; g < NV; g++) {
                        const float4 kk = *reinterpret_cast<const float4*>(Ks + (j + jj) * SP + 4 * tx + 64 * g);
#pragma unroll
                        for (int a = 0; a < 4; a++) fma4(&dQa[a][4 * g], f4get(sv[a], jj), kk);
                    }
                }
            }
        }
#pragma unroll
        for (int a = 0; a < 4; a++) {
            const int i = ty + 16 * a;
            if (i >= nq) continue;
            act_t* row = dq + (bh * Lq + i0 + i) * D;
#pragma unroll
            for (int g = 0; g < NV; g++)
                add4(row + 4 * tx + 64 * g, make_float4(scale * dQa[a][4 * g], scale * dQa[a][4 * g + 1],
                                                        scale * dQa[a][4 * g + 2], scale * dQa[a][4 * g + 3]));
        }
        __syncthreads(); // Qs, dOs are reloaded for the next (b, h)
    }
}

#define FAST_ATTN(D)                                                                                                   \
    extern "C" __global__ void __launch_bounds__(FAST_THREADS) attn_fwd_fast##D(                                                \
        act_t* out, float* lse, const act_t* q, const act_t* k, const act_t* v, i64 BH, i64 Lq, i64 Lk,               \
        const real* lkp, i64 ldk, double scale, i64 causal) {                                                          \
        attn_fwd_fast<D>(out, lse, q, k, v, BH, Lq, Lk, lkp, ldk, (float)scale, causal);                              \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(FAST_THREADS) attn_bwd_dkdv_fast##D(                                           \
        act_t* dk, act_t* dv, const act_t* q, const act_t* k, const act_t* v, const act_t* dout, const float* lse,    \
        const double* Dr, i64 BH, i64 Lq, i64 Lk, double scale, i64 causal) {                                          \
        attn_bwd_dkdv_fast<D>(dk, dv, q, k, v, dout, lse, Dr, BH, Lq, Lk, (float)scale, causal);                      \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(FAST_THREADS) attn_bwd_dq_fast##D(                                             \
        act_t* dq, const act_t* q, const act_t* k, const act_t* v, const act_t* dout, const float* lse,               \
        const double* Dr, i64 BH, i64 Lq, i64 Lk, double scale, i64 causal) {                                          \
        attn_bwd_dq_fast<D>(dq, q, k, v, dout, lse, Dr, BH, Lq, Lk, (float)scale, causal);                            \
    }

FAST_ATTN(64)
FAST_ATTN(128)
#endif
