// The gate nonlinearities of one LSTM or GRU step and their backward
// (cpukernels/rnn.go). Two ways to run the recurrence, chosen by rnn.go:
//
//   - all steps in one cooperative launch: rnn_persist_* (below), where
//     each block owns a slice of the hidden units, keeps their rows of Whh
//     in registers, computes their share of the recurrent product itself
//     and waits at a grid-wide barrier between steps. No host work per
//     step, so the time is the GPU's alone; the default where it fits
//     (float32, H up to 1024 on an H200: rnn.go's planPersist);
//   - per step, a thread per (b, u): lstm_cell, gru_cell and their
//     backward, between the cuBLAS GEMMs that rnn.go queues (the recurrent
//     product of every step, as PyTorch does without cuDNN).
//
// Row pointers of the per-step kernels arrive already offset to step t;
// *B arguments are the strides between batch rows.
//
// Under bf16 the only activation these kernels read is dout (act_t, the
// backward kernels): rnn.go runs the recurrence on float32 copies of x and
// out, because the reference (cpukernels.BF16) carries h_{t−1} from step to
// step in float32 and rounds out once, at the end; the forward kernels, the
// saved gates and states and dg are float32 in every build.

// The cells of one (b, u), shared by both ways. rnn_in holds what the
// forward cell reads besides the recurrent product: the input projection
// of its gates and their biases (loaded ahead by the persistent kernels);
// hh holds the unit's gate rows of the recurrent product (h·Whhᵀ, zeros
// when h = 0).

template <int G>
struct rnn_in {
    real p[G], bi[G], bh[G];
};

template <int G>
__device__ __forceinline__ rnn_in<G> rnn_load_in(const real* p, const real* bih, const real* bhh, i64 H, i64 u) {
    rnn_in<G> x;
#pragma unroll
    for (int k = 0; k < G; k++) {
        const i64 j = k * H + u;
        x.p[k] = p[j];
        x.bi[k] = bih ? bih[j] : (real)0;
        x.bh[k] = bhh ? bhh[j] : (real)0;
    }
    return x;
}

// lstm_cell_one advances c and writes h; saving, [i f g o c] over p.
__device__ __forceinline__ void lstm_cell_one(real* p, const rnn_in<4>& x, const real* hh, real& c, real* h, i64 H,
                                              i64 u, i64 save) {
    real a[4];
#pragma unroll
    for (int k = 0; k < 4; k++) a[k] = x.p[k] + hh[k] + x.bi[k] + x.bh[k];
    const real ig = r_sigmoid(a[0]), fg = r_sigmoid(a[1]), gg = r_tanh(a[2]), og = r_sigmoid(a[3]);
    c = fg * c + ig * gg;
    *h = og * r_tanh(c);
    if (save) {
        p[u] = ig;
        p[H + u] = fg;
        p[2 * H + u] = gg;
        p[3 * H + u] = og;
        p[4 * H + u] = c;
    }
}

