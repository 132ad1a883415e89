// The Mamba-1 selective scan (cpukernels/selective_scan.go, nn.ScanArgs):
// u, delta, z, out (B, D, L); A (D, N); Bm, Cm (B, G, N, L); channel d reads
// group g = d/(D/G).
//
// Layout of the work. A block of SCAN_THREADS threads owns CB consecutive
// channels of one (b, g); each channel has NS lanes (a power of two ≤ 32,
// consecutive in the warp) and each lane NPT of the N states in registers,
// n = s·NPT + i (NS·NPT ≥ N; the padded states have A = B = C = 0 and stay
// 0). The time loop runs inside the kernel, a tile of T steps at a time:
// the block stages δ, u (CB rows × T) and Bm, Cm (N rows × T) through
// shared memory with warps reading consecutive t of a row (coalesced), then
// every thread runs the recurrence of its states over the tile, and the
// per-channel sums over n (y, and in the backward du and dδ) are shuffle
// reductions inside the NS lanes. There is no per-step launch and no
// O(L·N) memory per channel.
//
// The backward runs the forward once more storing the state at every tile
// boundary (ckpt, B·D·N·⌈L/T⌉), then one reverse-time kernel: per tile
// (last to first) it recomputes the tile's states from the checkpoint into
// shared memory, runs the adjoint
//
//	g_t = exp(δ_{t+1}·A)·g_{t+1} + dy_t·Cm_t
//
// backwards through it, and sums over the block's channels, in a fixed
// order, the dBm and dCm of every (n, t) of the tile. Sums shared by blocks
// (dBm, dCm across channel blocks of a group; dA, dDskip, dDeltaBias across
// the batch) go through double partials reduced by scan_add_parts in a
// fixed order: results are the same run to run.

#define SCAN_THREADS 128

// scan_load_bc stages Bm and Cm of group bg for steps [t0, t0+tn) as
// [T][NP+1], zero-padded past N and tn; warps read consecutive t of a row.
__device__ __forceinline__ void scan_load_bc(real* sB, real* sC, const real* Bm, const real* Cm, i64 bg, i64 t0,
                                             int tn, int T, i64 L, i64 N, int NP) {
    const int NPr = NP + 1;
    real bv[TILE_LB], cv[TILE_LB];
    tile_batch(
        NP * T,
        [&](int i, int j) {
            const int n = i / T, tt = i % T;
            bv[j] = cv[j] = 0;
            if (n < N && tt < tn) {
                const i64 o = (bg * N + n) * L + t0 + tt;
                bv[j] = Bm[o];
                cv[j] = Cm[o];
            }
        },
        [&](int i, int j) {
            const int n = i / T, tt = i % T;
            sB[tt * NPr + n] = bv[j];
            sC[tt * NPr + n] = cv[j];
        });
}

