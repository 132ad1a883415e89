// The Mamba-2 state space dual (cpukernels/ssd.go, nn.SSDArgs): x, out
// (B, L, H, P); dt (B, L, H); A, Dskip, DtBias (H); Bm, Cm (B, L, G, N);
// head h reads group g = h/(H/G). Per (b, h) the state is P×N:
//
//	hs_t[p,n] = a_t·hs_{t−1}[p,n] + d_t·x_t[p]·Bm_t[n],  a_t = exp(d_t·A[h])
//	out_t[p]  = Σ_n hs_t[p,n]·Cm_t[n] + Dskip[h]·x_t[p]
//
// The GPU runs this recurrence directly, the time loop inside the kernel:
// the chunked algorithm is a re-association of it for matrix units, and
// the contract only asks for the same result (nn.SSDArgs: it "does not
// depend on Chunk beyond rounding"; here it does not depend on it at all).
// Row p of the state belongs to NS lanes (a power of two ≤ 32) holding NPT
// states each, n = s·NPT + i; the sum over n is a shuffle reduction inside
// the NS lanes. Inputs are staged a tile of T steps at a time through
// shared memory, rows read contiguously (x and out by p, Bm and Cm by n).
//
// The backward uses that the decay a_t is one scalar per (b, h, t). With
// ℓ_t = d_t·A and S_k = Σ_{t≤k} ℓ_t, every path from an input at s (or from
// H0) to an output at u ≥ s carries exp(S_u − S_s), so
//
//	∂L/∂S_k = r_k − d_k·e_k,   ∂L/∂ℓ_t = Σ_{k≥t} (r_k − d_k·e_k) =: R_t
//
// with r_k = Σ_p dout_k[p]·(hs_k·Cm_k)[p] (paths ending at k: the forward's)
// and e_k = Σ_{p,n} g_k[p,n]·x_k[p]·Bm_k[n] (paths starting at k: the
// adjoint's g_k = a_{k+1}·g_{k+1} + dout_k ⊗ Cm_k). So no state has to be
// kept for the reverse pass: ssd_bwd_f runs the forward (r, dCm, dDskip),
// ssd_bwd_r the adjoint (dX, dBm, e), ssd_bwd_dt the reverse cumulative sum
// R and dDt = (e_t + A·R_t)·softplus', dA = Σ d_t·R_t. Sums shared between
// blocks go through partials reduced in a fixed order.
//
// x, dt, Bm, Cm, out, dout and their gradients are act_t (bf16 in the
// bfloat16 build), read into real registers and shared-memory tiles; A,
// Dskip, DtBias, H0, hT, the parameters' gradients and every partial are
// real or double. An act_t gradient is loaded, added to in real and
// written once per launch (never a partial sum rounded to bf16).

// SSD_THREADS (the forward's block) comes from ssd.go (contract.go).

// ssd_load_common stages Bm, Cm ([T][NP+1], zero-padded past N and tn) and
// d, a, softplus' ([T]) of steps [t0, t0+tn) of head h.
__device__ __forceinline__ void ssd_load_common(real* sB, real* sC, real* sD, real* sA, real* sSp, const act_t* Bm,
                                                const act_t* Cm, const act_t* dt, i64 b, i64 h, i64 g, i64 t0, int tn,
                                                int T, i64 L, i64 H, i64 G, i64 N, int NP, real Ah, real bias,
                                                i64 softplus) {
    const int NPr = NP + 1;
    real bv[TILE_LB], cv[TILE_LB];
    tile_batch(
        NP * T,
        [&](int i, int j) {
            const int tt = i / NP, n = i % NP;
            bv[j] = cv[j] = 0;
            if (n < N && tt < tn) {
                const i64 o = ((b * L + t0 + tt) * G + g) * N + n;
                bv[j] = Bm[o];
                cv[j] = Cm[o];
            }
        },
        [&](int i, int j) {
            const int tt = i / NP, n = i % NP;
            sB[tt * NPr + n] = bv[j];
            sC[tt * NPr + n] = cv[j];
        });
    for (int tt = threadIdx.x; tt < T; tt += blockDim.x) {
        real d = 0, sp = 0, a = 1;
        if (tt < tn) {
            d = softplus_dt(dt[(b * L + t0 + tt) * H + h] + bias, softplus, &sp);
            a = r_expc(d * Ah);
        }
        sD[tt] = d;
        sA[tt] = a;
        if (sSp) sSp[tt] = sp;
    }
}