// gru_cell_one writes h from h_{t−1} = prev; saving, [r z n gh_n] over p.
__device__ __forceinline__ void gru_cell_one(real* p, const rnn_in<3>& x, const real* hh, real prev, real* h, i64 H,
                                             i64 u, i64 save) {
    real gi[3], gh[3];
#pragma unroll
    for (int k = 0; k < 3; k++) {
        gi[k] = x.p[k] + x.bi[k];
        gh[k] = hh[k] + x.bh[k];
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
// the carry cy; s holds the unit's saved values of step t ([i f g o c] or
// [r z n hn], read by rnn_load_saved), dht the gradient reaching h_t from
// the loss and from step t+1 through Whh.

template <int S>
__device__ __forceinline__ void rnn_load_saved(real (&s)[S], const real* row, i64 H, i64 u) {
#pragma unroll
    for (int k = 0; k < S; k++) s[k] = row[k * H + u];
}

__device__ __forceinline__ void lstm_cell_bwd_one(real* d, const real (&s)[5], real prev, real dht, real& cy, i64 H,
                                                  i64 u) {
    const real ig = s[0], fg = s[1], gg = s[2], og = s[3], ct = s[4];
    const real tc = r_tanh(ct);
    const real dc = cy + dht * og * ((real)1 - tc * tc);
    d[u] = dc * gg * ig * ((real)1 - ig);
    d[H + u] = dc * prev * fg * ((real)1 - fg);
    d[2 * H + u] = dc * ig * ((real)1 - gg * gg);
    d[3 * H + u] = dht * tc * og * ((real)1 - og);
    cy = dc * fg;
}

__device__ __forceinline__ void gru_cell_bwd_one(real* d, const real (&s)[4], real prev, real dht, real& cy, i64 H,
                                                 i64 u) {
    const real rg = s[0], zg = s[1], ng = s[2], hn = s[3];
    dht += cy;
    const real dan = dht * ((real)1 - zg) * ((real)1 - ng * ng);
    d[u] = dan * hn * rg * ((real)1 - rg);
    d[H + u] = dht * (prev - ng) * zg * ((real)1 - zg);
    d[2 * H + u] = dan * rg;
    d[3 * H + u] = dan;
    cy = dht * zg;
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
        real* p = pre + b * preB;
        lstm_cell_one(p, rnn_load_in<4>(p, bih, bhh, H, u), hq, c[e], out + b * outB + u, H, u, save);
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
        real* p = pre + b * preB;
        gru_cell_one(p, rnn_load_in<3>(p, bih, bhh, H, u), hq, prev, out + b * outB + u, H, u, save);
    }
}

// lstm_cell_bwd: with s = [i f g o c] of step t, c_{t−1} (null: 0), dh the
// recurrent gradient (null: 0) and the carried dc in cy,
//
//	dh := dout + dh;  tc := tanh(c);  dc := cy + dh·o·(1 − tc²);  cy = dc·f
//	dg = [dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i·(1−g²), dh·tc·o(1−o)]
extern "C" __global__ void lstm_cell_bwd(real* dg, i64 dgB, const real* sav, i64 savB, const real* cprev, i64 cprevB,
                                         const act_t* dout, i64 doutB, const real* dh, real* cy, i64 B, i64 H) {
    FOR_N(e, B * H) {
        const i64 b = e / H, u = e % H;
        const real prev = cprev ? cprev[b * cprevB + u] : (real)0;
        const real dht = dout[b * doutB + u] + (dh ? dh[e] : (real)0);
        real s[5];
        rnn_load_saved(s, sav + b * savB, H, u);
        lstm_cell_bwd_one(dg + b * dgB, s, prev, dht, cy[e], H, u);
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
                                        const act_t* dout, i64 doutB, const real* dh, real* cy, i64 B, i64 H) {
    FOR_N(e, B * H) {
        const i64 b = e / H, u = e % H;
        const real prev = hprev ? hprev[b * hprevB + u] : (real)0;
        const real dht = dout[b * doutB + u] + (dh ? dh[e] : (real)0);
        real s[4];
        rnn_load_saved(s, sav + b * savB, H, u);
        gru_cell_bwd_one(dg + b * dgB, s, prev, dht, cy[e], H, u);
    }
}

// rnn_zero_rows zeroes the first cols elements of rows r·stride, r in
// [1, rows): the t = 0 rows of dg of every sequence but the first.
extern "C" __global__ void rnn_zero_rows(real* x, i64 rows, i64 stride, i64 cols) {
    FOR_N(e, (rows - 1) * cols) x[(e / cols + 1) * stride + e % cols] = 0;
}

// ---- The whole recurrence in one cooperative launch ----
//
// Block blk owns hidden units [u0, u0 + nu), u0 = blk·U, and holds the
// weights of its share of every step's matrix-vector product in registers
// for the whole launch, so a step reads only the vectors it multiplies.
// The product is cut into warp items of RNN_ROWS rows × RNN_SPAN columns,
// one per warp, each lane holding RNN_ROWS × 4·RNN_KV of the weights (128
// registers); rnn.go picks U so that the items fit in one block and every
// block is resident at once (a cooperative launch checks that). Batch rows
// are taken RNN_BC at a time; a grid-wide barrier ends each step. Values
// other blocks wrote during the launch are read through L2 only (an SM's
// L1 may hold stale lines).

// RNN_THREADS, RNN_BC (batch rows at a time, four per pass of the
// product), RNN_ROWS (rows of a warp item: RNN_ROWS × 4 batch rows = one
// sum per lane) and RNN_KV (4-vectors of a lane's share of a weight row)
// come from rnn.go (contract.go).
#define RNN_SPAN (32 * 4 * RNN_KV)
#define RNN_PART (RNN_ROWS * RNN_BC) // partial sums of a warp item

struct __align__(16) rnn4 {
    real x, y, z, w;
};

// grid_sync returns once every block of the launch has called it for the
// phase-th time (phase counts from 1). bar is zeroed before the launch.
__device__ void grid_sync(unsigned int* bar, unsigned int phase) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence(); // this block's writes before its arrival
        atomicAdd(bar, 1u);
        const unsigned int target = phase * gridDim.x;
        while (*(volatile unsigned int*)bar < target) __nanosleep(20); // poll L2 gently
        __threadfence();
    }
    __syncthreads();
}

