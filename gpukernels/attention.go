package gpukernels

import (
	"fmt"

	"seqbench/nn"
)

// attnThreads is the block size of the attention kernels.
const attnThreads = 128

// Shared memory of the attention kernels in bytes for tile T and head dim
// Dh (see attention.cu: rows padded to Dh+1, score tiles T×(T+1), per-row
// statistics; the backward's D_i in double).
func attnFwdSmem(T, Dh, es int) int { return (4*T*(Dh+1) + T*(T+1) + 3*T) * es }
func attnDKDVSmem(T, Dh, es int) int {
	return T*8 + (6*T*(Dh+1)+2*T*(T+1)+T)*es
}
func attnDQSmem(T, Dh, es int) int { return T*8 + (5*T*(Dh+1)+T*(T+1)+T)*es }

// The register-tiled kernels (attention.cu, "fast path") serve the float32
// backend (float32 or bfloat16 activations) at head dims 64 and 128 in 64×64 tiles of 256 threads (attention.cu gets
// them as FBR and FAST_THREADS, contract.go); their shared memory:
// Q, K, V tiles and P (forward); K, V, Q, dO tiles, P and dS, lse and D
// (dk/dv); Q, dO, K, V tiles, dS, lse and D (dq).
const (
	fastTile    = 64
	fastThreads = 256
)

var _ = defineContract("attention", contract{consts: func(nn.DType) map[string]int {
	return map[string]int{"FBR": fastTile, "FAST_THREADS": fastThreads}
}})

func fastFwdSmem(D int) int  { return (3*fastTile*(D+4) + fastTile*(fastTile+4)) * 4 }
func fastDKDVSmem(D int) int { return (4*fastTile*(D+4) + 2*fastTile*(fastTile+4) + 2*fastTile) * 4 }
func fastDQSmem(D int) int   { return (4*fastTile*(D+4) + fastTile*(fastTile+4) + 2*fastTile) * 4 }

// fastAttn reports whether the register-tiled kernels serve head dim Dh.
func (be *Backend) fastAttn(Dh int) bool {
	return !be.attnGeneric && be.dtype == nn.Float32 && (Dh == 64 || Dh == 128) &&
		fastDKDVSmem(Dh) <= be.dev.MaxSharedOptin
}

// attnTile is the largest tile (≤ 32 rows) whose shared memory fits the
// device for every attention kernel at head dim Dh.
func (be *Backend) attnTile(op string, Dh int) int {
	for T := 32; T >= 1; T /= 2 {
		need := max(attnFwdSmem(T, Dh, be.esize()), attnDKDVSmem(T, Dh, be.esize()), attnDQSmem(T, Dh, be.esize()))
		if need <= be.dev.MaxSharedOptin {
			return T
		}
	}
	panic(fmt.Sprintf("gpukernels.%s: head dim Dh = %d needs more shared memory than the device's %d bytes", op, Dh, be.dev.MaxSharedOptin))
}

// Attention is fused scaled dot-product attention for q (B, H, Lq, Dh) and
// k, v (B, H, Lk, Dh), with the causal mask aligned to the end (query i sees
// key j iff j ≤ i + Lk − Lq). For each (b, h) and query row i:
//
//	s_j    = scale · q_i·k_j           for every visible j
//	lse_i  = log Σ_j exp(s_j)
//	out_i  = Σ_j exp(s_j − lse_i) · v_j
//
// computed flash-style (attention.cu): one block per (query tile, (b, h)),
// an online softmax over key tiles, no O(Lq·Lk) memory. With flashAttn on,
// bfloat16 activations at head dim 64 or 128 take the tensor-core kernel
// (flash_attn.cu), whose lse the same backward reads. q, k, v and out are
// activations (all of the backend's type or all bfloat16, read as float and
// out rounded once); lse is of the backend's type.
func (be *Backend) Attention(out, lse, q, k, v nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool) {
	const op = "Attention"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	be.attention(op, out, lse, q, k, v, B, H, Lq, Lk, nil, Lk, Dh, scale, causal, nn.AttnDrop{})
}

// AttentionDropout is Attention with dropout on the probabilities
// (nn.AttnDrop). With P > 0 it runs the generic kernels, which compute each
// pair's mask from its hash where they form the pair's probability (the
// register-tiled and tensor-core kernels have no dropout); P = 0 is
// Attention.
func (be *Backend) AttentionDropout(out, lse, q, k, v nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	const op = "AttentionDropout"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	check(op, nn.CheckAttnDrop(drop))
	be.noDropInCapture(op, drop)
	be.attention(op, out, lse, q, k, v, B, H, Lq, Lk, nil, Lk, Dh, scale, causal, drop)
}

// noDropInCapture panics when dropout is on during a graph capture: the
// mask's seed is a launch argument, new every step, and a replay would
// repeat the captured one (the same mask every step). The capture fails
// with this message and the training step runs eagerly.
func (be *Backend) noDropInCapture(op string, d nn.AttnDrop) {
	if d.On() && be.capture != nil {
		panic(fmt.Sprintf("gpukernels.%s: its dropout mask's seed changes every step, and a graph would replay the captured one", op))
	}
}

