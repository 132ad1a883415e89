package gpukernels

import (
	"fmt"
	"os"

	"seqbench/nn"
)

// The scan's launch constants; selective_scan.cu gets them as SCAN_THREADS,
// SCAN_FWD_WARPS, SCAN_BWD_WARPS, SCAN_FWD_K and SCAN_BWD_K, with
// SCAN_CHUNK_BLOCKS, SCAN_FWD_STATES and SCAN_STATES_BLOCKS below
// (contract.go).
// scanThreads is the block of the one-step kernels (scan_fwd_*, scan_bwd_*);
// the chunked kernels give each of their warps one channel.
const (
	scanThreads  = 128
	scanFwdWarps = 8
	scanBwdWarps = 8
)

var _ = defineContract("selective_scan", contract{
	consts: func(dt nn.DType) map[string]int {
		return map[string]int{"SCAN_THREADS": scanThreads, "SCAN_FWD_WARPS": scanFwdWarps, "SCAN_FWD_K": scanFwdK,
			"SCAN_BWD_WARPS": scanBwdWarps, "SCAN_BWD_K": scanBwdK, "SCAN_PAD_STRIDE": scanBwdK + 1,
			"SCAN_CHUNK_BLOCKS": scanChunkLean(dt), "SCAN_FWD_STATES": scanChunkLean(dt),
			"SCAN_STATES_BLOCKS": scanStatesBlocks(dt)}
	},
	structs: []cStruct{{"ScanParams", scanParams{}}},
})

// scanCkptFromEnv is the backend's scanCkpt at creation: on unless
// SEQBENCH_SCAN_CKPT=0.
func scanCkptFromEnv() bool { return envSwitch("SEQBENCH_SCAN_CKPT") }

// scanFwdK and scanBwdK are the steps a lane holds in the chunked forward
// and backward (a chunk is 32 of them), in every build: few enough that,
// in float32 and bfloat16, two blocks of each kernel fit an SM's registers
// (the kernels are latency-bound, and one 8-warp block an SM is 12.5%
// occupancy). The bfloat16 build loads them as 16-byte (8 steps) or 8-byte
// (4 steps) vectors.
const (
	scanFwdK = 8
	scanBwdK = 4
)

// scanChunkLean is, in float32 and bfloat16, 2: the blocks an SM the
// chunked kernels are compiled for (their __launch_bounds__ minimum,
// SCAN_CHUNK_BLOCKS) and the states a forward lane runs at once
// (SCAN_FWD_STATES), the second state's dependent chain hiding the
// first's latency. float64's registers are twice as many: 1 and 1.
func scanChunkLean(dt nn.DType) int {
	if dt == nn.Float64 {
		return 1
	}
	return 2
}

// scanStatesBlocks is the blocks an SM scan_chunk_states is compiled for
// (SCAN_STATES_BLOCKS): at the backward's 4 steps a lane three fit without
// spills in float32 and bfloat16 (≤ 80 registers); float64's takes 80
// unbounded.
func scanStatesBlocks(dt nn.DType) int {
	if dt == nn.Float64 {
		return 1
	}
	return 3
}

// scanParams is the argument of the chunked scan kernels, the C struct
// ScanParams (contract.go emits it). Pointers of absent inputs or unwanted
// outputs are 0. act_t marks the activations and their gradients
// (bfloat16 in the bfloat16 build); the parameters, states and partial
// sums are real (float32 there) or double.
type scanParams struct {
	Out           devPtr `cu:"act_t*"`
	HT            devPtr `cu:"real*"`
	Ckpt          devPtr `cu:"real*"`
	U             devPtr `cu:"const act_t*"`
	Delta         devPtr `cu:"const act_t*"`
	A             devPtr `cu:"const real*"`
	Bm            devPtr `cu:"const act_t*"`
	Cm            devPtr `cu:"const act_t*"`
	Dskip         devPtr `cu:"const real*"`
	Z             devPtr `cu:"const act_t*"`
	DBias         devPtr `cu:"const real*"`
	H0            devPtr `cu:"const real*"`
	Dout          devPtr `cu:"const act_t*"`
	DU            devPtr `cu:"act_t*"`
	DDelta        devPtr `cu:"act_t*"`
	DZ            devPtr `cu:"act_t*"`
	DBm           devPtr `cu:"act_t*"`
	DCm           devPtr `cu:"act_t*"`
	PartB         devPtr `cu:"real*"`
	PartC         devPtr `cu:"real*"`
	PA            devPtr `cu:"double*"`
	PD            devPtr `cu:"double*"`
	PDB           devPtr `cu:"double*"`
	B, D, L, N, G int64
	Softplus      int64
	Nblk          int64 // blocks per (b, g)
	StBF          int64 // H0 and HT are bfloat16 (state_ref)
}

