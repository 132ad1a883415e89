// Embedding gather and its deterministic scatter-add (cpukernels/embedding.go).
// The table and out of the gather and the scatter's dout are activations
// (act_t: the bfloat16 cast of the table under bf16); the scatter's dtable
// is the master's gradient, real (float32 under bf16).

// embedding_fwd: out[i, :] = table[ids[i], :]; one block per row
// (grid-stride), threads over the row. The launcher checked the ids.
extern "C" __global__ void embedding_fwd(act_t* out, const act_t* table, const int* ids, i64 n, i64 d) {
    for (i64 i = blockIdx.x; i < n; i += gridDim.x) {
        const act_t* src = table + (i64)ids[i] * d;
        act_t* dst = out + i * d;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) dst[c] = src[c];
    }
}

// embedding_bwd: for each group g of positions sharing one id (order lists
// positions sorted by (id, position); group g is order[starts[g] ..
// starts[g+1]) and has id gid[g]), dtable[gid[g], :] += Σ dout[pos, :], summed
// in double in position order. One block owns a group: no atomics, and the
// result does not depend on scheduling.
extern "C" __global__ void embedding_bwd(real* dtable, const act_t* dout, const int* order, const int* starts,
                                         const int* gid, i64 ngroups, i64 d) {
    for (i64 gi = blockIdx.x; gi < ngroups; gi += gridDim.x) {
        const int k0 = starts[gi], k1 = starts[gi + 1];
        real* dst = dtable + (i64)gid[gi] * d;
        for (i64 c = threadIdx.x; c < d; c += blockDim.x) {
            double s = 0;
            for (int k = k0; k < k1; k++) s += (double)dout[(i64)order[k] * d + c];
            dst[c] += (real)s;
        }
    }
}
