// Rotary position embedding (cpukernels/rope.go), GPT-NeoX layout: element
// i pairs with i + Dh/2. Angles are computed in double: at position 10⁴ a
// float angle would be off by ~1e-3 rad. dst and src are activations (act_t:
// bf16 in the bfloat16 build, each output rounded once, a backward's dst
// by load, add in float, round once).

// rope: with h = Dh/2 and θ = (pos0 + l)·base^(−2i/Dh) (pos0 read from
// posp[0] when posp is given: step mode's position on the device), for each of the BH
// head vectors of position l (row = bh·L + l) and i < h:
//
//	forward:  dst[i] = a·cos θ − b·sin θ;   dst[i+h] = b·cos θ + a·sin θ
//	backward: dst[i] += a·cos θ + b·sin θ;  dst[i+h] += b·cos θ − a·sin θ
//
// where a = src[i], b = src[i+h]. A thread owns one (l, i) pair (grid x,
// grid-stride) and computes its sine and cosine once for all the (b, h)
// rows it walks (grid y, grid-stride). Each thread reads its pair before
// writing it, so dst may be src.
extern "C" __global__ void rope(act_t* dst, const act_t* src, i64 BH, i64 L, i64 Dh, i64 pos0_, const real* posp,
                                double base, i64 backward) {
    const i64 h = Dh / 2;
    const i64 pos0 = posp ? (i64)posp[0] : pos0_;
    FOR_N(e, L * h) {
        const i64 l = e / h, i = e % h;
        const double th = (double)(pos0 + l) * pow(base, -(double)(2 * i) / (double)Dh);
        double sn, cs;
        sincos(th, &sn, &cs);
        for (i64 bh = blockIdx.y; bh < BH; bh += gridDim.y) {
            const i64 off = (bh * L + l) * Dh + i;
            const double a = (double)src[off], b = (double)src[off + h];
            if (backward) {
                dst[off] += (real)(a * cs + b * sn);
                dst[off + h] += (real)(b * cs - a * sn);
            } else {
                dst[off] = (real)(a * cs - b * sn);
                dst[off + h] = (real)(b * cs + a * sn);
            }
        }
    }
}