// scanChunkBwdSmem is the chunked backward's shared memory in bytes
// (selective_scan.cu's layout): dBm and dCm terms [S][W][32·(K+1)] (S
// slots: 1, or 2 in v2) and the adjoint carries [W][N] in reals, then the
// dA sums in double, [W][N] (a warp's), or [W][N][32] in v2 (a lane's).
func scanChunkBwdSmem(N, K, es int, v2 bool) int {
	slots, lanes := 1, 1
	if v2 {
		slots, lanes = 2, 32
	}
	reals := 2*slots*scanBwdWarps*32*(K+1) + scanBwdWarps*N
	return (reals*es+7)/8*8 + scanBwdWarps*N*lanes*8
}

// scanBwdV2FromEnv is the backend's scanBwdV2 at creation: off unless
// SEQBENCH_SCAN_BWD_V2=1 (scan_chunk_bwd_v2 has not run on a GPU yet).
func scanBwdV2FromEnv() bool { return os.Getenv("SEQBENCH_SCAN_BWD_V2") == "1" }

// chunked reports whether a scan of a.L steps runs as the chunked kernels;
// the one-step kernels serve single steps (generation) and, when
// scanSequential is set, every length (tests compare the two).
func (be *Backend) chunked(a nn.ScanArgs) bool { return a.L >= 2 && !be.scanSequential }

var _ nn.ScanCheckpointer = (*Backend)(nil)

// ScanCheckpointLen is the length of nn.ScanArgs.Ckpt for a: the state
// entering each of the backward's chunks of 32·scanBwdK steps, [chunk][B][D][N]
// reals, which the chunked forward writes as it passes them and the
// backward reads instead of running scan_chunk_states; 0 where the scan is
// not chunked or scanCkpt is off.
func (be *Backend) ScanCheckpointLen(a nn.ScanArgs) int {
	if !be.scanCkpt || !be.chunked(a) {
		return 0
	}
	return scanBwdChunks(a.L) * a.B * a.D * a.N
}

// scanBwdChunks is the chunked backward's chunks of L steps.
func scanBwdChunks(L int) int { return (L + 32*scanBwdK - 1) / (32 * scanBwdK) }

func (s scanBufs) params(a nn.ScanArgs) scanParams {
	return scanParams{U: ptr(s.u), Delta: ptr(s.delta), A: ptr(s.A), Bm: ptr(s.Bm), Cm: ptr(s.Cm), Dskip: ptr(s.Dskip),
		Z: ptr(s.z), DBias: ptr(s.dbias), H0: ptr(s.h0), B: int64(a.B), D: int64(a.D), L: int64(a.L), N: int64(a.N),
		G: int64(a.G), Softplus: int64(bArg(a.DeltaSoftplus)), StBF: int64(bArg(s.stbf))}
}

// scanCkptBuf is a.Ckpt, checked, when the backend saves states for a
// (ScanCheckpointLen); nil otherwise (a Ckpt given then is not used).
func (be *Backend) scanCkptBuf(op string, a nn.ScanArgs) *Buffer {
	n := be.ScanCheckpointLen(a)
	if n == 0 || a.Ckpt == nil {
		return nil
	}
	c := be.buf(a.Ckpt, n, op, "Ckpt")
	be.wantOwn(op, arg{"Ckpt", c})
	return c
}

// scanChunkForward launches scan_chunk_fwd (the build of activation type
// at): out and hT, and, when ckpt is given, the state entering each of the
// backward's chunks (ScanCheckpointLen).
func (be *Backend) scanChunkForward(op string, at nn.DType, s scanBufs, a nn.ScanArgs, out, hT, ckpt *Buffer) {
	p := s.params(a)
	p.Out, p.HT, p.Ckpt = ptr(out), ptr(hT), ptr(ckpt)
	p.Nblk = int64((a.D/a.G + scanFwdWarps - 1) / scanFwdWarps)
	be.launchStruct(op, be.fnAs(op, at, "selective_scan", "scan_chunk_fwd"), dim(a.B*a.G*int(p.Nblk)), dim(32*scanFwdWarps),
		scanFwdWarps*a.N*be.esize(), p)
}

