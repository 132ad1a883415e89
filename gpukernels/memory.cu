// Block copies and permutations (cpukernels/memory.go, permute.go), and
// the casts between float32 and bfloat16 (Copy between buffers of the two
// types).
//
// The block copies and permutations move activations (act_t): in the
// bfloat16 build they copy bfloat16 bits exactly and accumulate by load,
// add in float, round once. copy_block_mixed copies between a float32 and a
// bfloat16 matrix.

extern "C" __global__ void cast_to_bf16(bf16* dst, const float* src, i64 n) {
    FOR_N(i, n) dst[i] = src[i];
}

extern "C" __global__ void cast_from_bf16(float* dst, const bf16* src, i64 n) {
    FOR_N(i, n) dst[i] = src[i];
}

// copy_row_from is copy_row (below) by threads numbered from first, step
// apart (vectors of 8 in the bfloat16 build with vec, elements otherwise).
__device__ __forceinline__ void copy_row_from(act_t* d, const act_t* s, i64 cols, i64 accumulate, bool vec, i64 first,
                                              i64 step) {
#if ACT_IS_BF16
    if (vec) {
        h8* d8 = (h8*)d;
        const h8* s8 = (const h8*)s;
        for (i64 c = first; c < cols / 8; c += step) {
            if (accumulate) {
                h8 a = d8[c];
                const h8 b = s8[c];
#pragma unroll
                for (int k = 0; k < 8; k++) a.v[k] = (float)a.v[k] + (float)b.v[k];
                d8[c] = a;
            } else {
                d8[c] = s8[c];
            }
        }
        return;
    }
#endif
    for (i64 c = first; c < cols; c += step) {
        if (accumulate) {
            d[c] += s[c];
        } else {
            d[c] = s[c];
        }
    }
}

// copy_row copies (adds, with accumulate) cols elements of s into d, the
// threads of grid x striding over them. In the bfloat16 build with vec
// (both rows start 16-byte aligned and cols is a multiple of 8) a thread
// moves 8 elements at once; a sum is added in float and rounded once.
__device__ __forceinline__ void copy_row(act_t* d, const act_t* s, i64 cols, i64 accumulate, bool vec) {
    copy_row_from(d, s, cols, accumulate, vec, (i64)blockIdx.x * blockDim.x + threadIdx.x, (i64)gridDim.x * blockDim.x);
}

// copy_block: dst[dstOff + r·dstStride + c] (+)= src[srcOff + r·srcStride + c]
// for r < rows, c < cols. Rows go over gridDim.y (grid-stride), columns over
// x, so each warp walks contiguous elements of one row. With offp (a
// position on the device, AppendRows) dstOff grows by offp[0]·unit, and
// nothing is written where that would pass the row's end.
extern "C" __global__ void copy_block(act_t* dst, i64 dstOff, i64 dstStride, const act_t* src, i64 srcOff,
                                      i64 srcStride, i64 rows, i64 cols, i64 accumulate, const real* offp, i64 unit) {
    if (offp) {
        const i64 p = (i64)offp[0];
        if (p < 0 || p * unit + cols > dstStride) return;
        dstOff += p * unit;
    }
    bool vec = false;
#if ACT_IS_BF16
    vec = ((dstOff | dstStride | srcOff | srcStride | cols) & 7) == 0 && al16(dst) && al16(src);
#endif
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        copy_row(dst + dstOff + r * dstStride, src + srcOff + r * srcStride, cols, accumulate, vec);
    }
}

