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

// argmax_rows: idx[r] = the first index of the largest value of row r (the
// first NaN if any). blockDim.x must be 256. x is an activation (bfloat16
// in the bfloat16 build, compared exactly as float).
extern "C" __global__ void argmax_rows(int* idx, const act_t* x, i64 rows, i64 cols) {
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
        if (tid == 0) idx[r] = (int)si[0];
        __syncthreads();
    }
}