// rnn_copy16 copies 16 bytes from global to shared memory through L2,
// asynchronously (cp.async: no registers held); rnn_copy_wait waits for
// the thread's copies.
__device__ __forceinline__ void rnn_copy16(void* dst, const void* src) {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src)
                 : "memory");
#else
    *(float4*)dst = __ldcg((const float4*)src);
#endif
}

__device__ __forceinline__ void rnn_copy_wait() {
#ifdef __CUDA_ARCH__
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// rnn_stage copies rows [0, nb) of src (row stride srcS, n columns) into xs
// (row stride xsS) through L2, 16 bytes at a time where the rows allow.
// The caller synchronizes the block before reading xs.
__device__ void rnn_stage(real* xs, i64 xsS, const real* src, i64 srcS, int nb, int n) {
    const int per = 16 / (int)sizeof(real);
    if (n % per == 0 && srcS % per == 0 && xsS % per == 0 && (unsigned long long)src % 16 == 0) {
        for (int r = 0; r < nb; r++) {
            for (int e = threadIdx.x * per; e < n; e += blockDim.x * per) rnn_copy16(xs + r * xsS + e, src + r * srcS + e);
        }
        rnn_copy_wait();
        return;
    }
    for (int r = 0; r < nb; r++) {
        real v[TILE_LB];
        tile_batch(
            n, [&](int e, int j) { v[j] = __ldcg(src + r * srcS + e); }, [&](int e, int j) { xs[r * xsS + e] = v[j]; });
    }
}

// rnn_load_item fills a lane's weights of item (rg, kc): rows
// RNN_ROWS·rg + r, columns kc·RNN_SPAN + 128·i + 4·lane + q, through w(row,
// column).
template <class W>
__device__ void rnn_load_item(rnn4 (&wr)[RNN_ROWS][RNN_KV], int rg, int kc, int lane, W w) {
#pragma unroll
    for (int r = 0; r < RNN_ROWS; r++) {
#pragma unroll
        for (int i = 0; i < RNN_KV; i++) {
            const i64 k = (i64)kc * RNN_SPAN + i * 128 + lane * 4;
            const int j = RNN_ROWS * rg + r;
            wr[r][i] = rnn4{w(j, k), w(j, k + 1), w(j, k + 2), w(j, k + 3)};
        }
    }
}

// rnn_halve is one level of a warp's reduce-scatter: lanes that differ in
// bit M swap halves of v[0, 2M), each keeping the sum of one half.
template <int M>
__device__ __forceinline__ void rnn_halve(real* v, int lane) {
    const bool up = lane & M;
#pragma unroll
    for (int i = 0; i < M; i++) {
        const real send = up ? v[i] : v[i + M], keep = up ? v[i + M] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, M);
    }
}