#if ACT_IS_BF16
// copy_block_mixed is copy_block from a src of one type into a dst of the
// other: float32 → bfloat16 (dst bfloat16, hdst 1) rounds each value (or
// each sum) once, bfloat16 → float32 is exact (the sum rounds to float).
extern "C" __global__ void copy_block_mixed(void* dst, i64 dstOff, i64 dstStride, const void* src, i64 srcOff,
                                            i64 srcStride, i64 rows, i64 cols, i64 accumulate, i64 hdst) {
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 d0 = dstOff + r * dstStride, s0 = srcOff + r * srcStride;
        for (i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += (i64)gridDim.x * blockDim.x) {
            if (hdst) {
                bf16& d = ((bf16*)dst)[d0 + c];
                const float v = ((const float*)src)[s0 + c];
                d = accumulate ? (float)d + v : v;
            } else {
                float& d = ((float*)dst)[d0 + c];
                const float v = ((const bf16*)src)[s0 + c];
                d = accumulate ? d + v : v;
            }
        }
    }
}
#endif


// src_offset maps index idx over the dims d[0..rank) (row-major) to the
// offset Σ_k idx_k·stride_k. I is unsigned 32-bit when every index fits:
// 64-bit division costs several times more.
template <typename I>
__device__ __forceinline__ I src_offset(I idx, i64 rank, const i64* dims, const i64* strides) {
    I src = 0;
#pragma unroll
    for (int k = 5; k >= 0; k--) {
        if (k < rank) {
            const I dk = (I)dims[k];
            src += (idx % dk) * (I)strides[k];
            idx /= dk;
        }
    }
    return src;
}

// permute: out[o] (+)= x[src(o)], where o's index over the (merged) out
// dims d0..d{rank-1} (row-major) walks x with strides s0..s{rank-1}; small
// says every offset fits 32 bits.
extern "C" __global__ void permute(act_t* out, const act_t* x, i64 n, i64 rank,
                                   i64 d0, i64 d1, i64 d2, i64 d3, i64 d4, i64 d5,
                                   i64 s0, i64 s1, i64 s2, i64 s3, i64 s4, i64 s5, i64 accumulate, i64 small) {
    const i64 dims[6] = {d0, d1, d2, d3, d4, d5};
    const i64 strides[6] = {s0, s1, s2, s3, s4, s5};
    FOR_N(o, n) {
        const i64 src = small ? (i64)src_offset<unsigned>((unsigned)o, rank, dims, strides)
                              : src_offset<i64>(o, rank, dims, strides);
        if (accumulate) {
            out[o] += x[src];
        } else {
            out[o] = x[src];
        }
    }
}

// permute_rows is permute when the innermost out dim is contiguous in x:
// out row `row` (inner elements) copies (or adds) the x row at
// src_offset(row) over the outer dims d0..d{rank-1}, so accesses are
// contiguous on both sides (copy_row). A row takes tpr threads (a power
// of two ≤ blockDim.x, from the launcher: about its length in elements,
// or in vectors of 8 in the bfloat16 build), so a block moves
// blockDim.x / tpr rows at once: short rows, such as a head's 64
// elements, do not leave most of a block idle. Rows go over grid y, a
// long row's threads over grid x as well.
extern "C" __global__ void permute_rows(act_t* out, const act_t* x, i64 rows, i64 inner, i64 rank,
                                        i64 d0, i64 d1, i64 d2, i64 d3, i64 d4, i64 d5,
                                        i64 s0, i64 s1, i64 s2, i64 s3, i64 s4, i64 s5, i64 accumulate, i64 small,
                                        i64 tpr) {
    const i64 dims[6] = {d0, d1, d2, d3, d4, d5};
    const i64 strides[6] = {s0, s1, s2, s3, s4, s5};
    bool vec = false;
#if ACT_IS_BF16
    // Every x row starts at a multiple of 8 elements when the strides are.
    vec = ((inner | s0 | s1 | s2 | s3 | s4 | s5) & 7) == 0 && al16(out) && al16(x);
#endif
    const i64 rpb = blockDim.x / tpr;                     // rows a block moves at once
    const i64 sub = threadIdx.x / tpr, lane = threadIdx.x % tpr; // this thread's row of them, its place in it
    for (i64 row = blockIdx.y * rpb + sub; row < rows; row += (i64)gridDim.y * rpb) {
        const i64 src = small ? (i64)src_offset<unsigned>((unsigned)row, rank, dims, strides)
                              : src_offset<i64>(row, rank, dims, strides);
        copy_row_from(out + row * inner, x + src, inner, accumulate, vec, (i64)blockIdx.x * tpr + lane,
                      (i64)gridDim.x * tpr);
    }
}