// dropArgs are the generic kernels' last three arguments (attention.cu's
// attn_drop): the seed, the threshold (−1: off) and 1/(1−P).
func dropArgs(d nn.AttnDrop) (seed, thr, keep uint64) {
	if !d.On() {
		return iArg(0), iArg(-1), fArg(1)
	}
	return d.Seed, iArg(int(d.Threshold())), fArg(d.KeepScale())
}

// AttentionCached is Attention's causal forward over the first
// Lk = filled[0] rows (clamped to [Lq, kvRows]) of each (b, h) block of a
// cache k, v (B, H, kvRows, Dh): the same kernels, told that a block holds
// kvRows rows and reading Lk on the device, so the same launch serves
// every position (a replayed graph). The path is chosen for kvRows keys.
// filled is of the backend's type.
func (be *Backend) AttentionCached(out, lse, q, k, v nn.Buffer, B, H, Lq int, filled nn.Buffer, kvRows, Dh int, scale float64) {
	const op = "AttentionCached"
	check(op, nn.CheckAttentionCached(B, H, Lq, kvRows, Dh))
	f := be.buf(filled, 1, op, "filled")
	be.wantOwn(op, arg{"filled", f})
	be.attention(op, out, lse, q, k, v, B, H, Lq, kvRows, f, kvRows, Dh, scale, true, nn.AttnDrop{})
}

// attention is the forward of both, k and v holding kvRows rows per (b, h)
// of which the first Lk, or filled[0] when filled is given, are keys.
func (be *Backend) attention(op string, out, lse, q, k, v nn.Buffer, B, H, Lq, Lk int, filled *Buffer, kvRows, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	nq, nk := B*H*Lq*Dh, B*H*kvRows*Dh
	os, es := be.buf(out, nq, op, "out"), be.buf(lse, B*H*Lq, op, "lse")
	qs, ks, vs := be.buf(q, nq, op, "q"), be.buf(k, nk, op, "k"), be.buf(v, nk, op, "v")
	at := be.actType(op, arg{"out", os}, arg{"q", qs}, arg{"k", ks}, arg{"v", vs})
	be.wantOwn(op, arg{"lse", es})
	if B*H*Lq == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	if !drop.On() && be.useFlashAttn(at, Lq, Lk, Dh, os, es, qs, ks, vs) {
		be.flashForward(op, at, os, es, qs, ks, vs, B*H, Lq, Lk, filled, kvRows, Dh, scale, causal)
		return
	}
	if !drop.On() && be.fastAttn(Dh) {
		kf := be.fnAs(op, at, "attention", fmt.Sprintf("attn_fwd_fast%d", Dh))
		be.launch(op, kf, dim2((Lq+fastTile-1)/fastTile, gridY(B*H)), dim(fastThreads), fastFwdSmem(Dh),
			pArg(os), pArg(es), pArg(qs), pArg(ks), pArg(vs), iArg(B*H), iArg(Lq), iArg(Lk), pArg(filled), iArg(kvRows), fArg(scale), bArg(causal))
		return
	}
	T := be.attnTile(op, Dh)
	dSeed, dThr, dKeep := dropArgs(drop)
	kf := be.fnAs(op, at, "attention", "attn_fwd")
	be.launch(op, kf, dim2((Lq+T-1)/T, gridY(B*H)), dim(attnThreads), attnFwdSmem(T, Dh, be.esize()),
		pArg(os), pArg(es), pArg(qs), pArg(ks), pArg(vs), iArg(B*H), iArg(Lq), iArg(Lk), pArg(filled), iArg(kvRows), iArg(Dh),
		fArg(scale), bArg(causal), iArg(T), dSeed, dThr, dKeep)
}

// AttentionBackward accumulates the gradients of Attention from the out and
// lse it saved (the flash-attention backward). With
// p_ij = exp(scale·q_i·k_j − lse_i) over the visible pairs:
//
//	D_i   = Σ_d dout_i·out_i
//	ds_ij = p_ij · (dout_i·v_j − D_i)
//	dq_i += scale · Σ_j ds_ij · k_j
//	dk_j += scale · Σ_i ds_ij · q_i
//	dv_j += Σ_i p_ij · dout_i
//
// Any of dq, dk, dv may be nil. One kernel owns key tiles (dk, dv), another
// query tiles (dq); both recompute the scores, so no atomics are needed and
// the result is deterministic. With flashAttn on, bfloat16 activations at
// head dim 64 or 128 take the tensor-core kernels (flash_attn.cu). The
// gradients are activations as q, k, v, out and dout are (lse is of the
// backend's type): each element of dq, dk, dv is loaded, the float sum
// added and the result rounded once.
func (be *Backend) AttentionBackward(dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool) {
	const op = "AttentionBackward"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	be.attentionBackward(op, dq, dk, dv, q, k, v, out, lse, dout, B, H, Lq, Lk, Dh, scale, causal, nn.AttnDrop{})
}

