// One AdamW step (cpukernels/adamw.go), stored once per element; moments
// that would be subnormal are stored as 0. The arithmetic is in the element
// type: in float32 the step matches the float64 reference to ~1e-7, and
// double's slow square root and division would make the kernel
// compute-bound on a GPU with a fraction of float32's double rate. copy,
// when not null, gets the updated parameter as an activation (the
// bfloat16 build: the forward's bf16 copy of the weight, rounded as
// cast_to_bf16 rounds), in the same pass instead of a cast per step.
//
// gscale multiplies each gradient first, in real, as the scale kernel
// stores it (ClipGradNorm's factor in the same pass; 1 is exact).
extern "C" __global__ void adamw(real* p, const real* g, real* m, real* v, act_t* copy, i64 n, double gscale_,
                                 double b1_, double b2_, double decay_, double stepSize_, double bc2Sqrt_,
                                 double eps_) {
    const real gscale = (real)gscale_, b1 = (real)b1_, b2 = (real)b2_, c1 = (real)(1 - b1_), c2 = (real)(1 - b2_);
    const real decay = (real)decay_, stepSize = (real)stepSize_, invBc2 = (real)(1 / bc2Sqrt_), eps = (real)eps_;
    FOR_N(i, n) {
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
