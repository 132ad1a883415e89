package gpukernels

import "seqbench/nn"

// fftSize is the transform size of FFTConv for length L: the smallest
// power of two ≥ 2L.
func fftSize(L int) int {
	n := 1
	for n < 2*L {
		n <<= 1
	}
	return n
}

// fftMaxN is the largest transform that fft_dk (three rows of n complex,
// the most of the FFT kernels) keeps in shared memory: 8192 in float32 and
// 4096 in float64 on an H200 (227 KiB), so L up to 4096 and 2048. Longer
// rows take the direct kernels. The rows are staged as complex of the
// backend's type (be.esize()) in the bfloat16 build too.
func (be *Backend) fftMaxN() int {
	n := 1
	for 3*(2*n)*2*be.esize() <= be.dev.MaxSharedOptin {
		n *= 2
	}
	return n
}

// fftThreads is the block size of the FFT kernels for size n: a thread per
// butterfly up to 512.
func fftThreads(n int) int { return min(512, max(32, n/2)) }

// fftPlan holds the twiddles of size n and the spectra of K (H rows of n
// complex, bit-reversed order) for one call.
type fftPlan struct {
	n      int
	tw, kf *Buffer
}

// newFFTPlan computes the twiddles and, when K is given, its spectra,
// with the kernels of the op's build at (both are of the backend's type in
// every build: the twiddles, K and its spectra are not activations).
func (be *Backend) newFFTPlan(op string, at nn.DType, K *Buffer, H, L int) *fftPlan {
	n := fftSize(L)
	p := &fftPlan{n: n, tw: be.newBuffer(n, be.dtype)} // n/2 complex
	be.launch(op, be.fnAs(op, at, "fftconv", "fft_twiddles"), dim(be.blocksFor(n/2, 256)), dim(256), 0, pArg(p.tw), iArg(n))
	if K != nil {
		p.kf = be.newBuffer(H*n*2, be.dtype)
		be.launch(op, be.fnAs(op, at, "fftconv", "fft_kspec"), dim(min(H, 65535)), dim(fftThreads(n)), n*2*be.esize(),
			pArg(p.kf), pArg(K), pArg(p.tw), iArg(H), iArg(L), iArg(n))
	}
	return p
}

func (be *Backend) releasePlan(p *fftPlan) {
	be.release(p.tw)
	if p.kf != nil {
		be.release(p.kf)
	}
}

// FFTConv is the causal convolution of u (B, H, L) with K (H, L) plus the
// skip (Dskip nil: none):
//
//	for b, h, t: out[b,h,t] = Σ_{k≤t} K[h,k]·u[b,h,t−k] + Dskip[h]·u[b,h,t]
//
// through FFTs of size n ≥ 2L computed in shared memory (fftconv.cu): one
// launch for K's spectra, one for the rows (a block per channel and pair
// of batch rows). Rows with n > fftMaxN take the direct O(L²) kernel.
//
// u and out are activations (both of the backend's type or both
// bfloat16); K and Dskip are of the backend's type (float32 under bf16).
func (be *Backend) FFTConv(out, u, K, Dskip nn.Buffer, B, H, L int) {
	const op = "FFTConv"
	check(op, nn.CheckFFTConv(B, H, L))
	o, us, ks := be.buf(out, B*H*L, op, "out"), be.buf(u, B*H*L, op, "u"), be.buf(K, H*L, op, "K")
	ds := be.optBuf(Dskip, H, op, "Dskip")
	at := be.actType(op, arg{"out", o}, arg{"u", us})
	be.wantOwn(op, arg{"K", ks}, arg{"Dskip", ds})
	if B*H*L == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	be.fftConv(op, at, o, us, ks, ds, B, H, L, false, false)
}

