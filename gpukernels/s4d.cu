// The S4D kernel, its backward and its recurrent (step) form
// (cpukernels/s4d.go, nn.S4DArgs). Every channel h has N2 complex modes;
// with dt = exp(log_dt), z = dt·A, the per-step decay is w = exp(z) and the
// input weight C̃ = C·dt·ψ(z), ψ(z) = (exp(z) − 1)/z through a complex expm1
// (exact for |z| ≪ 1). Everything is computed in double whatever REAL is,
// as in cpukernels: the kernel is O(H·N2·L) and far from any ceiling.
// Powers w^k are advanced by multiplication and re-anchored with a direct
// exp(z·k) every S4D_ANCHOR steps, so their error does not grow with k; a
// mode whose decay has fallen below REAL's exp limit contributes nothing
// more and is skipped.
//
// Only the recurrence reads and writes activations (u and out, act_t:
// bfloat16 in the bfloat16 build; out is the double sum rounded to float,
// then to bfloat16, as the CPU reference rounds its float32 output).
// The parameters, K, the gradients and the carried state are real (float32
// under bf16) in every build: the kernel and its backward see no activation.

#define S4D_ANCHOR 32

struct cplx {
    double re, im;
};

__device__ __forceinline__ cplx c_make(double re, double im) {
    cplx z;
    z.re = re;
    z.im = im;
    return z;
}
__device__ __forceinline__ cplx c_mul(cplx a, cplx b) { return c_make(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re); }
__device__ __forceinline__ cplx c_add(cplx a, cplx b) { return c_make(a.re + b.re, a.im + b.im); }
__device__ __forceinline__ cplx c_scale(cplx a, double s) { return c_make(a.re * s, a.im * s); }
__device__ __forceinline__ cplx c_div(cplx a, cplx b) {
    // Smith's algorithm: no overflow of |b|² for large b.
    if (fabs(b.re) >= fabs(b.im)) {
        const double r = b.im / b.re, d = b.re + b.im * r;
        return c_make((a.re + a.im * r) / d, (a.im - a.re * r) / d);
    }
    const double r = b.re / b.im, d = b.re * r + b.im;
    return c_make((a.re * r + a.im) / d, (a.im * r - a.re) / d);
}
__device__ __forceinline__ cplx c_exp(cplx z) {
    double s, c;
    sincos(z.im, &s, &c);
    const double r = exp(z.re);
    return c_make(r * c, r * s);
}
// c_expm1 is exp(z) − 1 without cancellation: expm1(x)·cos y − 2·sin²(y/2) + i·exp(x)·sin y.
__device__ __forceinline__ cplx c_expm1(cplx z) {
    double s, c;
    sincos(z.im, &s, &c);
    const double h = sin(z.im / 2);
    return c_make(expm1(z.re) * c - 2 * h * h, exp(z.re) * s);
}
__device__ __forceinline__ cplx c_psi(cplx z) {
    if (z.re == 0 && z.im == 0) return c_make(1, 0);
    return c_div(c_expm1(z), z);
}
// c_phi is ψ'(z) = (1 − exp(z)·(1 − z))/z², the series Σ_j (j+1)·z^j/(j+2)!
// for |z| < 1/2 where the closed form cancels.
__device__ cplx c_phi(cplx z) {
    if (z.re * z.re + z.im * z.im < 0.25) {
        cplx sum = c_make(0, 0), pw = c_make(1, 0);
        double fact = 2;
        for (int j = 0; j < 20; j++) {
            sum = c_add(sum, c_scale(pw, (double)(j + 1) / fact));
            pw = c_mul(pw, z);
            fact *= (double)(j + 3);
        }
        return sum;
    }
    const cplx e = c_exp(z), one_m_z = c_make(1 - z.re, -z.im);
    const cplx num = c_make(1, 0), em = c_mul(e, one_m_z);
    return c_div(c_make(num.re - em.re, num.im - em.im), c_mul(z, z));
}

// s4d_mode discretises mode i = h·N2 + n: z = dt·A, w = exp(z) (0 below the
// exp limit), ψ(z) and C̃ = C·dt·ψ(z).
struct s4dmode {
    cplx z, w, psi, ct;
};

