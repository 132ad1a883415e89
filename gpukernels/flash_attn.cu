// Tensor-core attention for bfloat16 activations (issue #15; NOTES.md
// "Attention on tensor cores"): the forward of attention.cu's attn_fwd, same
// arguments and the same lse (natural log of Σ_j exp(scale·q_i·k_j) over the
// visible keys, float32), so that either backward reads it, and the
// backward of its attn_bwd_dkdv / attn_bwd_dq (below the forward). Only the
// bfloat16 build has a body: Go launches these kernels only with bfloat16
// activations and head dim 64 or 128 (flash_attn.go).
//
// The forward is FlashAttention-2's algorithm. A block owns FA_BR (128) query rows; each
// of its warps owns MT m-tiles of 16 consecutive rows (MT = 2 at Dh 64: 4
// warps, each K or V fragment loaded from shared memory feeds two mma;
// MT = 1 at Dh 128: 8 warps, for registers). K and V stream through shared
// memory in tiles of BC keys (32 at Dh 64, 64 at Dh 128), loaded with
// cp.async into two stages so that tile j+1 arrives while tile j is
// computed. A warp keeps its Q rows as mma A fragments, its scores S = Q·Kᵀ
// (16·MT × BC), its output accumulator O (16·MT × D) and the online-softmax
// statistics in registers:
//
//	x_ij = scale·log2(e)·q_i·k_j        (−inf where masked)
//	m_i' = max(m_i, max_j x_ij);  p_ij = 2^(x_ij − m_i')
//	l_i  = l_i·2^(m_i − m_i') + Σ_j p_ij;  O_i = O_i·2^(m_i − m_i') + Σ_j bf16(p_ij)·v_j
//
// then out_i = O_i / l_i and lse_i = m_i·ln 2 + ln l_i. P is rounded to
// bfloat16 for the P·V mma (l sums the unrounded p). Both products are
// mma.sync m16n8k16 bf16 × bf16 with float32 accumulation.
//
// Masking: with the causal mask aligned to the end (query i sees key j iff
// j ≤ i + Lk − Lq), a block stops at the last key its last row sees, a warp
// skips the tiles none of its rows sees, and only the m-tiles and key tiles
// that cross a row's limit (or Lk) are masked element by element.
//
// Shared memory, bf16: Q (FA_BR rows), K and V (2 stages × BC rows each),
// rows padded to D + FA_PAD elements (a multiple of 16 bytes for cp.async
// and ldmatrix; the 8 rows an ldmatrix reads then start in 8 different
// 16-byte bank groups). Rows past Lq or Lk are zero-filled by cp.async.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16; g = lane/4,
// t = lane%4): A (16×16, row-major) registers a0..a3 hold rows g, g+8, g,
// g+8 and columns 2t..2t+1, 2t..2t+1, 2t+8..2t+9, 2t+8..2t+9 (lower column
// in the low half); B (16×8) b0, b1 hold rows 2t..2t+1 and 2t+8..2t+9 of
// column g; C (16×8 float) c0, c1 row g, columns 2t, 2t+1 and c2, c3 row
// g+8. ldmatrix .x4 loads four 8×8 matrices whose row addresses come from
// lanes 0-7, 8-15, 16-23, 24-31; lane L receives row L/4, columns
// 2(L%4)..+1 of each (with .trans: rows 2(L%4)..+1 of column L/4).

#if ACT_IS_BF16

#define FA_SP(D) ((D) + FA_PAD)

// smem_addr is the shared-state-space address of a generic pointer into
// shared memory (what cp.async and ldmatrix take).
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// cp16 copies 16 bytes from global src to shared dst, asynchronously; with
// bytes = 0 it writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp16(unsigned dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(unsigned addr, unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(unsigned addr, unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

// mma_bf16: c (16×8 float) += a (16×16 bf16) · b (16×8 bf16); registers
// only, so not volatile: the compiler may schedule it.
__device__ __forceinline__ void mma_bf16(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// pack_bf16 rounds lo and hi to bfloat16 (nearest even, as bf16_bits) and
// packs them, lo in the low half (the lower column of a fragment pair).
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    return (unsigned)bf16_bits(lo) | (unsigned)bf16_bits(hi) << 16;
}

