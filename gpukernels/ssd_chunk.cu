// The chunked (state space dual) form of Mamba-2's SSD (ssd.cu has the
// recurrence and the semantics; NOTES.md "SSD, chunked" the plan). Per
// (b, h) and chunk c of SSDC_Q steps t0 ≤ t < t0+q, with ℓ_t = d_t·A[h] and
// the chunk-local inclusive cumulative sum S_t = Σ_{t0≤k≤t} ℓ_k:
//
//	state_c[p,n] = Σ_s exp(S_last − S_s)·d_s·x_s[p]·Bm_s[n]
//	hin_{c+1}    = exp(S_last)·hin_c + state_c,   hin_0 = H0 or 0, hT = hin_nc
//	out_t[p]     = Σ_{s≤t} (Cm_t·Bm_s)·exp(S_t − S_s)·d_s·x_s[p]
//	             + exp(S_t)·Σ_n Cm_t[n]·hin_c[p,n] + Dskip[h]·x_t[p]
//
// Three kernels: ssdc_state (a block per (b, h, c): state_c and S_last),
// ssdc_pass (a thread per state element: hin_c in place of state_c, hT),
// ssdc_out (a block per (b, h, c): out). Every product is a 64×64 output
// tile of 256 threads, 4×4 a thread, both operands in shared memory stored
// k-major ([k][row], row stride SSDC_LD, so a thread reads 4 consecutive
// rows as one vector load). The exps take differences S_t − S_s with
// s ≤ t only; the masked half is written as 0, never multiplied.
//
// x, dt, Bm, Cm and out are act_t (bf16 in the bfloat16 build), read as
// real and staged as real; A, Dskip, DtBias, H0, hT and the scratch (st,
// cs) are real. out is written once, rounded once.

// SSDC_Q (the chunk), SSDC_THREADS, SSDC_NT (the n tile of ssdc_out) and
// SSDC_LD (the shared-memory row stride) come from ssd_chunk.go.
static_assert(SSDC_Q == 64 && SSDC_THREADS == 256, "the tiles are 64×64 outputs of 256 threads, 4×4 a thread");
static_assert(SSDC_LD % 4 == 0 && SSDC_LD >= SSDC_Q, "rows of 4 reals are vector loads");

// ssdc_smem is every kernel's dynamic shared memory.
extern __shared__ __align__(16) unsigned char ssdc_smem[];

#if !ACT_IS_BF16
// ssdc_ld4 reads p[0..3] from shared memory (16-byte aligned) as vector
// loads.
__device__ __forceinline__ void ssdc_ld4(const real* p, real* v) {
#if REAL_IS_DOUBLE
    const double2 a = *(const double2*)p, b = *(const double2*)(p + 2);
    v[0] = a.x;
    v[1] = a.y;
    v[2] = b.x;
    v[3] = b.y;
#else
    const float4 a = *(const float4*)p;
    v[0] = a.x;
    v[1] = a.y;
    v[2] = a.z;
    v[3] = a.w;
#endif
}
#endif

#define SSDC_SPLIT 3

#if ACT_IS_BF16
// The bfloat16 build multiplies on tensor cores: mma.sync m16n8k16 (bf16
// in, f32 accumulators). The 64×64 tile is 4×2 warps of 16×32 (four 16×8
// products a warp), and acc[i][j] is element j of the warp's product i.
// Operands are read from the same float tiles and converted to bf16 pairs
// in registers. An operand that is not a bf16 value (x·w, the decayed
// scores, the float32 states) is split into SSDC_SPLIT bf16 terms
// v ≈ v₀ + v₁ + v₂ (each the bf16 rounding of what is left), each term
// one product against the exact operand, so the product keeps float32's
// accuracy (the residual is below 2⁻²⁷·|v|) — the float32 states and hT
// are checked at float32 tolerances.

// ssdc_bf2 packs (lo, hi) rounded to bf16 (nearest even) into one
// register, lo in the low half (the first element of an mma pair).
__device__ __forceinline__ unsigned ssdc_bf2(float lo, float hi) {
    unsigned d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}

// ssdc_split writes the S bf16 terms of the pair (lo, hi) to t[0..S−1].
template <int S>
__device__ __forceinline__ void ssdc_split(float lo, float hi, unsigned* t) {
#pragma unroll
    for (int k = 0; k < S; k++) {
        t[k] = ssdc_bf2(lo, hi);
        lo -= __uint_as_float(t[k] << 16);
        hi -= __uint_as_float(t[k] & 0xffff0000u);
    }
}