// ssd_load_rows stages rows p0 .. p0+np−1 of a (B, L, H, P) tensor for the
// tile as [T][ld] (zeros outside).
__device__ __forceinline__ void ssd_load_rows(real* dst, int ld, const act_t* src, i64 b, i64 h, i64 t0, int tn,
                                              int T, i64 L, i64 H, i64 P, i64 p0, int np) {
    real v[TILE_LB];
    tile_batch(
        np * T,
        [&](int i, int j) {
            const int tt = i / np, pp = i % np;
            v[j] = tt < tn ? (real)src[((b * L + t0 + tt) * H + h) * P + p0 + pp] : (real)0;
        },
        [&](int i, int j) { dst[(i / np) * ld + i % np] = v[j]; });
}

// ssd_fwd: a block is (b, h, a range of CP = blockDim/NS rows p). Shared
// memory (reals, Go's ssdFwdSmem): x and y [T][CP+1], Bm and Cm [T][NP+1],
// d and a [T].
template <int NPT>
__device__ void ssd_fwd_impl(act_t* out, real* hT, const act_t* x, const act_t* dt, const real* A, const act_t* Bm,
                             const act_t* Cm, const real* Dskip, const real* dtbias, const real* h0, i64 stbf, i64 B,
                             i64 L, i64 H, i64 P, i64 G, i64 N, i64 softplus, i64 NSl, i64 Tl) {
    extern __shared__ double ssd_smem[];
    real* sm = reinterpret_cast<real*>(ssd_smem);
    const int NS = (int)NSl, T = (int)Tl;
    const int tid = threadIdx.x, CP = blockDim.x / NS, pr = tid / NS, s = tid % NS;
    const int NP = NS * NPT, NPr = NP + 1, CPr = CP + 1;
    const i64 npb = (P + CP - 1) / CP, pblk = blockIdx.x % npb, bh = blockIdx.x / npb, b = bh / H, h = bh % H;
    const i64 g = h / (H / G), p0 = pblk * CP;
    const int CPv = (int)imin(CP, P - p0);
    const bool active = pr < CPv;
    const i64 p = p0 + pr;
    real* sX = sm;
    real* sY = sX + T * CPr;
    real* sB = sY + T * CPr;
    real* sC = sB + T * NPr;
    real* sD = sC + T * NPr;
    real* sA = sD + T;
    const real Ah = A[h], bias = dtbias ? dtbias[h] : (real)0, dsk = Dskip ? Dskip[h] : (real)0;

    real hs[NPT];
#pragma unroll
    for (int i = 0; i < NPT; i++) {
        const int n = s * NPT + i;
        hs[i] = (active && n < N && h0) ? state_of(h0, stbf)[((b * H + h) * P + p) * N + n] : (real)0;
    }
    for (i64 t0 = 0; t0 < L; t0 += T) {
        const int tn = (int)imin(T, L - t0);
        __syncthreads();
        ssd_load_rows(sX, CPr, x, b, h, t0, tn, T, L, H, P, p0, CPv);
        ssd_load_common(sB, sC, sD, sA, nullptr, Bm, Cm, dt, b, h, g, t0, tn, T, L, H, G, N, NP, Ah, bias, softplus);
        __syncthreads();
#pragma unroll 2
        for (int tt = 0; tt < tn; tt++) {
            const real a = sA[tt], dx = active ? sD[tt] * sX[tt * CPr + pr] : (real)0;
            const real* bt = sB + tt * NPr + s * NPT;
            const real* ct = sC + tt * NPr + s * NPT;
            real y0 = 0, y1 = 0; // two chains of multiply-adds that overlap
#pragma unroll
            for (int i = 0; i < NPT; i += 2) {
                hs[i] = a * hs[i] + dx * bt[i];
                hs[i + 1] = a * hs[i + 1] + dx * bt[i + 1];
                y0 += ct[i] * hs[i];
                y1 += ct[i + 1] * hs[i + 1];
            }
            const real y = lane_sum(y0 + y1, NS);
            if (s == 0) sY[tt * CPr + pr] = y;
        }
        __syncthreads();
#pragma unroll 4
        for (int i = tid; i < CPv * T; i += blockDim.x) {
            const int tt = i / CPv, pp = i % CPv;
            if (tt < tn) out[((b * L + t0 + tt) * H + h) * P + p0 + pp] = sY[tt * CPr + pp] + dsk * sX[tt * CPr + pp];
        }
    }
    if (hT && active) {
#pragma unroll
        for (int i = 0; i < NPT; i++) {
            const int n = s * NPT + i;
            if (n < N) state_of(hT, stbf).set(((b * H + h) * P + p) * N + n, hs[i]);
        }
    }
}

