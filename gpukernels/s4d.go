package gpukernels

import "seqbench/nn"

// s4dAnchor is S4D_ANCHOR of s4d.cu.
const s4dAnchor = 32

type s4dBufs struct {
	logDt, aRe, aIm, cRe, cIm *Buffer
}

// unpackS4D checks a's shape and buffers, which are parameters: of the
// backend's type (float32 under bf16).
func (be *Backend) unpackS4D(op string, a nn.S4DArgs) s4dBufs {
	check(op, a.Check())
	n := a.H * a.N2
	s := s4dBufs{logDt: be.buf(a.LogDt, a.H, op, "LogDt"), aRe: be.buf(a.ARe, n, op, "ARe"), aIm: be.buf(a.AIm, n, op, "AIm"),
		cRe: be.buf(a.CRe, n, op, "CRe"), cIm: be.buf(a.CIm, n, op, "CIm")}
	be.wantOwn(op, arg{"LogDt", s.logDt}, arg{"ARe", s.aRe}, arg{"AIm", s.aIm}, arg{"CRe", s.cRe}, arg{"CIm", s.cIm})
	return s
}

// S4DKernel writes the convolution kernel K (H, L):
//
//	for h, k: K[h,k] = 2·Re Σ_n C̃[h,n]·exp(z[h,n]·k)
//
// with z = exp(LogDt[h])·A and C̃ = C·(exp(z) − 1)/A, in double (s4d.cu):
// a thread per (h, block of 32 steps). K is of the backend's type, as the
// parameters: it is computed from them alone (float32 under bf16).
func (be *Backend) S4DKernel(K nn.Buffer, a nn.S4DArgs) {
	const op = "S4DKernel"
	s := be.unpackS4D(op, a)
	ks := be.buf(K, a.H*a.L, op, "K")
	be.wantOwn(op, arg{"K", ks})
	if a.H*a.L == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	n := a.H * ((a.L + s4dAnchor - 1) / s4dAnchor)
	be.launch(op, be.fn(op, "s4d", "s4d_kernel"), dim(be.blocksFor(n, 128)), dim(128), 0, pArg(ks), pArg(s.logDt),
		pArg(s.aRe), pArg(s.aIm), pArg(s.cRe), pArg(s.cIm), iArg(a.H), iArg(a.N2), iArg(a.L))
}

// S4DKernelBackward accumulates the parameter gradients of S4DKernel from
// dK (H, L): with S0 = Σ_k dK[k]·w^k and S1 = Σ_k k·dK[k]·w^k per mode,
//
//	g'(C)      = dt·ψ(z)·S0
//	g'(A)      = C·dt²·(ψ'(z)·S0 + ψ(z)·S1)
//	∂/∂log_dt  = 2·Re Σ_n C·dt·(w·S0 + (w − 1)·S1)
//
// (∂/∂Re = 2·Re g', ∂/∂Im = −2·Im g'). A block per channel, a thread per
// mode; any gradient may be nil. dK and the gradients are of the
// backend's type (float32 under bf16).
func (be *Backend) S4DKernelBackward(g nn.S4DGrads, a nn.S4DArgs, dK nn.Buffer) {
	const op = "S4DKernelBackward"
	s := be.unpackS4D(op, a)
	n := a.H * a.N2
	dks := be.buf(dK, a.H*a.L, op, "dK")
	gDt, gARe, gAIm := be.optBuf(g.LogDt, a.H, op, "LogDt"), be.optBuf(g.ARe, n, op, "ARe"), be.optBuf(g.AIm, n, op, "AIm")
	gCRe, gCIm := be.optBuf(g.CRe, n, op, "CRe"), be.optBuf(g.CIm, n, op, "CIm")
	be.wantOwn(op, arg{"dK", dks}, arg{"dLogDt", gDt}, arg{"dARe", gARe}, arg{"dAIm", gAIm}, arg{"dCRe", gCRe}, arg{"dCIm", gCIm})
	if a.H == 0 || (gDt == nil && gARe == nil && gAIm == nil && gCRe == nil && gCIm == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	threads := min(256, max(32, (a.N2+31)/32*32))
	be.launch(op, be.fn(op, "s4d", "s4d_kernel_bwd"), dim(min(a.H, 65535)), dim(threads), 0, pArg(gDt), pArg(gARe),
		pArg(gAIm), pArg(gCRe), pArg(gCIm), pArg(dks), pArg(s.logDt), pArg(s.aRe), pArg(s.aIm), pArg(s.cRe), pArg(s.cIm),
		iArg(a.H), iArg(a.N2), iArg(a.L))
}

// S4DRecurrent runs the SSM of a as a recurrence over u (B, H, L),
// carrying state (B, H, N2, 2) in place (nil: zeros, not kept):
//
//	for t: for n: s[n] = w[n]·s[n] + u[t]
//	       out[t] = 2·Re Σ_n C̃[n]·s[n] + Dskip·u[t]
//
// which is FFTConv(u, S4DKernel) up to rounding. Dskip may be nil. A
// thread per (b, h), states in double during the call (s4d.cu).
//
// u and out are activations (both of the backend's type or both
// bfloat16); state and Dskip are of the backend's type, as the parameters.
func (be *Backend) S4DRecurrent(out, state, u, Dskip nn.Buffer, a nn.S4DArgs, B int) {
	const op = "S4DRecurrent"
	check(op, nn.CheckS4DRecurrent(a, B))
	s := be.unpackS4D(op, a)
	H, N2, L := a.H, a.N2, a.L
	os, us := be.buf(out, B*H*L, op, "out"), be.buf(u, B*H*L, op, "u")
	st, ds := be.optBuf(state, B*H*N2*2, op, "state"), be.optBuf(Dskip, H, op, "Dskip")
	at := be.actType(op, arg{"out", os}, arg{"u", us})
	be.wantOwn(op, arg{"state", st}, arg{"Dskip", ds})
	if B*H == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	ws := be.newBuffer(max(1, B*H*N2*6), nn.Float64)
	defer be.release(ws)
	be.launch(op, be.fnAs(op, at, "s4d", "s4d_recurrent"), dim(be.blocksFor(B*H, 128)), dim(128), 0, pArg(os), pArg(st),
		pArg(ws), pArg(us), pArg(ds), pArg(s.logDt), pArg(s.aRe), pArg(s.aIm), pArg(s.cRe), pArg(s.cIm),
		iArg(B), iArg(H), iArg(N2), iArg(L))
}