// pack_p is pack_bf16 in one instruction (cvt.rn: nearest even; NaN aside,
// the same bits), for the mma operands computed from scores: P in the
// forward, P and dS in the backward.
__device__ __forceinline__ unsigned pack_p(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// pack_a makes the A fragment (16×16, bf16) of an mma from two adjacent
// 16×8 C fragments (float) lo and hi, columns 0-7 and 8-15: C's layout is
// A's, so it is only the rounding.
__device__ __forceinline__ void pack_a(unsigned* a, const float* lo, const float* hi) {
    a[0] = pack_p(lo[0], lo[1]);
    a[1] = pack_p(lo[2], lo[3]);
    a[2] = pack_p(hi[0], hi[1]);
    a[3] = pack_p(hi[2], hi[3]);
}

// load_rows starts the copy of rows [0, ROWS) of a (·, D) bf16 tile at g
// into shared memory s (row stride FA_SP(D)) by the block's NT threads;
// rows ≥ n are zero-filled.
template <int D, int ROWS, int NT>
__device__ __forceinline__ void load_rows(unsigned s, const bf16* g, int n) {
    constexpr int C = D / 8; // 16-byte chunks a row
    for (int e = threadIdx.x; e < ROWS * C; e += NT) {
        const int r = e / C, c = e % C;
        const bool in = r < n;
        cp16(s + (unsigned)(r * FA_SP(D) + 8 * c) * 2u, g + (in ? (i64)r * D + 8 * c : 0), in ? 16 : 0);
    }
}

// flash_fwd at head dim D: a warp owns MT m-tiles of 16 consecutive query
// rows (each K or V fragment it loads from shared memory feeds MT mma), so
// a block is FA_BR / (16·MT) warps; K and V come in tiles of BC keys.
template <int D, int MT, int BC>
__device__ void flash_fwd(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, i64 BH, i64 Lq, i64 Lk_,
                          const float* lkp, i64 ldk, double scale, i64 causal) {
    // AttentionCached's filled rows (a position on the device), clamped to
    // [Lq, ldk], or Lk_.
    const i64 Lk = lkp ? min(max((i64)lkp[0], Lq), ldk) : Lk_;
    extern __shared__ uint4 fa_smem[];
    constexpr int SP = FA_SP(D), NK = D / 16, NO = D / 8, NS = BC / 8, NT = 2 * FA_BR / MT;
    const unsigned Qs = smem_addr(fa_smem);
    const unsigned Ks0 = Qs + FA_BR * SP * 2, Vs0 = Ks0 + 2 * BC * SP * 2;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float sl2 = (float)(scale * 1.4426950408889634); // scale·log2(e)
    // Positions fit an int (Go checks Lq, Lk < 2³¹); offsets are i64.
    const int nQ = (int)Lq, nK = (int)Lk, cz = causal != 0;
    // The last query tiles see the most keys under the causal mask: run them first.
    const int i0 = (int)(gridDim.x - 1 - blockIdx.x) * FA_BR;
    const int nq = min(FA_BR, nQ - i0);
    const int shift = nK - nQ;
    const int jend = cz ? min(nK, i0 + nq + shift) : nK;
    const int ntiles = (jend + BC - 1) / BC;
    const int wr = 16 * MT * warp;       // the warp's first row in the block
    const int wrow = i0 + wr;            // ... as a query index
    const bool wactive = wr < nq;        // the warp has a row below Lq
    // ldmatrix row addresses, lane part: A (Q) and the .trans B (V) take
    // matrices (rows 0-7 | 8-15) × (columns 0-7 | 8-15) in the order
    // (r0-7,c0-7), (r8-15,c0-7), (r0-7,c8-15), (r8-15,c8-15); B from K rows
    // (keys) takes (k0-7,c0-7), (k0-7,c8-15), (k8-15,c0-7), (k8-15,c8-15).
    const int mi = lane >> 3, mr = lane & 7;
    const unsigned aoff = (unsigned)(((mi & 1) * 8 + mr) * SP + (mi >> 1) * 8) * 2u;
    const unsigned koff = (unsigned)(((mi >> 1) * 8 + mr) * SP + (mi & 1) * 8) * 2u;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        const bf16* kb = k + bh * ldk * D; // ldk ≥ Lk rows per (b, h): a step-mode cache has room
        const bf16* vb = v + bh * ldk * D;
        load_rows<D, FA_BR, NT>(Qs, q + (bh * Lq + i0) * D, nq);
        load_rows<D, BC, NT>(Ks0, kb, min(BC, nK));
        load_rows<D, BC, NT>(Vs0, vb, min(BC, nK));
        cp_commit();
        cp_wait_all();
        __syncthreads();

        // Per m-tile mt (rows wrow + 16mt + g and + 8 for this thread): Q's
        // A fragments, O, and the running max m and sum l of both rows (l
        // summed over the thread's columns only until the end).
        unsigned qf[MT][NK][4];
        float o[MT][NO][4], m[MT][2], l[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int kk = 0; kk < NK; kk++)
                ldsm_x4(Qs + (unsigned)((wr + 16 * mt) * SP + 16 * kk) * 2u + aoff, qf[mt][kk][0], qf[mt][kk][1],
                        qf[mt][kk][2], qf[mt][kk][3]);
#pragma unroll
            for (int n = 0; n < NO; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f;
            m[mt][0] = m[mt][1] = -R_INF;
            l[mt][0] = l[mt][1] = 0.f;
        }

        for (int jt = 0; jt < ntiles; jt++) {
            const int j0 = jt * BC;
            const unsigned Ks = Ks0 + (unsigned)(jt & 1) * BC * SP * 2, Vs = Vs0 + (unsigned)(jt & 1) * BC * SP * 2;
            if (jt + 1 < ntiles) {
                const int jn = j0 + BC;
                const int nn = min(BC, nK - jn);
                const unsigned off = (unsigned)((jt + 1) & 1) * BC * SP * 2;
                load_rows<D, BC, NT>(Ks0 + off, kb + (i64)jn * D, nn);
                load_rows<D, BC, NT>(Vs0 + off, vb + (i64)jn * D, nn);
                cp_commit();
            }
            // A warp none of whose rows sees a key of this tile skips it.
            if (wactive && (!cz || j0 <= wrow + 16 * MT - 1 + shift)) {
                float s[MT][NS][4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int n = 0; n < NS; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
                for (int kk = 0; kk < NK; kk++) {
#pragma unroll
                    for (int np = 0; np < NS / 2; np++) {
                        unsigned b0, b1, b2, b3;
                        ldsm_x4(Ks + (unsigned)(16 * np * SP + 16 * kk) * 2u + koff, b0, b1, b2, b3);
#pragma unroll
                        for (int mt = 0; mt < MT; mt++) {
                            mma_bf16(s[mt][2 * np], qf[mt][kk], b0, b1);
                            mma_bf16(s[mt][2 * np + 1], qf[mt][kk], b2, b3);
                        }
                    }
                }
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    const int r0 = wrow + 16 * mt + g, r1 = r0 + 8;
                    const bool edge = j0 + BC > nK || (cz && j0 + BC - 1 > wrow + 16 * mt + shift);
                    float mx0 = -R_INF, mx1 = -R_INF;
#pragma unroll
                    for (int n = 0; n < NS; n++) {
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            float x = s[mt][n][e] * sl2;
                            if (edge) {
                                const int j = j0 + 8 * n + 2 * t + (e & 1), i = e < 2 ? r0 : r1;
                                if (j >= nK || (cz && j > i + shift)) x = -R_INF;
                            }
                            s[mt][n][e] = x;
                        }
                        mx0 = fmaxf(mx0, fmaxf(s[mt][n][0], s[mt][n][1]));
                        mx1 = fmaxf(mx1, fmaxf(s[mt][n][2], s[mt][n][3]));
                    }
                    // The four lanes of a quad hold one row's 64 columns.
                    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                    const float mn0 = fmaxf(m[mt][0], mx0), mn1 = fmaxf(m[mt][1], mx1);
                    // A row with no visible key yet keeps m = −inf; 0 as the
                    // reference then gives p = 0 instead of −inf − (−inf).
                    const float u0 = mn0 == -R_INF ? 0.f : mn0, u1 = mn1 == -R_INF ? 0.f : mn1;
                    const float c0 = exp2f(m[mt][0] - u0), c1 = exp2f(m[mt][1] - u1);
                    m[mt][0] = mn0;
                    m[mt][1] = mn1;
                    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
                    for (int n = 0; n < NS; n++) {
                        s[mt][n][0] = exp2f(s[mt][n][0] - u0);
                        s[mt][n][1] = exp2f(s[mt][n][1] - u0);
                        s[mt][n][2] = exp2f(s[mt][n][2] - u1);
                        s[mt][n][3] = exp2f(s[mt][n][3] - u1);
                        sum0 += s[mt][n][0] + s[mt][n][1];
                        sum1 += s[mt][n][2] + s[mt][n][3];
                    }
                    l[mt][0] = l[mt][0] * c0 + sum0;
                    l[mt][1] = l[mt][1] * c1 + sum1;
#pragma unroll
                    for (int n = 0; n < NO; n++) {
                        o[mt][n][0] *= c0;
                        o[mt][n][1] *= c0;
                        o[mt][n][2] *= c1;
                        o[mt][n][3] *= c1;
                    }
                }
                // O += P·V, 16 keys at a time: P's A fragment for keys
                // 16kk.. is two adjacent S n-tiles' C fragments, rounded to
                // bf16 (made here, so that S's registers free as it goes).
#pragma unroll
                for (int kk = 0; kk < BC / 16; kk++) {
                    unsigned pa[MT][4];
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        pack_a(pa[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
                    }
#pragma unroll
                    for (int dp = 0; dp < D / 16; dp++) {
                        unsigned b0, b1, b2, b3;
                        ldsm_x4_t(Vs + (unsigned)(16 * kk * SP + 16 * dp) * 2u + aoff, b0, b1, b2, b3);
#pragma unroll
                        for (int mt = 0; mt < MT; mt++) {
                            mma_bf16(o[mt][2 * dp], pa[mt], b0, b1);
                            mma_bf16(o[mt][2 * dp + 1], pa[mt], b2, b3);
                        }
                    }
                }
            }
            cp_wait_all();   // tile jt+1 has arrived (this thread's part)
            __syncthreads(); // ... everyone's, and tile jt is consumed
        }

        unsigned* ob = reinterpret_cast<unsigned*>(out + (bh * Lq) * D);
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int r0 = wrow + 16 * mt + g, r1 = r0 + 8;
            float l0 = l[mt][0], l1 = l[mt][1];
            l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
            l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
            const float inv0 = 1.f / l0, inv1 = 1.f / l1;
#pragma unroll
            for (int n = 0; n < NO; n++) {
                const int c = 8 * n + 2 * t; // even: the pair is one aligned 32-bit word
                if (r0 < nQ) ob[((i64)r0 * D + c) / 2] = pack_bf16(o[mt][n][0] * inv0, o[mt][n][1] * inv0);
                if (r1 < nQ) ob[((i64)r1 * D + c) / 2] = pack_bf16(o[mt][n][2] * inv1, o[mt][n][3] * inv1);
            }
            if (t == 0) {
                const float ln2 = 0.6931471805599453f;
                if (r0 < nQ) lse[bh * Lq + r0] = m[mt][0] * ln2 + logf(l0);
                if (r1 < nQ) lse[bh * Lq + r1] = m[mt][1] * ln2 + logf(l1);
            }
        }
        __syncthreads(); // Qs and stage 0 are reloaded for the next (b, h)
    }
}