// rnn_item_product multiplies a warp's item by the RNN_BC staged rows xs
// (row stride xsS, zero beyond the columns in use) and leaves in ps[o],
// o = r·RNN_BC + bb, the item's sum for its row RNN_ROWS·rg + r and batch
// row bb: four batch rows a pass, 32 sums a lane reduce-scattered over the
// lanes (lane l ends with sum l). The order of every sum is fixed.
__device__ __forceinline__ void rnn_item_product(const rnn4 (&wr)[RNN_ROWS][RNN_KV], const real* xs, i64 xsS,
                                                 int kc, int lane, real* ps) {
#pragma unroll
    for (int pass = 0; pass < RNN_BC / 4; pass++) {
        real v[4 * RNN_ROWS]; // v[4·r + q]: row r, batch row 4·pass + q
#pragma unroll
        for (int o = 0; o < 4 * RNN_ROWS; o++) v[o] = 0;
#pragma unroll
        for (int i = 0; i < RNN_KV; i++) {
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const rnn4 x = *(const rnn4*)(xs + (4 * pass + q) * xsS + (i64)kc * RNN_SPAN + i * 128 + lane * 4);
#pragma unroll
                for (int r = 0; r < RNN_ROWS; r++) {
                    const rnn4 w = wr[r][i];
                    v[4 * r + q] += w.x * x.x + w.y * x.y + w.z * x.z + w.w * x.w;
                }
            }
        }
        rnn_halve<16>(v, lane);
        rnn_halve<8>(v, lane);
        rnn_halve<4>(v, lane);
        rnn_halve<2>(v, lane);
        rnn_halve<1>(v, lane);
        ps[lane / 4 * RNN_BC + 4 * pass + lane % 4] = v[0];
    }
}

// rnn_item_sum is the product's row j (of the block's), batch row bb: the
// sum over its nkc items' partial sums in ps.
__device__ __forceinline__ real rnn_item_sum(const real* ps, int j, int bb, int nkc) {
    const real* p = ps + (i64)(j / RNN_ROWS) * nkc * RNN_PART + (j % RNN_ROWS) * RNN_BC + bb;
    real s = 0;
    for (int kc = 0; kc < nkc; kc++) s += p[kc * RNN_PART];
    return s;
}

// rnn_fwd_persist: for each step, the block's G·U rows of h_{t−1}·Whhᵀ (row
// g·U + ul is gate g of unit u0 + ul), then the cell of each (b, u), whose
// inputs its thread loads before the product. pre row (b, t) is at pre +
// b·preB + t·preT; out row (b, t) at out + b·outB + t·H; h_{−1} row b at h0
// + b·h0B (null: zeros). Shared memory: hs (RNN_BC × xsS, h_{t−1} of the
// batch rows), ps (RNN_PART partial sums a warp).
template <int G>
__device__ void rnn_fwd_persist(real* sm, real* pre, i64 preB, i64 preT, const real* whh, const real* bih,
                                const real* bhh, const real* h0, i64 h0B, real* c, real* out, i64 outB, i64 B, i64 L,
                                i64 H, i64 U, i64 save, unsigned int* bar) {
    const i64 u0 = (i64)blockIdx.x * U, nu = imax(1, imin(U, H - u0));
    const int nkc = (int)((H + RNN_SPAN - 1) / RNN_SPAN), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool item = warp < (int)((G * U + RNN_ROWS - 1) / RNN_ROWS) * nkc;
    const int rg = warp / nkc, kc = warp % nkc;
    const i64 xsS = (i64)nkc * RNN_SPAN;
    real* hs = sm;
    real* ps = sm + RNN_BC * xsS;
    rnn4 wr[RNN_ROWS][RNN_KV];
    rnn_load_item(wr, rg, kc, lane, [&](int j, i64 k) {
        const i64 g = j / U, ul = j % U;
        return item && g < G && ul < nu && k < H ? whh[(g * H + u0 + ul) * H + k] : (real)0;
    });
    for (i64 e = threadIdx.x; e < RNN_BC * xsS; e += blockDim.x) hs[e] = 0; // the padding stays zero
    // The thread's cell, if any, of each batch chunk: RNN_BC·U ≤ blockDim.x.
    const int bb = threadIdx.x / (int)nu, ul = threadIdx.x % (int)nu;
    const i64 u = u0 + ul;
    for (i64 t = 0; t < L; t++) {
        const real* hp = t > 0 ? out + (t - 1) * H : h0; // h_{t−1} (null: zeros)
        const i64 hpB = t > 0 ? outB : h0B;
        for (i64 b0 = 0; b0 < B; b0 += RNN_BC) {
            const int nb = (int)imin(RNN_BC, B - b0);
            const bool cell = bb < nb;
            const i64 b = b0 + bb;
            real* p = pre + b * preB + t * preT;
            rnn_in<G> x;
            real cv = 0;
            if (cell) {
                x = rnn_load_in<G>(p, bih, bhh, H, u);
                if constexpr (G == 4) cv = c[b * H + u];
            }
            __syncthreads(); // hs and ps are free
            if (hp) {
                rnn_stage(hs, xsS, hp + b0 * hpB, hpB, nb, (int)H);
                __syncthreads();
                if (item) rnn_item_product(wr, hs, xsS, kc, lane, ps + warp * RNN_PART);
                __syncthreads();
            }
            if (cell) {
                real hh[G];
#pragma unroll
                for (int g = 0; g < G; g++) hh[g] = hp ? rnn_item_sum(ps, g * (int)U + ul, bb, nkc) : (real)0;
                real* h = out + b * outB + t * H + u;
                if constexpr (G == 4) {
                    lstm_cell_one(p, x, hh, cv, h, H, u, save);
                    c[b * H + u] = cv;
                } else {
                    gru_cell_one(p, x, hh, hp ? hs[bb * xsS + u] : (real)0, h, H, u, save);
                }
            }
        }
        grid_sync(bar, (unsigned int)(t + 1));
    }
}