// ssd_bwd_f: the forward again, a block per (b, h) holding every row p
// (blockDim ≥ P·NS). Per step it keeps the states of the tile ([T][TS],
// TS = P·(NP+1) + 1) to sum dCm_t[n] = Σ_p dout_t[p]·hs_t[p,n], and writes
// r_t = Σ_p dout_t[p]·(hs_t·Cm_t)[p] and the per-(b, h) partial of dDskip.
// dCm goes straight to dCm when the head is its group's only one, else to
// partC (B, L, H, N). Shared memory (Go's ssdBwdSmem): x, dout, y
// [T][P+1]; Bm, Cm [T][NP+1]; d, a [T]; states [T][TS].
template <int NPT>
__device__ void ssd_bwd_f_impl(act_t* dCm, real* partC, double* r, double* pD, const act_t* dout, const act_t* x,
                               const act_t* dt, const real* A, const act_t* Bm, const act_t* Cm, const real* dtbias,
                               const real* h0, i64 B, i64 L, i64 H, i64 P, i64 G, i64 N, i64 softplus, i64 NSl,
                               i64 Tl) {
    extern __shared__ double ssd_smem[];
    __shared__ double red[32];
    real* sm = reinterpret_cast<real*>(ssd_smem);
    const int NS = (int)NSl, T = (int)Tl;
    const int tid = threadIdx.x, p = tid / NS, s = tid % NS;
    const int NP = NS * NPT, NPr = NP + 1, NPP = NP + 1, Pr = (int)P + 1, TS = (int)P * NPP + 1;
    const i64 b = blockIdx.x / H, h = blockIdx.x % H, hpg = H / G, g = h / hpg;
    const bool active = p < P;
    real* sX = sm;
    real* sDy = sX + T * Pr;
    real* sYs = sDy + T * Pr;
    real* sB = sYs + T * Pr;
    real* sC = sB + T * NPr;
    real* sD = sC + T * NPr;
    real* sA = sD + T;
    real* sH = sA + T;
    const real Ah = A[h], bias = dtbias ? dtbias[h] : (real)0;

    real hs[NPT];
#pragma unroll
    for (int i = 0; i < NPT; i++) {
        const int n = s * NPT + i;
        hs[i] = (active && n < N && h0) ? h0[((b * H + h) * P + p) * N + n] : (real)0;
    }
    double accD = 0;
    for (i64 t0 = 0; t0 < L; t0 += T) {
        const int tn = (int)imin(T, L - t0);
        __syncthreads();
        ssd_load_rows(sX, Pr, x, b, h, t0, tn, T, L, H, P, 0, (int)P);
        ssd_load_rows(sDy, Pr, dout, b, h, t0, tn, T, L, H, P, 0, (int)P);
        ssd_load_common(sB, sC, sD, sA, nullptr, Bm, Cm, dt, b, h, g, t0, tn, T, L, H, G, N, NP, Ah, bias, softplus);
        __syncthreads();
#pragma unroll 2
        for (int tt = 0; tt < tn; tt++) {
            const real a = sA[tt], xp = active ? sX[tt * Pr + p] : (real)0, dx = sD[tt] * xp;
            const real* bt = sB + tt * NPr + s * NPT;
            const real* ct = sC + tt * NPr + s * NPT;
            real* ht = sH + tt * TS + p * NPP + s * NPT;
            real y0 = 0, y1 = 0;
#pragma unroll
            for (int i = 0; i < NPT; i += 2) {
                hs[i] = a * hs[i] + dx * bt[i];
                hs[i + 1] = a * hs[i + 1] + dx * bt[i + 1];
                if (active) {
                    ht[i] = hs[i];
                    ht[i + 1] = hs[i + 1];
                }
                y0 += ct[i] * hs[i];
                y1 += ct[i + 1] * hs[i + 1];
            }
            const real y = lane_sum(y0 + y1, NS);
            if (s == 0 && active) {
                sYs[tt * Pr + p] = y;
                accD += (double)sDy[tt * Pr + p] * (double)xp;
            }
        }
        __syncthreads();
        if (dCm) {
            for (int i = tid; i < N * T; i += blockDim.x) {
                const int tt = i / (int)N, n = i % (int)N;
                if (tt >= tn) continue;
                real sc = 0;
#pragma unroll 8
                for (int q = 0; q < P; q++) sc += sDy[tt * Pr + q] * sH[tt * TS + q * NPP + n];
                const i64 t = t0 + tt;
                if (hpg == 1) dCm[((b * L + t) * G + g) * N + n] += sc;
                else partC[((b * L + t) * H + h) * N + n] = sc;
            }
        }
        for (int tt = tid; tt < tn; tt += blockDim.x) {
            double rs = 0;
#pragma unroll 8
            for (int q = 0; q < P; q++) rs += (double)sDy[tt * Pr + q] * (double)sYs[tt * Pr + q];
            r[(b * L + t0 + tt) * H + h] = rs;
        }
    }
    accD = block_sum(accD, red);
    if (tid == 0 && pD) pD[b * H + h] = accD;
}