// ---------------------------------------------------------------------------
// Backward (FlashAttention-2's), the gradients of attention.cu's
// AttentionBackward from the same inputs: the float32 lse of the forward and
// Dr_i = Σ_d dout_i·out_i (attn_bwd_pre, double, read as float). With
// p_ij = 2^(scale·log2(e)·q_i·k_j − lse_i·log2(e)) over the visible pairs:
//
//	dv_j += Σ_i p_ij·dout_i
//	ds_ij = p_ij·(dout_i·v_j − Dr_i)
//	dk_j += scale·Σ_i ds_ij·q_i
//	dq_i += scale·Σ_j ds_ij·k_j
//
// Two kernels recompute S and P, so nothing is summed across blocks (no
// atomics; deterministic). flash_bwd_dkdv: a block owns BKV keys (16 a
// warp) and streams the query tiles that see them (BQ rows of Q and dO,
// their lse·log2(e) and Dr) through two cp.async stages; a warp computes Sᵀ
// = K·Qᵀ and dPᵀ = V·dOᵀ (keys × queries, K and V as A fragments from
// shared memory, Q and dO rows as B fragments), so that Pᵀ and dSᵀ, rounded
// to bf16, are directly the A fragments of dV += Pᵀ·dO and dK += dSᵀ·Q (dO
// and Q as B fragments by ldmatrix .trans), as P is for P·V in the forward.
// flash_bwd_dq: a block owns FA_BR queries (16 a warp) and streams the key
// tiles they see (BC rows of K and V); a warp computes S = Q·Kᵀ and
// dP = dO·Vᵀ, then dQ += dS·K (K by ldmatrix .trans). Accumulators are
// float32 in registers until the end, where each element of dq, dk, dv is
// read, the float sum (times scale for dq, dk) added and the result rounded
// once. Masking as in the forward: blocks and warps skip the tiles no pair
// of theirs sees; only tiles crossing the diagonal (or Lk, for dq) are
// masked element by element. Query rows past Lq get lse = +inf (p = 0); key
// rows past Lk are zero-filled and, in flash_bwd_dkdv, never written.