__device__ __forceinline__ void ssdc_mma16816(real* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ssdc_row and ssdc_col are the tile row and column of acc[i][j].
__device__ __forceinline__ int ssdc_row(int i, int j) {
    const int w = threadIdx.x >> 5, gid = (threadIdx.x & 31) >> 2;
    return 16 * (w >> 1) + gid + 8 * (j >> 1);
}
__device__ __forceinline__ int ssdc_col(int i, int j) {
    const int w = threadIdx.x >> 5, tig = threadIdx.x & 3;
    return 8 * (4 * (w & 1) + i) + 2 * tig + (j & 1);
}

// ssdc_mma adds Σ_{k<K} a[k][row]·b[k][col] to acc (K rounded up to a
// multiple of 16: the tiles are zero there). SA and SB are the bf16 terms
// of a and b: 1 for an operand of bf16 values, SSDC_SPLIT otherwise (one
// of the two).
template <int SA, int SB>
__device__ __forceinline__ void ssdc_mma(real acc[4][4], const real* a, const real* b, int K) {
    static_assert(SA == 1 || SB == 1, "one operand exact");
    const int w = threadIdx.x >> 5, gid = (threadIdx.x & 31) >> 2, tig = threadIdx.x & 3;
    const int r0 = 16 * (w >> 1) + gid, c0 = 32 * (w & 1) + gid;
    for (int k0 = 0; k0 < K; k0 += 16) {
        const real* ak = a + (k0 + 2 * tig) * SSDC_LD;
        const real* bk = b + (k0 + 2 * tig) * SSDC_LD;
        unsigned af[SA][4];
        unsigned t[SA];
        ssdc_split<SA>(ak[r0], ak[SSDC_LD + r0], t);
#pragma unroll
        for (int s = 0; s < SA; s++) af[s][0] = t[s];
        ssdc_split<SA>(ak[r0 + 8], ak[SSDC_LD + r0 + 8], t);
#pragma unroll
        for (int s = 0; s < SA; s++) af[s][1] = t[s];
        ssdc_split<SA>(ak[8 * SSDC_LD + r0], ak[9 * SSDC_LD + r0], t);
#pragma unroll
        for (int s = 0; s < SA; s++) af[s][2] = t[s];
        ssdc_split<SA>(ak[8 * SSDC_LD + r0 + 8], ak[9 * SSDC_LD + r0 + 8], t);
#pragma unroll
        for (int s = 0; s < SA; s++) af[s][3] = t[s];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int c = c0 + 8 * i;
            unsigned bf[SB][2], u[SB];
            ssdc_split<SB>(bk[c], bk[SSDC_LD + c], u);
#pragma unroll
            for (int s = 0; s < SB; s++) bf[s][0] = u[s];
            ssdc_split<SB>(bk[8 * SSDC_LD + c], bk[9 * SSDC_LD + c], u);
#pragma unroll
            for (int s = 0; s < SB; s++) bf[s][1] = u[s];
            // smallest terms first, into the same accumulators
#pragma unroll
            for (int s = SA - 1; s >= 0; s--)
#pragma unroll
                for (int r = SB - 1; r >= 0; r--) ssdc_mma16816(acc[i], af[s], bf[r]);
        }
    }
}
#else
// The float builds multiply with FMA: thread (ty, tx) = (tid/16, tid%16)
// holds rows 4·ty .. 4·ty+3 and columns 4·tx .. 4·tx+3 (acc[i][j] is row
// 4·ty+i, column 4·tx+j).
__device__ __forceinline__ int ssdc_row(int i, int j) { return 4 * (threadIdx.x >> 4) + i; }
__device__ __forceinline__ int ssdc_col(int i, int j) { return 4 * (threadIdx.x & 15) + j; }

// ssdc_mma adds Σ_{k<K} a[k][row]·b[k][col] to acc (SA, SB: unused here,
// the bf16 build's operand splits).
template <int SA, int SB>
__device__ __forceinline__ void ssdc_mma(real acc[4][4], const real* a, const real* b, int K) {
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll 4
    for (int k = 0; k < K; k++) {
        real av[4], bv[4];
        ssdc_ld4(a + k * SSDC_LD + 4 * ty, av);
        ssdc_ld4(b + k * SSDC_LD + 4 * tx, bv);
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
    }
}
#endif

__device__ __forceinline__ void ssdc_zero(real acc[4][4]) {
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0;
}

// ssdc_decay writes d_t (0 past q) and the chunk-local inclusive cumulative
// sum S_t of d_t·A[h] (flat past q) of the chunk's SSDC_Q steps to sD and
// sS: warp 0, two steps a lane, a shuffle scan. The caller syncs.
__device__ __forceinline__ void ssdc_decay(real* sD, real* sS, const act_t* dt, const real* A, const real* dtbias,
                                           i64 b, i64 h, i64 t0, int q, i64 L, i64 H, i64 softplus) {
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x;
    const real Ah = A[h], bias = dtbias ? dtbias[h] : (real)0;
    real d[2], l[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
        const int tt = 2 * lane + j;
        d[j] = 0;
        if (tt < q) {
            real sp;
            d[j] = softplus_dt(dt[(b * L + t0 + tt) * H + h] + bias, softplus, &sp);
        }
        l[j] = d[j] * Ah;
    }
    real incl = l[0] + l[1];
    for (int o = 1; o < 32; o <<= 1) {
        const real u = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += u;
    }
    real excl = __shfl_up_sync(0xffffffffu, incl, 1);
    if (lane == 0) excl = 0;
    sD[2 * lane] = d[0];
    sD[2 * lane + 1] = d[1];
    sS[2 * lane] = excl + l[0];
    sS[2 * lane + 1] = excl + l[0] + l[1];
}