// permute_tiled is permute when the out dim before the last (A of them) is
// the one contiguous in x and the last (C, x stride sc) is not: a batch of
// transposes, out[b][a][c] (+)= x[base(b) + a + c·sc], base(b) the offset
// of batch index b over the batch dims d0..d{rank-1}. Each block moves
// S×S tiles (S = 32·PER) through shared memory: a warp reads S consecutive
// a (one x row of a tile) and writes S consecutive c, PER neighbouring
// elements a thread, so both sides are coalesced, where permute reads x
// 2·sc bytes apart. Tile rows are padded to S+1 elements, so a column read
// by a warp falls in distinct banks. Grid: x over tiles of c, y over tiles
// of a, z over batches (grid-stride); blocks of 32×8 threads.
template <int PER>
__device__ __forceinline__ void permute_tiled_impl(act_t* out, const act_t* x, i64 nb, i64 A, i64 C, i64 sc,
                                                   i64 rank, const i64 (&dims)[6], const i64 (&strides)[6],
                                                   i64 accumulate) {
    constexpr int S = 32 * PER;
    __shared__ act_t tile[S][S + 1]; // [c][a]
    const int tx = threadIdx.x, ty = threadIdx.y;
    const i64 c0 = (i64)blockIdx.x * S, a0 = (i64)blockIdx.y * S;
    for (i64 b = blockIdx.z; b < nb; b += gridDim.z) {
        const act_t* xb = x + src_offset<i64>(b, rank, dims, strides);
        act_t* ob = out + b * A * C;
        __syncthreads(); // the last batch's tile is written out
#pragma unroll
        for (int k = 0; k < S; k += 8) {
            const i64 c = c0 + ty + k;
#pragma unroll
            for (int j = 0; j < PER; j++) {
                const i64 a = a0 + PER * tx + j;
                if (a < A && c < C) tile[ty + k][PER * tx + j] = xb[a + c * sc];
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < S; k += 8) {
            const i64 a = a0 + ty + k;
#pragma unroll
            for (int j = 0; j < PER; j++) {
                const i64 c = c0 + PER * tx + j;
                if (a < A && c < C) {
                    if (accumulate) {
                        ob[a * C + c] += tile[PER * tx + j][ty + k];
                    } else {
                        ob[a * C + c] = tile[PER * tx + j][ty + k];
                    }
                }
            }
        }
    }
}

// PERMUTE_TILED(NAME, PER) is the tiled permute kernel NAME moving PER
// elements a thread: tiles of 32·PER × 32·PER.
#define PERMUTE_TILED(NAME, PER)                                                                                  \
    extern "C" __global__ void NAME(act_t* out, const act_t* x, i64 nb, i64 A, i64 C, i64 sc, i64 rank, i64 d0,   \
                                    i64 d1, i64 d2, i64 d3, i64 s0, i64 s1, i64 s2, i64 s3, i64 accumulate) {     \
        const i64 dims[6] = {d0, d1, d2, d3, 1, 1};                                                               \
        const i64 strides[6] = {s0, s1, s2, s3, 0, 0};                                                            \
        permute_tiled_impl<PER>(out, x, nb, A, C, sc, rank, dims, strides, accumulate);                           \
    }

// permute_tiled moves 32×32 tiles.
PERMUTE_TILED(permute_tiled, 1)

#if ACT_IS_BF16
// permute_tiled64 moves bfloat16 in 64×64 tiles, two elements a thread: a
// warp then reads and writes 128 contiguous bytes, a whole line, where
// 32×32 tiles of 2-byte elements move half a line a warp.
PERMUTE_TILED(permute_tiled64, 2)
#endif
