// The gate nonlinearities of one LSTM or GRU step and their backward
// (cpukernels/rnn.go), a thread per (b, u). The matrix products around
// them are cuBLAS GEMMs queued by rnn.go: the input projection of every
// step at once, and per step the recurrent one (as PyTorch does). Row
// pointers arrive already offset to step t; *B arguments are the strides
// between batch rows.

// lstm_cell: with a = pre (x·Wihᵀ) + hh (h·Whhᵀ, null: h = 0) + b_ih + b_hh,
//
//	i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g);  c = f·c + i·g;  h = o·tanh(c)
//
// writing h to out and, when saving, [i f g o c] over the row of pre.
extern "C" __global__ void lstm_cell(real* pre, i64 preB, const real* hh, const real* bih, const real* bhh, real* c,
                                     real* out, i64 outB, i64 B, i64 H, i64 save) {
    FOR_N(e, B * H) {
        const i64 b = e / H, u = e % H;
        real* p = pre + b * preB;
        const real* q = hh ? hh + b * 4 * H : nullptr;
        real a[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const i64 j = k * H + u;
            a[k] = p[j] + (q ? q[j] : (real)0) + (bih ? bih[j] : (real)0) + (bhh ? bhh[j] : (real)0);
        }
        const real ig = r_sigmoid(a[0]), fg = r_sigmoid(a[1]), gg = r_tanh(a[2]), og = r_sigmoid(a[3]);
        const real ct = fg * c[e] + ig * gg;
        c[e] = ct;
        out[b * outB + u] = og * r_tanh(ct);
        if (save) {
            p[u] = ig;
            p[H + u] = fg;
            p[2 * H + u] = gg;
            p[3 * H + u] = og;
            p[4 * H + u] = ct;
        }
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
        real* p = pre + b * preB;
        const real* q = hh ? hh + b * 3 * H : nullptr;
        real gi[3], gh[3];
#pragma unroll
        for (int k = 0; k < 3; k++) {
            const i64 j = k * H + u;
            gi[k] = p[j] + (bih ? bih[j] : (real)0);
            gh[k] = (q ? q[j] : (real)0) + (bhh ? bhh[j] : (real)0);
        }
        const real rg = r_sigmoid(gi[0] + gh[0]), zg = r_sigmoid(gi[1] + gh[1]);
        const real ng = r_tanh(gi[2] + rg * gh[2]);
        const real prev = hprev ? hprev[b * hprevB + u] : (real)0;
        out[b * outB + u] = ((real)1 - zg) * ng + zg * prev;
        if (save) {
            p[u] = rg;
            p[H + u] = zg;
            p[2 * H + u] = ng;
            p[3 * H + u] = gh[2];
        }
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
        const real* s = sav + b * savB;
        const real ig = s[u], fg = s[H + u], gg = s[2 * H + u], og = s[3 * H + u], ct = s[4 * H + u];
        const real prev = cprev ? cprev[b * cprevB + u] : (real)0;
        const real dht = dout[b * doutB + u] + (dh ? dh[e] : (real)0);
        const real tc = r_tanh(ct);
        const real dc = cy[e] + dht * og * ((real)1 - tc * tc);
        real* d = dg + b * dgB;
        d[u] = dc * gg * ig * ((real)1 - ig);
        d[H + u] = dc * prev * fg * ((real)1 - fg);
        d[2 * H + u] = dc * ig * ((real)1 - gg * gg);
        d[3 * H + u] = dht * tc * og * ((real)1 - og);
        cy[e] = dc * fg;
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
        const real* s = sav + b * savB;
        const real rg = s[u], zg = s[H + u], ng = s[2 * H + u], hn = s[3 * H + u];
        const real prev = hprev ? hprev[b * hprevB + u] : (real)0;
        const real dht = dout[b * doutB + u] + (dh ? dh[e] : (real)0) + cy[e];
        const real dan = dht * ((real)1 - zg) * ((real)1 - ng * ng);
        real* d = dg + b * dgB;
        d[u] = dan * hn * rg * ((real)1 - rg);
        d[H + u] = dht * (prev - ng) * zg * ((real)1 - zg);
        d[2 * H + u] = dan * rg;
        d[3 * H + u] = dan;
        cy[e] = dht * zg;
    }
}

// rnn_zero_rows zeroes the first cols elements of rows r·stride, r in
// [1, rows): the t = 0 rows of dg of every sequence but the first.
extern "C" __global__ void rnn_zero_rows(real* x, i64 rows, i64 stride, i64 cols) {
    FOR_N(e, (rows - 1) * cols) x[(e / cols + 1) * stride + e % cols] = 0;
}
