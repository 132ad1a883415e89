package gpukernels

import (
	"fmt"

	"seqbench/nn"
)

// ssdThreads is the forward's block; ssd.cu gets it as SSD_THREADS
// (contract.go).
const ssdThreads = 128

var _ = defineContract("ssd", contract{consts: func(nn.DType) map[string]int {
	return map[string]int{"SSD_THREADS": ssdThreads}
}})

// ssdSplit returns NPT (states per lane, a kernel instance: 4, 16 or 64)
// and NS (lanes per row p) for N states and P rows. Few lanes per row
// (NPT = 16 from N = 32 on) trade shuffles for independent multiply-adds;
// the backward's block holds all P rows, so P·NS must stay ≤ 512.
func ssdSplit(op string, P, N int) (npt, ns int) {
	start := 0
	if N >= 32 {
		start = 1
	}
	for _, npt = range []int{4, 16, 64}[start:] {
		ns = 1
		for ns*npt < N {
			ns *= 2
		}
		if ns <= 32 && P*ns <= 512 {
			return npt, ns
		}
	}
	panic(fmt.Sprintf("gpukernels.%s: P = %d, N = %d: the kernels hold a head's P×N state in one block of at most 512 threads (P·⌈N/64⌉ ≤ 512, N ≤ 2048)", op, P, N))
}

// ssdFwdSmem, ssdBwdFSmem and ssdBwdRSmem are the kernels' shared memory
// in bytes for tile T (ssd.cu's layouts).
func ssdFwdSmem(T, ns, npt, es int) int {
	cp, np := ssdThreads/ns, ns*npt
	return (2*T*(cp+1) + 2*T*(np+1) + 2*T) * es
}

func ssdBwdFSmem(T, P, ns, npt, es int) int {
	np := ns * npt
	return (3*T*(P+1) + 2*T*(np+1) + 2*T + T*(P*(np+1)+1)) * es
}

func ssdBwdRSmem(T, P, ns, npt, es int) int {
	np := ns * npt
	return (4*T*(P+1) + 2*T*(np+1) + 2*T + T*(P*(np+1)+1)) * es
}

// ssdTile is the largest tile of at most maxTile(L) steps whose shared
// memory stays within limit bytes (for occupancy), or, where not even one step
// fits limit, within the device's limit.
func (be *Backend) ssdTile(op string, L, limit int, size func(T int) int) int {
	for _, lim := range []int{min(limit, be.dev.MaxSharedOptin), be.dev.MaxSharedOptin} {
		for T := maxTile(L); T >= 1; T /= 2 {
			if size(T) <= lim {
				return T
			}
		}
	}
	panic(fmt.Sprintf("gpukernels.%s: the SSD needs %d bytes of shared memory, the device allows %d", op, size(1), be.dev.MaxSharedOptin))
}

type ssdBufs struct {
	x, dt, A, Bm, Cm, Dskip, dtbias, h0 *Buffer
}

func (be *Backend) unpackSSD(op string, a nn.SSDArgs) ssdBufs {
	check(op, a.Check())
	nx, nd, nbc := a.B*a.L*a.H*a.P, a.B*a.L*a.H, a.B*a.L*a.G*a.N
	return ssdBufs{
		x: be.buf(a.X, nx, op, "X"), dt: be.buf(a.Dt, nd, op, "Dt"), A: be.buf(a.A, a.H, op, "A"),
		Bm: be.buf(a.Bm, nbc, op, "Bm"), Cm: be.buf(a.Cm, nbc, op, "Cm"), Dskip: be.optBuf(a.Dskip, a.H, op, "Dskip"),
		dtbias: be.optBuf(a.DtBias, a.H, op, "DtBias"), h0: be.optBuf(a.H0, a.B*a.H*a.P*a.N, op, "H0"),
	}
}

