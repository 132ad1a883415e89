// The gate nonlinearities of one LSTM or GRU step and their backward
// (cpukernels/rnn.go). Two ways to run the recurrence, chosen by rnn.go:
//
//   - per step, a thread per (b, u): lstm_cell, gru_cell and their
//     backward, between the cuBLAS GEMMs that rnn.go queues (the recurrent
//     product of every step, as PyTorch does without cuDNN);
//   - all steps in one cooperative launch: rnn_persist_* (below), where
//     each block owns a slice of the hidden units, computes their rows of
//     the recurrent product itself and waits at a grid-wide barrier between
//     steps. No host work per step, so the time is the GPU's alone; as
//     written it is latency-bound on its L2 reads and slower than the
//     first way (NOTES.md), so rnn.go uses it only when asked.
//
// Row pointers of the per-step kernels arrive already offset to step t;
// *B arguments are the strides between batch rows.

// The cells of one (b, u), shared by both ways. hh holds the unit's gate
// rows of the recurrent product (h·Whhᵀ, zeros when h = 0).

__device__ __forceinline__ void lstm_cell_one(real* p, const real* hh, const real* bih, const real* bhh, real* c,
                                              real* h, i64 H, i64 u, i64 save) {
    real a[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const i64 j = k * H + u;
        a[k] = p[j] + hh[k] + (bih ? bih[j] : (real)0) + (bhh ? bhh[j] : (real)0);
    }
    const real ig = r_sigmoid(a[0]), fg = r_sigmoid(a[1]), gg = r_tanh(a[2]), og = r_sigmoid(a[3]);
    const real ct = fg * *c + ig * gg;
    *c = ct;
    *h = og * r_tanh(ct);
    if (save) {
        p[u] = ig;
        p[H + u] = fg;
        p[2 * H + u] = gg;
        p[3 * H + u] = og;
        p[4 * H + u] = ct;
    }
}

__device__ __forceinline__ void gru_cell_one(real* p, const real* hh, const real* bih, const real* bhh, real prev,
                                             real* h, i64 H, i64 u, i64 save) {
    real gi[3], gh[3];
#pragma unroll
    for (int k = 0; k < 3; k++) {
        const i64 j = k * H + u;
        gi[k] = p[j] + (bih ? bih[j] : (real)0);
        gh[k] = hh[k] + (bhh ? bhh[j] : (real)0);
    }
    const real rg = r_sigmoid(gi[0] + gh[0]), zg = r_sigmoid(gi[1] + gh[1]);
    const real ng = r_tanh(gi[2] + rg * gh[2]);
    *h = ((real)1 - zg) * ng + zg * prev;
    if (save) {
        p[u] = rg;
        p[H + u] = zg;
        p[2 * H + u] = ng;
        p[3 * H + u] = gh[2];
    }
}

// The backward cells write the unit's four columns of dg (row d) and update
// the carry cy; s is the saved row of step t, dht the gradient reaching h_t
// from the loss and from step t+1 through Whh.

__device__ __forceinline__ void lstm_cell_bwd_one(real* d, const real* s, real prev, real dht, real* cy, i64 H,
                                                  i64 u) {
    const real ig = s[u], fg = s[H + u], gg = s[2 * H + u], og = s[3 * H + u], ct = s[4 * H + u];
    const real tc = r_tanh(ct);
    const real dc = *cy + dht * og * ((real)1 - tc * tc);
    d[u] = dc * gg * ig * ((real)1 - ig);
    d[H + u] = dc * prev * fg * ((real)1 - fg);
    d[2 * H + u] = dc * ig * ((real)1 - gg * gg);
    d[3 * H + u] = dht * tc * og * ((real)1 - og);
    *cy = dc * fg;
}

__device__ __forceinline__ void gru_cell_bwd_one(real* d, const real* s, real prev, real dht, real* cy, i64 H,
                                                 i64 u) {
    const real rg = s[u], zg = s[H + u], ng = s[2 * H + u], hn = s[3 * H + u];
    dht += *cy;
    const real dan = dht * ((real)1 - zg) * ((real)1 - ng * ng);
    d[u] = dan * hn * rg * ((real)1 - rg);
    d[H + u] = dht * (prev - ng) * zg * ((real)1 - zg);
    d[2 * H + u] = dan * rg;
    d[3 * H + u] = dan;
    *cy = dht * zg;
}

// lstm_cell: with a = pre (x·Wihᵀ) + hh (h·Whhᵀ, null: h = 0) + b_ih + b_hh,
//
//	i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g);  c = f·c + i·g;  h = o·tanh(c)
//
// writing h to out and, when saving, [i f g o c] over the row of pre.
extern "C" __global__ void lstm_cell(real* pre, i64 preB, const real* hh, const real* bih, const real* bhh, real* c,
                                     real* out, i64 outB, i64 B, i64 H, i64 save) {
    FOR_N(e, B * H) {
        const i64 b = e / H, u = e % H;
        real hq[4];
#pragma unroll
        for (int k = 0; k < 4; k++) hq[k] = hh ? hh[b * 4 * H + k * H + u] : (real)0;
        lstm_cell_one(pre + b * preB, hq, bih, bhh, c + e, out + b * outB + u, H, u, save);
    }
}

