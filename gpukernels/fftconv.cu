// The long causal convolution of S4D (cpukernels/fftconv.go) through FFTs
// of size n = the smallest power of two ≥ 2L (zero padding makes the
// circular convolution the linear one on the first L outputs), computed in
// shared memory by the kernels themselves: one block transforms a whole
// row, so a row is read once and written once (cuFFT would need the padded
// rows in device memory and separate passes for the spectrum products). As
// in cpukernels, two real rows of one channel go through one complex
// transform, x1 + i·x2 (the kernel K is real).
//
// The forward transform is a decimation in frequency (natural order in,
// bit-reversed order out) and the inverse a decimation in time
// (bit-reversed in, natural out): products of spectra are taken in the
// bit-reversed order, which never needs a permutation pass. Twiddles come
// from a table tw[j] = exp(−2πi·j/n), j < n/2, computed in double.
//
// Rows longer than the shared memory allows (Go's fftMaxN) take the direct
// O(L²) kernels at the end of this file.
//
// Activations (u, dout, out, du) are act_t: bfloat16 in the bfloat16 build,
// read into the float transforms and rounded once when written (du += …
// loads, adds in float and rounds the sum). K, Dskip, their gradients, the
// twiddles and K's spectra are real (float32 under bf16), and the rows are
// staged in shared memory as complex real in every build.

struct rc {
    real x, y;
};