// add_bf16x2 adds a and b to the two bf16 at p (4-byte aligned): read, add
// in float, round once.
__device__ __forceinline__ void add_bf16x2(bf16* p, float a, float b) {
    unsigned* w = reinterpret_cast<unsigned*>(p);
    const unsigned u = *w;
    *w = pack_bf16(bf16_float((unsigned short)(u & 0xffffu)) + a, bf16_float((unsigned short)(u >> 16)) + b);
}

// load_stats writes, for query rows i0 + [0, ROWS), lse·log2(e) to l2 and
// Dr (as float) to dr; rows ≥ nQ get +inf and 0 (so p = 0 there).
template <int ROWS, int NT>
__device__ __forceinline__ void load_stats(float* l2, float* dr, const float* lse, const double* Dr, int i0, int nQ) {
    for (int e = threadIdx.x; e < ROWS; e += NT) {
        const int i = i0 + e;
        l2[e] = i < nQ ? lse[i] * 1.4426950408889634f : R_INF;
        dr[e] = i < nQ ? (float)Dr[i] : 0.f;
    }
}

// flash_bwd_dkdv at head dim D: BKV keys a block (BKV/16 warps), query
// tiles of BQ. Shared memory: K, V (BKV rows), 2 stages × (Q, dO) (BQ
// rows), then 2 stages × (lse·log2(e), Dr) (BQ floats each).
template <int D, int BKV, int BQ>
__device__ void flash_bwd_dkdv(bf16* dk, bf16* dv, const bf16* q, const bf16* k, const bf16* v, const bf16* dout,
                               const float* lse, const double* Dr, i64 BH, i64 Lq, i64 Lk, double scale, i64 causal) {
    extern __shared__ uint4 fa_smem[];
    constexpr int SP = FA_SP(D), NK = D / 16, NO = D / 8, NS = BQ / 8, NT = 2 * BKV;
    const unsigned Ks = smem_addr(fa_smem), Vs = Ks + BKV * SP * 2;
    const unsigned Qs0 = Vs + BKV * SP * 2, dOs0 = Qs0 + 2 * BQ * SP * 2;
    float* const st0 = reinterpret_cast<float*>(reinterpret_cast<char*>(fa_smem) + (2 * BKV + 4 * BQ) * SP * 2);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float sl2 = (float)(scale * 1.4426950408889634), fscale = (float)scale;
    const int nQ = (int)Lq, nK = (int)Lk, cz = causal != 0, shift = nK - nQ;
    // Under the causal mask the first key tiles see the most queries: they
    // are the first blocks already.
    const int j0 = blockIdx.x * BKV;
    const int nk = min(BKV, nK - j0);
    const int istart = cz ? max(0, j0 - shift) : 0; // the first query that sees key j0
    const int ntiles = (nQ - istart + BQ - 1) / BQ;
    const int wk = 16 * warp;       // the warp's first key in the block
    const int wkey = j0 + wk;       // ... as a key index
    const bool wactive = wk < nk;   // the warp has a key below Lk
    const bool wantK = dk != nullptr, wantV = dv != nullptr;
    // ldmatrix row addresses, lane part, as in flash_fwd: aoff for A
    // fragments (K, V) and the .trans B fragments (dO, Q for dV, dK); koff
    // for B fragments from rows of Q and dO (queries as the n dimension).
    const int mi = lane >> 3, mr = lane & 7;
    const unsigned aoff = (unsigned)(((mi & 1) * 8 + mr) * SP + (mi >> 1) * 8) * 2u;
    const unsigned koff = (unsigned)(((mi >> 1) * 8 + mr) * SP + (mi & 1) * 8) * 2u;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        const bf16* qb = q + bh * Lq * D;
        const bf16* ob = dout + bh * Lq * D;
        load_rows<D, BKV, NT>(Ks, k + (bh * Lk + j0) * D, nk);
        load_rows<D, BKV, NT>(Vs, v + (bh * Lk + j0) * D, nk);
        load_rows<D, BQ, NT>(Qs0, qb + (i64)istart * D, min(BQ, nQ - istart));
        load_rows<D, BQ, NT>(dOs0, ob + (i64)istart * D, min(BQ, nQ - istart));
        cp_commit();
        load_stats<BQ, NT>(st0, st0 + BQ, lse + bh * Lq, Dr + bh * Lq, istart, nQ);
        cp_wait_all();
        __syncthreads();

        // dK, dV of the warp's 16 keys (rows wkey + g and + 8 for this
        // thread, columns 8n + 2t, + 1): C fragments.
        float dka[NO][4], dva[NO][4];
#pragma unroll
        for (int n = 0; n < NO; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) dka[n][e] = dva[n][e] = 0.f;

        for (int it = 0; it < ntiles; it++) {
            const int i0 = istart + it * BQ;
            const int sg = it & 1;
            const unsigned Qs = Qs0 + (unsigned)sg * BQ * SP * 2, dOs = dOs0 + (unsigned)sg * BQ * SP * 2;
            const float* l2 = st0 + sg * 2 * BQ;
            const float* dr = l2 + BQ;
            if (it + 1 < ntiles) {
                const int in = i0 + BQ, nn = min(BQ, nQ - in);
                const unsigned off = (unsigned)(sg ^ 1) * BQ * SP * 2;
                load_rows<D, BQ, NT>(Qs0 + off, qb + (i64)in * D, nn);
                load_rows<D, BQ, NT>(dOs0 + off, ob + (i64)in * D, nn);
                cp_commit();
                float* nl2 = st0 + (sg ^ 1) * 2 * BQ;
                load_stats<BQ, NT>(nl2, nl2 + BQ, lse + bh * Lq, Dr + bh * Lq, in, nQ);
            }
            // A warp none of whose keys this tile's last query sees skips it.
            if (wactive && (!cz || wkey <= i0 + BQ - 1 + shift)) {
                // Sᵀ (then Pᵀ) and dPᵀ (then dSᵀ): rows are keys, columns
                // queries i0 + 8n + 2t (+1).
                float s[NS][4], dp[NS][4];
#pragma unroll
                for (int n = 0; n < NS; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
                for (int kk = 0; kk < NK; kk++) {
                    unsigned ka[4], va[4];
                    ldsm_x4(Ks + (unsigned)(wk * SP + 16 * kk) * 2u + aoff, ka[0], ka[1], ka[2], ka[3]);
                    if (wantK) ldsm_x4(Vs + (unsigned)(wk * SP + 16 * kk) * 2u + aoff, va[0], va[1], va[2], va[3]);
#pragma unroll
                    for (int np = 0; np < NS / 2; np++) {
                        unsigned b0, b1, b2, b3;
                        ldsm_x4(Qs + (unsigned)(16 * np * SP + 16 * kk) * 2u + koff, b0, b1, b2, b3);
                        mma_bf16(s[2 * np], ka, b0, b1);
                        mma_bf16(s[2 * np + 1], ka, b2, b3);
                        if (wantK) { // dS is needed for dK only
                            ldsm_x4(dOs + (unsigned)(16 * np * SP + 16 * kk) * 2u + koff, b0, b1, b2, b3);
                            mma_bf16(dp[2 * np], va, b0, b1);
                            mma_bf16(dp[2 * np + 1], va, b2, b3);
                        }
                    }
                }
                const bool edge = cz && wkey + 15 > i0 + shift;
#pragma unroll
                for (int n = 0; n < NS; n++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int i = 8 * n + 2 * t + (e & 1);
                        float p = exp2f(fmaf(s[n][e], sl2, -l2[i]));
                        if (edge && wkey + g + 8 * (e >> 1) > i0 + i + shift) p = 0.f;
                        s[n][e] = p;
                        dp[n][e] = p * (dp[n][e] - dr[i]);
                    }
                }
                // dV += Pᵀ·dO and dK += dSᵀ·Q, 16 queries at a time: the A
                // fragment is two adjacent n-tiles' C fragments in bf16.
#pragma unroll
                for (int kk = 0; kk < BQ / 16; kk++) {
                    if (wantV) {
                        unsigned pa[4];
                        pack_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
                        for (int dd = 0; dd < D / 16; dd++) {
                            unsigned b0, b1, b2, b3;
                            ldsm_x4_t(dOs + (unsigned)(16 * kk * SP + 16 * dd) * 2u + aoff, b0, b1, b2, b3);
                            mma_bf16(dva[2 * dd], pa, b0, b1);
                            mma_bf16(dva[2 * dd + 1], pa, b2, b3);
                        }
                    }
                    if (wantK) {
                        unsigned sa[4];
                        pack_a(sa, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
                        for (int dd = 0; dd < D / 16; dd++) {
                            unsigned b0, b1, b2, b3;
                            ldsm_x4_t(Qs + (unsigned)(16 * kk * SP + 16 * dd) * 2u + aoff, b0, b1, b2, b3);
                            mma_bf16(dka[2 * dd], sa, b0, b1);
                            mma_bf16(dka[2 * dd + 1], sa, b2, b3);
                        }
                    }
                }
            }
            cp_wait_all();   // tile it+1 has arrived (this thread's part)
            __syncthreads(); // ... everyone's, and tile it is consumed
        }

        if (wactive) {
            const int r0 = wkey + g, r1 = r0 + 8;
#pragma unroll
            for (int n = 0; n < NO; n++) {
                const int c = 8 * n + 2 * t;
                if (r0 < nK) {
                    if (wantK) add_bf16x2(dk + (bh * Lk + r0) * D + c, fscale * dka[n][0], fscale * dka[n][1]);
                    if (wantV) add_bf16x2(dv + (bh * Lk + r0) * D + c, dva[n][0], dva[n][1]);
                }
                if (r1 < nK) {
                    if (wantK) add_bf16x2(dk + (bh * Lk + r1) * D + c, fscale * dka[n][2], fscale * dka[n][3]);
                    if (wantV) add_bf16x2(dv + (bh * Lk + r1) * D + c, dva[n][2], dva[n][3]);
                }
            }
        }
        __syncthreads(); // K, V and stage 0 are reloaded for the next (b, h)
    }
}