// gru_cell: with x-side gi = pre + b_ih and h-side gh = hh + b_hh,
//
//	r = σ(gi_r + gh_r);  z = σ(gi_z + gh_z);  n = tanh(gi_n + r·gh_n);  h = (1 − z)·n + z·h_{t−1}
//
// saving [r z n gh_n] over the row of pre. hprev null: h_{t−1} = 0.
extern "C" __global__ void gru_cell(real* pre, i64 preB, const real* hh, const real* bih, const real* bhh,
                                    const real* hprev, i64 hprevB, real* out, i64 outB, i64 B, i64 H, i64 save) {
    FOR_N(e, B * H) {
        const i64 b = e / H, u = e % H;
        real hq[3];
#pragma unroll
        for (int k = 0; k < 3; k++) hq[k] = hh ? hh[b * 3 * H + k * H + u] : (real)0;
        const real prev = hprev ? hprev[b * hprevB + u] : (real)0;
        gru_cell_one(pre + b * preB, hq, bih, bhh, prev, out + b * outB + u, H, u, save);
    }
}

// lstm_cell_bwd: with s = [i f g o c] of step t, c_{t−1} (null: 0), dh the
// recurrent gradient (null: 0) and the carried dc in cy,
//
//	dh := dout + dh;  tc := tanh(c);  dc := cy + dh·o·(1 − tc²);  cy = dc·f
//	dg = [dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i·(1−g²), dh·tc·o(1−o)]
extern "C" __global__ void lstm_cell_bwd(real* dg, i64 dgB, const real* sav, i64 savB, const real* cprev, i64 cprevB,
                                         const real* dout, i64 doutB, const real* dh, real* cy, i64 B, i64 H) {
    FOR_N(e, B * H) {
        const i64 b = e / H, u = e % H;
        const real prev = cprev ? cprev[b * cprevB + u] : (real)0;
        const real dht = dout[b * doutB + u] + (dh ? dh[e] : (real)0);
        lstm_cell_bwd_one(dg + b * dgB, sav + b * savB, prev, dht, cy + e, H, u);
    }
}

// gru_cell_bwd: with s = [r z n hn] of step t, h_{t−1} (null: 0) and the
// carried dh·z of step t+1 in cy,
//
//	dh := dout + dh + cy;  cy = dh·z;  dan := dh·(1−z)·(1−n²)
//	dg = [dan·hn·r(1−r), dh·(h_{t−1} − n)·z(1−z), dan·r, dan]
//
// (columns r, z, the h-side n, the x-side n).
extern "C" __global__ void gru_cell_bwd(real* dg, i64 dgB, const real* sav, i64 savB, const real* hprev, i64 hprevB,
                                        const real* dout, i64 doutB, const real* dh, real* cy, i64 B, i64 H) {
    FOR_N(e, B * H) {
        const i64 b = e / H, u = e % H;
        const real prev = hprev ? hprev[b * hprevB + u] : (real)0;
        const real dht = dout[b * doutB + u] + (dh ? dh[e] : (real)0);
        gru_cell_bwd_one(dg + b * dgB, sav + b * savB, prev, dht, cy + e, H, u);
    }
}

// rnn_zero_rows zeroes the first cols elements of rows r·stride, r in
// [1, rows): the t = 0 rows of dg of every sequence but the first.
extern "C" __global__ void rnn_zero_rows(real* x, i64 rows, i64 stride, i64 cols) {
    FOR_N(e, (rows - 1) * cols) x[(e / cols + 1) * stride + e % cols] = 0;
}

// ---- The whole recurrence in one cooperative launch ----
//
// Block blk owns hidden units [u0, u0 + nu), u0 = blk·U (rnn.go picks U so
// that every block is resident at once: a cooperative launch checks it).
// Batch rows are taken RNN_BC at a time; a grid-wide barrier ends each
// step. Values other blocks wrote during the launch are read with __ldcg
// (from L2: an SM's L1 may hold stale lines).

#define RNN_BC 8

__device__ __forceinline__ real warp_sum_real(real v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// grid_sync returns once every block of the launch has called it for the
// phase-th time (phase counts from 1). bar is zeroed before the launch.
__device__ void grid_sync(unsigned int* bar, unsigned int phase) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence(); // this block's writes before its arrival
        atomicAdd(bar, 1u);
        const unsigned int target = phase * gridDim.x;
        while (*(volatile unsigned int*)bar < target) __nanosleep(32); // poll L2 gently
        __threadfence();
    }
    __syncthreads();
}