extern "C" __global__ void __launch_bounds__(RNN_THREADS, 1)
    lstm_persist(real* pre, i64 preB, i64 preT, const real* whh, const real* bih, const real* bhh, const real* h0,
                 i64 h0B, real* c, real* out, i64 outB, i64 B, i64 L, i64 H, i64 U, i64 save, unsigned int* bar) {
    extern __shared__ __align__(16) real rnn_sm[];
    rnn_fwd_persist<4>(rnn_sm, pre, preB, preT, whh, bih, bhh, h0, h0B, c, out, outB, B, L, H, U, save, bar);
}

extern "C" __global__ void __launch_bounds__(RNN_THREADS, 1)
    gru_persist(real* pre, i64 preB, i64 preT, const real* whh, const real* bih, const real* bhh, const real* h0,
                i64 h0B, real* out, i64 outB, i64 B, i64 L, i64 H, i64 U, i64 save, unsigned int* bar) {
    extern __shared__ __align__(16) real rnn_sm[];
    rnn_fwd_persist<3>(rnn_sm, pre, preB, preT, whh, bih, bhh, h0, h0B, nullptr, out, outB, B, L, H, U, save, bar);
}

// rnn_bwd_persist: backpropagation through time, t from L−1 down. For
// each step, the gradient reaching the block's h_t from step t+1,
// dg_{t+1}[:, 0:G·H]·Whh restricted to its units (product row ul is unit
// u0 + ul; the weights are Whh's columns), then the backward cell, whose
// inputs its thread loads before the product. dg row (b, t) at dg + b·dgB
// + t·dgT; saved row at sav + b·savB + t·savT; the previous state the cell
// needs (c_{t−1} or h_{t−1}) at prv + b·prvB + (t−1)·prvT, or prev0 + b·H
// at t = 0 (null: zeros). Shared memory: ds (RNN_BC × xsS, dg_{t+1} of the
// batch rows), ps.
template <int G>
__device__ void rnn_bwd_persist(real* sm, real* dg, i64 dgB, i64 dgT, const real* sav, i64 savB, i64 savT,
                                const real* prv, i64 prvB, i64 prvT, const real* prev0, const act_t* dout, i64 doutB,
                                const real* whh, real* cy, i64 B, i64 L, i64 H, i64 U, unsigned int* bar) {
    const i64 u0 = (i64)blockIdx.x * U, nu = imax(1, imin(U, H - u0)), GH = G * H;
    const int nkc = (int)((GH + RNN_SPAN - 1) / RNN_SPAN), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool item = warp < (int)((U + RNN_ROWS - 1) / RNN_ROWS) * nkc;
    const int rg = warp / nkc, kc = warp % nkc;
    const i64 xsS = (i64)nkc * RNN_SPAN;
    real* ds = sm;
    real* ps = sm + RNN_BC * xsS;
    rnn4 wr[RNN_ROWS][RNN_KV];
    rnn_load_item(wr, rg, kc, lane,
                  [&](int j, i64 k) { return item && j < nu && k < GH ? whh[k * H + u0 + j] : (real)0; });
    for (i64 e = threadIdx.x; e < RNN_BC * xsS; e += blockDim.x) ds[e] = 0; // the padding stays zero
    const int bb = threadIdx.x / (int)nu, ul = threadIdx.x % (int)nu;
    const i64 u = u0 + ul;
    for (i64 t = L - 1; t >= 0; t--) {
        const bool rec = t < L - 1;
        for (i64 b0 = 0; b0 < B; b0 += RNN_BC) {
            const int nb = (int)imin(RNN_BC, B - b0);
            const bool cell = bb < nb;
            const i64 b = b0 + bb;
            real sv[G == 4 ? 5 : 4], prev = 0, dht = 0, cv = 0;
            if (cell) {
                rnn_load_saved(sv, sav + b * savB + t * savT, H, u);
                prev = t > 0 ? prv[b * prvB + (t - 1) * prvT + u] : (prev0 ? prev0[b * H + u] : (real)0);
                dht = dout[b * doutB + t * H + u];
                cv = cy[b * H + u];
            }
            __syncthreads(); // ds and ps are free
            if (rec) {
                rnn_stage(ds, xsS, dg + b0 * dgB + (t + 1) * dgT, dgB, nb, (int)GH);
                __syncthreads();
                if (item) rnn_item_product(wr, ds, xsS, kc, lane, ps + warp * RNN_PART);
                __syncthreads();
            }
            if (cell) {
                if (rec) dht += rnn_item_sum(ps, ul, bb, nkc);
                real* d = dg + b * dgB + t * dgT;
                if constexpr (G == 4) {
                    lstm_cell_bwd_one(d, sv, prev, dht, cv, H, u);
                } else {
                    gru_cell_bwd_one(d, sv, prev, dht, cv, H, u);
                }
                cy[b * H + u] = cv;
            }
        }
        grid_sync(bar, (unsigned int)(L - t));
    }
}