__device__ __forceinline__ s4dmode s4d_mode(double dt, const real* aRe, const real* aIm, const real* cRe,
                                            const real* cIm, i64 i) {
    s4dmode m;
    m.z = c_make(dt * (double)aRe[i], dt * (double)aIm[i]);
    m.psi = c_psi(m.z);
    m.w = m.z.re >= EXP_MIN ? c_exp(m.z) : c_make(0, 0);
    m.ct = c_scale(c_mul(c_make((double)cRe[i], (double)cIm[i]), m.psi), dt);
    return m;
}

// s4d_anchor is w^k0 = exp(z·k0) directly; false once Re(z)·k0 is below the
// exp limit (the mode is spent from there on).
__device__ __forceinline__ bool s4d_anchor(const s4dmode& m, i64 k0, cplx* p) {
    const double x = m.z.re * (double)k0;
    if (x < EXP_MIN) return false;
    double s, c;
    sincos(m.z.im * (double)k0, &s, &c);
    const double r = exp(x);
    *p = c_make(r * c, r * s);
    return true;
}

// s4d_kernel: a thread per (h, block of S4D_ANCHOR steps k):
//
//	K[h,k] = 2·Re Σ_n C̃[h,n]·w[h,n]^k
extern "C" __global__ void s4d_kernel(real* K, const real* logDt, const real* aRe, const real* aIm, const real* cRe,
                                      const real* cIm, i64 H, i64 N2, i64 L) {
    const i64 nkb = (L + S4D_ANCHOR - 1) / S4D_ANCHOR;
    FOR_N(e, H * nkb) {
        const i64 h = e / nkb, k0 = (e % nkb) * S4D_ANCHOR;
        const int kn = (int)imin(S4D_ANCHOR, L - k0);
        const double dt = exp((double)logDt[h]);
        double acc[S4D_ANCHOR];
#pragma unroll
        for (int j = 0; j < S4D_ANCHOR; j++) acc[j] = 0;
        for (i64 n = 0; n < N2; n++) {
            const s4dmode m = s4d_mode(dt, aRe, aIm, cRe, cIm, h * N2 + n);
            cplx p;
            if (!s4d_anchor(m, k0, &p)) continue;
#pragma unroll
            for (int j = 0; j < S4D_ANCHOR; j++) {
                acc[j] += m.ct.re * p.re - m.ct.im * p.im;
                p = c_mul(p, m.w);
            }
        }
#pragma unroll
        for (int j = 0; j < S4D_ANCHOR; j++)
            if (j < kn) K[h * L + k0 + j] = (real)(2 * acc[j]);
    }
}

// s4d_kernel_bwd: a block per channel h, a thread per mode (strided). With
// S0 = Σ_k dK[k]·w^k and S1 = Σ_k k·dK[k]·w^k, the loss is 2·Re Σ_n
// C·dt·ψ(z)·S0, holomorphic in C, A and z, so (∂/∂Re = 2·Re g', ∂/∂Im =
// −2·Im g'):
//
//	g'(C) = dt·ψ(z)·S0    g'(A) = C·dt²·(ψ'(z)·S0 + ψ(z)·S1)
//	∂/∂log_dt = 2·Re Σ_n C·dt·(w·S0 + z·ψ(z)·S1)
//
// the last summed over the modes with block_sum (fixed order).
extern "C" __global__ void s4d_kernel_bwd(real* gDt, real* gARe, real* gAIm, real* gCRe, real* gCIm, const real* dK,
                                          const real* logDt, const real* aRe, const real* aIm, const real* cRe,
                                          const real* cIm, i64 H, i64 N2, i64 L) {
    __shared__ double sh[32];
    for (i64 h = blockIdx.x; h < H; h += gridDim.x) {
        const double dt = exp((double)logDt[h]);
        const real* dk = dK + h * L;
        double dlog = 0;
        for (i64 n = threadIdx.x; n < N2; n += blockDim.x) {
            const i64 i = h * N2 + n;
            const s4dmode m = s4d_mode(dt, aRe, aIm, cRe, cIm, i);
            double s0r = 0, s0i = 0, s1r = 0, s1i = 0;
            for (i64 k0 = 0; k0 < L; k0 += S4D_ANCHOR) {
                cplx p;
                if (!s4d_anchor(m, k0, &p)) break;
                const i64 k1 = imin(k0 + S4D_ANCHOR, L);
                for (i64 k = k0; k < k1; k++) {
                    double v = (double)dk[k];
                    s0r += v * p.re;
                    s0i += v * p.im;
                    v *= (double)k;
                    s1r += v * p.re;
                    s1i += v * p.im;
                    p = c_mul(p, m.w);
                }
            }
            const cplx S0 = c_make(s0r, s0i), S1 = c_make(s1r, s1i);
            const cplx C = c_make((double)cRe[i], (double)cIm[i]);
            if (gCRe || gCIm) {
                const cplx q = c_scale(c_mul(m.psi, S0), dt);
                if (gCRe) gCRe[i] = (real)((double)gCRe[i] + 2 * q.re);
                if (gCIm) gCIm[i] = (real)((double)gCIm[i] - 2 * q.im);
            }
            if (gARe || gAIm) {
                const cplx t = c_add(c_mul(c_phi(m.z), S0), c_mul(m.psi, S1));
                const cplx q = c_scale(c_mul(C, t), dt * dt);
                if (gARe) gARe[i] = (real)((double)gARe[i] + 2 * q.re);
                if (gAIm) gAIm[i] = (real)((double)gAIm[i] - 2 * q.im);
            }
            if (gDt) {
                // w − 1 = z·ψ(z), exact where w was flushed to 0 too.
                const cplx t = c_add(c_mul(m.w, S0), c_mul(c_mul(m.z, m.psi), S1));
                dlog += 2 * dt * c_mul(C, t).re;
            }
        }
        if (gDt) {
            dlog = block_sum(dlog, sh);
            if (threadIdx.x == 0) gDt[h] = (real)((double)gDt[h] + dlog);
        }
    }
}