// rnn_fwd_persist: for each step, the block's G·nu gate rows of
// h_{t−1}·Whhᵀ (a warp per row, lanes over k; h_{t−1} of RNN_BC batch rows
// staged in hs), then the cell of each (b, u). pre row (b, t) is at
// pre + b·preB + t·preT; out row (b, t) at out + b·outB + t·H. Shared
// memory: hs (RNN_BC·H), gs (RNN_BC·G·U).
template <int G>
__device__ void rnn_fwd_persist(real* sm, real* pre, i64 preB, i64 preT, const real* whh, const real* bih,
                                const real* bhh, const real* h0, real* c, real* out, i64 outB, i64 B, i64 L, i64 H,
                                i64 U, i64 save, unsigned int* bar) {
    const i64 u0 = (i64)blockIdx.x * U, nu = imax(0, imin(U, H - u0));
    real* hs = sm;
    real* gs = sm + RNN_BC * H;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    for (i64 t = 0; t < L; t++) {
        const real* hp = t > 0 ? out + (t - 1) * H : h0; // h_{t−1} (null: zeros)
        const i64 hpB = t > 0 ? outB : H;
        for (i64 b0 = 0; b0 < B; b0 += RNN_BC) {
            const i64 nb = imin(RNN_BC, B - b0);
            if (hp && nu > 0) {
                real v[TILE_LB];
                tile_batch(
                    (int)(nb * H), [&](int e, int j) { v[j] = __ldcg(hp + (b0 + e / H) * hpB + e % H); },
                    [&](int e, int j) { hs[e] = v[j]; });
                __syncthreads();
                for (i64 j = warp; j < G * nu; j += nwarp) {
                    const real* w = whh + ((j / nu) * H + u0 + j % nu) * H;
                    real acc[RNN_BC];
#pragma unroll
                    for (int bb = 0; bb < RNN_BC; bb++) acc[bb] = 0;
#pragma unroll 8
                    for (i64 k = lane; k < H; k += 32) {
                        const real wk = w[k];
#pragma unroll
                        for (int bb = 0; bb < RNN_BC; bb++) acc[bb] += wk * hs[bb * H + k]; // rows ≥ nb unused
                    }
#pragma unroll
                    for (int bb = 0; bb < RNN_BC; bb++) {
                        const real v = warp_sum_real(acc[bb]);
                        if (lane == 0 && bb < nb) gs[bb * G * nu + j] = v;
                    }
                }
                __syncthreads();
            }
            for (i64 e = threadIdx.x; e < nb * nu; e += blockDim.x) {
                const i64 bb = e / nu, ul = e % nu, u = u0 + ul, b = b0 + bb;
                real hh[G];
#pragma unroll
                for (int k = 0; k < G; k++) hh[k] = hp ? gs[bb * G * nu + k * nu + ul] : (real)0;
                real* p = pre + b * preB + t * preT;
                real* h = out + b * outB + t * H + u;
                if (G == 4) {
                    lstm_cell_one(p, hh, bih, bhh, c + b * H + u, h, H, u, save);
                } else {
                    const real prev = hp ? hs[bb * H + u] : (real)0;
                    gru_cell_one(p, hh, bih, bhh, prev, h, H, u, save);
                }
            }
            __syncthreads(); // hs and gs are refilled for the next batch rows
        }
        grid_sync(bar, (unsigned int)(t + 1));
    }
}

extern "C" __global__ void lstm_persist(real* pre, i64 preB, i64 preT, const real* whh, const real* bih,
                                        const real* bhh, const real* h0, real* c, real* out, i64 outB, i64 B, i64 L,
                                        i64 H, i64 U, i64 save, unsigned int* bar) {
    extern __shared__ real rnn_sm[];
    rnn_fwd_persist<4>(rnn_sm, pre, preB, preT, whh, bih, bhh, h0, c, out, outB, B, L, H, U, save, bar);
}

extern "C" __global__ void gru_persist(real* pre, i64 preB, i64 preT, const real* whh, const real* bih,
                                       const real* bhh, const real* h0, real* out, i64 outB, i64 B, i64 L, i64 H,
                                       i64 U, i64 save, unsigned int* bar) {
    extern __shared__ real rnn_sm[];
    rnn_fwd_persist<3>(rnn_sm, pre, preB, preT, whh, bih, bhh, h0, nullptr, out, outB, B, L, H, U, save, bar);
}