// SSD is Mamba-2's state space dual for x (B, L, H, P), dt (B, L, H), A
// (H), Bm, Cm (B, L, G, N), optional Dskip, DtBias (H) and initial state H0
// (B, H, P, N); head h reads group g = h/(H/G):
//
//	for each b, h:                         // hs (P, N) = H0[b,h] or zeros
//		for t := range L {
//			d := dt[b,t,h] + DtBias[h]     // softplus(d) when DtSoftplus
//			hs[p,n] = exp(d·A[h])·hs[p,n] + d·x[b,t,h,p]·Bm[b,t,g,n]
//			out[b,t,h,p] = Σ_n hs[p,n]·Cm[b,t,g,n] + Dskip[h]·x[b,t,h,p]
//		}
//		hT[b,h] = hs
//
// One launch, the recurrence itself with the state in registers (ssd.cu
// says why not the chunked form), or, when ssdChunkedAt(L), the chunked
// form's three (ssd_chunk.go); a.Chunk is validated and otherwise unused.
// X, Dt, Bm, Cm and out are the activations (all of the backend's type or
// all bfloat16, which picks the kernels' build); A, Dskip and DtBias are
// of the backend's type, H0 and hT too or, with bfloat16 activations, both
// bfloat16 (a decode state: read exactly, hT rounded once). hT may be H0:
// each element is read before it is written, by the same thread.
func (be *Backend) SSD(out, hT nn.Buffer, a nn.SSDArgs) {
	const op = "SSD"
	s := be.unpackSSD(op, a)
	o := be.buf(out, a.B*a.L*a.H*a.P, op, "out")
	h := be.optBuf(hT, a.B*a.H*a.P*a.N, op, "hT")
	at := be.actType(op, arg{"X", s.x}, arg{"Dt", s.dt}, arg{"Bm", s.Bm}, arg{"Cm", s.Cm}, arg{"out", o})
	be.wantOwn(op, arg{"A", s.A}, arg{"Dskip", s.Dskip}, arg{"DtBias", s.dtbias})
	stbf := be.stateType(op, at, arg{"H0", s.h0}, arg{"hT", h})
	if a.B == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	if be.ssdChunkedAt(a.L) {
		be.ssdChunkedForward(op, at, o, h, stbf, s, a)
		return
	}
	npt, ns := ssdSplit(op, a.P, a.N)
	T := be.ssdTile(op, a.L, 96<<10, func(T int) int { return ssdFwdSmem(T, ns, npt, be.esize()) })
	cp := ssdThreads / ns
	blocks := a.B * a.H * ((a.P + cp - 1) / cp)
	k := be.fnAs(op, at, "ssd", fmt.Sprintf("ssd_fwd_%d", npt))
	be.launch(op, k, dim(blocks), dim(ssdThreads), ssdFwdSmem(T, ns, npt, be.esize()),
		pArg(o), pArg(h), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.Cm), pArg(s.Dskip), pArg(s.dtbias),
		pArg(s.h0), bArg(stbf), iArg(a.B), iArg(a.L), iArg(a.H), iArg(a.P), iArg(a.G), iArg(a.N), bArg(a.DtSoftplus),
		iArg(ns), iArg(T))
}