// stateSplit returns NPT, the states a lane holds in registers (a template
// instance of the kernels: 4, 16 or 64), and NS, the lanes of a row (a
// power of two ≤ 32), for N states: the smallest NPT with NS ≤ 32.
func stateSplit(op string, N int) (npt, ns int) {
	for _, npt = range []int{4, 16, 64} {
		ns = 1
		for ns*npt < N {
			ns *= 2
		}
		if ns <= 32 {
			return npt, ns
		}
	}
	panic(fmt.Sprintf("gpukernels.%s: N = %d states, at most %d are supported", op, N, 32*64))
}

// scanFwdSmem and scanBwdSmem are the shared memory of the scan kernels
// for tile T, in bytes (selective_scan.cu's layouts).
func scanFwdSmem(T, ns, npt, es int) int {
	cb, np := scanThreads/ns, ns*npt
	return (3*cb*(T+1) + 2*T*(np+1)) * es
}

func scanBwdSmem(T, ns, npt, es int) int {
	cb, np := scanThreads/ns, ns*npt
	ts := cb*(np+1) + 1
	return (7*cb*(T+1) + 2*T*(np+1) + 2*T*ts) * es
}

// maxTile is the recurrences' largest tile for L steps: 32, or the power
// of two that covers L when that is smaller. A tile of steps the sequence
// does not have costs its zero-filled loads and shared memory in every
// block (a step of decoding, L = 1, would fill 32 steps to use one).
func maxTile(L int) int {
	T := 1
	for T < min(L, 32) {
		T *= 2
	}
	return T
}

// scanTile is the largest tile of at most maxTile(L) steps whose shared
// memory (size(T)) stays within 96 KiB, or fits the device at all.
func (be *Backend) scanTile(op string, L int, size func(T int) int) int {
	for T := maxTile(L); T >= 1; T /= 2 {
		if size(T) <= 96<<10 || (T == 1 && size(T) <= be.dev.MaxSharedOptin) {
			return T
		}
	}
	panic(fmt.Sprintf("gpukernels.%s: the scan needs %d bytes of shared memory, the device allows %d", op, size(1), be.dev.MaxSharedOptin))
}

// scanBufs are a scan's inputs as device buffers (nil: absent).
type scanBufs struct {
	u, delta, A, Bm, Cm, Dskip, z, dbias, h0 *Buffer
	stbf                                     bool // h0 and hT are bfloat16 (stateType); false in the backward
}

// acts are the inputs that are activations (one type: the backend's or
// bfloat16), own the parameters (the backend's type).
func (s scanBufs) acts() []arg {
	return []arg{{"U", s.u}, {"Delta", s.delta}, {"Bm", s.Bm}, {"Cm", s.Cm}, {"Z", s.z}}
}

func (s scanBufs) own() []arg {
	return []arg{{"A", s.A}, {"Dskip", s.Dskip}, {"DeltaBias", s.dbias}}
}

func (be *Backend) unpackScan(op string, a nn.ScanArgs) scanBufs {
	check(op, a.Check())
	nBDL, nBGNL := a.B*a.D*a.L, a.B*a.G*a.N*a.L
	return scanBufs{
		u: be.buf(a.U, nBDL, op, "U"), delta: be.buf(a.Delta, nBDL, op, "Delta"), A: be.buf(a.A, a.D*a.N, op, "A"),
		Bm: be.buf(a.Bm, nBGNL, op, "Bm"), Cm: be.buf(a.Cm, nBGNL, op, "Cm"),
		Dskip: be.optBuf(a.Dskip, a.D, op, "Dskip"), z: be.optBuf(a.Z, nBDL, op, "Z"),
		dbias: be.optBuf(a.DeltaBias, a.D, op, "DeltaBias"), h0: be.optBuf(a.H0, a.B*a.D*a.N, op, "H0"),
	}
}

// scanBlocks is the grid of the scan kernels: B·G·⌈(D/G)/CB⌉ blocks, each
// CB channels of one (b, g); nblk is the blocks per (b, g).
func scanBlocks(a nn.ScanArgs, ns int) (blocks, nblk int) {
	cb := scanThreads / ns
	dg := a.D / a.G
	nblk = (dg + cb - 1) / cb
	return a.B * a.G * nblk, nblk
}