// ssdc_block splits blockIdx.x into (b, h, c), c fastest.
__device__ __forceinline__ void ssdc_block(i64 H, i64 nc, i64* b, i64* h, i64* c) {
    const i64 blk = blockIdx.x;
    *c = blk % nc;
    *h = (blk / nc) % H;
    *b = blk / (nc * H);
}

// ssdc_v8 is a thread's share of a staged tile: 8 elements of one line
// (8 consecutive k of one row, or 8 consecutive rows of one k), kept as
// read from memory (bf16 stays packed, 4 registers) until staged.
template <typename T>
struct alignas(16) ssdc_v8 {
    T v[8];
};

// ssdc_opnd is one operand of a tile product: element (r, k), r < 64 the
// tile's row (or column) and k the contracted index, at p[r·rs + k] (KMAJ
// false) or p[k·rs + r] (KMAJ true); zero for r ≥ rows or k ≥ K. p is the
// block's corner of the tensor. It is staged as [k][r] (row stride
// SSDC_LD), ssdc_mma's layout. Vector vi of a KT-wide k-tile is 8
// elements along memory's contiguous index: (vi / (KT/8), 8·(vi % (KT/8))
// + j), or (8·(vi % 8) + j, vi / 8) when KMAJ. When vec (the corner
// 16-byte aligned, rs a multiple of 8, and the lines of 8 either wholly in
// range or wholly out) a vector is one load (16 bytes in bf16), else 8.
template <typename T, bool KMAJ>
struct ssdc_opnd {
    const T* p;
    int rs, rows, K;
    bool vec;
    __device__ __forceinline__ ssdc_opnd(const T* p, i64 rs, i64 rows, i64 K)
        : p(p), rs((int)rs), rows((int)rows), K((int)K),
          vec(al16(p) && rs % 8 == 0 && (KMAJ ? rows % 8 == 0 || rows >= 64 : K % 8 == 0)) {}
    template <int KT>
    __device__ __forceinline__ int rof(int vi, int j) const {
        return KMAJ ? 8 * (vi % 8) + j : vi / (KT / 8);
    }
    template <int KT>
    __device__ __forceinline__ int kof(int vi, int j) const {
        return KMAJ ? vi / 8 : 8 * (vi % (KT / 8)) + j;
    }
    __device__ __forceinline__ i64 at(int r, int k) const { return KMAJ ? (i64)k * rs + r : (i64)r * rs + k; }
    // load reads vector vi of the k-tile starting at k0.
    template <int KT>
    __device__ __forceinline__ void load(int k0, int vi, ssdc_v8<T>& w) const {
        if (vec) {
            const int r = rof<KT>(vi, 0), k = k0 + kof<KT>(vi, 0);
            w = r < rows && k < K ? *(const ssdc_v8<T>*)(p + at(r, k)) : ssdc_v8<T>{};
            return;
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int r = rof<KT>(vi, j), k = k0 + kof<KT>(vi, j);
            w.v[j] = r < rows && k < K ? p[at(r, k)] : T{};
        }
    }
    // store writes vector vi to dst as reals, each times kscale[k] when
    // kscale is given.
    template <int KT>
    __device__ __forceinline__ void store(real* dst, int vi, const ssdc_v8<T>& w,
                                          const real* kscale = nullptr) const {
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int k = kof<KT>(vi, j);
            const real v = (real)w.v[j];
            dst[k * SSDC_LD + rof<KT>(vi, j)] = kscale ? v * kscale[k] : v;
        }
    }
};

// ssdc_rows is the chunk's rows t (t < q) of a (B, L, R, K) tensor at row
// r: (t, k) as (row, contracted index).
template <typename T>
__device__ __forceinline__ ssdc_opnd<T, false> ssdc_rows(const T* src, i64 b, i64 r, i64 R, i64 K, i64 t0, int q,
                                                         i64 L) {
    return {src + ((b * L + t0) * R + r) * K, R * K, q, K};
}

// ssdc_cols is the same tensor's columns [k0, k0+64) contracted over the
// chunk's steps: (k − k0, t) as (row, contracted index).
template <typename T>
__device__ __forceinline__ ssdc_opnd<T, true> ssdc_cols(const T* src, i64 b, i64 r, i64 R, i64 K, i64 t0, int q,
                                                        i64 L, i64 k0) {
    return {src + ((b * L + t0) * R + r) * K + k0, R * K, K - k0, q};
}