// flash_bwd_dq at head dim D: FA_BR queries a block (FA_BR/16 warps), key
// tiles of BC. Shared memory: Q, dO (FA_BR rows), 2 stages × (K, V) (BC
// rows).
template <int D, int BC>
__device__ void flash_bwd_dq(bf16* dq, const bf16* q, const bf16* k, const bf16* v, const bf16* dout,
                             const float* lse, const double* Dr, i64 BH, i64 Lq, i64 Lk, double scale, i64 causal) {
    extern __shared__ uint4 fa_smem[];
    constexpr int SP = FA_SP(D), NK = D / 16, NO = D / 8, NS = BC / 8, NT = 2 * FA_BR;
    const unsigned Qs = smem_addr(fa_smem), dOs = Qs + FA_BR * SP * 2;
    const unsigned Ks0 = dOs + FA_BR * SP * 2, Vs0 = Ks0 + 2 * BC * SP * 2;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float sl2 = (float)(scale * 1.4426950408889634), fscale = (float)scale;
    const int nQ = (int)Lq, nK = (int)Lk, cz = causal != 0, shift = nK - nQ;
    // The last query tiles see the most keys under the causal mask: run them first.
    const int i0 = (int)(gridDim.x - 1 - blockIdx.x) * FA_BR;
    const int nq = min(FA_BR, nQ - i0);
    const int jend = cz ? min(nK, i0 + nq + shift) : nK;
    const int ntiles = (jend + BC - 1) / BC;
    const int wr = 16 * warp;    // the warp's first row in the block
    const int wrow = i0 + wr;    // ... as a query index
    const bool wactive = wr < nq; // the warp has a row below Lq
    const int r0 = wrow + g, r1 = r0 + 8;
    const int mi = lane >> 3, mr = lane & 7;
    const unsigned aoff = (unsigned)(((mi & 1) * 8 + mr) * SP + (mi >> 1) * 8) * 2u;
    const unsigned koff = (unsigned)(((mi >> 1) * 8 + mr) * SP + (mi & 1) * 8) * 2u;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        const bf16* kb = k + bh * Lk * D;
        const bf16* vb = v + bh * Lk * D;
        load_rows<D, FA_BR, NT>(Qs, q + (bh * Lq + i0) * D, nq);
        load_rows<D, FA_BR, NT>(dOs, dout + (bh * Lq + i0) * D, nq);
        load_rows<D, BC, NT>(Ks0, kb, min(BC, nK));
        load_rows<D, BC, NT>(Vs0, vb, min(BC, nK));
        cp_commit();
        // lse·log2(e) and Dr of the thread's two rows (+inf and 0 past Lq).
        const float l20 = r0 < nQ ? lse[bh * Lq + r0] * 1.4426950408889634f : R_INF;
        const float l21 = r1 < nQ ? lse[bh * Lq + r1] * 1.4426950408889634f : R_INF;
        const float dr0 = r0 < nQ ? (float)Dr[bh * Lq + r0] : 0.f;
        const float dr1 = r1 < nQ ? (float)Dr[bh * Lq + r1] : 0.f;
        cp_wait_all();
        __syncthreads();

        float dqa[NO][4];
#pragma unroll
        for (int n = 0; n < NO; n++) dqa[n][0] = dqa[n][1] = dqa[n][2] = dqa[n][3] = 0.f;

        for (int jt = 0; jt < ntiles; jt++) {
            const int j0 = jt * BC;
            const unsigned Ks = Ks0 + (unsigned)(jt & 1) * BC * SP * 2, Vs = Vs0 + (unsigned)(jt & 1) * BC * SP * 2;
            if (jt + 1 < ntiles) {
                const int jn = j0 + BC;
                const int nn = min(BC, nK - jn);
                const unsigned off = (unsigned)((jt + 1) & 1) * BC * SP * 2;
                load_rows<D, BC, NT>(Ks0 + off, kb + (i64)jn * D, nn);
                load_rows<D, BC, NT>(Vs0 + off, vb + (i64)jn * D, nn);
                cp_commit();
            }
            // A warp none of whose rows sees a key of this tile skips it.
            if (wactive && (!cz || j0 <= wrow + 15 + shift)) {
                // S (then P, then dS) and dP: rows r0, r1, columns keys
                // j0 + 8n + 2t (+1).
                float s[NS][4], dp[NS][4];
#pragma unroll
                for (int n = 0; n < NS; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
                for (int kk = 0; kk < NK; kk++) {
                    unsigned qa[4], oa[4];
                    ldsm_x4(Qs + (unsigned)(wr * SP + 16 * kk) * 2u + aoff, qa[0], qa[1], qa[2], qa[3]);
                    ldsm_x4(dOs + (unsigned)(wr * SP + 16 * kk) * 2u + aoff, oa[0], oa[1], oa[2], oa[3]);
#pragma unroll
                    for (int np = 0; np < NS / 2; np++) {
                        unsigned b0, b1, b2, b3;
                        ldsm_x4(Ks + (unsigned)(16 * np * SP + 16 * kk) * 2u + koff, b0, b1, b2, b3);
                        mma_bf16(s[2 * np], qa, b0, b1);
                        mma_bf16(s[2 * np + 1], qa, b2, b3);
                        ldsm_x4(Vs + (unsigned)(16 * np * SP + 16 * kk) * 2u + koff, b0, b1, b2, b3);
                        mma_bf16(dp[2 * np], oa, b0, b1);
                        mma_bf16(dp[2 * np + 1], oa, b2, b3);
                    }
                }
                const bool edge = j0 + BC > nK || (cz && j0 + BC - 1 > wrow + shift);
#pragma unroll
                for (int n = 0; n < NS; n++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int j = j0 + 8 * n + 2 * t + (e & 1), i = e < 2 ? r0 : r1;
                        float p = exp2f(fmaf(s[n][e], sl2, -(e < 2 ? l20 : l21)));
                        if (edge && (j >= nK || (cz && j > i + shift))) p = 0.f;
                        s[n][e] = p * (dp[n][e] - (e < 2 ? dr0 : dr1));
                    }
                }
                // dQ += dS·K, 16 keys at a time (K's B fragments by .trans).
#pragma unroll
                for (int kk = 0; kk < BC / 16; kk++) {
                    unsigned sa[4];
                    pack_a(sa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
                    for (int dd = 0; dd < D / 16; dd++) {
                        unsigned b0, b1, b2, b3;
                        ldsm_x4_t(Ks + (unsigned)(16 * kk * SP + 16 * dd) * 2u + aoff, b0, b1, b2, b3);
                        mma_bf16(dqa[2 * dd], sa, b0, b1);
                        mma_bf16(dqa[2 * dd + 1], sa, b2, b3);
                    }
                }
            }
            cp_wait_all();   // tile jt+1 has arrived (this thread's part)
            __syncthreads(); // ... everyone's, and tile jt is consumed
        }

        if (wactive) {
#pragma unroll
            for (int n = 0; n < NO; n++) {
                const int c = 8 * n + 2 * t;
                if (r0 < nQ) add_bf16x2(dq + (bh * Lq + r0) * D + c, fscale * dqa[n][0], fscale * dqa[n][1]);
                if (r1 < nQ) add_bf16x2(dq + (bh * Lq + r1) * D + c, fscale * dqa[n][2], fscale * dqa[n][3]);
            }
        }
        __syncthreads(); // Q, dO and stage 0 are reloaded for the next (b, h)
    }
}