// ssd_bwd_r: the adjoint backwards in time, a block per (b, h) as ssd_bwd_f:
// dX_t[p] += d_t·Σ_n g_t[p,n]·Bm_t[n] + Dskip·dout_t[p], dBm_t[n] (or its
// per-head partial) = d_t·Σ_p g_t[p,n]·x_t[p], and e_t. Shared memory: x,
// dout, dx, e [T][P+1]; Bm, Cm [T][NP+1]; d, a [T]; adjoints [T][TS].
template <int NPT>
__device__ void ssd_bwd_r_impl(act_t* dX, act_t* dBm, real* partB, double* e, const act_t* dout, const act_t* x,
                               const act_t* dt, const real* A, const act_t* Bm, const act_t* Cm, const real* Dskip,
                               const real* dtbias, i64 B, i64 L, i64 H, i64 P, i64 G, i64 N, i64 softplus, i64 NSl,
                               i64 Tl) {
    extern __shared__ double ssd_smem[];
    real* sm = reinterpret_cast<real*>(ssd_smem);
    const int NS = (int)NSl, T = (int)Tl;
    const int tid = threadIdx.x, p = tid / NS, s = tid % NS;
    const int NP = NS * NPT, NPr = NP + 1, NPP = NP + 1, Pr = (int)P + 1, TS = (int)P * NPP + 1;
    const i64 b = blockIdx.x / H, h = blockIdx.x % H, hpg = H / G, g = h / hpg;
    const bool active = p < P;
    real* sX = sm;
    real* sDy = sX + T * Pr;
    real* sDx = sDy + T * Pr;
    real* sE = sDx + T * Pr;
    real* sB = sE + T * Pr;
    real* sC = sB + T * NPr;
    real* sD = sC + T * NPr;
    real* sA = sD + T;
    real* sG = sA + T;
    const real Ah = A[h], bias = dtbias ? dtbias[h] : (real)0, dsk = Dskip ? Dskip[h] : (real)0;

    real gs[NPT];
#pragma unroll
    for (int i = 0; i < NPT; i++) gs[i] = 0;
    real aN = 0; // a_{t+1}
    const i64 nT = (L + T - 1) / T;
    for (i64 k = nT - 1; k >= 0; k--) {
        const i64 t0 = k * T;
        const int tn = (int)imin(T, L - t0);
        __syncthreads();
        ssd_load_rows(sX, Pr, x, b, h, t0, tn, T, L, H, P, 0, (int)P);
        ssd_load_rows(sDy, Pr, dout, b, h, t0, tn, T, L, H, P, 0, (int)P);
        ssd_load_common(sB, sC, sD, sA, nullptr, Bm, Cm, dt, b, h, g, t0, tn, T, L, H, G, N, NP, Ah, bias, softplus);
        __syncthreads();
#pragma unroll 2
        for (int tt = tn - 1; tt >= 0; tt--) {
            const real dy = active ? sDy[tt * Pr + p] : (real)0;
            const real* bt = sB + tt * NPr + s * NPT;
            const real* ct = sC + tt * NPr + s * NPT;
            real* gt = sG + tt * TS + p * NPP + s * NPT;
            real q = 0;
#pragma unroll
            for (int i = 0; i < NPT; i++) {
                gs[i] = gs[i] * aN + dy * ct[i];
                if (active) gt[i] = gs[i];
                q += gs[i] * bt[i];
            }
            aN = sA[tt];
            q = lane_sum(q, NS);
            if (s == 0 && active) {
                sDx[tt * Pr + p] = sD[tt] * q + dsk * dy;
                sE[tt * Pr + p] = sX[tt * Pr + p] * q;
            }
        }
        __syncthreads();
        if (dBm) {
            for (int i = tid; i < N * T; i += blockDim.x) {
                const int tt = i / (int)N, n = i % (int)N;
                if (tt >= tn) continue;
                real sb = 0;
#pragma unroll 8
                for (int q = 0; q < P; q++) sb += sG[tt * TS + q * NPP + n] * sX[tt * Pr + q];
                sb *= sD[tt];
                const i64 t = t0 + tt;
                if (hpg == 1) dBm[((b * L + t) * G + g) * N + n] += sb;
                else partB[((b * L + t) * H + h) * N + n] = sb;
            }
        }
        if (dX) {
            real v[TILE_LB];
            tile_batch(
                (int)P * T,
                [&](int i, int j) {
                    const int tt = i / (int)P, pp = i % (int)P;
                    v[j] = tt < tn ? (real)dX[((b * L + t0 + tt) * H + h) * P + pp] : (real)0;
                },
                [&](int i, int j) {
                    const int tt = i / (int)P, pp = i % (int)P;
                    if (tt < tn) dX[((b * L + t0 + tt) * H + h) * P + pp] = v[j] + sDx[tt * Pr + pp];
                });
        }
        for (int tt = tid; tt < tn; tt += blockDim.x) {
            double es = 0;
#pragma unroll 8
            for (int q = 0; q < P; q++) es += (double)sE[tt * Pr + q];
            e[(b * L + t0 + tt) * H + h] = es;
        }
    }
}

