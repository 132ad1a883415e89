// Softmax cross-entropy with an ignore index, and row argmax
// (cpukernels/cross_entropy.go). One block per row (grid-stride over rows).
// logits, dlogits and argmax's x are activations (act_t: bf16 in the
// bfloat16 build); loss, lse and dloss stay real (float32 under bf16). A
// bf16 dlogits is accumulated by load, add in float, round once.

// ce_fwd: lse[r] = log Σ_c exp(logits[r,c]); loss[r] = lse[r] − logits[r, t]
// (0 when t == ignore). One pass over the row: each thread keeps a running
// maximum m and s = Σ exp(x − m) (in double), rescaling s when m grows; the
// block then combines its (m, s) pairs. Terms below exp's flush limit
// relative to the maximum are dropped, as in cpukernels; NaN propagates.
extern "C" __global__ void ce_fwd(real* loss, real* lse, const act_t* logits, const int* targets, i64 rows, i64 V,
                                  i64 ignore) {
    __shared__ double shd[32];
    __shared__ real shr[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const act_t* xr = logits + r * V;
        real m = -R_INF;
        double s = 0;
        for (i64 c = threadIdx.x; c < V; c += blockDim.x) {
            const real x = xr[c];
            if (x > m) {
                s = s * (double)r_expc(m - x) + 1.0;
                m = x;
            } else {
                s += (double)r_expc(x - m);
            }
        }
        const real M = block_max(m, shr);
        s = block_sum(s == 0 ? 0.0 : s * (double)r_expc(m - M), shd);
        if (threadIdx.x == 0) {
            const double l = (double)M + log(s);
            const int t = targets[r];
            lse[r] = (real)l;
            loss[r] = t == ignore ? (real)0 : (real)(l - (double)xr[t]);
        }
    }
}

// ce_bwd: dlogits[r,c] += dloss[r]·(exp(logits[r,c] − lse[r]) − [c == t]) for
// rows whose target is not ignore; tiny results flush to 0.
extern "C" __global__ void ce_bwd(act_t* dlogits, const act_t* logits, const real* lse, const real* dloss,
                                  const int* targets, i64 rows, i64 V, i64 ignore) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const int t = targets[r];
        if (t == ignore) continue;
        const act_t* xr = logits + r * V;
        act_t* dr = dlogits + r * V;
        const real l = lse[r], g = dloss[r];
        for (i64 c = threadIdx.x; c < V; c += blockDim.x) {
            real p = r_expc(xr[c] - l);
            if (c == t) p -= (real)1;
            dr[c] = flush((real)dr[c] + g * p);
        }
    }
}

// better says whether (v, i) wins over (bv, bi) in argmax: NaN beats any
// number, a larger value beats a smaller, and ties go to the lower index.
__device__ __forceinline__ bool better(real v, i64 i, real bv, i64 bi) {
    const bool vn = v != v, bn = bv != bv;
    if (vn || bn) return vn && (!bn || i < bi);
    return v > bv || (v == bv && i < bi);
}

// argmax_rows_impl: idx[r] = the first index of the largest value of row
// r (the first NaN if any), stored as T. blockDim.x must be 256. x is an
// activation (bfloat16 in the bfloat16 build, compared exactly as float).
template <typename T>
__device__ __forceinline__ void argmax_rows_impl(T* idx, const act_t* x, i64 rows, i64 cols) {
    __shared__ real sv[256];
    __shared__ i64 si[256];
    const int tid = threadIdx.x;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const act_t* xr = x + r * cols;
        real bv = 0;
        i64 bi = -1;
        for (i64 c = tid; c < cols; c += blockDim.x) {
            const real v = xr[c];
            if (bi < 0 || better(v, c, bv, bi)) {
                bv = v;
                bi = c;
            }
        }
        sv[tid] = bv;
        si[tid] = bi;
        __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (tid < s && si[tid + s] >= 0 && (si[tid] < 0 || better(sv[tid + s], si[tid + s], sv[tid], si[tid]))) {
                sv[tid] = sv[tid + s];
                si[tid] = si[tid + s];
            }
            __syncthreads();
        }
        if (tid == 0) idx[r] = (T)si[0];
        __syncthreads();
    }
}

// argmax_rows: the indices as int (ArgmaxRows, read back).
extern "C" __global__ void argmax_rows(int* idx, const act_t* x, i64 rows, i64 cols) {
    argmax_rows_impl(idx, x, rows, cols);
}

// argmax_rows_into: the indices as values of the backend's type, left on
// the device (ArgmaxRowsInto; exact below 2^24 columns in float32).
extern "C" __global__ void argmax_rows_into(real* idx, const act_t* x, i64 rows, i64 cols) {
    argmax_rows_impl(idx, x, rows, cols);
}

// loss_mean: out[0] = sum[0] / count[0] in double, rounded once to real,
// or 0 when the count is 0: what the host's Sum, division and Fill give
// (MeanLoss). One thread.
extern "C" __global__ void loss_mean(real* out, const double* sum, const int* count) {
    const int n = *count;
    out[0] = n > 0 ? (real)(sum[0] / (double)n) : (real)0;
}

// loss_mean_grad: dloss[i] = g[0] / count[0] (1 / count[0] when g is null)
// in double, rounded once to real, or 0 when the count is 0 (MeanLossGrad).
extern "C" __global__ void loss_mean_grad(real* dloss, const real* g, const int* count, i64 n) {
    const int c = *count;
    const double v = c > 0 ? (g ? (double)g[0] : 1.0) / (double)c : 0.0;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) dloss[i] = (real)v;
}