// scanForward launches scan_fwd (the build of activation type at): out and
// hT, or (backward) the tile checkpoints of the states.
func (be *Backend) scanForward(op string, at nn.DType, s scanBufs, a nn.ScanArgs, out, hT, ckpt *Buffer, T int) {
	npt, ns := stateSplit(op, a.N)
	blocks, _ := scanBlocks(a, ns)
	k := be.fnAs(op, at, "selective_scan", fmt.Sprintf("scan_fwd_%d", npt))
	be.launch(op, k, dim(blocks), dim(scanThreads), scanFwdSmem(T, ns, npt, be.esize()),
		pArg(out), pArg(hT), pArg(ckpt), pArg(s.u), pArg(s.delta), pArg(s.A), pArg(s.Bm), pArg(s.Cm), pArg(s.Dskip),
		pArg(s.z), pArg(s.dbias), pArg(s.h0), bArg(s.stbf), iArg(a.B), iArg(a.D), iArg(a.L), iArg(a.N), iArg(a.G),
		bArg(a.DeltaSoftplus), iArg(ns), iArg(T))
}

// SelectiveScan is mamba_ssm's selective_scan_fn: for each batch b and
// channel d, reading group g = d/(D/G) of Bm and Cm, with δ_t = delta +
// DeltaBias (softplus'ed when asked),
//
//	h_t[n]   = exp(δ_t·A[d,n])·h_{t−1}[n] + δ_t·Bm[b,g,n,t]·u[b,d,t]    (h_{−1} = H0 or 0)
//	out[b,d,t] = (Σ_n Cm[b,g,n,t]·h_t[n] + Dskip[d]·u[b,d,t]) · SiLU(z[b,d,t])
//
// and hT[b,d,n] = h_{L−1}[n] when hT is given (hT may be H0: each element
// is read before it is written, by the same thread). One launch: the
// states live in registers, the time loop runs inside (selective_scan.cu).
//
// U, Delta, Bm, Cm, Z and out are activations, all of the backend's type
// or all bfloat16; A, Dskip and DeltaBias are of the backend's type
// (float32 under bf16), H0 and hT too or, with bfloat16 activations, both
// bfloat16 (a decode state: read exactly, hT rounded once). The math is
// float32 throughout, each output rounded once.
func (be *Backend) SelectiveScan(out, hT nn.Buffer, a nn.ScanArgs) {
	const op = "SelectiveScan"
	s := be.unpackScan(op, a)
	o := be.buf(out, a.B*a.D*a.L, op, "out")
	h := be.optBuf(hT, a.B*a.D*a.N, op, "hT")
	at := be.actType(op, append(s.acts(), arg{"out", o})...)
	be.wantOwn(op, s.own()...)
	s.stbf = be.stateType(op, at, arg{"H0", s.h0}, arg{"hT", h})
	if a.B*a.D == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	if be.chunked(a) {
		be.scanChunkForward(op, at, s, a, o, h, be.scanCkptBuf(op, a))
		return
	}
	npt, ns := stateSplit(op, a.N)
	T := be.scanTile(op, a.L, func(T int) int { return scanFwdSmem(T, ns, npt, be.esize()) })
	be.scanForward(op, at, s, a, o, h, nil, T)
}