#define SSD_FWD_ARGS                                                                                                  \
    act_t *out, real *hT, const act_t *x, const act_t *dt, const real *A, const act_t *Bm, const act_t *Cm,           \
        const real *Dskip, const real *dtbias, const real *h0, i64 stbf, i64 B, i64 L, i64 H, i64 P, i64 G, i64 N,    \
        i64 softplus, i64 NS, i64 T
#define SSD_FWD_PASS out, hT, x, dt, A, Bm, Cm, Dskip, dtbias, h0, stbf, B, L, H, P, G, N, softplus, NS, T
#define SSD_BWDF_ARGS                                                                                                 \
    act_t *dCm, real *partC, double *r, double *pD, const act_t *dout, const act_t *x, const act_t *dt,               \
        const real *A, const act_t *Bm, const act_t *Cm, const real *dtbias, const real *h0, i64 B, i64 L, i64 H,     \
        i64 P, i64 G, i64 N, i64 softplus, i64 NS, i64 T
#define SSD_BWDF_PASS dCm, partC, r, pD, dout, x, dt, A, Bm, Cm, dtbias, h0, B, L, H, P, G, N, softplus, NS, T
#define SSD_BWDR_ARGS                                                                                                 \
    act_t *dX, act_t *dBm, real *partB, double *e, const act_t *dout, const act_t *x, const act_t *dt,                \
        const real *A, const act_t *Bm, const act_t *Cm, const real *Dskip, const real *dtbias, i64 B, i64 L,         \
        i64 H, i64 P, i64 G, i64 N, i64 softplus, i64 NS, i64 T
#define SSD_BWDR_PASS dX, dBm, partB, e, dout, x, dt, A, Bm, Cm, Dskip, dtbias, B, L, H, P, G, N, softplus, NS, T