// The shared-memory layout of the forward (sizes in reals; Go's scanFwdSmem
// must agree): δ, u, y as [CB][T+1], Bm, Cm as [T][NP+1].
template <int NPT>
__device__ void scan_fwd_impl(real* out, real* hT, real* ckpt, const real* u, const real* delta, const real* A,
                              const real* Bm, const real* Cm, const real* Dskip, const real* z, const real* dbias,
                              const real* h0, i64 B, i64 D, i64 L, i64 N, i64 G, i64 softplus, i64 NSl, i64 Tl) {
    extern __shared__ double scan_smem[];
    real* sm = reinterpret_cast<real*>(scan_smem);
    const int NS = (int)NSl, T = (int)Tl;
    const int tid = threadIdx.x, CB = blockDim.x / NS, c = tid / NS, s = tid % NS;
    const int NP = NS * NPT, NPr = NP + 1, TP = T + 1;
    const i64 Dg = D / G, nblk = (Dg + CB - 1) / CB;
    const i64 blk = blockIdx.x % nblk, bg = blockIdx.x / nblk, b = bg / G, g = bg % G;
    const i64 d0 = g * Dg + blk * CB; // first channel of the block
    const int CBv = (int)imin(CB, Dg - blk * CB);
    const bool active = c < CBv;
    const i64 d = d0 + c;
    real* sDl = sm;
    real* sU = sDl + CB * TP;
    real* sY = sU + CB * TP;
    real* sB = sY + CB * TP;
    real* sC = sB + T * NPr;

    real Ai[NPT], h[NPT];
#pragma unroll
    for (int i = 0; i < NPT; i++) {
        const int n = s * NPT + i;
        const bool on = active && n < N;
        Ai[i] = on ? A[d * N + n] : (real)0;
        h[i] = (on && h0) ? h0[(b * D + d) * N + n] : (real)0;
    }
    const i64 BDN = B * D * N;
    for (i64 t0 = 0, k = 0; t0 < L; t0 += T, k++) {
        if (ckpt && active) {
#pragma unroll
            for (int i = 0; i < NPT; i++) {
                const int n = s * NPT + i;
                if (n < N) ckpt[k * BDN + (b * D + d) * N + n] = h[i];
            }
        }
        const int tn = (int)imin(T, L - t0);
        __syncthreads(); // the previous tile's readers are done
        {
            real dv[TILE_LB], uv[TILE_LB];
            tile_batch(
                CB * T,
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    dv[j] = uv[j] = 0;
                    if (cc < CBv && tt < tn) {
                        const i64 o = (b * D + d0 + cc) * L + t0 + tt;
                        dv[j] = delta[o] + (dbias ? dbias[d0 + cc] : (real)0);
                        uv[j] = u[o];
                    }
                },
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    real sp;
                    sDl[cc * TP + tt] = (cc < CBv && tt < tn) ? softplus_dt(dv[j], softplus, &sp) : (real)0;
                    sU[cc * TP + tt] = uv[j];
                });
        }
        scan_load_bc(sB, sC, Bm, Cm, bg, t0, tn, T, L, N, NP);
        __syncthreads();
#pragma unroll 4
        for (int tt = 0; tt < tn; tt++) {
            const real dl = sDl[c * TP + tt], du = dl * sU[c * TP + tt];
            const real* bt = sB + tt * NPr + s * NPT;
            const real* ct = sC + tt * NPr + s * NPT;
            real y = 0;
#pragma unroll
            for (int i = 0; i < NPT; i++) {
                h[i] = r_expc(dl * Ai[i]) * h[i] + du * bt[i];
                y += ct[i] * h[i];
            }
            y = lane_sum(y, NS);
            if (s == 0) sY[c * TP + tt] = y;
        }
        if (out) {
            __syncthreads();
            real zv[TILE_LB], dk[TILE_LB];
            tile_batch(
                CB * T,
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    zv[j] = dk[j] = 0;
                    if (cc < CBv && tt < tn) {
                        if (z) zv[j] = z[(b * D + d0 + cc) * L + t0 + tt];
                        if (Dskip) dk[j] = Dskip[d0 + cc];
                    }
                },
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    if (cc < CBv && tt < tn) {
                        real y = sY[cc * TP + tt] + dk[j] * sU[cc * TP + tt];
                        if (z) y *= zv[j] * r_sigmoid(zv[j]);
                        out[(b * D + d0 + cc) * L + t0 + tt] = y;
                    }
                });
        }
    }
    if (hT && active) {
#pragma unroll
        for (int i = 0; i < NPT; i++) {
            const int n = s * NPT + i;
            if (n < N) hT[(b * D + d) * N + n] = h[i];
        }
    }
}