extern "C" __global__ void __launch_bounds__(RNN_THREADS, 1)
    lstm_persist_bwd(real* dg, i64 dgB, i64 dgT, const real* sav, i64 savB, i64 savT, const real* prv, i64 prvB,
                     i64 prvT, const real* prev0, const act_t* dout, i64 doutB, const real* whh, real* cy, i64 B, i64 L,
                     i64 H, i64 U, unsigned int* bar) {
    extern __shared__ __align__(16) real rnn_sm[];
    rnn_bwd_persist<4>(rnn_sm, dg, dgB, dgT, sav, savB, savT, prv, prvB, prvT, prev0, dout, doutB, whh, cy, B, L, H,
                       U, bar);
}

extern "C" __global__ void __launch_bounds__(RNN_THREADS, 1)
    gru_persist_bwd(real* dg, i64 dgB, i64 dgT, const real* sav, i64 savB, i64 savT, const real* prv, i64 prvB,
                    i64 prvT, const real* prev0, const act_t* dout, i64 doutB, const real* whh, real* cy, i64 B, i64 L,
                    i64 H, i64 U, unsigned int* bar) {
    extern __shared__ __align__(16) real rnn_sm[];
    rnn_bwd_persist<3>(rnn_sm, dg, dgB, dgT, sav, savB, savT, prv, prvB, prvT, prev0, dout, doutB, whh, cy, B, L, H,
                       U, bar);
}