// ssdc_state_pn is a P×N state's rows [p0, p0+64) contracted over n:
// (p − p0, n); ssdc_state_np its columns [n0, n0+64) contracted over p:
// (n − n0, p).
__device__ __forceinline__ ssdc_opnd<real, false> ssdc_state_pn(const real* st, i64 P, i64 N, i64 p0) {
    return {st + p0 * N, N, P - p0, N};
}
__device__ __forceinline__ ssdc_opnd<real, true> ssdc_state_np(const real* st, i64 P, i64 N, i64 n0) {
    return {st + n0, N, N - n0, P};
}

// ssdc_stage64 stages an operand's k in [0, 64) into dst, each element
// times kscale[k] when kscale is given, a thread's loads in flight
// together. The caller syncs.
template <typename T, bool KMAJ>
__device__ __forceinline__ void ssdc_stage64(real* dst, const ssdc_opnd<T, KMAJ>& o, const real* kscale = nullptr) {
    constexpr int PER = SSDC_Q * 64 / (8 * SSDC_THREADS);
    ssdc_v8<T> w[PER];
#pragma unroll
    for (int j = 0; j < PER; j++) o.template load<64>(0, threadIdx.x + j * SSDC_THREADS, w[j]);
#pragma unroll
    for (int j = 0; j < PER; j++) o.template store<64>(dst, threadIdx.x + j * SSDC_THREADS, w[j], kscale);
}

// ssdc_kloop adds Σ_{k<K} a(r, k)·b(c, k) to acc[r][c] (K = a.K = b.K),
// SSDC_NT k at a time staged in sa and sb ([NT][LD] each). The next
// k-tile's loads are issued before the current tile's products, so their
// latency overlaps the tensor cores' work instead of stalling the block at
// every tile (ncu: global-load waits were 44 % of ssdc_bwd's cycles). sa
// and sb must be free on entry; the loop ends synced. SA, SB: ssdc_mma's.
template <int SA, int SB, class TA, bool KA, class TB, bool KB>
__device__ __forceinline__ void ssdc_kloop(real acc[4][4], real* sa, real* sb, const ssdc_opnd<TA, KA>& a,
                                           const ssdc_opnd<TB, KB>& b) {
    static_assert(SSDC_NT * 64 == 8 * SSDC_THREADS, "a k-tile is one vector a thread");
    ssdc_v8<TA> va;
    ssdc_v8<TB> vb;
    a.template load<SSDC_NT>(0, threadIdx.x, va);
    b.template load<SSDC_NT>(0, threadIdx.x, vb);
#pragma unroll 1
    for (int k0 = 0; k0 < a.K; k0 += SSDC_NT) {
        a.template store<SSDC_NT>(sa, threadIdx.x, va);
        b.template store<SSDC_NT>(sb, threadIdx.x, vb);
        __syncthreads();
        if (k0 + SSDC_NT < a.K) {
            a.template load<SSDC_NT>(k0 + SSDC_NT, threadIdx.x, va);
            b.template load<SSDC_NT>(k0 + SSDC_NT, threadIdx.x, vb);
        }
        ssdc_mma<SA, SB>(acc, sa, sb, SSDC_NT);
        __syncthreads();
    }
}

// ssdc_state: a block per (b, h, c). Shared memory (reals, Go's
// ssdcStateSmem): d, S, w [Q]; u·w [Q][LD] ([s][p]); v [Q][LD] ([s][n]).
// Writes st[b, c, h] (P×N) = Σ_s u_s ⊗ v_s·w_s: with ADJ false (u = x,
// v = Bm, w_s = exp(S_last − S_s)·d_s) the chunk's own final state, and
// cs[b, c, h] = S_last; with ADJ true (u = dout, v = Cm, w_t = exp(S_t))
// the chunk's own part of the adjoint of its incoming state.
template <bool ADJ>
__device__ void ssdc_state_impl(real* st, real* cs, const act_t* u, const act_t* dt, const real* A, const act_t* v,
                                const real* dtbias, i64 B, i64 L, i64 H, i64 P, i64 G, i64 N, i64 softplus,
                                i64 nc) {
    real* sD = (real*)ssdc_smem;
    real* sS = sD + SSDC_Q;
    real* sW = sS + SSDC_Q;
    real* sX = sW + SSDC_Q;
    real* sB = sX + SSDC_Q * SSDC_LD;
    i64 b, h, c;
    ssdc_block(H, nc, &b, &h, &c);
    const i64 t0 = c * SSDC_Q, g = h / (H / G);
    const int q = (int)imin(SSDC_Q, L - t0);
    ssdc_decay(sD, sS, dt, A, dtbias, b, h, t0, q, L, H, softplus);
    __syncthreads();
    const real last = sS[q - 1];
    for (int tt = threadIdx.x; tt < SSDC_Q; tt += blockDim.x)
        sW[tt] = tt >= q ? (real)0 : ADJ ? r_expc(sS[tt]) : r_expc(last - sS[tt]) * sD[tt];
    const i64 row = (b * nc + c) * H + h;
    if (!ADJ && threadIdx.x == 0) cs[row] = last;
    __syncthreads();
    real* stc = st + row * P * N;
    for (i64 p0 = 0; p0 < P; p0 += 64) {
        ssdc_stage64(sX, ssdc_cols(u, b, h, H, P, t0, q, L, p0), sW);
        for (i64 n0 = 0; n0 < N; n0 += 64) {
            ssdc_stage64(sB, ssdc_cols(v, b, g, G, N, t0, q, L, n0));
            __syncthreads();
            real acc[4][4];
            ssdc_zero(acc);
            ssdc_mma<SSDC_SPLIT, 1>(acc, sX, sB, q);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const i64 p = p0 + ssdc_row(i, j), n = n0 + ssdc_col(i, j);
                    if (p < P && n < N) stc[p * N + n] = acc[i][j];
                }
            __syncthreads();
        }
    }
}

extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2)
    ssdc_state(real* st, real* cs, const act_t* x, const act_t* dt, const real* A, const act_t* Bm,
               const real* dtbias, i64 B, i64 L, i64 H, i64 P, i64 G, i64 N, i64 softplus, i64 nc) {
    ssdc_state_impl<false>(st, cs, x, dt, A, Bm, dtbias, B, L, H, P, G, N, softplus, nc);
}

extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2)
    ssdc_bstate(real* st, const act_t* dout, const act_t* dt, const real* A, const act_t* Cm, const real* dtbias,
                i64 B, i64 L, i64 H, i64 P, i64 G, i64 N, i64 softplus, i64 nc) {
    ssdc_state_impl<true>(st, nullptr, dout, dt, A, Cm, dtbias, B, L, H, P, G, N, softplus, nc);
}

// ssdc_pass: a thread per (b, h, p, n) walks the chunks in order, replacing
// each chunk's own state by the state entering it (hin_c, from H0 when
// given) and writing the final state to hT when given (both bfloat16 with
// stbf: state_ref). With reverse set it
// walks backwards from zero: each chunk's own adjoint part becomes the
// adjoint of its final state, ∂L/∂hin_{c+1} (the backward's Dn).
//
// A thread loads SSDC_PASS_AHEAD chunks' own states and decays before it
// writes any of them: the loads are then in flight together. One chunk at
// a time, each load waited for the store before it (the same array), and
// the kernel ran at 1.6 % of the SM's issue rate and 4 % of DRAM's
// (NOTES.md). The arithmetic and its order are unchanged.
#define SSDC_PASS_AHEAD 8
extern "C" __global__ void ssdc_pass(real* st, real* hT, const real* cs, const real* h0, i64 stbf, i64 B, i64 H,
                                     i64 P, i64 N, i64 nc, i64 reverse) {
    const i64 PN = P * N;
    // A chunk's row of st is H·PN elements after the last's, its decay H
    // (backwards when reverse).
    const i64 step = reverse ? -H * PN : H * PN, cstep = reverse ? -H : H;
    FOR_N(e, B * H * PN) {
        const i64 b = e / (H * PN), h = (e / PN) % H, pn = e % PN;
        const i64 row0 = (b * nc + (reverse ? nc - 1 : 0)) * H + h;
        real* sp = st + row0 * PN + pn;
        const real* cp = cs + row0;
        real run = h0 ? state_of(h0, stbf)[e] : (real)0;
        for (i64 k0 = 0; k0 < nc; k0 += SSDC_PASS_AHEAD) {
            const int m = (int)imin(SSDC_PASS_AHEAD, nc - k0);
            real own[SSDC_PASS_AHEAD], decay[SSDC_PASS_AHEAD];
#pragma unroll
            for (int j = 0; j < SSDC_PASS_AHEAD; j++) {
                if (j < m) {
                    own[j] = sp[j * step];
                    decay[j] = r_expc(cp[j * cstep]);
                }
            }
#pragma unroll
            for (int j = 0; j < SSDC_PASS_AHEAD; j++) {
                if (j < m) {
                    sp[j * step] = run;
                    run = decay[j] * run + own[j];
                }
            }
            sp += SSDC_PASS_AHEAD * step;
            cp += SSDC_PASS_AHEAD * cstep;
        }
        if (hT) state_of(hT, stbf).set(e, run);
    }
}