// fftConv is the convolution (corr false) or the correlation (corr true:
// out[t] (+)= Σ_{t'≥t} x[t']·K[t'−t] + Dskip·x[t]) of x with K, overwriting
// out or accumulating into it; at is the type of out and x.
func (be *Backend) fftConv(op string, at nn.DType, out, x, K, D *Buffer, B, H, L int, corr, acc bool) {
	n := fftSize(L)
	if n > be.fftMaxN() {
		gx, gy := be.rowGrid(B*H, L, 128)
		be.launch(op, be.fnAs(op, at, "fftconv", "conv_direct"), dim2(gx, gy), dim(128), 0, pArg(out), pArg(x), pArg(K), pArg(D),
			iArg(B*H), iArg(H), iArg(L), bArg(corr), bArg(acc))
		return
	}
	p := be.newFFTPlan(op, at, K, H, L)
	defer be.releasePlan(p)
	items := H * ((B + 1) / 2)
	be.launch(op, be.fnAs(op, at, "fftconv", "fft_conv"), dim(min(items, 1<<30)), dim(fftThreads(n)), n*2*be.esize(),
		pArg(out), pArg(x), pArg(p.kf), pArg(D), pArg(p.tw), iArg(B), iArg(H), iArg(L), iArg(n), bArg(corr), bArg(acc))
}

// FFTConvBackward accumulates FFTConv's gradients (any of du, dK, dDskip
// may be nil; dDskip is ignored without Dskip):
//
//	du[b,h,s] += Σ_{t≥s} dout[b,h,t]·K[h,t−s] + Dskip[h]·dout[b,h,s]
//	dK[h,k]   += Σ_b Σ_{t≥k} dout[b,h,t]·u[b,h,t−k]
//	dDskip[h] += Σ_b Σ_t dout[b,h,t]·u[b,h,t]
//
// du is fft_conv's correlation; dK a block per channel summing the cross
// spectra of its batch rows in order, then one inverse transform; dDskip a
// block per channel. Every sum has a fixed order (deterministic).
//
// u, dout and du are activations (all of the backend's type or all
// bfloat16); K, Dskip, dK and dDskip are of the backend's type.
func (be *Backend) FFTConvBackward(du, dK, dDskip, u, K, Dskip, dout nn.Buffer, B, H, L int) {
	const op = "FFTConvBackward"
	check(op, nn.CheckFFTConv(B, H, L))
	us, ks, gs := be.buf(u, B*H*L, op, "u"), be.buf(K, H*L, op, "K"), be.buf(dout, B*H*L, op, "dout")
	dU, dKs := be.optBuf(du, B*H*L, op, "du"), be.optBuf(dK, H*L, op, "dK")
	ds := be.optBuf(Dskip, H, op, "Dskip")
	var dD *Buffer
	if ds != nil {
		dD = be.optBuf(dDskip, H, op, "dDskip")
	}
	at := be.actType(op, arg{"u", us}, arg{"dout", gs}, arg{"du", dU})
	be.wantOwn(op, arg{"K", ks}, arg{"Dskip", ds}, arg{"dK", dKs}, arg{"dDskip", dD})
	if B*H*L == 0 || (dU == nil && dKs == nil && dD == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	if dU != nil {
		be.fftConv(op, at, dU, gs, ks, ds, B, H, L, true, true)
	}
	if dKs != nil {
		n := fftSize(L)
		if n > be.fftMaxN() {
			gx, gy := be.rowGrid(H, L, 128)
			be.launch(op, be.fnAs(op, at, "fftconv", "conv_direct_dk"), dim2(gx, gy), dim(128), 0, pArg(dKs), pArg(us), pArg(gs),
				iArg(B), iArg(H), iArg(L))
		} else {
			p := be.newFFTPlan(op, at, nil, H, L)
			defer be.releasePlan(p)
			be.launch(op, be.fnAs(op, at, "fftconv", "fft_dk"), dim(min(H, 65535)), dim(fftThreads(n)), 3*n*2*be.esize(),
				pArg(dKs), pArg(us), pArg(gs), pArg(p.tw), iArg(B), iArg(H), iArg(L), iArg(n))
		}
	}
	if dD != nil {
		be.launch(op, be.fnAs(op, at, "fftconv", "fft_dskip"), dim(min(H, 65535)), dim(256), 0, pArg(dD), pArg(us), pArg(gs),
			iArg(B), iArg(H), iArg(L))
	}
}