// SSDBackward accumulates the gradients of SSD (from a.H0 when given; any
// gradient may be nil). With g_t = a_{t+1}·g_{t+1} + dout_t ⊗ Cm_t the
// adjoint of the state,
//
//	dX_t  += d_t·g_t·Bm_t + Dskip·dout_t      dBm_t += d_t·g_tᵀ·x_t
//	dCm_t += hs_tᵀ·dout_t                     dDskip += Σ_t dout_t·x_t
//	dDt_t += (e_t + A·R_t)·softplus'          dA += Σ_t d_t·R_t
//
// with e_t and R_t as in ssd.cu: three launches (forward, adjoint, the
// scalar reverse scan), then fixed-order sums of the partials shared
// between blocks (dBm, dCm over a group's heads; dA, dDskip, dDtBias over
// the batch). dout and the gradients of X, Dt, Bm and Cm are activations as
// SSD's are; those of A, Dskip and DtBias, and every partial, are of the
// backend's type (or float64), so a bfloat16 gradient is rounded once, when
// its sum is added to it. With ssdChunkedAt(L), ssdChunkedBackward replaces the
// forward and adjoint launches (the same r, e and partials).
func (be *Backend) SSDBackward(g nn.SSDGrads, a nn.SSDArgs, dout nn.Buffer) {
	const op = "SSDBackward"
	s := be.unpackSSD(op, a)
	B, L, H, P, G, N := a.B, a.L, a.H, a.P, a.G, a.N
	nx, nd, nbc := B*L*H*P, B*L*H, B*L*G*N
	gs := be.buf(dout, nx, op, "dout")
	dX, dDt := be.optBuf(g.X, nx, op, "dX"), be.optBuf(g.Dt, nd, op, "dDt")
	dB, dC := be.optBuf(g.Bm, nbc, op, "dBm"), be.optBuf(g.Cm, nbc, op, "dCm")
	dA, dD, dBias := be.optBuf(g.A, H, op, "dA"), be.optBuf(g.Dskip, H, op, "dDskip"), be.optBuf(g.DtBias, H, op, "dDtBias")
	check(op, g.Check(a))
	at := be.actType(op, arg{"X", s.x}, arg{"Dt", s.dt}, arg{"Bm", s.Bm}, arg{"Cm", s.Cm}, arg{"dout", gs},
		arg{"dX", dX}, arg{"dDt", dDt}, arg{"dBm", dB}, arg{"dCm", dC})
	be.wantOwn(op, arg{"A", s.A}, arg{"Dskip", s.Dskip}, arg{"DtBias", s.dtbias}, arg{"H0", s.h0},
		arg{"dA", dA}, arg{"dDskip", dD}, arg{"dDtBias", dBias})
	if nd == 0 || (dX == nil && dDt == nil && dB == nil && dC == nil && dA == nil && dD == nil && dBias == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	chunked := be.ssdChunkedAt(L)
	var npt, ns, threads int // the recurrence's split (ssd_chunk.cu has none)
	if !chunked {
		npt, ns = ssdSplit(op, P, N)
		threads = (P*ns + 31) / 32 * 32
	}
	var bufs []*Buffer
	scratch := func(want bool, n int, dt nn.DType) *Buffer {
		if !want {
			return nil
		}
		b := be.newBuffer(n, dt)
		bufs = append(bufs, b)
		return b
	}
	defer func() {
		for _, b := range bufs {
			be.release(b)
		}
	}()
	hpg := H / G
	partB, partC := scratch(hpg > 1 && dB != nil, B*L*H*N, be.dtype), scratch(hpg > 1 && dC != nil, B*L*H*N, be.dtype)
	wantDt := dDt != nil || dA != nil || dBias != nil
	r, e := scratch(wantDt, nd, nn.Float64), scratch(wantDt, nd, nn.Float64)
	// dDskip's partials: one a (b, h), or one a (b, chunk, h) chunked.
	dParts := B
	if chunked {
		dParts = B * ssdcChunks(L)
	}
	pA, pD, pDB := scratch(dA != nil, B*H, nn.Float64), scratch(dD != nil, dParts*H, nn.Float64), scratch(dBias != nil, B*H, nn.Float64)
	const bwdLimit = 160 << 10
	if chunked {
		be.ssdChunkedBackward(op, at, ssdcGrads{dX: dX, dB: dB, partB: partB, dC: dC, partC: partC, r: r, e: e, pD: pD},
			s, a, gs)
	}
	if !chunked && (dC != nil || wantDt || dD != nil) {
		T := be.ssdTile(op, L, bwdLimit, func(T int) int { return ssdBwdFSmem(T, P, ns, npt, be.esize()) })
		if r == nil { // the kernel writes r unconditionally
			r = scratch(true, nd, nn.Float64)
		}
		k := be.fnAs(op, at, "ssd", fmt.Sprintf("ssd_bwd_f_%d", npt))
		be.launch(op, k, dim(B*H), dim(threads), ssdBwdFSmem(T, P, ns, npt, be.esize()),
			pArg(dC), pArg(partC), pArg(r), pArg(pD), pArg(gs), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.Cm),
			pArg(s.dtbias), pArg(s.h0), iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus),
			iArg(ns), iArg(T))
	}
	if !chunked && (dX != nil || dB != nil || wantDt) {
		T := be.ssdTile(op, L, bwdLimit, func(T int) int { return ssdBwdRSmem(T, P, ns, npt, be.esize()) })
		if e == nil {
			e = scratch(true, nd, nn.Float64)
		}
		k := be.fnAs(op, at, "ssd", fmt.Sprintf("ssd_bwd_r_%d", npt))
		be.launch(op, k, dim(B*H), dim(threads), ssdBwdRSmem(T, P, ns, npt, be.esize()),
			pArg(dX), pArg(dB), pArg(partB), pArg(e), pArg(gs), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.Cm),
			pArg(s.Dskip), pArg(s.dtbias), iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus),
			iArg(ns), iArg(T))
	}
	if wantDt {
		k := be.fnAs(op, at, "ssd", "ssd_bwd_dt")
		be.launch(op, k, dim(be.blocksFor(B*H*32, 256)), dim(256), 0, pArg(dDt), pArg(pA), pArg(pDB), pArg(r), pArg(e),
			pArg(s.dt), pArg(s.A), pArg(s.dtbias), iArg(B), iArg(L), iArg(H), bArg(a.DtSoftplus))
	}
	addR := be.fnAs(op, at, "ssd", "ssd_add_parts_r")
	for _, p := range []struct{ out, part *Buffer }{{dB, partB}, {dC, partC}} {
		if p.out != nil && p.part != nil {
			be.launch(op, addR, dim(be.blocksFor(B*L*G*N, 256)), dim(256), 0, pArg(p.out), pArg(p.part),
				iArg(B*L*G), iArg(hpg), iArg(N))
		}
	}
	add := be.fnAs(op, at, "ssd", "ssd_add_parts")
	for _, p := range []struct {
		out, part *Buffer
		n         int
	}{{dA, pA, B}, {dD, pD, dParts}, {dBias, pDB, B}} {
		if p.out != nil {
			be.launch(op, add, dim(be.blocksFor(H, 256)), dim(256), 0, pArg(p.out), pArg(p.part), iArg(1), iArg(p.n), iArg(H))
		}
	}
}