// SelectiveScanBackward accumulates the gradients of SelectiveScan (from
// a.H0 when given) by the adjoint recurrence run backwards in time. With
// dy_t = dout_t·SiLU(z_t), a_t = exp(δ_t·A[d,n]) and, for each (b, d, n),
//
//	g_t = a_{t+1}·g_{t+1} + dy_t·Cm_t           (g_L = 0: dLoss/dh_t)
//	dCm_t += dy_t·h_t          dBm_t += g_t·δ_t·u_t
//	du_t  += g_t·δ_t·Bm_t      dδ_t  += g_t·(Bm_t·u_t + A·a_t·h_{t−1})
//	dA    += g_t·δ_t·a_t·h_{t−1}
//
// plus du_t += Dskip·dy_t, dDskip += Σ dy_t·u_t, dz_t += dout_t·y_t·SiLU'(z_t)
// and the softplus' chain to delta and DeltaBias. Two launches: the
// forward storing the state at every tile boundary, then the reverse-time
// kernel (selective_scan.cu); then fixed-order reductions of the partial
// sums shared between blocks. Any gradient may be nil. The gradients of
// activations (dU, dDelta, dBm, dCm, dZ) are of the activations' type, and
// each element is loaded, added to and rounded once; those of parameters
// (dA, dDskip, dDeltaBias) are of the backend's type.
func (be *Backend) SelectiveScanBackward(g nn.ScanGrads, a nn.ScanArgs, dout nn.Buffer) {
	const op = "SelectiveScanBackward"
	s := be.unpackScan(op, a)
	B, D, L, N, G := a.B, a.D, a.L, a.N, a.G
	nBDL, nBGNL := B*D*L, B*G*N*L
	gs := be.buf(dout, nBDL, op, "dout")
	du, ddelta, dz := be.optBuf(g.U, nBDL, op, "dU"), be.optBuf(g.Delta, nBDL, op, "dDelta"), be.optBuf(g.Z, nBDL, op, "dZ")
	dA, dB, dC := be.optBuf(g.A, D*N, op, "dA"), be.optBuf(g.Bm, nBGNL, op, "dBm"), be.optBuf(g.Cm, nBGNL, op, "dCm")
	dD, ddb := be.optBuf(g.Dskip, D, op, "dDskip"), be.optBuf(g.DeltaBias, D, op, "dDeltaBias")
	if s.z == nil {
		dz = nil
	}
	if s.Dskip == nil {
		dD = nil
	}
	if s.dbias == nil {
		ddb = nil
	}
	at := be.actType(op, append(s.acts(), arg{"dout", gs}, arg{"dU", du}, arg{"dDelta", ddelta}, arg{"dZ", dz},
		arg{"dBm", dB}, arg{"dCm", dC})...)
	be.wantOwn(op, append(s.own(), arg{"H0", s.h0}, arg{"dA", dA}, arg{"dDskip", dD}, arg{"dDeltaBias", ddb})...)
	if nBDL == 0 || (du == nil && ddelta == nil && dz == nil && dA == nil && dB == nil && dC == nil && dD == nil && ddb == nil) {
		return
	}
	be.enter(op)
	defer be.exit()
	if be.chunked(a) {
		be.scanChunkBackward(op, at, s, a, gs, scanGradBufs{du, ddelta, dz, dA, dB, dC, dD, ddb})
		return
	}
	npt, ns := stateSplit(op, N)
	T := be.scanTile(op, L, func(T int) int { return scanBwdSmem(T, ns, npt, be.esize()) })
	nT := (L + T - 1) / T
	ckpt := be.newBuffer(nT*B*D*N, be.dtype)
	defer be.release(ckpt)
	be.scanForward(op, at, s, a, nil, nil, ckpt, T)

	blocks, nblk := scanBlocks(a, ns)
	part := func(want bool, n int) *Buffer {
		if !want {
			return nil
		}
		p := be.newBuffer(n, nn.Float64)
		return p
	}
	var partB, partC *Buffer
	if nblk > 1 {
		partB, partC = part(dB != nil, B*G*nblk*N*L), part(dC != nil, B*G*nblk*N*L)
	}
	pA, pD, pDB := part(dA != nil, B*D*N), part(dD != nil, B*D), part(ddb != nil, B*D)
	for _, p := range []*Buffer{partB, partC, pA, pD, pDB} {
		if p != nil {
			defer be.release(p)
		}
	}
	k := be.fnAs(op, at, "selective_scan", fmt.Sprintf("scan_bwd_%d", npt))
	be.launch(op, k, dim(blocks), dim(scanThreads), scanBwdSmem(T, ns, npt, be.esize()),
		pArg(du), pArg(ddelta), pArg(dz), pArg(pA), pArg(pD), pArg(pDB), pArg(dB), pArg(dC), pArg(partB), pArg(partC),
		pArg(ckpt), pArg(gs), pArg(s.u), pArg(s.delta), pArg(s.A), pArg(s.Bm), pArg(s.Cm), pArg(s.Dskip), pArg(s.z),
		pArg(s.dbias), iArg(B), iArg(D), iArg(L), iArg(N), iArg(G), bArg(a.DeltaSoftplus), iArg(ns), iArg(T))

	addAct, add := be.scanAdder(op, at, "scan_add_parts_act"), be.scanAdder(op, at, "scan_add_parts")
	addAct(dB, partB, B*G, nblk, N*L)
	addAct(dC, partC, B*G, nblk, N*L)
	add(dA, pA, 1, B, D*N)
	add(dD, pD, 1, B, D)
	add(ddb, pDB, 1, B, D)
}