// ssdc_out: a block per (b, h, c). Shared memory (reals, Go's
// ssdcOutSmem): d, S, exp(S) [Q]; Mᵀ [Q][LD] ([s][t]); Cm, Bm or hin
// [NT][LD] each ([n][t], [n][s] or [n][p]); x [Q][LD] ([s][p]).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2)
    ssdc_out(act_t* out, const real* st, const act_t* x, const act_t* dt, const real* A, const act_t* Bm,
             const act_t* Cm, const real* Dskip, const real* dtbias, i64 B, i64 L, i64 H, i64 P, i64 G, i64 N,
             i64 softplus, i64 nc) {
    real* sD = (real*)ssdc_smem;
    real* sS = sD + SSDC_Q;
    real* sE = sS + SSDC_Q;
    real* sM = sE + SSDC_Q;
    real* sC = sM + SSDC_Q * SSDC_LD;
    real* sK = sC + SSDC_NT * SSDC_LD; // Bm, then hin
    real* sX = sK + SSDC_NT * SSDC_LD;
    i64 b, h, c;
    ssdc_block(H, nc, &b, &h, &c);
    const i64 t0 = c * SSDC_Q, g = h / (H / G);
    const int q = (int)imin(SSDC_Q, L - t0);
    ssdc_decay(sD, sS, dt, A, dtbias, b, h, t0, q, L, H, softplus);
    __syncthreads();
    for (int tt = threadIdx.x; tt < SSDC_Q; tt += blockDim.x) sE[tt] = tt < q ? r_expc(sS[tt]) : (real)0;

    // M[t][s] = (Cm_t·Bm_s)·exp(S_t − S_s)·d_s for s ≤ t < q, else 0.
    real acc[4][4];
    ssdc_zero(acc);
    const auto Ct = ssdc_rows(Cm, b, g, G, N, t0, q, L);
    ssdc_kloop<1, 1>(acc, sC, sK, Ct, ssdc_rows(Bm, b, g, G, N, t0, q, L));
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int t = ssdc_row(i, j), s = ssdc_col(i, j);
            sM[s * SSDC_LD + t] = s <= t && t < q ? acc[i][j] * r_expc(sS[t] - sS[s]) * sD[s] : (real)0;
        }

    const real Dh = Dskip ? Dskip[h] : (real)0;
    const real* hin = st + ((b * nc + c) * H + h) * P * N;
    for (i64 p0 = 0; p0 < P; p0 += 64) {
        // acc = exp(S_t)·Σ_n Cm_t[n]·hin[p][n]
        ssdc_zero(acc);
        ssdc_kloop<1, SSDC_SPLIT>(acc, sC, sK, Ct, ssdc_state_pn(hin, P, N, p0));
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] *= sE[ssdc_row(i, j)];
        // acc += M·x
        ssdc_stage64(sX, ssdc_cols(x, b, h, H, P, t0, q, L, p0));
        __syncthreads();
        ssdc_mma<SSDC_SPLIT, 1>(acc, sM, sX, q);
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int t = ssdc_row(i, j), p = ssdc_col(i, j);
                if (t < q && p0 + p < P) out[((b * L + t0 + t) * H + h) * P + p0 + p] = acc[i][j] + Dh * sX[t * SSDC_LD + p];
            }
        __syncthreads();
    }
}

// The backward (SSDBackward with ssdChunked), per block (b, h, c), with
// g = dout, hin = the state entering the chunk (ssdc_state, ssdc_pass),
// Dn = ∂L/∂hin_{c+1} (ssdc_bstate, ssdc_pass reversed), E[t][s] =
// exp(S_t − S_s) for s ≤ t < q (else 0), L_s = exp(S_last − S_s), and the
// 64×64 products CB[t][s] = Cm_t·Bm_s, GX[t][s] = g_t·x_s:
//
//	M[t][s] = CB·E,  W[t][s] = GX·E·d_s
//	dX[s,p]  += d_s·(Σ_t M[t][s]·g_t[p] + L_s·Σ_n Bm_s[n]·Dn[p][n]) + Dskip·g_s[p]
//	dCm[t,n] += Σ_s W[t][s]·Bm_s[n] + exp(S_t)·Σ_p g_t[p]·hin[p][n]
//	dBm[s,n] += Σ_t W[t][s]·Cm_t[n] + d_s·L_s·Σ_p x_s[p]·Dn[p][n]
//	r_t = Σ_s M[t][s]·d_s·GX[t][s] + exp(S_t)·Σ_p g_t[p]·(Σ_n Cm_t[n]·hin[p][n])
//	e_s = Σ_t M[t][s]·GX[t][s] + L_s·Σ_p x_s[p]·(Σ_n Bm_s[n]·Dn[p][n])
//	pD[b,c,h] = Σ_t GX[t][t]
//
// r and e are ssd.cu's (the paths ending and starting at a step), so
// ssd_bwd_dt turns them into dDt, dA and dDtBias as for the recurrence.
// Sums over rows or columns of a tile go through a [64][LD] scratch in
// shared memory, each summed by one thread in a fixed order.