// The backward's shared memory (reals): δ, dδ/draw, u, dy, y, du, dδ as
// [CB][T+1]; Bm, Cm as [T][NP+1]; the tile's states and adjoints as
// [T][TS] with TS = CB·(NP+1) + 1 (odd strides: conflict-free columns).
template <int NPT>
__device__ void scan_bwd_impl(real* du, real* ddelta, real* dz, double* pA, double* pD, double* pDB, real* dBm,
                              real* dCm, double* partB, double* partC, const real* ckpt, const real* dout,
                              const real* u, const real* delta, const real* A, const real* Bm, const real* Cm,
                              const real* Dskip, const real* z, const real* dbias, i64 B, i64 D, i64 L, i64 N, i64 G,
                              i64 softplus, i64 NSl, i64 Tl) {
    extern __shared__ double scan_smem[];
    real* sm = reinterpret_cast<real*>(scan_smem);
    const int NS = (int)NSl, T = (int)Tl;
    const int tid = threadIdx.x, CB = blockDim.x / NS, c = tid / NS, s = tid % NS;
    const int NP = NS * NPT, NPr = NP + 1, NPP = NP + 1, TP = T + 1, TS = CB * NPP + 1;
    const i64 Dg = D / G, nblk = (Dg + CB - 1) / CB;
    const i64 blk = blockIdx.x % nblk, bg = blockIdx.x / nblk, b = bg / G, g = bg % G;
    const i64 d0 = g * Dg + blk * CB;
    const int CBv = (int)imin(CB, Dg - blk * CB);
    const bool active = c < CBv;
    const i64 d = d0 + c;
    real* sDl = sm;
    real* sSp = sDl + CB * TP;
    real* sU = sSp + CB * TP;
    real* sDy = sU + CB * TP;
    real* sY = sDy + CB * TP;
    real* sDu = sY + CB * TP;
    real* sDd = sDu + CB * TP;
    real* sB = sDd + CB * TP;
    real* sC = sB + T * NPr;
    real* sH = sC + T * NPr;
    real* sG = sH + T * TS;
    const bool wantBC = dBm || dCm;

    real Ai[NPT], gs[NPT], aN[NPT], dAt[NPT];
    double dAd[NPT];
#pragma unroll
    for (int i = 0; i < NPT; i++) {
        const int n = s * NPT + i;
        Ai[i] = (active && n < N) ? A[d * N + n] : (real)0;
        gs[i] = aN[i] = dAt[i] = 0;
        dAd[i] = 0;
    }
    const real dsk = (active && Dskip) ? Dskip[d] : (real)0;
    double accD = 0, accBias = 0; // lane 0 of the channel: Σ dy·u, Σ d(raw delta)
    const i64 BDN = B * D * N, nT = (L + T - 1) / T;
    for (i64 k = nT - 1; k >= 0; k--) {
        const i64 t0 = k * T;
        const int tn = (int)imin(T, L - t0);
        __syncthreads();
        {
            real dv[TILE_LB], uv[TILE_LB], gv[TILE_LB], zv[TILE_LB];
            tile_batch(
                CB * T,
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    dv[j] = uv[j] = gv[j] = zv[j] = 0;
                    if (cc < CBv && tt < tn) {
                        const i64 o = (b * D + d0 + cc) * L + t0 + tt;
                        dv[j] = delta[o] + (dbias ? dbias[d0 + cc] : (real)0);
                        uv[j] = u[o];
                        gv[j] = dout[o];
                        if (z) zv[j] = z[o];
                    }
                },
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    real dl = 0, sp = 0, dy = 0;
                    if (cc < CBv && tt < tn) {
                        dl = softplus_dt(dv[j], softplus, &sp);
                        dy = gv[j];
                        if (z) dy *= zv[j] * r_sigmoid(zv[j]);
                    }
                    sDl[cc * TP + tt] = dl;
                    sSp[cc * TP + tt] = sp;
                    sU[cc * TP + tt] = uv[j];
                    sDy[cc * TP + tt] = dy;
                });
        }
        scan_load_bc(sB, sC, Bm, Cm, bg, t0, tn, T, L, N, NP);
        __syncthreads();

        // Recompute the tile's states from the checkpoint.
        real hs[NPT], h[NPT];
#pragma unroll
        for (int i = 0; i < NPT; i++) {
            const int n = s * NPT + i;
            hs[i] = (active && n < N) ? ckpt[k * BDN + (b * D + d) * N + n] : (real)0;
            h[i] = hs[i];
        }