// rnn_bwd_persist: backpropagation through time, t from L−1 down. For
// each step, the gradient reaching the block's h_t from step t+1,
// dg_{t+1}[:, 0:G·H]·Whh restricted to its units (thread (ul, sub) sums
// the rows sub, sub + nsub, … of column u0 + ul: the reads of a row are
// contiguous; the nsub partial sums meet in red), then the backward cell.
// dg row (b, t) at dg + b·dgB + t·dgT; saved row at sav + b·savB + t·savT;
// the previous state the cell needs (c_{t−1} or h_{t−1}) at prv + b·prvB +
// (t−1)·prvT, or prev0 + b·H at t = 0 (null: zeros). Shared memory: ds
// (RNN_BC·G·H), red (nsub·RNN_BC·U).
template <int G>
__device__ void rnn_bwd_persist(real* sm, real* dg, i64 dgB, i64 dgT, const real* sav, i64 savB, i64 savT,
                                const real* prv, i64 prvB, i64 prvT, const real* prev0, const real* dout, i64 doutB,
                                const real* whh, real* cy, i64 B, i64 L, i64 H, i64 U, unsigned int* bar) {
    const i64 u0 = (i64)blockIdx.x * U, nu = imax(0, imin(U, H - u0)), GH = G * H;
    const i64 nsub = blockDim.x / U, ul0 = threadIdx.x % U, sub = threadIdx.x / U;
    real* ds = sm;
    real* red = sm + RNN_BC * GH;
    for (i64 t = L - 1; t >= 0; t--) {
        const bool rec = t < L - 1;
        for (i64 b0 = 0; b0 < B; b0 += RNN_BC) {
            const i64 nb = imin(RNN_BC, B - b0);
            if (rec && nu > 0) {
                real v[TILE_LB];
                tile_batch(
                    (int)(nb * GH), [&](int e, int j) { v[j] = __ldcg(dg + (b0 + e / GH) * dgB + (t + 1) * dgT + e % GH); },
                    [&](int e, int j) { ds[e] = v[j]; });
                __syncthreads();
                if (sub < nsub) {
                    real acc[RNN_BC];
#pragma unroll
                    for (int bb = 0; bb < RNN_BC; bb++) acc[bb] = 0;
                    if (ul0 < nu) {
#pragma unroll 8
                        for (i64 r = sub; r < GH; r += nsub) {
                            const real w = whh[r * H + u0 + ul0];
#pragma unroll
                            for (int bb = 0; bb < RNN_BC; bb++) acc[bb] += w * ds[bb * GH + r]; // rows ≥ nb unused
                        }
                    }
#pragma unroll
                    for (int bb = 0; bb < RNN_BC; bb++) red[(sub * RNN_BC + bb) * U + ul0] = acc[bb];
                }
                __syncthreads();
            }
            for (i64 e = threadIdx.x; e < nb * nu; e += blockDim.x) {
                const i64 bb = e / nu, ul = e % nu, u = u0 + ul, b = b0 + bb;
                real dht = dout[b * doutB + t * H + u];
                if (rec) {
                    for (i64 q = 0; q < nsub; q++) dht += red[(q * RNN_BC + bb) * U + ul];
                }
                const real prev = t > 0 ? prv[b * prvB + (t - 1) * prvT + u] : (prev0 ? prev0[b * H + u] : (real)0);
                real* d = dg + b * dgB + t * dgT;
                const real* s = sav + b * savB + t * savT;
                if (G == 4) {
                    lstm_cell_bwd_one(d, s, prev, dht, cy + b * H + u, H, u);
                } else {
                    gru_cell_bwd_one(d, s, prev, dht, cy + b * H + u, H, u);
                }
            }
            __syncthreads(); // ds and red are refilled for the next batch rows
        }
        grid_sync(bar, (unsigned int)(L - t));
    }
}

extern "C" __global__ void lstm_persist_bwd(real* dg, i64 dgB, i64 dgT, const real* sav, i64 savB, i64 savT,
                                            const real* prv, i64 prvB, i64 prvT, const real* prev0, const real* dout,
                                            i64 doutB, const real* whh, real* cy, i64 B, i64 L, i64 H, i64 U,
                                            unsigned int* bar) {
    extern __shared__ real rnn_sm[];
    rnn_bwd_persist<4>(rnn_sm, dg, dgB, dgT, sav, savB, savT, prv, prvB, prvT, prev0, dout, doutB, whh, cy, B, L, H,
                       U, bar);
}

extern "C" __global__ void gru_persist_bwd(real* dg, i64 dgB, i64 dgT, const real* sav, i64 savB, i64 savT,
                                           const real* prv, i64 prvB, i64 prvT, const real* prev0, const real* dout,
                                           i64 doutB, const real* whh, real* cy, i64 B, i64 L, i64 H, i64 U,
                                           unsigned int* bar) {
    extern __shared__ real rnn_sm[];
    rnn_bwd_persist<3>(rnn_sm, dg, dgB, dgT, sav, savB, savT, prv, prvB, prvT, prev0, dout, doutB, whh, cy, B, L, H,
                       U, bar);
}
