// Deterministic two-stage reductions in double: Sum and SumSquares over a
// whole buffer, and column sums over rows (SumRows, the norms' weight and
// bias gradients). The first stage writes one partial per block (or per
// chunk of rows); the second adds the partials in index order. The launcher
// fixes the number of blocks and chunks from the shape alone.
//
// The summed buffers (x, a, g) are activations (act_t: bfloat16 in the
// bfloat16 build, read exactly); mean and rstd are statistics (real, float32
// there). col_finish's out is act_t too: the launcher takes it from the build
// of out's own type, as the partials are double in every build, so a
// bfloat16 x summed into a float32 out runs col_partial of the bfloat16
// build and col_finish of the float32 one.

// reduce_partial: part[blockIdx.x] = Σ over this block's grid-stride
// elements of x (or x²).
extern "C" __global__ void reduce_partial(double* part, const act_t* x, i64 n, i64 squares) {
    __shared__ double sh[32];
    double s = 0;
    FOR_N(i, n) {
        const double v = (double)x[i];
        s += squares ? v * v : v;
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// reduce_finish: out[0] = Σ part[0..nparts) in one block.
extern "C" __global__ void reduce_finish(double* out, const double* part, i64 nparts) {
    __shared__ double sh[32];
    double s = 0;
    for (i64 i = threadIdx.x; i < nparts; i += blockDim.x) s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) out[0] = s;
}

// col_partial sums a term over the rows of chunk blockIdx.y (rows
// [chunk·rpc, chunk·rpc + rpc)) for column c:
//
//	mode 0: a[r, c]                              (SumRows, LayerNorm db)
//	mode 1: g[r, c]·a[r, c]·rstd[r]              (RMSNorm dw)
//	mode 2: g[r, c]·(a[r, c] − mean[r])·rstd[r]  (LayerNorm dw)
//
// into part[chunk·cols + c].
extern "C" __global__ void col_partial(double* part, const act_t* a, const act_t* g, const real* mean, const real* rstd,
                                       i64 rows, i64 cols, i64 rpc, i64 mode) {
    const i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const i64 chunk = blockIdx.y;
    const i64 r0 = chunk * rpc, r1 = imin(rows, r0 + rpc);
    double s = 0;
    for (i64 r = r0; r < r1; r++) {
        const double v = (double)a[r * cols + c];
        if (mode == 0) {
            s += v;
        } else if (mode == 1) {
            s += (double)g[r * cols + c] * v * (double)rstd[r];
        } else {
            s += (double)g[r * cols + c] * (v - (double)mean[r]) * (double)rstd[r];
        }
    }
    part[chunk * cols + c] = s;
}

// col_finish: out[c] += Σ_chunk part[chunk·cols + c], in chunk order.
extern "C" __global__ void col_finish(act_t* out, const double* part, i64 chunks, i64 cols) {
    FOR_N(c, cols) {
        double s = 0;
        for (i64 k = 0; k < chunks; k++) s += part[k * cols + c];
        out[c] = (real)((double)out[c] + s);
    }
}
