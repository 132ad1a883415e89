// Tensor-core attention forward for bfloat16 activations (issue #15; NOTES.md
// "Attention on tensor cores"): the forward of attention.cu's attn_fwd, same
// arguments and the same lse (natural log of Σ_j exp(scale·q_i·k_j) over the
// visible keys, float32), so that attention.cu's backward kernels read it.
// Only the bfloat16 build has a body: Go launches these kernels only with
// bfloat16 activations and head dim 64 or 128 (flash_attn.go).
//
// FlashAttention-2's algorithm. A block of FA_THREADS (8 warps) owns FA_BR
// (128) query rows, 16 per warp; K and V stream through shared memory in
// tiles of FA_BC (64) keys, loaded with cp.async into two stages so that
// tile j+1 arrives while tile j is computed. A warp keeps its Q rows as mma
// A fragments, its scores S = Q·Kᵀ (16×64), its output accumulator O
// (16×D) and the online-softmax statistics in registers:
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
// skips the tiles none of its 16 rows sees, and only the tiles that cross a
// row's limit (or Lk) are masked element by element.
//
// Shared memory, bf16: Q (FA_BR rows), K and V (2 stages × FA_BC rows each),
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

// pack_p is pack_bf16 in one instruction (cvt.rn: nearest even), for the
// probabilities in [0, 1] of the P·V mma.
__device__ __forceinline__ unsigned pack_p(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// load_rows starts the copy of rows [0, FA rows) of a (·, D) bf16 tile at g
// into shared memory s (row stride FA_SP(D)); rows ≥ n are zero-filled.
template <int D, int ROWS>
__device__ __forceinline__ void load_rows(unsigned s, const bf16* g, int n) {
    constexpr int C = D / 8; // 16-byte chunks a row
    for (int e = threadIdx.x; e < ROWS * C; e += FA_THREADS) {
        const int r = e / C, c = e % C;
        const bool in = r < n;
        cp16(s + (unsigned)(r * FA_SP(D) + 8 * c) * 2u, g + (in ? (i64)r * D + 8 * c : 0), in ? 16 : 0);
    }
}

template <int D>
__device__ void flash_fwd(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, i64 BH, i64 Lq, i64 Lk,
                          double scale, i64 causal) {
    extern __shared__ uint4 fa_smem[];
    constexpr int SP = FA_SP(D), NK = D / 16, NO = D / 8, NS = FA_BC / 8;
    const unsigned Qs = smem_addr(fa_smem);
    const unsigned Ks0 = Qs + FA_BR * SP * 2, Vs0 = Ks0 + 2 * FA_BC * SP * 2;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float sl2 = (float)(scale * 1.4426950408889634); // scale·log2(e)
    // Positions fit an int (Go checks Lq, Lk < 2³¹); offsets are i64.
    const int nQ = (int)Lq, nK = (int)Lk, cz = causal != 0;
    // The last query tiles see the most keys under the causal mask: run them first.
    const int i0 = (int)(gridDim.x - 1 - blockIdx.x) * FA_BR;
    const int nq = min(FA_BR, nQ - i0);
    const int shift = nK - nQ;
    const int jend = cz ? min(nK, i0 + nq + shift) : nK;
    const int ntiles = (jend + FA_BC - 1) / FA_BC;
    const int wrow = i0 + 16 * warp;     // the warp's first query row
    const int r0 = wrow + g, r1 = r0 + 8; // this thread's two rows
    const bool wactive = 16 * warp < nq; // the warp has a row below Lq
    // ldmatrix row addresses, lane part: A (Q) and the .trans B (V) take
    // matrices (rows 0-7 | 8-15) × (columns 0-7 | 8-15) in the order
    // (r0-7,c0-7), (r8-15,c0-7), (r0-7,c8-15), (r8-15,c8-15); B from K rows
    // (keys) takes (k0-7,c0-7), (k0-7,c8-15), (k8-15,c0-7), (k8-15,c8-15).
    const int mi = lane >> 3, mr = lane & 7;
    const unsigned aoff = (unsigned)(((mi & 1) * 8 + mr) * SP + (mi >> 1) * 8) * 2u;
    const unsigned koff = (unsigned)(((mi >> 1) * 8 + mr) * SP + (mi & 1) * 8) * 2u;

    for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
        const bf16* kb = k + bh * Lk * D;
        const bf16* vb = v + bh * Lk * D;
        load_rows<D, FA_BR>(Qs, q + (bh * Lq + i0) * D, nq);
        load_rows<D, FA_BC>(Ks0, kb, min(FA_BC, nK));
        load_rows<D, FA_BC>(Vs0, vb, min(FA_BC, nK));
        cp_commit();
        cp_wait_all();
        __syncthreads();

        unsigned qf[NK][4];
#pragma unroll
        for (int kk = 0; kk < NK; kk++)
            ldsm_x4(Qs + (unsigned)(16 * warp * SP + 16 * kk) * 2u + aoff, qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
        float o[NO][4];
#pragma unroll
        for (int n = 0; n < NO; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
        float m0 = -R_INF, m1 = -R_INF, l0 = 0.f, l1 = 0.f; // rows r0, r1; l summed over the thread's columns

        for (int jt = 0; jt < ntiles; jt++) {
            const int j0 = jt * FA_BC;
            const unsigned Ks = Ks0 + (unsigned)(jt & 1) * FA_BC * SP * 2, Vs = Vs0 + (unsigned)(jt & 1) * FA_BC * SP * 2;
            if (jt + 1 < ntiles) {
                const int jn = j0 + FA_BC;
                const int nn = min(FA_BC, nK - jn);
                const unsigned off = (unsigned)((jt + 1) & 1) * FA_BC * SP * 2;
                load_rows<D, FA_BC>(Ks0 + off, kb + (i64)jn * D, nn);
                load_rows<D, FA_BC>(Vs0 + off, vb + (i64)jn * D, nn);
                cp_commit();
            }
            // A warp none of whose rows sees a key of this tile skips it.
            if (wactive && (!cz || j0 <= wrow + 15 + shift)) {
                float s[NS][4];
#pragma unroll
                for (int n = 0; n < NS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
                for (int kk = 0; kk < NK; kk++) {
#pragma unroll
                    for (int np = 0; np < NS / 2; np++) {
                        unsigned b0, b1, b2, b3;
                        ldsm_x4(Ks + (unsigned)(16 * np * SP + 16 * kk) * 2u + koff, b0, b1, b2, b3);
                        mma_bf16(s[2 * np], qf[kk], b0, b1);
                        mma_bf16(s[2 * np + 1], qf[kk], b2, b3);
                    }
                }
                const bool edge = j0 + FA_BC > nK || (cz && j0 + FA_BC - 1 > wrow + shift);
                float mx0 = -R_INF, mx1 = -R_INF;
#pragma unroll
                for (int n = 0; n < NS; n++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float x = s[n][e] * sl2;
                        if (edge) {
                            const int j = j0 + 8 * n + 2 * t + (e & 1), i = e < 2 ? r0 : r1;
                            if (j >= nK || (cz && j > i + shift)) x = -R_INF;
                        }
                        s[n][e] = x;
                    }
                    mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
                    mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
                }
                // The four lanes of a quad hold one row's 64 columns.
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
                // A row with no visible key yet keeps m = −inf; 0 as the
                // reference then gives p = 0 instead of −inf − (−inf).
                const float u0 = mn0 == -R_INF ? 0.f : mn0, u1 = mn1 == -R_INF ? 0.f : mn1;
                const float c0 = exp2f(m0 - u0), c1 = exp2f(m1 - u1);
                m0 = mn0;
                m1 = mn1;
                float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
                for (int n = 0; n < NS; n++) {
                    s[n][0] = exp2f(s[n][0] - u0);
                    s[n][1] = exp2f(s[n][1] - u0);
                    s[n][2] = exp2f(s[n][2] - u1);
                    s[n][3] = exp2f(s[n][3] - u1);
                    sum0 += s[n][0] + s[n][1];
                    sum1 += s[n][2] + s[n][3];
                }
                l0 = l0 * c0 + sum0;
                l1 = l1 * c1 + sum1;
#pragma unroll
                for (int n = 0; n < NO; n++) {
                    o[n][0] *= c0;
                    o[n][1] *= c0;
                    o[n][2] *= c1;
                    o[n][3] *= c1;
                }
                // O += P·V, 16 keys at a time: P's A fragment is two
                // adjacent S n-tiles' C fragments, rounded to bf16.
#pragma unroll
                for (int kk = 0; kk < FA_BC / 16; kk++) {
                    unsigned pa[4];
                    pa[0] = pack_p(s[2 * kk][0], s[2 * kk][1]);
                    pa[1] = pack_p(s[2 * kk][2], s[2 * kk][3]);
                    pa[2] = pack_p(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                    pa[3] = pack_p(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
                    for (int dp = 0; dp < D / 16; dp++) {
                        unsigned b0, b1, b2, b3;
                        ldsm_x4_t(Vs + (unsigned)(16 * kk * SP + 16 * dp) * 2u + aoff, b0, b1, b2, b3);
                        mma_bf16(o[2 * dp], pa, b0, b1);
                        mma_bf16(o[2 * dp + 1], pa, b2, b3);
                    }
                }
            }
            cp_wait_all();   // tile jt+1 has arrived (this thread's part)
            __syncthreads(); // ... everyone's, and tile jt is consumed
        }

        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float inv0 = 1.f / l0, inv1 = 1.f / l1;
        unsigned* ob = reinterpret_cast<unsigned*>(out + (bh * Lq) * D);
#pragma unroll
        for (int n = 0; n < NO; n++) {
            const int c = 8 * n + 2 * t; // even: the pair is one aligned 32-bit word
            if (r0 < nQ) ob[((i64)r0 * D + c) / 2] = pack_bf16(o[n][0] * inv0, o[n][1] * inv0);
            if (r1 < nQ) ob[((i64)r1 * D + c) / 2] = pack_bf16(o[n][2] * inv1, o[n][3] * inv1);
        }
        if (t == 0) {
            const float ln2 = 0.6931471805599453f;
            if (r0 < nQ) lse[bh * Lq + r0] = m0 * ln2 + logf(l0);
            if (r1 < nQ) lse[bh * Lq + r1] = m1 * ln2 + logf(l1);
        }
        __syncthreads(); // Qs and stage 0 are reloaded for the next (b, h)
    }
}

#else
// The float32 and float64 builds: never launched (flash_attn.go), kept so
// that every build defines the same kernels.
template <int D>
__device__ void flash_fwd(act_t*, real*, const act_t*, const act_t*, const act_t*, i64, i64, i64, double, i64) {}
#endif

#define FLASH_FWD(D)                                                                                                   \
    extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_fwd##D(act_t* out, real* lse, const act_t* q,      \
                                                                          const act_t* k, const act_t* v, i64 BH,     \
                                                                          i64 Lq, i64 Lk, double scale, i64 causal) { \
        flash_fwd<D>(out, lse, q, k, v, BH, Lq, Lk, scale, causal);                                                   \
    }

FLASH_FWD(64)
FLASH_FWD(128)