#pragma unroll 2
        for (int tt = 0; tt < tn; tt++) {
            const real dl = sDl[c * TP + tt], duu = dl * sU[c * TP + tt];
            const real* bt = sB + tt * NPr + s * NPT;
            const real* ct = sC + tt * NPr + s * NPT;
            real* ht = sH + tt * TS + c * NPP + s * NPT;
            real y = 0;
#pragma unroll
            for (int i = 0; i < NPT; i++) {
                h[i] = r_expc(dl * Ai[i]) * h[i] + duu * bt[i];
                ht[i] = h[i];
                y += ct[i] * h[i];
            }
            if (dz) {
                y = lane_sum(y, NS);
                if (s == 0) sY[c * TP + tt] = y;
            }
        }
        // The adjoint, backwards through the tile.
#pragma unroll 2
        for (int tt = tn - 1; tt >= 0; tt--) {
            const real dl = sDl[c * TP + tt], uu = sU[c * TP + tt], dy = sDy[c * TP + tt];
            const real* bt = sB + tt * NPr + s * NPT;
            const real* ct = sC + tt * NPr + s * NPT;
            const real* hp = sH + (tt - 1) * TS + c * NPP + s * NPT; // read only when tt > 0
            real* gt = sG + tt * TS + c * NPP + s * NPT;
            real qU = 0, qD = 0;
#pragma unroll
            for (int i = 0; i < NPT; i++) {
                const real a = r_expc(dl * Ai[i]);
                gs[i] = gs[i] * aN[i] + dy * ct[i];
                gt[i] = gs[i];
                const real hprev = tt > 0 ? hp[i] : hs[i];
                const real gah = gs[i] * a * hprev; // g·∂h_t/∂(δ·A)
                qU += gs[i] * bt[i];
                qD += gs[i] * bt[i] * uu + Ai[i] * gah;
                dAt[i] += dl * gah;
                aN[i] = a;
            }
            qU = lane_sum(qU, NS);
            qD = lane_sum(qD, NS);
            if (s == 0) {
                sDu[c * TP + tt] = dl * qU + dsk * dy;
                sDd[c * TP + tt] = qD;
                accD += (double)dy * (double)uu;
                accBias += (double)qD * (double)sSp[c * TP + tt];
            }
        }
#pragma unroll
        for (int i = 0; i < NPT; i++) {
            dAd[i] += (double)dAt[i];
            dAt[i] = 0;
        }
        __syncthreads();

        // dBm, dCm of the tile: sums over the block's channels, t fastest.
        if (wantBC) {
            for (int i = tid; i < N * T; i += blockDim.x) {
                const int n = i / T, tt = i % T;
                if (tt >= tn) continue;
                real sb = 0, sc = 0;
                for (int cc = 0; cc < CBv; cc++) {
                    const int e = tt * TS + cc * NPP + n;
                    sc += sDy[cc * TP + tt] * sH[e];
                    sb += sG[e] * sDl[cc * TP + tt] * sU[cc * TP + tt];
                }
                const i64 t = t0 + tt;
                if (nblk == 1) {
                    const i64 o = (bg * N + n) * L + t;
                    if (dBm) dBm[o] += sb;
                    if (dCm) dCm[o] += sc;
                } else {
                    const i64 o = ((bg * nblk + blk) * N + n) * L + t;
                    if (partB) partB[o] = sb;
                    if (partC) partC[o] = sc;
                }
            }
        }
        // The per-channel gradients of the tile, t fastest.
        {
            real v1[TILE_LB], v2[TILE_LB], v3[TILE_LB], zv[TILE_LB], gv[TILE_LB], dk[TILE_LB];
            tile_batch(
                CB * T,
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    v1[j] = v2[j] = v3[j] = zv[j] = gv[j] = dk[j] = 0;
                    if (cc < CBv && tt < tn) {
                        const i64 o = (b * D + d0 + cc) * L + t0 + tt;
                        if (du) v1[j] = du[o];
                        if (ddelta) v2[j] = ddelta[o];
                        if (dz) {
                            v3[j] = dz[o];
                            zv[j] = z[o];
                            gv[j] = dout[o];
                            if (Dskip) dk[j] = Dskip[d0 + cc];
                        }
                    }
                },
                [&](int i, int j) {
                    const int cc = i / T, tt = i % T;
                    if (cc >= CBv || tt >= tn) return;
                    const i64 o = (b * D + d0 + cc) * L + t0 + tt;
                    if (du) du[o] = v1[j] + sDu[cc * TP + tt];
                    if (ddelta) ddelta[o] = v2[j] + sDd[cc * TP + tt] * sSp[cc * TP + tt];
                    if (dz) {
                        const real y = sY[cc * TP + tt] + dk[j] * sU[cc * TP + tt];
                        const real zz = zv[j], sg = r_sigmoid(zz);
                        dz[o] = v3[j] + gv[j] * y * sg * ((real)1 + zz * ((real)1 - sg));
                    }
                });
        }
    }
    if (active) {
        if (pA) {
#pragma unroll
            for (int i = 0; i < NPT; i++) {
                const int n = s * NPT + i;
                if (n < N) pA[(b * D + d) * N + n] = dAd[i];
            }
        }
        if (s == 0) {
            if (pD) pD[b * D + d] = accD;
            if (pDB) pDB[b * D + d] = accBias;
        }
    }
}

