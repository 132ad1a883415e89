package gpukernels

import (
	"seqbench/nn"
)

// ssdChunkedFromEnv is the backend's ssdChunked at creation: on unless
// SEQBENCH_SSD_CHUNKED=0 (the recurrence of ssd.cu, to compare).
func ssdChunkedFromEnv() bool { return envSwitch("SEQBENCH_SSD_CHUNKED") }

// ssdChunkedAt reports whether an SSD of L steps runs in the chunked form:
// when ssdChunked is on and L > 1. One step (a decoded token) is one
// update of the state, which the recurrence makes reading and writing the
// state once; the chunked form would stage it through a chunk's scratch
// state and three launches.
func (be *Backend) ssdChunkedAt(L int) bool { return be.ssdChunked && L > 1 }

// The chunked SSD forward (ssd_chunk.cu, NOTES.md "SSD, chunked"): chunks
// of ssdcQ steps; blocks of ssdcThreads computing 64×64 tiles; ssdcNT is
// ssdc_out's tile of states, ssdcLD the shared-memory row stride (a
// multiple of 4: rows are read as vectors).
const (
	ssdcQ       = 64
	ssdcThreads = 256
	ssdcNT      = 32
	ssdcLD      = 68
)

var _ = defineContract("ssd_chunk", contract{consts: func(nn.DType) map[string]int {
	return map[string]int{"SSDC_Q": ssdcQ, "SSDC_THREADS": ssdcThreads, "SSDC_NT": ssdcNT, "SSDC_LD": ssdcLD}
}})

// ssdcStateSmem and ssdcOutSmem are the kernels' shared memory in bytes
// for reals of es bytes (ssd_chunk.cu's layouts).
func ssdcStateSmem(es int) int { return (3*ssdcQ + 2*ssdcQ*ssdcLD) * es }

func ssdcOutSmem(es int) int { return (3*ssdcQ + 2*ssdcQ*ssdcLD + 2*ssdcNT*ssdcLD) * es }

func ssdcBwdSmem(es int) int { return (8*ssdcQ + 5*ssdcQ*ssdcLD + 2*ssdcNT*ssdcLD) * es }

// ssdcChunks is the number of chunks of L steps.
func ssdcChunks(L int) int { return (L + ssdcQ - 1) / ssdcQ }

// ssdChunkedForward is SSD's forward in the chunked form, for SSD once its
// arguments are checked and the op entered (at is the activations' type).
// Scratch: the chunks' states (B·nc·H·P·N reals) and their decay sums.
func (be *Backend) ssdChunkedForward(op string, at nn.DType, out, hT *Buffer, stbf bool, s ssdBufs, a nn.SSDArgs) {
	B, L, H, P, G, N := a.B, a.L, a.H, a.P, a.G, a.N
	nc := ssdcChunks(L)
	st := be.newBuffer(max(B*nc*H*P*N, 1), be.dtype)
	defer be.release(st)
	cs := be.newBuffer(max(B*nc*H, 1), be.dtype)
	defer be.release(cs)
	blocks := B * H * nc
	k := be.fnAs(op, at, "ssd_chunk", "ssdc_state")
	be.launch(op, k, dim(blocks), dim(ssdcThreads), ssdcStateSmem(be.esize()),
		pArg(st), pArg(cs), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.dtbias),
		iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus), iArg(nc))
	k = be.fnAs(op, at, "ssd_chunk", "ssdc_pass")
	be.launch(op, k, dim(be.blocksFor(B*H*P*N, 256)), dim(256), 0,
		pArg(st), pArg(hT), pArg(cs), pArg(s.h0), bArg(stbf), iArg(B), iArg(H), iArg(P), iArg(N), iArg(nc), bArg(false))
	k = be.fnAs(op, at, "ssd_chunk", "ssdc_out")
	be.launch(op, k, dim(blocks), dim(ssdcThreads), ssdcOutSmem(be.esize()),
		pArg(out), pArg(st), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.Cm), pArg(s.Dskip), pArg(s.dtbias),
		iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus), iArg(nc))
}

// ssdcGrads are SSDBackward's outputs for the chunked kernels: the
// gradients (nil when not asked for), dBm's and dCm's per-head partials
// (when heads share a group: then the kernel writes those instead), and r,
// e and pD (ssd.cu's, pD one a (b, chunk, h)).
type ssdcGrads struct {
	dX, dB, partB, dC, partC, r, e, pD *Buffer
}

// ssdChunkedBackward runs the chunked backward for SSDBackward: the
// forward's incoming states (ssdc_state, ssdc_pass), the adjoints of the
// chunks' final states (ssdc_bstate, ssdc_pass reversed), then ssdc_bwd.
// Scratch: two B·nc·H·P·N states and the chunks' decay sums.
func (be *Backend) ssdChunkedBackward(op string, at nn.DType, g ssdcGrads, s ssdBufs, a nn.SSDArgs, dout *Buffer) {
	B, L, H, P, G, N := a.B, a.L, a.H, a.P, a.G, a.N
	nc := ssdcChunks(L)
	if B*nc == 0 {
		return
	}
	st := be.newBuffer(B*nc*H*P*N, be.dtype)
	defer be.release(st)
	dst := be.newBuffer(B*nc*H*P*N, be.dtype)
	defer be.release(dst)
	cs := be.newBuffer(B*nc*H, be.dtype)
	defer be.release(cs)
	blocks := B * H * nc
	k := be.fnAs(op, at, "ssd_chunk", "ssdc_state")
	be.launch(op, k, dim(blocks), dim(ssdcThreads), ssdcStateSmem(be.esize()),
		pArg(st), pArg(cs), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.dtbias),
		iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus), iArg(nc))
	k = be.fnAs(op, at, "ssd_chunk", "ssdc_bstate")
	be.launch(op, k, dim(blocks), dim(ssdcThreads), ssdcStateSmem(be.esize()),
		pArg(dst), pArg(dout), pArg(s.dt), pArg(s.A), pArg(s.Cm), pArg(s.dtbias),
		iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus), iArg(nc))
	pass := be.fnAs(op, at, "ssd_chunk", "ssdc_pass")
	for _, rev := range []bool{false, true} {
		buf, h0 := st, s.h0
		if rev {
			buf, h0 = dst, nil
		}
		be.launch(op, pass, dim(be.blocksFor(B*H*P*N, 256)), dim(256), 0,
			pArg(buf), pArg(nil), pArg(cs), pArg(h0), bArg(false), iArg(B), iArg(H), iArg(P), iArg(N), iArg(nc), bArg(rev))
	}
	k = be.fnAs(op, at, "ssd_chunk", "ssdc_bwd")
	be.launch(op, k, dim(blocks), dim(ssdcThreads), ssdcBwdSmem(be.esize()),
		pArg(g.dX), pArg(g.dB), pArg(g.partB), pArg(g.dC), pArg(g.partC), pArg(g.r), pArg(g.e), pArg(g.pD),
		pArg(st), pArg(dst), pArg(dout), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.Cm), pArg(s.Dskip),
		pArg(s.dtbias), iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus), iArg(nc))
}