extern "C" __global__ void __launch_bounds__(SSD_THREADS) ssd_fwd_4(SSD_FWD_ARGS) { ssd_fwd_impl<4>(SSD_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SSD_THREADS) ssd_fwd_16(SSD_FWD_ARGS) { ssd_fwd_impl<16>(SSD_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SSD_THREADS) ssd_fwd_64(SSD_FWD_ARGS) { ssd_fwd_impl<64>(SSD_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(512) ssd_bwd_f_4(SSD_BWDF_ARGS) { ssd_bwd_f_impl<4>(SSD_BWDF_PASS); }
extern "C" __global__ void __launch_bounds__(512) ssd_bwd_f_16(SSD_BWDF_ARGS) { ssd_bwd_f_impl<16>(SSD_BWDF_PASS); }
extern "C" __global__ void __launch_bounds__(512) ssd_bwd_f_64(SSD_BWDF_ARGS) { ssd_bwd_f_impl<64>(SSD_BWDF_PASS); }
extern "C" __global__ void __launch_bounds__(512) ssd_bwd_r_4(SSD_BWDR_ARGS) { ssd_bwd_r_impl<4>(SSD_BWDR_PASS); }
extern "C" __global__ void __launch_bounds__(512) ssd_bwd_r_16(SSD_BWDR_ARGS) { ssd_bwd_r_impl<16>(SSD_BWDR_PASS); }
extern "C" __global__ void __launch_bounds__(512) ssd_bwd_r_64(SSD_BWDR_ARGS) { ssd_bwd_r_impl<64>(SSD_BWDR_PASS); }

// ssd_bwd_dt: a warp per (b, h) walks t backwards 32 steps at a time; a
// suffix scan (shuffles) gives R_t = Σ_{k≥t} (r_k − d_k·e_k) and
//
//	dDt[b,t,h] += (e_t + A·R_t)·softplus'     pA[b,h] = Σ_t d_t·R_t
//	pDB[b,h]    = Σ_t (e_t + A·R_t)·softplus'
extern "C" __global__ void ssd_bwd_dt(act_t* dDt, double* pA, double* pDB, const double* r, const double* e,
                                      const act_t* dt, const real* A, const real* dtbias, i64 B, i64 L, i64 H,
                                      i64 softplus) {
    const int lane = threadIdx.x & 31;
    const i64 w0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5, nw = ((i64)gridDim.x * blockDim.x) >> 5;
    for (i64 bh = w0; bh < B * H; bh += nw) {
        const i64 b = bh / H, h = bh % H;
        const double Ah = (double)A[h];
        const real bias = dtbias ? dtbias[h] : (real)0;
        double carry = 0, accA = 0, accB = 0;
        for (i64 ch = (L + 31) / 32 - 1; ch >= 0; ch--) {
            const i64 t = ch * 32 + lane;
            double v = 0, d = 0, sp = 0, ev = 0;
            if (t < L) {
                const i64 o = (b * L + t) * H + h;
                real spr;
                d = (double)softplus_dt(dt[o] + bias, softplus, &spr);
                sp = (double)spr;
                ev = e[o];
                v = r[o] - d * ev;
            }
            double S = v;
            for (int o = 1; o < 32; o <<= 1) {
                const double u = __shfl_down_sync(0xffffffffu, S, o);
                if (lane + o < 32) S += u;
            }
            const double R = S + carry;
            carry += __shfl_sync(0xffffffffu, S, 0);
            if (t < L) {
                const double draw = (ev + Ah * R) * sp;
                if (dDt) {
                    const i64 o = (b * L + t) * H + h;
                    dDt[o] = (real)((double)dDt[o] + draw);
                }
                accA += d * R;
                accB += draw;
            }
        }
        accA = warp_sum(accA);
        accB = warp_sum(accB);
        if (lane == 0) {
            if (pA) pA[bh] = accA;
            if (pDB) pDB[bh] = accB;
        }
    }
}

// ssd_add_parts and ssd_add_parts_r: out[a·inner + i] += Σ_p part[(a·nparts
// + p)·inner + i], p in order, in double (double or real partials).
extern "C" __global__ void ssd_add_parts(real* out, const double* part, i64 outer, i64 nparts, i64 inner) {
    FOR_N(e, outer * inner) {
        const i64 a = e / inner, i = e % inner;
        double s = 0;
        for (i64 p = 0; p < nparts; p++) s += part[(a * nparts + p) * inner + i];
        out[e] = (real)((double)out[e] + s);
    }
}

extern "C" __global__ void ssd_add_parts_r(act_t* out, const real* part, i64 outer, i64 nparts, i64 inner) {
    FOR_N(e, outer * inner) {
        const i64 a = e / inner, i = e % inner;
        double s = 0;
        for (i64 p = 0; p < nparts; p++) s += (double)part[(a * nparts + p) * inner + i];
        out[e] = (real)((double)out[e] + s);
    }
}