// scanAdder returns a launcher of kernel name (scan_add_parts,
// scan_add_parts_act or scan_add_parts_r) of the build of activation type
// at: out[a·inner + i] += Σ_p part[(a·nparts + p)·inner + i].
func (be *Backend) scanAdder(op string, at nn.DType, name string) func(out, part *Buffer, outer, nparts, inner int) {
	k := be.fnAs(op, at, "selective_scan", name)
	return func(out, part *Buffer, outer, nparts, inner int) {
		if out == nil || part == nil {
			return
		}
		be.launch(op, k, dim(be.blocksFor(outer*inner, 256)), dim(256), 0, pArg(out), pArg(part), iArg(outer),
			iArg(nparts), iArg(inner))
	}
}

// scanGradBufs are the gradients a backward writes (nil: not wanted).
type scanGradBufs struct {
	du, ddelta, dz, dA, dB, dC, dD, ddb *Buffer
}

// scanChunkBackward is SelectiveScanBackward as the chunked kernels: the
// forward storing the state entering each chunk, the reverse-time kernel,
// then the fixed-order sums of the partials blocks share. The kernels are
// the build of activation type at; the partials are float whatever it is.
func (be *Backend) scanChunkBackward(op string, at nn.DType, s scanBufs, a nn.ScanArgs, dout *Buffer, g scanGradBufs) {
	B, D, L, N, G := a.B, a.D, a.L, a.N, a.G
	K := scanBwdK
	p := s.params(a)
	if ckpt := be.scanCkptBuf(op, a); ckpt != nil {
		p.Ckpt = ptr(ckpt) // saved by the forward
	} else {
		ckpt := be.newBuffer(scanBwdChunks(L)*B*D*N, be.dtype)
		defer be.release(ckpt)
		p.Ckpt = ptr(ckpt)
		p.Nblk = int64((D/G + scanFwdWarps - 1) / scanFwdWarps)
		be.launchStruct(op, be.fnAs(op, at, "selective_scan", "scan_chunk_states"), dim(B*G*int(p.Nblk)), dim(32*scanFwdWarps),
			scanFwdWarps*N*be.esize(), p)
	}

	nblk := (D/G + scanBwdWarps - 1) / scanBwdWarps
	var partB, partC, pA, pD, pDB *Buffer
	part := func(want *Buffer, n int, dt nn.DType) *Buffer {
		if want == nil {
			return nil
		}
		b := be.newBuffer(n, dt)
		return b
	}
	if nblk > 1 {
		partB, partC = part(g.dB, B*G*nblk*N*L, be.dtype), part(g.dC, B*G*nblk*N*L, be.dtype)
	}
	pA, pD, pDB = part(g.dA, B*D*N, nn.Float64), part(g.dD, B*D, nn.Float64), part(g.ddb, B*D, nn.Float64)
	for _, b := range []*Buffer{partB, partC, pA, pD, pDB} {
		if b != nil {
			defer be.release(b)
		}
	}
	p.Dout, p.DU, p.DDelta, p.DZ, p.DBm, p.DCm = ptr(dout), ptr(g.du), ptr(g.ddelta), ptr(g.dz), ptr(g.dB), ptr(g.dC)
	p.PartB, p.PartC, p.PA, p.PD, p.PDB = ptr(partB), ptr(partC), ptr(pA), ptr(pD), ptr(pDB)
	p.Nblk = int64(nblk)
	// v2 where asked and its lane-wise dA sums leave room for two blocks
	// an SM (N ≤ 32 on an H100).
	v2 := be.scanBwdV2 && 2*scanChunkBwdSmem(N, K, be.esize(), true) <= be.dev.MaxSharedOptin
	k := be.fnAs(op, at, "selective_scan", "scan_chunk_bwd")
	if v2 {
		k = be.fnAs(op, at, "selective_scan", "scan_chunk_bwd_v2")
	}
	be.launchStruct(op, k, dim(B*G*nblk), dim(32*scanBwdWarps), scanChunkBwdSmem(N, K, be.esize(), v2), p)

	addR, add := be.scanAdder(op, at, "scan_add_parts_r"), be.scanAdder(op, at, "scan_add_parts")
	addR(g.dB, partB, B*G, nblk, N*L)
	addR(g.dC, partC, B*G, nblk, N*L)
	add(g.dA, pA, 1, B, D*N)
	add(g.dD, pD, 1, B, D)
	add(g.ddb, pDB, 1, B, D)
}
