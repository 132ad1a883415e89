package gpukernels

import (
	"seqbench/nn"
)

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

// ssdChunkedForward is SSD's forward in the chunked form, for SSD once its
// arguments are checked and the op entered (at is the activations' type).
// Scratch: the chunks' states (B·nc·H·P·N reals) and their decay sums.
func (be *Backend) ssdChunkedForward(op string, at nn.DType, out, hT *Buffer, s ssdBufs, a nn.SSDArgs) {
	B, L, H, P, G, N := a.B, a.L, a.H, a.P, a.G, a.N
	nc := (L + ssdcQ - 1) / ssdcQ
	st := be.newBuffer(max(B*nc*H*P*N, 1), be.dtype)
	defer be.release(st)
	cs := be.newBuffer(max(B*nc*H, 1), be.dtype)
	defer be.release(cs)
	blocks := B * H * nc
	k := be.fnAs(op, at, "ssd_chunk", "ssdc_state")
	be.launch(op, k, dim(blocks), dim(ssdcThreads), ssdcStateSmem(be.esize),
		pArg(st), pArg(cs), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.dtbias),
		iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus), iArg(nc))
	k = be.fnAs(op, at, "ssd_chunk", "ssdc_pass")
	be.launch(op, k, dim(be.blocksFor(B*H*P*N, 256)), dim(256), 0,
		pArg(st), pArg(hT), pArg(cs), pArg(s.h0), iArg(B), iArg(H), iArg(P), iArg(N), iArg(nc))
	k = be.fnAs(op, at, "ssd_chunk", "ssdc_out")
	be.launch(op, k, dim(blocks), dim(ssdcThreads), ssdcOutSmem(be.esize),
		pArg(out), pArg(st), pArg(s.x), pArg(s.dt), pArg(s.A), pArg(s.Bm), pArg(s.Cm), pArg(s.Dskip), pArg(s.dtbias),
		iArg(B), iArg(L), iArg(H), iArg(P), iArg(G), iArg(N), bArg(a.DtSoftplus), iArg(nc))
}