// ssdc_rowsums adds Σ_k buf[r][k] (k < 64, in order) to out[r] for r < 64
// (threads 0..63). The caller syncs before and after.
__device__ __forceinline__ void ssdc_rowsums(const real* buf, real* out) {
    if (threadIdx.x < SSDC_Q) {
        real s = 0;
        for (int k = 0; k < 64; k++) s += buf[threadIdx.x * SSDC_LD + k];
        out[threadIdx.x] += s;
    }
}

// ssdc_bwd: shared memory (reals, Go's ssdcBwdSmem): d, S, exp(S), L, r,
// e, diag(GX) and a spare [Q] each; M [t][s], W [t][s], Wᵀ [s][t]; two
// [Q][LD] tiles F1, F2 (the row-sum scratch aliases F1); two [NT][LD]
// tiles K1, K2, contiguous (one [Q][LD] scratch when both are free).
extern "C" __global__ void __launch_bounds__(SSDC_THREADS, 2)
    ssdc_bwd(act_t* dX, act_t* dBm, real* partB, act_t* dCm, real* partC, double* r, double* e, double* pD,
             const real* st, const real* dst, const act_t* dout, const act_t* x, const act_t* dt, const real* A,
             const act_t* Bm, const act_t* Cm, const real* Dskip, const real* dtbias, i64 B, i64 L, i64 H, i64 P,
             i64 G, i64 N, i64 softplus, i64 nc) {
    real* sD = (real*)ssdc_smem;
    real* sS = sD + SSDC_Q;
    real* sE = sS + SSDC_Q;
    real* sL = sE + SSDC_Q;
    real* sR = sL + SSDC_Q;
    real* sEe = sR + SSDC_Q;
    real* sDg = sEe + SSDC_Q;
    real* sM = sDg + 2 * SSDC_Q;
    real* sW = sM + SSDC_Q * SSDC_LD;
    real* sWt = sW + SSDC_Q * SSDC_LD;
    real* F1 = sWt + SSDC_Q * SSDC_LD;
    real* F2 = F1 + SSDC_Q * SSDC_LD;
    real* K1 = F2 + SSDC_Q * SSDC_LD;
    real* K2 = K1 + SSDC_NT * SSDC_LD;
    i64 b, h, c;
    ssdc_block(H, nc, &b, &h, &c);
    const i64 t0 = c * SSDC_Q, g = h / (H / G);
    const int q = (int)imin(SSDC_Q, L - t0);
    const i64 row = (b * nc + c) * H + h;
    const real* hin = st + row * P * N;
    const real* dn = dst + row * P * N;
    ssdc_decay(sD, sS, dt, A, dtbias, b, h, t0, q, L, H, softplus);
    __syncthreads();
    const real last = sS[q - 1];
    for (int tt = threadIdx.x; tt < SSDC_Q; tt += blockDim.x) {
        sE[tt] = tt < q ? r_expc(sS[tt]) : (real)0;
        sL[tt] = tt < q ? r_expc(last - sS[tt]) : (real)0;
        sR[tt] = sEe[tt] = sDg[tt] = 0;
    }

    // CB and GX, then M, W, Wᵀ and M·GX (in F1) element by element.
    real cb[4][4], acc[4][4];
    ssdc_zero(cb);
    const auto Ct = ssdc_rows(Cm, b, g, G, N, t0, q, L), Bt = ssdc_rows(Bm, b, g, G, N, t0, q, L);
    const auto Gt = ssdc_rows(dout, b, h, H, P, t0, q, L), Xt = ssdc_rows(x, b, h, H, P, t0, q, L);
    ssdc_kloop<1, 1>(cb, K1, K2, Ct, Bt);
    ssdc_zero(acc);
    ssdc_kloop<1, 1>(acc, K1, K2, Gt, Xt);
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int t = ssdc_row(i, j), s = ssdc_col(i, j);
            const real E = s <= t && t < q ? r_expc(sS[t] - sS[s]) : (real)0;
            const real m = cb[i][j] * E, w = acc[i][j] * E * sD[s];
            sM[t * SSDC_LD + s] = m;
            sW[t * SSDC_LD + s] = w;
            sWt[s * SSDC_LD + t] = w;
            F1[t * SSDC_LD + s] = m * acc[i][j];
            if (s == t && t < q) sDg[t] = acc[i][j];
        }
    __syncthreads();
    if (threadIdx.x < SSDC_Q) {
        const int t = threadIdx.x;
        real v = 0;
        for (int s = 0; s < SSDC_Q; s++) v += F1[t * SSDC_LD + s] * sD[s];
        sR[t] += v;
    } else if (threadIdx.x < 2 * SSDC_Q) {
        const int s = threadIdx.x - SSDC_Q;
        real v = 0;
        for (int t = 0; t < SSDC_Q; t++) v += F1[t * SSDC_LD + s];
        sEe[s] += v;
    } else if (threadIdx.x == 2 * SSDC_Q && pD) {
        double v = 0;
        for (int t = 0; t < q; t++) v += (double)sDg[t];
        pD[row] = v;
    }
    __syncthreads();

    const real Dh = Dskip ? Dskip[h] : (real)0;
    real* K12 = K1; // K1 and K2 as one [Q][LD] scratch
    for (i64 p0 = 0; p0 < P; p0 += 64) {
        ssdc_stage64(F1, ssdc_cols(dout, b, h, H, P, t0, q, L, p0));
        ssdc_stage64(F2, ssdc_cols(x, b, h, H, P, t0, q, L, p0));
        // U2[s][p] = Σ_n Bm_s[n]·Dn[p][n]: e_s += L_s·Σ_p x_s[p]·U2[s][p]
        ssdc_zero(acc);
        ssdc_kloop<1, SSDC_SPLIT>(acc, K1, K2, Bt, ssdc_state_pn(dn, P, N, p0));
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int s = ssdc_row(i, j), p = ssdc_col(i, j);
                acc[i][j] *= sL[s];
                K12[s * SSDC_LD + p] = F2[s * SSDC_LD + p] * acc[i][j];
            }
        __syncthreads();
        ssdc_rowsums(K12, sEe);
        __syncthreads();
        // dX[s][p] += d_s·(Σ_t M[t][s]·g_t[p] + L_s·U2[s][p]) + Dskip·g_s[p]
        ssdc_mma<SSDC_SPLIT, 1>(acc, sM, F1, q);
        if (dX) {
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int s = ssdc_row(i, j), p = ssdc_col(i, j);
                    if (s < q && p0 + p < P)
                        dX[((b * L + t0 + s) * H + h) * P + p0 + p] += sD[s] * acc[i][j] + Dh * F1[s * SSDC_LD + p];
                }
        }
        // Z[t][p] = Σ_n Cm_t[n]·hin[p][n]: r_t += exp(S_t)·Σ_p g_t[p]·Z[t][p]
        ssdc_zero(acc);
        ssdc_kloop<1, SSDC_SPLIT>(acc, K1, K2, Ct, ssdc_state_pn(hin, P, N, p0));
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int t = ssdc_row(i, j), p = ssdc_col(i, j);
                K12[t * SSDC_LD + p] = F1[t * SSDC_LD + p] * acc[i][j] * sE[t];
            }
        __syncthreads();
        ssdc_rowsums(K12, sR);
        __syncthreads();
    }

    for (i64 n0 = 0; n0 < N; n0 += 64) {
        ssdc_stage64(F1, ssdc_cols(Cm, b, g, G, N, t0, q, L, n0));
        ssdc_stage64(F2, ssdc_cols(Bm, b, g, G, N, t0, q, L, n0));
        // dCm[t][n] += exp(S_t)·Σ_p g_t[p]·hin[p][n] + Σ_s W[t][s]·Bm_s[n]
        ssdc_zero(acc);
        ssdc_kloop<1, SSDC_SPLIT>(acc, K1, K2, Gt, ssdc_state_np(hin, P, N, n0));
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] *= sE[ssdc_row(i, j)];
        ssdc_mma<SSDC_SPLIT, 1>(acc, sWt, F2, q);
        if (dCm) {
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int t = ssdc_row(i, j);
                    const i64 n = n0 + ssdc_col(i, j);
                    if (t >= q || n >= N) continue;
                    if (partC)
                        partC[((b * L + t0 + t) * H + h) * N + n] = acc[i][j];
                    else
                        dCm[((b * L + t0 + t) * G + g) * N + n] += acc[i][j];
                }
        }
        // dBm[s][n] += d_s·L_s·Σ_p x_s[p]·Dn[p][n] + Σ_t W[t][s]·Cm_t[n]
        ssdc_zero(acc);
        ssdc_kloop<1, SSDC_SPLIT>(acc, K1, K2, Xt, ssdc_state_np(dn, P, N, n0));
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int s = ssdc_row(i, j);
                acc[i][j] *= sD[s] * sL[s];
            }
        ssdc_mma<SSDC_SPLIT, 1>(acc, sW, F1, q);
        if (dBm) {
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int s = ssdc_row(i, j);
                    const i64 n = n0 + ssdc_col(i, j);
                    if (s >= q || n >= N) continue;
                    if (partB)
                        partB[((b * L + t0 + s) * H + h) * N + n] = acc[i][j];
                    else
                        dBm[((b * L + t0 + s) * G + g) * N + n] += acc[i][j];
                }
        }
        __syncthreads();
    }
    for (int tt = threadIdx.x; tt < q; tt += blockDim.x) {
        const i64 o = (b * L + t0 + tt) * H + h;
        if (r) r[o] = (double)sR[tt];
        if (e) e[o] = (double)sEe[tt];
    }
}