#else
// The float32 and float64 builds: never launched (flash_attn.go), kept so
// that every build defines the same kernels.
template <int D, int MT, int BC>
__device__ void flash_fwd(act_t*, real*, const act_t*, const act_t*, const act_t*, i64, i64, i64, const real*, i64,
                          double, i64) {}
template <int D, int BKV, int BQ>
__device__ void flash_bwd_dkdv(act_t*, act_t*, const act_t*, const act_t*, const act_t*, const act_t*, const real*,
                               const double*, i64, i64, i64, double, i64) {}
template <int D, int BC>
__device__ void flash_bwd_dq(act_t*, const act_t*, const act_t*, const act_t*, const act_t*, const real*,
                             const double*, i64, i64, i64, double, i64) {}
#endif

// FLASH_FWD(D, MT, BC): the kernel at head dim D with MT m-tiles a warp
// and key tiles of BC, in blocks of 2·FA_BR/MT threads (flash_attn.go's
// flashConfigs, which TestFlashConfigsMatchSource checks against these
// lines).
#define FLASH_FWD(D, MT, BC)                                                                                           \
    extern "C" __global__ void __launch_bounds__(2 * FA_BR / MT) flash_fwd##D(                                         \
        act_t* out, real* lse, const act_t* q, const act_t* k, const act_t* v, i64 BH, i64 Lq, i64 Lk,                \
        const real* lkp, i64 ldk, double scale, i64 causal) {                                                          \
        flash_fwd<D, MT, BC>(out, lse, q, k, v, BH, Lq, Lk, lkp, ldk, scale, causal);                                 \
    }