// AttentionDropoutBackward is AttentionBackward under AttentionDropout's
// mask, in the generic kernels (P = 0: AttentionBackward).
func (be *Backend) AttentionDropoutBackward(dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	const op = "AttentionDropoutBackward"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	check(op, nn.CheckAttnDrop(drop))
	be.noDropInCapture(op, drop)
	be.attentionBackward(op, dq, dk, dv, q, k, v, out, lse, dout, B, H, Lq, Lk, Dh, scale, causal, drop)
}

func (be *Backend) attentionBackward(op string, dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	nq, nk := B*H*Lq*Dh, B*H*Lk*Dh
	qs, ks, vs := be.buf(q, nq, op, "q"), be.buf(k, nk, op, "k"), be.buf(v, nk, op, "v")
	os, es, gs := be.buf(out, nq, op, "out"), be.buf(lse, B*H*Lq, op, "lse"), be.buf(dout, nq, op, "dout")
	dQ, dK, dV := be.optBuf(dq, nq, op, "dq"), be.optBuf(dk, nk, op, "dk"), be.optBuf(dv, nk, op, "dv")
	at := be.actType(op, arg{"q", qs}, arg{"k", ks}, arg{"v", vs}, arg{"out", os}, arg{"dout", gs},
		arg{"dq", dQ}, arg{"dk", dK}, arg{"dv", dV})
	be.wantOwn(op, arg{"lse", es})
	if (dQ == nil && dK == nil && dV == nil) || B*H*Lq == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	rows := B * H * Lq
	Dr := be.newBuffer(rows, nn.Float64)
	defer be.release(Dr)
	kp := be.fnAs(op, at, "attention", "attn_bwd_pre")
	be.launch(op, kp, dim(be.blocksFor(rows*32, 256)), dim(256), 0, pArg(Dr), pArg(os), pArg(gs), iArg(rows), iArg(Dh))
	if !drop.On() && be.useFlashBwd(at, Lq, Lk, Dh, qs, ks, vs, gs, es, dQ, dK, dV) {
		be.flashBackward(op, at, dQ, dK, dV, qs, ks, vs, gs, es, Dr, B*H, Lq, Lk, Dh, scale, causal)
		return
	}
	if !drop.On() && be.fastAttn(Dh) {
		if dK != nil || dV != nil {
			kk := be.fnAs(op, at, "attention", fmt.Sprintf("attn_bwd_dkdv_fast%d", Dh))
			be.launch(op, kk, dim2((Lk+fastTile-1)/fastTile, gridY(B*H)), dim(fastThreads), fastDKDVSmem(Dh),
				pArg(dK), pArg(dV), pArg(qs), pArg(ks), pArg(vs), pArg(gs), pArg(es), pArg(Dr), iArg(B*H), iArg(Lq), iArg(Lk),
				fArg(scale), bArg(causal))
		}
		if dQ != nil {
			kq := be.fnAs(op, at, "attention", fmt.Sprintf("attn_bwd_dq_fast%d", Dh))
			be.launch(op, kq, dim2((Lq+fastTile-1)/fastTile, gridY(B*H)), dim(fastThreads), fastDQSmem(Dh),
				pArg(dQ), pArg(qs), pArg(ks), pArg(vs), pArg(gs), pArg(es), pArg(Dr), iArg(B*H), iArg(Lq), iArg(Lk),
				fArg(scale), bArg(causal))
		}
		return
	}
	T := be.attnTile(op, Dh)
	dSeed, dThr, dKeep := dropArgs(drop)
	if dK != nil || dV != nil {
		kk := be.fnAs(op, at, "attention", "attn_bwd_dkdv")
		be.launch(op, kk, dim2((Lk+T-1)/T, gridY(B*H)), dim(attnThreads), attnDKDVSmem(T, Dh, be.esize()),
			pArg(dK), pArg(dV), pArg(qs), pArg(ks), pArg(vs), pArg(gs), pArg(es), pArg(Dr), iArg(B*H), iArg(Lq), iArg(Lk),
			iArg(Dh), fArg(scale), bArg(causal), iArg(T), dSeed, dThr, dKeep)
	}
	if dQ != nil {
		kq := be.fnAs(op, at, "attention", "attn_bwd_dq")
		be.launch(op, kq, dim2((Lq+T-1)/T, gridY(B*H)), dim(attnThreads), attnDQSmem(T, Dh, be.esize()),
			pArg(dQ), pArg(qs), pArg(ks), pArg(vs), pArg(gs), pArg(es), pArg(Dr), iArg(B*H), iArg(Lq), iArg(Lk),
			iArg(Dh), fArg(scale), bArg(causal), iArg(T), dSeed, dThr, dKeep)
	}
}
