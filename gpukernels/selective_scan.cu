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

// SCAN_THREADS comes from selective_scan.go (contract.go).

// scan_load_bc stages Bm and Cm of group bg for steps [t0, t0+tn) as
// [T][NP+1], zero-padded past N and tn; warps read consecutive t of a row.
__device__ __forceinline__ void scan_load_bc(real* sB, real* sC, const act_t* Bm, const act_t* Cm, i64 bg, i64 t0,
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
__device__ void scan_fwd_impl(act_t* out, real* hT, real* ckpt, const act_t* u, const act_t* delta, const real* A,
                              const act_t* Bm, const act_t* Cm, const real* Dskip, const act_t* z, const real* dbias,
                              const real* h0, i64 stbf, i64 B, i64 D, i64 L, i64 N, i64 G, i64 softplus, i64 NSl,
                              i64 Tl) {
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
        h[i] = (on && h0) ? state_of(h0, stbf)[(b * D + d) * N + n] : (real)0;
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
            if (n < N) state_of(hT, stbf).set((b * D + d) * N + n, h[i]);
        }
    }
}

// The backward's shared memory (reals): δ, dδ/draw, u, dy, y, du, dδ as
// [CB][T+1]; Bm, Cm as [T][NP+1]; the tile's states and adjoints as
// [T][TS] with TS = CB·(NP+1) + 1 (odd strides: conflict-free columns).
template <int NPT>
__device__ void scan_bwd_impl(act_t* du, act_t* ddelta, act_t* dz, double* pA, double* pD, double* pDB, act_t* dBm,
                              act_t* dCm, double* partB, double* partC, const real* ckpt, const act_t* dout,
                              const act_t* u, const act_t* delta, const real* A, const act_t* Bm, const act_t* Cm,
                              const real* Dskip, const act_t* z, const real* dbias, i64 B, i64 D, i64 L, i64 N, i64 G,
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

#define SCAN_FWD_ARGS                                                                                                \
    act_t *out, real *hT, real *ckpt, const act_t *u, const act_t *delta, const real *A, const act_t *Bm,           \
        const act_t *Cm, const real *Dskip, const act_t *z, const real *dbias, const real *h0, i64 stbf, i64 B,     \
        i64 D, i64 L, i64 N, i64 G, i64 softplus, i64 NS, i64 T
#define SCAN_FWD_PASS out, hT, ckpt, u, delta, A, Bm, Cm, Dskip, z, dbias, h0, stbf, B, D, L, N, G, softplus, NS, T
#define SCAN_BWD_ARGS                                                                                                \
    act_t *du, act_t *ddelta, act_t *dz, double *pA, double *pD, double *pDB, act_t *dBm, act_t *dCm, double *partB, \
        double *partC, const real *ckpt, const act_t *dout, const act_t *u, const act_t *delta, const real *A,      \
        const act_t *Bm, const act_t *Cm, const real *Dskip, const act_t *z, const real *dbias, i64 B, i64 D,       \
        i64 L, i64 N, i64 G, i64 softplus, i64 NS, i64 T
#define SCAN_BWD_PASS                                                                                              \
    du, ddelta, dz, pA, pD, pDB, dBm, dCm, partB, partC, ckpt, dout, u, delta, A, Bm, Cm, Dskip, z, dbias, B, D, L, \
        N, G, softplus, NS, T

extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_fwd_4(SCAN_FWD_ARGS) { scan_fwd_impl<4>(SCAN_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_fwd_16(SCAN_FWD_ARGS) { scan_fwd_impl<16>(SCAN_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_fwd_64(SCAN_FWD_ARGS) { scan_fwd_impl<64>(SCAN_FWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_bwd_4(SCAN_BWD_ARGS) { scan_bwd_impl<4>(SCAN_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_bwd_16(SCAN_BWD_ARGS) { scan_bwd_impl<16>(SCAN_BWD_PASS); }
extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_bwd_64(SCAN_BWD_ARGS) { scan_bwd_impl<64>(SCAN_BWD_PASS); }

// add_parts: out[a·inner + i] += Σ_p part[(a·nparts + p)·inner + i], p in
// order, in double; each element of out is loaded, added to and rounded
// once (an activation's gradient in the bfloat16 build, from float parts).
template <class O, class P>
__device__ __forceinline__ void add_parts(O* out, const P* part, i64 outer, i64 nparts, i64 inner) {
    FOR_N(e, outer * inner) {
        const i64 a = e / inner, i = e % inner;
        double s = 0;
        for (i64 p = 0; p < nparts; p++) s += (double)part[(a * nparts + p) * inner + i];
        out[e] = (real)((double)(real)out[e] + s);
    }
}

// scan_add_parts adds double partials into a parameter's gradient (dA,
// dDskip, dDeltaBias); scan_add_parts_act into an activation's (the
// one-step backward's dBm and dCm).
extern "C" __global__ void scan_add_parts(real* out, const double* part, i64 outer, i64 nparts, i64 inner) {
    add_parts(out, part, outer, nparts, inner);
}
extern "C" __global__ void scan_add_parts_act(act_t* out, const double* part, i64 outer, i64 nparts, i64 inner) {
    add_parts(out, part, outer, nparts, inner);
}

// ---------------------------------------------------------------------------
// The chunked scan: parallel in time (L ≥ 2; the kernels above serve the
// one-step generation path).
//
// A block holds SCAN_FWD_WARPS (SCAN_BWD_WARPS) channels of one (b, g), one
// warp a channel. Time runs in chunks of CH = 32·K steps: lane l holds the
// K consecutive steps [t0 + l·K, t0 + l·K + K) in registers, loaded with
// 16-byte vector loads where the rows are aligned (8-byte ones for the
// bfloat16 build's 4 steps a lane). For each state n, the recurrence
// h_t = a_t·h_{t−1} + b_t (a_t = exp(δ_t·A[d,n]), b_t = δ_t·Bm_t·u_t) is
// composed over the lane's K steps into one affine map h ↦ α·h + β, the
// maps are combined across the warp by an inclusive shuffle scan
// (Hillis–Steele, 5 rounds), and each lane then replays its K steps from
// the state its predecessors hand it, accumulating y_t = Σ_n
// Cm_t[n]·h_t[n]; the forward runs SCAN_FWD_STATES states at once, their
// chains independent. The state at the chunk's end (lane 31's) carries to
// the next chunk through shared memory (lane 0 owns a channel's carries).
// Padded steps past L have δ = 0 and Bm = 0: the identity map. Bm and Cm
// are read by every warp of the block at once: the loads hit in L1.
//
// The backward runs the chunks last to first. Per chunk and state it
// rebuilds the forward states from the chunk's checkpoint (written by the
// forward, [⌈L/CH⌉][B][D][N]), then runs the adjoint
//
//	q_t = a_t·(q_{t+1} + dy_t·Cm_t),   g_t = q_{t+1} + dy_t·Cm_t = dLoss/dh_t
//
// as the same kind of scan in reverse (shfl_down), carrying q between
// chunks. dBm and dCm, sums over a group's channels, are added over the
// block's warps in shared memory in warp order, then over blocks by
// scan_add_parts_r (or straight into dBm, dCm when one block holds the
// group); dA, dDskip and dDeltaBias go through double partials as above.
// Every sum has a fixed order: results are the same run to run.

#if REAL_IS_DOUBLE
typedef double2 realv;
#define RV 2
__device__ __forceinline__ void rv_get(real* v, realv x) { v[0] = x.x; v[1] = x.y; }
__device__ __forceinline__ realv rv_make(const real* v) { return make_double2(v[0], v[1]); }
#else
typedef float4 realv;
#define RV 4
__device__ __forceinline__ void rv_get(real* v, realv x) { v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w; }
__device__ __forceinline__ realv rv_make(const real* v) { return make_float4(v[0], v[1], v[2], v[3]); }
#endif

// The rows that ld_items and st_items move are activations (act_t), as
// vectors of AV of them (16 bytes: RV reals, or 8 bfloat16 in the
// bfloat16 build) or, where a lane's steps are fewer, AV/2 (8 bytes: 4
// bfloat16). av_get converts a vector's elements to float once, at the
// load; av_make rounds each stored value once.
#if ACT_IS_BF16
#define AV 8
__device__ __forceinline__ void bf16_unpair(real* v, unsigned w) {
    v[0] = __uint_as_float(w << 16); // the low half is the element first in memory
    v[1] = __uint_as_float(w & 0xffff0000u);
}
__device__ __forceinline__ unsigned bf16_pair(real lo, real hi) {
    return (unsigned)bf16_bits(lo) | ((unsigned)bf16_bits(hi) << 16);
}
__device__ __forceinline__ void av_get(real* v, uint4 x) {
    bf16_unpair(v, x.x);
    bf16_unpair(v + 2, x.y);
    bf16_unpair(v + 4, x.z);
    bf16_unpair(v + 6, x.w);
}
__device__ __forceinline__ void av_get(real* v, uint2 x) {
    bf16_unpair(v, x.x);
    bf16_unpair(v + 2, x.y);
}
__device__ __forceinline__ void av_make(real const* v, uint4* x) {
    *x = make_uint4(bf16_pair(v[0], v[1]), bf16_pair(v[2], v[3]), bf16_pair(v[4], v[5]), bf16_pair(v[6], v[7]));
}
__device__ __forceinline__ void av_make(real const* v, uint2* x) {
    *x = make_uint2(bf16_pair(v[0], v[1]), bf16_pair(v[2], v[3]));
}
// actv<W> is the vector of W activations.
template <int W> struct actv_of;
template <> struct actv_of<8> { typedef uint4 type; };
template <> struct actv_of<4> { typedef uint2 type; };
#else
#define AV RV
__device__ __forceinline__ void av_get(real* v, realv x) { rv_get(v, x); }
__device__ __forceinline__ void av_make(real const* v, realv* x) { *x = rv_make(v); }
template <int W> struct actv_of { typedef realv type; };
#endif
template <int W> using actv = typename actv_of<W>::type;

// scan_vec is the activations of one vector load of a lane of K steps.
template <int K> constexpr int scan_vec() { return K % AV == 0 ? AV : AV / 2; }

#define FULL_MASK 0xffffffffu

// ld_items loads row[base .. base+K) into v, 0 past L; vec: the row's
// elements at multiples of AV are 16-byte aligned (so those at multiples
// of AV/2 are 8-byte aligned).
template <int K>
__device__ __forceinline__ void ld_items(real (&v)[K], const act_t* row, i64 base, i64 L, bool vec) {
    constexpr int W = scan_vec<K>();
    static_assert(K % W == 0 && (W == AV || ACT_IS_BF16), "a lane's steps are whole vectors");
    if (vec && base + K <= L) {
#pragma unroll
        for (int j = 0; j < K; j += W) av_get(v + j, __ldg(reinterpret_cast<const actv<W>*>(row + base + j)));
    } else {
#pragma unroll
        for (int k = 0; k < K; k++) v[k] = base + k < L ? (real)row[base + k] : (real)0;
    }
}

// raw_items is a lane's K steps of a row as loaded (bfloat16 stays
// packed), converted by raw_get where used: a load issued one iteration
// ahead of its use then holds few registers while in flight.
template <int K>
struct raw_items {
    actv<scan_vec<K>()> v[K / scan_vec<K>()];
};

// raw_load loads row[base .. base+K) as ld_items does, unconverted.
template <int K>
__device__ __forceinline__ void raw_load(raw_items<K>& r, const act_t* row, i64 base, i64 L, bool vec) {
    constexpr int W = scan_vec<K>();
    if (vec && base + K <= L) {
#pragma unroll
        for (int j = 0; j < K / W; j++) r.v[j] = __ldg(reinterpret_cast<const actv<W>*>(row + base + j * W));
    } else {
        real t[K];
        ld_items(t, row, base, L, false);
#pragma unroll
        for (int j = 0; j < K / W; j++) av_make(t + j * W, &r.v[j]); // exact: the values are act_t's
    }
}

template <int K>
__device__ __forceinline__ void raw_get(real (&v)[K], const raw_items<K>& r) {
    constexpr int W = scan_vec<K>();
#pragma unroll
    for (int j = 0; j < K / W; j++) av_get(v + j * W, r.v[j]);
}

// st_items stores v to row[base .. base+K), skipping steps past L.
template <int K>
__device__ __forceinline__ void st_items(const real (&v)[K], act_t* row, i64 base, i64 L, bool vec) {
    constexpr int W = scan_vec<K>();
    static_assert(K % W == 0 && (W == AV || ACT_IS_BF16), "a lane's steps are whole vectors");
    if (vec && base + K <= L) {
#pragma unroll
        for (int j = 0; j < K; j += W) av_make(v + j, reinterpret_cast<actv<W>*>(row + base + j));
    } else {
#pragma unroll
        for (int k = 0; k < K; k++)
            if (base + k < L) row[base + k] = v[k];
    }
}

// warp_affine_scan turns each lane's maps (al[j], be[j]), S independent
// ones, into the compositions of the maps of lanes 0..lane (up) or
// lane..31 (down), the earlier map in time applied first: h ↦ al·h + be.
template <int S>
__device__ __forceinline__ void warp_affine_scan(real (&al)[S], real (&be)[S], int lane, bool up) {
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        real ap[S], bp[S];
#pragma unroll
        for (int j = 0; j < S; j++) {
            ap[j] = up ? __shfl_up_sync(FULL_MASK, al[j], o) : __shfl_down_sync(FULL_MASK, al[j], o);
            bp[j] = up ? __shfl_up_sync(FULL_MASK, be[j], o) : __shfl_down_sync(FULL_MASK, be[j], o);
        }
        if (up ? lane >= o : lane + o < 32) {
#pragma unroll
            for (int j = 0; j < S; j++) {
                be[j] = al[j] * bp[j] + be[j];
                al[j] = al[j] * ap[j];
            }
        }
    }
}

__device__ __forceinline__ void warp_affine_scan(real& al, real& be, int lane, bool up) {
    real a1[1] = {al}, b1[1] = {be};
    warp_affine_scan(a1, b1, lane, up);
    al = a1[0];
    be = b1[0];
}

// chunk_entry is the state entering this lane's steps, given the state
// `carry` entering the warp's chunk (from lane 0, up) or leaving it (lane
// 31, down) and the lane's inclusive scan (al, be).
__device__ __forceinline__ real chunk_entry(real al, real be, real carry, int lane, bool up) {
    const real ae = up ? __shfl_up_sync(FULL_MASK, al, 1) : __shfl_down_sync(FULL_MASK, al, 1);
    const real bx = up ? __shfl_up_sync(FULL_MASK, be, 1) : __shfl_down_sync(FULL_MASK, be, 1);
    return (up ? lane == 0 : lane == 31) ? carry : ae * carry + bx;
}

// scan_deltas loads a lane's steps of δ (bias added, softplus'ed when
// asked; sp: its derivative) and u, and sets du = δ·u; δ = 0 past L.
template <int K>
__device__ __forceinline__ void scan_deltas(const ScanParams& p, i64 row, i64 base, bool vec, real bias, real (&dl)[K],
                                            real (&sp)[K], real (&uu)[K], real (&du)[K]) {
    ld_items(dl, p.Delta + row, base, p.L, vec);
    ld_items(uu, p.U + row, base, p.L, vec);
#pragma unroll
    for (int k = 0; k < K; k++) {
        dl[k] = base + k < p.L ? softplus_dt(dl[k] + bias, p.Softplus, &sp[k]) : (real)0;
        du[k] = dl[k] * uu[k];
    }
}

// scan_fwd_fetch loads what the head of scan_fwd_states<S> waits on for
// states n .. n+S: the lane's steps of Bm (unconverted) and A. The caller
// issues it one group of states ahead.
template <int S, int K>
__device__ __forceinline__ void scan_fwd_fetch(const ScanParams& p, i64 n, i64 base, i64 bg, i64 d, bool vec,
                                               raw_items<K> (&rb)[S], real (&An)[S]) {
#pragma unroll
    for (int j = 0; j < S; j++) {
        raw_load(rb[j], p.Bm + (bg * p.N + n + j) * p.L, base, p.L, vec);
        An[j] = __ldg(p.A + d * p.N + n + j);
    }
}

// scan_fwd_states runs states n .. n+S of a lane's steps in the forward:
// composes each over the lane's K steps, scans the maps across the warp,
// replays the steps from the entry state adding Cm·h to y, and leaves the
// chunk's last state in carry (lane 0). The S states' chains are
// independent, so each hides the others' latency (one state's compose,
// shuffle scan and replay are one dependent chain); y sums the states in
// the order of n. ck, when not null, is this channel's checkpoint row of
// the chunk (state n at ck[n], rows BDN apart): the lanes that start one
// of the backward's shorter chunks inside this one write their entry
// states to rows 1 .. K/SCAN_BWD_K − 1 (row 0, the carry, is written by
// the caller). rb and An are the states' Bm and A (scan_fwd_fetch's).
template <int S, int K>
__device__ __forceinline__ void scan_fwd_states(const ScanParams& p, i64 n, int lane, i64 base, i64 bg, i64 d, bool vec,
                                                real* carry, const real (&dl)[K], const real (&du)[K], real (&y)[K],
                                                real* ck, i64 BDN, const raw_items<K> (&rb)[S], const real (&An)[S]) {
    const i64 L = p.L, N = p.N;
    real bv[S][K], cv[S][K], a[S][K], al[S], be[S], h[S];
#pragma unroll
    for (int j = 0; j < S; j++) ld_items(cv[j], p.Cm + (bg * N + n + j) * L, base, L, vec);
#pragma unroll
    for (int j = 0; j < S; j++) {
        raw_get(bv[j], rb[j]);
        al[j] = 1, be[j] = 0;
#pragma unroll
        for (int k = 0; k < K; k++) {
            a[j][k] = r_expc(dl[k] * An[j]);
            be[j] = a[j][k] * be[j] + du[k] * bv[j][k];
            al[j] *= a[j][k];
        }
    }
    warp_affine_scan(al, be, lane, true);
#pragma unroll
    for (int j = 0; j < S; j++) {
        const real c0 = __shfl_sync(FULL_MASK, lane == 0 ? carry[n + j] : (real)0, 0);
        h[j] = chunk_entry(al[j], be[j], c0, lane, true);
    }
    constexpr int R = K / SCAN_BWD_K, LR = 32 / R; // backward chunks in this one, lanes in each
    if constexpr (R > 1) {
        if (ck && lane % LR == 0 && lane > 0 && base < p.L)
#pragma unroll
            for (int j = 0; j < S; j++) ck[(lane / LR) * BDN + n + j] = h[j];
    }
#pragma unroll
    for (int k = 0; k < K; k++) {
#pragma unroll
        for (int j = 0; j < S; j++) {
            h[j] = a[j][k] * h[j] + du[k] * bv[j][k];
            y[k] += cv[j][k] * h[j];
        }
    }
#pragma unroll
    for (int j = 0; j < S; j++) {
        h[j] = __shfl_sync(FULL_MASK, h[j], 31);
        if (lane == 0) carry[n + j] = h[j];
    }
}

template <int K>
__device__ __forceinline__ void scan_chunk_fwd_impl(const ScanParams& p) {
    extern __shared__ double scan_smem[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const i64 D = p.D, L = p.L, N = p.N, Dg = D / p.G;
    const i64 blk = blockIdx.x % p.Nblk, bg = blockIdx.x / p.Nblk, b = bg / p.G, g = bg % p.G;
    const i64 dl0 = blk * SCAN_FWD_WARPS + w; // channel within the group
    if (dl0 >= Dg) return;                     // no block-wide barrier below
    const i64 d = g * Dg + dl0, row = (b * D + d) * L;
    real* carry = reinterpret_cast<real*>(scan_smem) + w * N;
    for (i64 n = lane; n < N; n += 32) carry[n] = p.H0 ? state_of(p.H0, p.StBF)[(b * D + d) * N + n] : (real)0;
    const real bias = p.DBias ? p.DBias[d] : (real)0, dsk = p.Dskip ? p.Dskip[d] : (real)0;
    const bool vec = L % AV == 0;
    const i64 BDN = p.B * D * N;
    // Checkpoints are the states entering the backward's chunks of
    // 32·SCAN_BWD_K steps: K/SCAN_BWD_K of them in each chunk of this one.
    static_assert(K % SCAN_BWD_K == 0 && 32 % (K / SCAN_BWD_K) == 0, "whole backward chunks");
    for (i64 t0 = 0, c = 0; t0 < L; t0 += 32 * K, c++) {
        __syncwarp(); // lane 0's carries of the last chunk are visible
        real* ck = p.Ckpt ? p.Ckpt + c * (K / SCAN_BWD_K) * BDN + (b * D + d) * N : nullptr;
        if (ck)
            for (i64 n = lane; n < N; n += 32) ck[n] = carry[n];
        __syncwarp();
        const i64 base = t0 + (i64)lane * K;
        real dl[K], sp[K], uu[K], du[K], y[K];
        scan_deltas(p, row, base, vec, bias, dl, sp, uu, du);
#pragma unroll
        for (int k = 0; k < K; k++) y[k] = 0;
        // SCAN_FWD_STATES states at a time, the next group's Bm and A
        // loading while a group runs (ncu: global-load waits were 46 % of
        // the cycles, the group's chain starting at its own loads), then
        // any left one at a time.
        constexpr int S = SCAN_FWD_STATES;
        raw_items<K> rb[S];
        real An[S];
        i64 n = 0;
        if (S <= N) scan_fwd_fetch<S>(p, 0, base, bg, d, vec, rb, An);
        for (; n + S <= N; n += S) {
            raw_items<K> rbn[S];
            real Ann[S];
#pragma unroll
            for (int j = 0; j < S; j++) rbn[j] = rb[j], Ann[j] = An[j];
            if (n + 2 * S <= N) scan_fwd_fetch<S>(p, n + S, base, bg, d, vec, rb, An);
            scan_fwd_states<S>(p, n, lane, base, bg, d, vec, carry, dl, du, y, ck, BDN, rbn, Ann);
        }
        if constexpr (S > 1)
            for (; n < N; n++) {
                raw_items<K> r1[1];
                real a1[1];
                scan_fwd_fetch<1>(p, n, base, bg, d, vec, r1, a1);
                scan_fwd_states<1>(p, n, lane, base, bg, d, vec, carry, dl, du, y, ck, BDN, r1, a1);
            }
        if (p.Out) {
            real zv[K];
            if (p.Z) ld_items(zv, p.Z + row, base, L, vec);
#pragma unroll
            for (int k = 0; k < K; k++) {
                y[k] += dsk * uu[k];
                if (p.Z) y[k] *= zv[k] * r_sigmoid(zv[k]);
            }
            st_items(y, p.Out + row, base, L, vec);
        }
    }
    if (p.HT) {
        __syncwarp();
        for (i64 n = lane; n < N; n += 32) state_of(p.HT, p.StBF).set((b * D + d) * N + n, carry[n]);
    }
}

// The backward's shared memory (Go's scanChunkBwdSmem must agree, in
// reals): the warps' dBm and dCm terms of one state, [S][W][32·(K+1)] each
// (a lane's K steps then a pad, conflict-free; S slots: 1, or 2 in V2);
// the adjoint carries [W][N]; then, 8-byte aligned, the dA sums in double:
// [W][N] (a warp's), or [W][N][32] in V2 (a lane's).
//
// V2 (scan_chunk_bwd_v2) shortens each state's dependent chain by two
// steps of the first version: a lane adds its dA term to its own double in
// shared memory (the warp's sum waits for the end) instead of a five-round
// double shuffle sum every state and chunk, and the dBm/dCm terms
// alternate between two slots, so one barrier a state suffices: the
// slot a state writes was last read two states before, ahead of the
// previous state's barrier.
template <int K, bool V2>
__device__ __forceinline__ void scan_chunk_bwd_impl(const ScanParams& p) {
    extern __shared__ double scan_smem[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const i64 D = p.D, L = p.L, N = p.N, Dg = D / p.G;
    const i64 blk = blockIdx.x % p.Nblk, bg = blockIdx.x / p.Nblk, b = bg / p.G, g = bg % p.G;
    const i64 dl0 = blk * SCAN_BWD_WARPS + w;
    const bool active = dl0 < Dg; // an idle warp still meets the block's barriers
    const int nw = (int)imin(SCAN_BWD_WARPS, Dg - blk * SCAN_BWD_WARPS);
    const i64 d = g * Dg + imin(dl0, Dg - 1), row = (b * D + d) * L;
    const int RS = 32 * SCAN_PAD_STRIDE, SL = V2 ? 2 : 1, SW = SCAN_BWD_WARPS * RS;
    real* sRB0 = reinterpret_cast<real*>(scan_smem);
    real* sRC0 = sRB0 + SL * SW;
    real* qc = sRC0 + SL * SW + w * N;
    double* sDA = scan_smem + ((2 * SL * SW + SCAN_BWD_WARPS * N) * (i64)sizeof(real) + 7) / 8 + w * N * (V2 ? 32 : 1);
    for (i64 n = lane; n < N; n += 32) qc[n] = 0;
    if constexpr (V2) {
        for (i64 n = 0; n < N; n++) sDA[n * 32 + lane] = 0;
    } else {
        for (i64 n = lane; n < N; n += 32) sDA[n] = 0;
    }
    int slot = 0; // V2: the dBm/dCm slot of the next state, alternating across chunks
    const real bias = p.DBias ? p.DBias[d] : (real)0, dsk = p.Dskip ? p.Dskip[d] : (real)0;
    const bool vec = L % AV == 0, wantBC = p.DBm || p.DCm;
    const i64 BDN = p.B * D * N, nC = (L + 32 * K - 1) / (32 * K);
    double accD = 0, accBias = 0; // per lane: Σ dy·u, Σ d(raw δ)
    for (i64 c = nC - 1; c >= 0; c--) {
        const i64 t0 = c * 32 * K, base = t0 + (i64)lane * K;
        real dl[K], sp[K], uu[K], du[K], dy[K], zv[K], y[K], gu[K], gd[K];
        scan_deltas(p, row, base, vec, bias, dl, sp, uu, du);
        ld_items(dy, p.Dout + row, base, L, vec);
        if (p.Z) {
            ld_items(zv, p.Z + row, base, L, vec);
#pragma unroll
            for (int k = 0; k < K; k++) dy[k] *= zv[k] * r_sigmoid(zv[k]);
        }
#pragma unroll
        for (int k = 0; k < K; k++) {
            if (!active) dl[k] = du[k] = dy[k] = 0;
            y[k] = gu[k] = gd[k] = 0;
        }
        // State n's Bm, Cm, A and checkpoint are loaded during state n−1:
        // the loop is one dependent chain a state, and a load at its head
        // stalled it (ncu: global-load waits 36 % of the cycles).
        raw_items<K> nextB, nextC;
        real nextA = 0, nextH0 = 0;
        const real* ckc = p.Ckpt + c * BDN + (b * D + d) * N;
        auto fetch = [&](i64 n) {
            raw_load(nextB, p.Bm + (bg * N + n) * L, base, L, vec);
            raw_load(nextC, p.Cm + (bg * N + n) * L, base, L, vec);
            nextA = active ? __ldg(p.A + d * N + n) : (real)0;
            nextH0 = lane == 0 && active ? ckc[n] : (real)0;
        };
        if (N > 0) fetch(0);
        for (i64 n = 0; n < N; n++) {
            const real An = nextA, h0own = nextH0;
            real bv[K], cv[K], a[K], hp[K];
            raw_get(bv, nextB);
            raw_get(cv, nextC);
            if (n + 1 < N) fetch(n + 1);
            // The forward states of the chunk, from its checkpoint.
            real al = 1, be = 0;
#pragma unroll
            for (int k = 0; k < K; k++) {
                a[k] = r_expc(dl[k] * An);
                be = a[k] * be + du[k] * bv[k];
                al *= a[k];
            }
            warp_affine_scan(al, be, lane, true);
            const real h0 = __shfl_sync(FULL_MASK, h0own, 0);
            real h = chunk_entry(al, be, h0, lane, true);
            real rc[K];
#pragma unroll
            for (int k = 0; k < K; k++) {
                hp[k] = h;
                h = a[k] * h + du[k] * bv[k];
                y[k] += cv[k] * h;
                rc[k] = dy[k] * h; // dCm term
            }
            // The adjoint, backwards: q ↦ a·(q + dy·Cm) per step.
            al = 1, be = 0;
#pragma unroll
            for (int k = K - 1; k >= 0; k--) {
                be = a[k] * (be + dy[k] * cv[k]);
                al *= a[k];
            }
            warp_affine_scan(al, be, lane, false);
            const real q0 = __shfl_sync(FULL_MASK, lane == 0 ? qc[n] : (real)0, 0);
            real q = chunk_entry(al, be, q0, lane, false), rb[K], dA = 0;
#pragma unroll
            for (int k = K - 1; k >= 0; k--) {
                const real gk = q + dy[k] * cv[k];
                const real gah = gk * a[k] * hp[k]; // g·∂h_t/∂(δ·A)
                rb[k] = gk * du[k];                 // dBm term
                gu[k] += gk * dl[k] * bv[k];
                gd[k] += gk * bv[k] * uu[k] + An * gah;
                dA += dl[k] * gah;
                q = a[k] * gk;
            }
            q = __shfl_sync(FULL_MASK, q, 0);
            if constexpr (V2) {
                sDA[n * 32 + lane] += (double)dA;
                if (lane == 0) qc[n] = q;
            } else {
                const double dAw = warp_sum((double)dA);
                if (lane == 0) {
                    qc[n] = q;
                    sDA[n] += dAw;
                }
            }
            if (wantBC) {
                real* sRB = sRB0 + slot * SW;
                real* sRC = sRC0 + slot * SW;
                if constexpr (V2) slot ^= 1;
                real* rB = sRB + w * RS + lane * SCAN_PAD_STRIDE;
                real* rC = sRC + w * RS + lane * SCAN_PAD_STRIDE;
#pragma unroll
                for (int k = 0; k < K; k++) {
                    rB[k] = rb[k];
                    rC[k] = rc[k];
                }
                __syncthreads();
                for (int i = threadIdx.x; i < 32 * K; i += blockDim.x) {
                    const i64 t = t0 + i;
                    if (t >= L) break;
                    const int e = (i / K) * SCAN_PAD_STRIDE + i % K;
                    real sb = 0, sc = 0;
                    for (int v = 0; v < nw; v++) {
                        sb += sRB[v * RS + e];
                        sc += sRC[v * RS + e];
                    }
                    if (p.Nblk == 1) {
                        const i64 o = (bg * N + n) * L + t;
                        if (p.DBm) p.DBm[o] += sb;
                        if (p.DCm) p.DCm[o] += sc;
                    } else {
                        const i64 o = ((bg * p.Nblk + blk) * N + n) * L + t;
                        if (p.PartB) p.PartB[o] = sb;
                        if (p.PartC) p.PartC[o] = sc;
                    }
                }
                if constexpr (!V2) __syncthreads();
            }
        }
        if (!active) continue;
        real o1[K];
        if (p.DU) {
            ld_items(o1, p.DU + row, base, L, vec);
#pragma unroll
            for (int k = 0; k < K; k++) o1[k] += gu[k] + dsk * dy[k];
            st_items(o1, p.DU + row, base, L, vec);
        }
        if (p.DDelta) {
            ld_items(o1, p.DDelta + row, base, L, vec);
#pragma unroll
            for (int k = 0; k < K; k++) o1[k] += gd[k] * sp[k];
            st_items(o1, p.DDelta + row, base, L, vec);
        }
        if (p.DZ) {
            real go[K];
            ld_items(go, p.Dout + row, base, L, vec);
            ld_items(o1, p.DZ + row, base, L, vec);
#pragma unroll
            for (int k = 0; k < K; k++) {
                const real yy = y[k] + dsk * uu[k], zz = zv[k], sg = r_sigmoid(zz);
                o1[k] += go[k] * yy * sg * ((real)1 + zz * ((real)1 - sg));
            }
            st_items(o1, p.DZ + row, base, L, vec);
        }
#pragma unroll
        for (int k = 0; k < K; k++) {
            if (base + k < L) {
                accD += (double)dy[k] * (double)uu[k];
                accBias += (double)gd[k] * (double)sp[k];
            }
        }
    }
    if (!active) return;
    accD = warp_sum(accD);
    accBias = warp_sum(accBias);
    __syncwarp();
    if constexpr (V2) {
        for (i64 n = 0; n < N; n++) {
            const double s = warp_sum(sDA[n * 32 + lane]);
            if (p.PA && lane == 0) p.PA[(b * D + d) * N + n] = s;
        }
    } else if (p.PA) {
        for (i64 n = lane; n < N; n += 32) p.PA[(b * D + d) * N + n] = sDA[n];
    }
    if (lane == 0) {
        if (p.PD) p.PD[b * D + d] = accD;
        if (p.PDB) p.PDB[b * D + d] = accBias;
    }
}

// SCAN_FWD_BOUNDS and SCAN_BWD_BOUNDS ask ptxas for SCAN_CHUNK_BLOCKS
// blocks an SM (at most 65536 / (threads·SCAN_CHUNK_BLOCKS) registers a
// thread), SCAN_STATES_BOUNDS for SCAN_STATES_BLOCKS; for one, for nothing
// beyond the block size (an explicit minimum of 1 changes ptxas' choices:
// float64's forward would take 158 registers, not 146).
#if SCAN_CHUNK_BLOCKS > 1
#define SCAN_FWD_BOUNDS SCAN_FWD_WARPS * 32, SCAN_CHUNK_BLOCKS
#define SCAN_BWD_BOUNDS SCAN_BWD_WARPS * 32, SCAN_CHUNK_BLOCKS
#else
#define SCAN_FWD_BOUNDS SCAN_FWD_WARPS * 32
#define SCAN_BWD_BOUNDS SCAN_BWD_WARPS * 32
#endif
#if SCAN_STATES_BLOCKS > 1
#define SCAN_STATES_BOUNDS SCAN_FWD_WARPS * 32, SCAN_STATES_BLOCKS
#else
#define SCAN_STATES_BOUNDS SCAN_FWD_WARPS * 32
#endif
extern "C" __global__ void __launch_bounds__(SCAN_FWD_BOUNDS) scan_chunk_fwd(const __grid_constant__ ScanParams p) {
    scan_chunk_fwd_impl<SCAN_FWD_K>(p);
}
// scan_chunk_states is the forward at the backward's chunk length, writing
// only the checkpoints the backward reads.
extern "C" __global__ void __launch_bounds__(SCAN_STATES_BOUNDS) scan_chunk_states(const __grid_constant__ ScanParams p) {
    scan_chunk_fwd_impl<SCAN_BWD_K>(p);
}
extern "C" __global__ void __launch_bounds__(SCAN_BWD_BOUNDS) scan_chunk_bwd(const __grid_constant__ ScanParams p) {
    scan_chunk_bwd_impl<SCAN_BWD_K, false>(p);
}
extern "C" __global__ void __launch_bounds__(SCAN_BWD_BOUNDS) scan_chunk_bwd_v2(const __grid_constant__ ScanParams p) {
    scan_chunk_bwd_impl<SCAN_BWD_K, true>(p);
}

// scan_add_parts_r is scan_add_parts_act for partials stored as reals (the
// chunked backward's dBm and dCm: sums of a block's channels, float in
// every build).
extern "C" __global__ void scan_add_parts_r(act_t* out, const real* part, i64 outer, i64 nparts, i64 inner) {
    add_parts(out, part, outer, nparts, inner);
}