FLASH_FWD(64, 2, 32)
FLASH_FWD(128, 1, 64)


// FLASH_BWD(D, BKV, BQ, BC): the backward kernels at head dim D:
// flash_bwd_dkdv with BKV keys a block (2·BKV threads) and query tiles of
// BQ, flash_bwd_dq with FA_BR queries a block (2·FA_BR threads) and key
// tiles of BC (flash_attn.go's flashBwdConfigs; TestFlashConfigsMatchSource).
#define FLASH_BWD(D, BKV, BQ, BC)                                                                                      \
    extern "C" __global__ void __launch_bounds__(2 * BKV) flash_bwd_dkdv##D(                                           \
        act_t* dk, act_t* dv, const act_t* q, const act_t* k, const act_t* v, const act_t* dout, const real* lse,     \
        const double* Dr, i64 BH, i64 Lq, i64 Lk, double scale, i64 causal) {                                          \
        flash_bwd_dkdv<D, BKV, BQ>(dk, dv, q, k, v, dout, lse, Dr, BH, Lq, Lk, scale, causal);                        \
    }                                                                                                                  \
    extern "C" __global__ void __launch_bounds__(2 * FA_BR) flash_bwd_dq##D(                                           \
        act_t* dq, const act_t* q, const act_t* k, const act_t* v, const act_t* dout, const real* lse,                \
        const double* Dr, i64 BH, i64 Lq, i64 Lk, double scale, i64 causal) {                                          \
        flash_bwd_dq<D, BC>(dq, q, k, v, dout, lse, Dr, BH, Lq, Lk, scale, causal);                                   \
    }

FLASH_BWD(64, 128, 64, 64)
FLASH_BWD(128, 128, 32, 64)
