// One AdamW step (cpukernels/adamw.go) over many tensors in one launch
// (AdamW is one tensor of it): block b updates chunk b of the work list
// chunks, (tensor, first element) pairs, ADAMW_CHUNK elements of
// descs[tensor] from there, with that tensor's decay and step size and the
// launch's shared β1, β2, √(1 − β2^t), eps and gscale. Each element is
// stored once; moments that would be subnormal are stored as 0. The
// arithmetic is in the element type: in float32 the step matches the
// float64 reference to ~1e-7, and double's slow square root and division
// would make the kernel compute-bound on a GPU with a fraction of
// float32's double rate. gscale multiplies each gradient first, in real,
// as the scale kernel stores it (ClipGradNorm's factor in the same pass; 1
// is exact). copy, when not null, gets the updated parameter as an
// activation (the bfloat16 build: the forward's bf16 copy of the weight,
// rounded as cast_to_bf16 rounds), in the same pass instead of a cast per
// step.
extern "C" __global__ void adamw_each(const AdamWDesc* descs, const i64* chunks, double gscale_, double b1_,
                                      double b2_, double bc2Sqrt_, double eps_) {
    const AdamWDesc d = descs[chunks[2 * blockIdx.x]];
    const i64 start = chunks[2 * blockIdx.x + 1], end = imin(start + ADAMW_CHUNK, d.N);
    real* p = d.P;
    real* m = d.M;
    real* v = d.V;
    const real* g = d.G;
    act_t* copy = d.Copy;
    const real gscale = (real)gscale_, b1 = (real)b1_, b2 = (real)b2_, c1 = (real)(1 - b1_), c2 = (real)(1 - b2_);
    const real decay = (real)d.Decay, stepSize = (real)d.StepSize, invBc2 = (real)(1 / bc2Sqrt_), eps = (real)eps_;
    for (i64 i = start + threadIdx.x; i < end; i += blockDim.x) {
        const real gi = g[i] * gscale;
        const real mi = b1 * m[i] + c1 * gi;
        const real vi = b2 * v[i] + c2 * gi * gi;
        m[i] = flush(mi);
        v[i] = flush(vi);
        const real pn = p[i] * decay - stepSize * mi / (r_sqrt(vi) * invBc2 + eps);
        p[i] = pn;
        if (copy) copy[i] = pn;
    }
}