#define SCAN_FWD_ARGS                                                                                              \
    real *out, real *hT, real *ckpt, const real *u, const real *delta, const real *A, const real *Bm,             \
        const real *Cm, const real *Dskip, const real *z, const real *dbias, const real *h0, i64 B, i64 D, i64 L, \
        i64 N, i64 G, i64 softplus, i64 NS, i64 T
#define SCAN_FWD_PASS out, hT, ckpt, u, delta, A, Bm, Cm, Dskip, z, dbias, h0, B, D, L, N, G, softplus, NS, T
#define SCAN_BWD_ARGS                                                                                               \
    real *du, real *ddelta, real *dz, double *pA, double *pD, double *pDB, real *dBm, real *dCm, double *partB,    \
        double *partC, const real *ckpt, const real *dout, const real *u, const real *delta, const real *A,        \
        const real *Bm, const real *Cm, const real *Dskip, const real *z, const real *dbias, i64 B, i64 D, i64 L,  \
        i64 N, i64 G, i64 softplus, i64 NS, i64 T
#define SCAN_BWD_PASS                                                                                              \
    du, ddelta, dz, pA, pD, pDB, dBm, dCm, partB, partC, ckpt, dout, u, delta, A, Bm, Cm, Dskip, z, dbias, B, D, L, \
        N, G, softplus, NS, T

extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_fwd_4(SCAN_FWD_ARGS) { scan_fwd_impl<4>(SCAN_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_fwd_16(SCAN_FWD_ARGS) { scan_fwd_impl<16>(SCAN_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_fwd_64(SCAN_FWD_ARGS) { scan_fwd_impl<64>(SCAN_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_bwd_4(SCAN_BWD_ARGS) { scan_bwd_impl<4>(SCAN_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_bwd_16(SCAN_BWD_ARGS) { scan_bwd_impl<16>(SCAN_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_bwd_64(SCAN_BWD_ARGS) { scan_bwd_impl<64>(SCAN_BWD_PASS); }

// scan_add_parts: out[a·inner + i] += Σ_p part[(a·nparts + p)·inner + i],
// p in order, in double.
extern "C" __global__ void scan_add_parts(real* out, const double* part, i64 outer, i64 nparts, i64 inner) {
    FOR_N(e, outer * inner) {
        const i64 a = e / inner, i = e % inner;
        double s = 0;
        for (i64 p = 0; p < nparts; p++) s += part[(a * nparts + p) * inner + i];
        out[e] = (real)((double)out[e] + s);
    }
}