__device__ __forceinline__ rc rc_make(real x, real y) {
    rc z;
    z.x = x;
    z.y = y;
    return z;
}
__device__ __forceinline__ rc rc_mul(rc a, rc b) { return rc_make(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
// rc_mulc is a·conj(b).
__device__ __forceinline__ rc rc_mulc(rc a, rc b) { return rc_make(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y); }

extern "C" __global__ void fft_twiddles(rc* tw, i64 n) {
    FOR_N(j, n / 2) {
        double s, c;
        sincospi(-2.0 * (double)j / (double)n, &s, &c);
        tw[j] = rc_make((real)c, (real)s);
    }
}

// fft_dif: the forward DFT X[j] = Σ_t x[t]·exp(−2πi·j·t/n) of s in place,
// natural order in, bit-reversed order out. All threads of the block call
// it after the data are in s (and a barrier); it ends with a barrier.
__device__ void fft_dif(rc* s, const rc* tw, int n) {
    for (int half = n >> 1, step = 1; half >= 1; half >>= 1, step <<= 1) {
        for (int i = threadIdx.x; i < (n >> 1); i += blockDim.x) {
            const int j = i & (half - 1), a = ((i - j) << 1) + j, b = a + half;
            const rc x = s[a], y = s[b], w = tw[j * step];
            s[a] = rc_make(x.x + y.x, x.y + y.y);
            s[b] = rc_mul(rc_make(x.x - y.x, x.y - y.y), w);
        }
        __syncthreads();
    }
}

// fft_dit_inv: the unnormalised inverse DFT x[t] = Σ_j X[j]·exp(2πi·j·t/n)
// of s in place, bit-reversed order in, natural order out.
__device__ void fft_dit_inv(rc* s, const rc* tw, int n) {
    for (int half = 1, step = n >> 1; half < n; half <<= 1, step >>= 1) {
        for (int i = threadIdx.x; i < (n >> 1); i += blockDim.x) {
            const int j = i & (half - 1), a = ((i - j) << 1) + j, b = a + half;
            const rc w = tw[j * step];
            const rc x = s[a], y = rc_mulc(s[b], w); // conj(w): the inverse's twiddle
            s[a] = rc_make(x.x + y.x, x.y + y.y);
            s[b] = rc_make(x.x - y.x, x.y - y.y);
        }
        __syncthreads();
    }
}

// fft_load_pair fills s with x1 + i·x2 (x2 null: 0), zero-padded to n. T
// is act_t for activation rows, real for K.
template <class T>
__device__ __forceinline__ void fft_load_pair(rc* s, const T* x1, const T* x2, i64 L, int n) {
    for (int t = threadIdx.x; t < n; t += blockDim.x)
        s[t] = t < L ? rc_make((real)x1[t], x2 ? (real)x2[t] : (real)0) : rc_make(0, 0);
}

// fft_kspec: a block per channel h writes the spectrum of K[h] (zero-padded
// to n) in bit-reversed order to KF[h] (n complex).
extern "C" __global__ void fft_kspec(rc* KF, const real* K, const rc* tw, i64 H, i64 L, i64 n) {
    extern __shared__ double fft_smem[];
    rc* s = reinterpret_cast<rc*>(fft_smem);
    const int nn = (int)n;
    for (i64 h = blockIdx.x; h < H; h += gridDim.x) {
        __syncthreads();
        fft_load_pair<real>(s, K + h * L, nullptr, L, nn);
        __syncthreads();
        fft_dif(s, tw, nn);
        for (int j = threadIdx.x; j < nn; j += blockDim.x) KF[h * n + j] = s[j];
    }
}

// fft_conv: a block per (channel h, pair of batch rows b1 = 2·pair, b2):
//
//	out[b,h,t] (+)= IFFT(FFT(x_b)·F_h)[t] + Dskip[h]·x[b,h,t]
//
// with F_h = KF[h] (the causal convolution) or conj(KF[h]) (corr: the
// correlation Σ_{t'≥t} x[t']·K[t'−t] of the backward's du).
extern "C" __global__ void fft_conv(act_t* out, const act_t* x, const rc* KF, const real* Dskip, const rc* tw, i64 B,
                                    i64 H, i64 L, i64 n, i64 corr, i64 accumulate) {
    extern __shared__ double fft_smem[];
    rc* s = reinterpret_cast<rc*>(fft_smem);
    const int nn = (int)n;
    const i64 pairs = (B + 1) / 2;
    const real inv = (real)(1.0 / (double)n);
    for (i64 item = blockIdx.x; item < H * pairs; item += gridDim.x) {
        const i64 h = item % H, b1 = 2 * (item / H), b2 = b1 + 1;
        const act_t* x1 = x + (b1 * H + h) * L;
        const act_t* x2 = b2 < B ? x + (b2 * H + h) * L : nullptr;
        const real d = Dskip ? Dskip[h] : (real)0;
        __syncthreads();
        fft_load_pair(s, x1, x2, L, nn);
        __syncthreads();
        fft_dif(s, tw, nn);
        const rc* F = KF + h * n;
        for (int j = threadIdx.x; j < nn; j += blockDim.x) s[j] = corr ? rc_mulc(s[j], F[j]) : rc_mul(s[j], F[j]);
        __syncthreads();
        fft_dit_inv(s, tw, nn);
        act_t* o1 = out + (b1 * H + h) * L;
        act_t* o2 = out + (b2 * H + h) * L;
        for (int t = threadIdx.x; t < L; t += blockDim.x) {
            const real v1 = s[t].x * inv + d * x1[t];
            if (accumulate) o1[t] += v1;
            else o1[t] = v1;
            if (x2) {
                const real v2 = s[t].y * inv + d * x2[t];
                if (accumulate) o2[t] += v2;
                else o2[t] = v2;
            }
        }
    }
}

// fft_dk: a block per channel h accumulates, over its pairs of rows, the
// cross spectrum Σ FFT(g_pair)·conj(FFT(u_pair)) (pairing needs no
// unmixing: Re of the correlation of g1 + i·g2 with u1 + i·u2 is
// g1⋆u1 + g2⋆u2), then
//
//	dK[h,k] += Re IFFT(Σ)[k] / n = Σ_b Σ_{t≥k} dout[b,h,t]·u[b,h,t−k]
//
// Shared memory: three rows of n complex.
extern "C" __global__ void fft_dk(real* dK, const act_t* u, const act_t* dout, const rc* tw, i64 B, i64 H, i64 L, i64 n) {
    extern __shared__ double fft_smem[];
    const int nn = (int)n;
    rc* sg = reinterpret_cast<rc*>(fft_smem);
    rc* su = sg + nn;
    rc* acc = su + nn;
    const real inv = (real)(1.0 / (double)n);
    for (i64 h = blockIdx.x; h < H; h += gridDim.x) {
        __syncthreads();
        for (int j = threadIdx.x; j < nn; j += blockDim.x) acc[j] = rc_make(0, 0);
        for (i64 b1 = 0; b1 < B; b1 += 2) {
            const i64 b2 = b1 + 1;
            __syncthreads();
            fft_load_pair(sg, dout + (b1 * H + h) * L, b2 < B ? dout + (b2 * H + h) * L : nullptr, L, nn);
            fft_load_pair(su, u + (b1 * H + h) * L, b2 < B ? u + (b2 * H + h) * L : nullptr, L, nn);
            __syncthreads();
            fft_dif(sg, tw, nn);
            fft_dif(su, tw, nn);
            for (int j = threadIdx.x; j < nn; j += blockDim.x) {
                const rc p = rc_mulc(sg[j], su[j]);
                acc[j] = rc_make(acc[j].x + p.x, acc[j].y + p.y);
            }
        }
        __syncthreads();
        fft_dit_inv(acc, tw, nn);
        for (int k = threadIdx.x; k < L; k += blockDim.x) dK[h * L + k] += acc[k].x * inv;
    }
}

// fft_dskip: a block per channel, dDskip[h] += Σ_b Σ_t dout[b,h,t]·u[b,h,t]
// in double (block_sum: a fixed order).
extern "C" __global__ void fft_dskip(real* dD, const act_t* u, const act_t* dout, i64 B, i64 H, i64 L) {
    __shared__ double sh[32];
    for (i64 h = blockIdx.x; h < H; h += gridDim.x) {
        double s = 0;
        for (i64 i = threadIdx.x; i < B * L; i += blockDim.x) {
            const i64 o = ((i / L) * H + h) * L + i % L;
            s += (double)dout[o] * (double)u[o];
        }
        s = block_sum(s, sh);
        if (threadIdx.x == 0) dD[h] = (real)((double)dD[h] + s);
    }
}

// conv_direct: the O(L²) fallback for rows too long for fft_conv, a thread
// per output, sums in double:
//
//	conv: out[r,t] (+)= Σ_{k≤t} K[h,k]·x[r,t−k] + Dskip[h]·x[r,t]
//	corr: out[r,t] (+)= Σ_{k<L−t} K[h,k]·x[r,t+k] + Dskip[h]·x[r,t]
extern "C" __global__ void conv_direct(act_t* out, const act_t* x, const real* K, const real* Dskip, i64 rows, i64 H,
                                       i64 L, i64 corr, i64 accumulate) {
    for (i64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const i64 h = r % H;
        const act_t* xr = x + r * L;
        const real* kr = K + h * L;
        const double d = Dskip ? (double)Dskip[h] : 0.0;
        for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < L; t += (i64)gridDim.x * blockDim.x) {
            double s = d * (double)xr[t];
            if (corr) {
                for (i64 k = 0; k < L - t; k++) s += (double)kr[k] * (double)xr[t + k];
            } else {
                for (i64 k = 0; k <= t; k++) s += (double)kr[k] * (double)xr[t - k];
            }
            if (accumulate) out[r * L + t] += (real)s;
            else out[r * L + t] = (real)s;
        }
    }
}

// conv_direct_dk: dK[h,k] += Σ_b Σ_{t≥k} dout[b,h,t]·u[b,h,t−k], a thread
// per (h, k).
extern "C" __global__ void conv_direct_dk(real* dK, const act_t* u, const act_t* dout, i64 B, i64 H, i64 L) {
    for (i64 h = blockIdx.y; h < H; h += gridDim.y) {
        for (i64 k = (i64)blockIdx.x * blockDim.x + threadIdx.x; k < L; k += (i64)gridDim.x * blockDim.x) {
            double s = 0;
            for (i64 b = 0; b < B; b++) {
                const act_t *g = dout + (b * H + h) * L, *ur = u + (b * H + h) * L;
                for (i64 t = k; t < L; t++) s += (double)g[t] * (double)ur[t - k];
            }
            dK[h * L + k] = (real)((double)dK[h * L + k] + s);
        }
    }
}