// s4d_recurrent: a thread per row (b, h) runs the SSM over its L steps,
//
//	for t: for n: s[n] = w[n]·s[n] + u[t];  out[t] = 2·Re Σ_n C̃[n]·s[n] + Dskip·u[t]
//
// with the modes and states in double in ws (6 doubles a mode and row: s,
// w, C̃), read from and written back to state (B, H, N2, 2) when given. It
// is the step mode (L small): no tiling.
extern "C" __global__ void s4d_recurrent(act_t* out, real* state, double* ws, const act_t* u, const real* Dskip,
                                         const real* logDt, const real* aRe, const real* aIm, const real* cRe,
                                         const real* cIm, i64 B, i64 H, i64 N2, i64 L) {
    FOR_N(r, B * H) {
        const i64 h = r % H;
        const double dt = exp((double)logDt[h]), d = Dskip ? (double)Dskip[h] : 0.0;
        // Field f of mode n of row r is ws[(n·6 + f)·BH + r]: consecutive
        // threads touch consecutive doubles (coalesced).
        const i64 BH = B * H;
        double* m = ws + r;
        for (i64 n = 0; n < N2; n++) {
            const s4dmode md = s4d_mode(dt, aRe, aIm, cRe, cIm, h * N2 + n);
            double* q = m + n * 6 * BH;
            q[0] = state ? (double)state[(r * N2 + n) * 2] : 0.0;
            q[BH] = state ? (double)state[(r * N2 + n) * 2 + 1] : 0.0;
            q[2 * BH] = md.w.re;
            q[3 * BH] = md.w.im;
            q[4 * BH] = md.ct.re;
            q[5 * BH] = md.ct.im;
        }
        const act_t* ur = u + r * L;
        for (i64 t = 0; t < L; t++) {
            const double ut = (double)ur[t];
            double acc = 0;
            for (i64 n = 0; n < N2; n++) {
                double* q = m + n * 6 * BH;
                const double sr = q[0], si = q[BH], wr = q[2 * BH], wi = q[3 * BH];
                double xr = wr * sr - wi * si + ut, xi = wr * si + wi * sr;
                if (fabs(xr) < MIN_NORMAL) xr = 0;
                if (fabs(xi) < MIN_NORMAL) xi = 0;
                q[0] = xr;
                q[BH] = xi;
                acc += q[4 * BH] * xr - q[5 * BH] * xi;
            }
            out[r * L + t] = (real)(2 * acc + d * ut);
        }
        if (state) {
            for (i64 n = 0; n < N2; n++) {
                state[(r * N2 + n) * 2] = (real)m[n * 6 * BH];
                state[(r * N2 + n) * 2 + 1] = (real)m[n * 6 * BH + BH];
            }
        }
    }
}
