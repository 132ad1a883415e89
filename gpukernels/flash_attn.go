package gpukernels

import (
	"fmt"
	"math"

	"seqbench/nn"
)

// flashAttnFromEnv is the backend's flashAttn at creation: on unless
// SEQBENCH_FLASH_ATTN=0 (to time or debug against the float32-pipe kernels).
func flashAttnFromEnv() bool { return envSwitch("SEQBENCH_FLASH_ATTN") }

// The tensor-core attention kernels (flash_attn.cu, NOTES.md "Attention on
// tensor cores"): the forward's and flash_bwd_dq's blocks own faBR query
// rows and stream K, V through two shared-memory stages; shared-memory rows
// of bf16 are padded by faPad elements.
const (
	faBR  = 128
	faPad = 8
)

var _ = defineContract("flash_attn", contract{consts: func(nn.DType) map[string]int {
	return map[string]int{"FA_BR": faBR, "FA_PAD": faPad}
}})

// flashConfig is one head dim's kernel (flash_attn.cu's FLASH_FWD lines):
// mt m-tiles of 16 rows a warp, key tiles of bc.
type flashConfig struct{ mt, bc int }

var flashConfigs = map[int]flashConfig{64: {mt: 2, bc: 32}, 128: {mt: 1, bc: 64}}

// threads is the kernel's block: faBR/(16·mt) warps.
func (c flashConfig) threads() int { return 2 * faBR / c.mt }

// smem is the kernel's shared memory in bytes at head dim D: the Q tile and
// two stages of K and V tiles, bf16 rows of D + faPad.
func (c flashConfig) smem(D int) int { return (faBR + 4*c.bc) * (D + faPad) * 2 }

// flashBwdConfig is one head dim's backward kernels (flash_attn.cu's
// FLASH_BWD lines): flash_bwd_dkdv owns bkv keys a block (16 a warp) and
// streams query tiles of bq; flash_bwd_dq owns faBR queries a block (16 a
// warp) and streams key tiles of bc.
type flashBwdConfig struct{ bkv, bq, bc int }

var flashBwdConfigs = map[int]flashBwdConfig{64: {bkv: 128, bq: 64, bc: 64}, 128: {bkv: 128, bq: 32, bc: 64}}

// dkdvThreads and dqThreads are the kernels' blocks: a warp per 16 rows.
func (c flashBwdConfig) dkdvThreads() int { return 2 * c.bkv }
func (c flashBwdConfig) dqThreads() int   { return 2 * faBR }

// dkdvSmem is flash_bwd_dkdv's shared memory in bytes at head dim D: K and
// V tiles, two stages of Q and dO tiles (bf16 rows of D + faPad) and two
// stages of the tile's lse and Dr as float32.
func (c flashBwdConfig) dkdvSmem(D int) int { return (2*c.bkv+4*c.bq)*(D+faPad)*2 + 4*c.bq*4 }

// dqSmem is flash_bwd_dq's: Q and dO tiles and two stages of K and V tiles.
func (c flashBwdConfig) dqSmem(D int) int { return (2*faBR + 4*c.bc) * (D + faPad) * 2 }

// flashFits reports whether the tensor-core kernels may serve a call:
// switched on, bfloat16 activations, positions that fit the kernels' int,
// smem bytes of shared memory that fit the device, and every buffer given
// (nil ones aside) 16-byte aligned (cp.async copies 16 bytes).
func (be *Backend) flashFits(at nn.DType, Lq, Lk, smem int, bufs ...*Buffer) bool {
	if !be.flashAttn || at != nn.BFloat16 || max(Lq, Lk) > math.MaxInt32-faBR || smem > be.dev.MaxSharedOptin {
		return false
	}
	for _, b := range bufs {
		if b != nil && b.ptr%16 != 0 {
			return false
		}
	}
	return true
}

// useFlashAttn reports whether Attention runs on the tensor-core kernel:
// flashFits, at head dim 64 or 128.
func (be *Backend) useFlashAttn(at nn.DType, Lq, Lk, Dh int, bufs ...*Buffer) bool {
	cfg, ok := flashConfigs[Dh]
	return ok && be.flashFits(at, Lq, Lk, cfg.smem(Dh), bufs...)
}

// useFlashBwd reports whether AttentionBackward runs on the tensor-core
// kernels: as useFlashAttn, with the backward kernels' shared memory.
func (be *Backend) useFlashBwd(at nn.DType, Lq, Lk, Dh int, bufs ...*Buffer) bool {
	cfg, ok := flashBwdConfigs[Dh]
	return ok && be.flashFits(at, Lq, Lk, max(cfg.dkdvSmem(Dh), cfg.dqSmem(Dh)), bufs...)
}

// flashForward is Attention's forward on the tensor-core kernel, for
// Attention once its arguments are checked and the op entered.
func (be *Backend) flashForward(op string, at nn.DType, out, lse, q, k, v *Buffer, BH, Lq, Lk int, filled *Buffer, kvRows, Dh int, scale float64, causal bool) {
	be.flashRuns++
	kf := be.fnAs(op, at, "flash_attn", fmt.Sprintf("flash_fwd%d", Dh))
	cfg := flashConfigs[Dh]
	be.launch(op, kf, dim2((Lq+faBR-1)/faBR, gridY(BH)), dim(cfg.threads()), cfg.smem(Dh),
		pArg(out), pArg(lse), pArg(q), pArg(k), pArg(v), iArg(BH), iArg(Lq), iArg(Lk), pArg(filled), iArg(kvRows), fArg(scale), bArg(causal))
}

// flashBackward is AttentionBackward's dq, dk, dv on the tensor-core
// kernels, after attn_bwd_pre has written Dr; nil gradients are skipped
// (flash_bwd_dkdv skips the nil one of dk, dv).
func (be *Backend) flashBackward(op string, at nn.DType, dq, dk, dv, q, k, v, dout, lse, Dr *Buffer, BH, Lq, Lk, Dh int, scale float64, causal bool) {
	be.flashBwdRuns++
	cfg := flashBwdConfigs[Dh]
	if dk != nil || dv != nil {
		kf := be.fnAs(op, at, "flash_attn", fmt.Sprintf("flash_bwd_dkdv%d", Dh))
		be.launch(op, kf, dim2((Lk+cfg.bkv-1)/cfg.bkv, gridY(BH)), dim(cfg.dkdvThreads()), cfg.dkdvSmem(Dh),
			pArg(dk), pArg(dv), pArg(q), pArg(k), pArg(v), pArg(dout), pArg(lse), pArg(Dr), iArg(BH), iArg(Lq), iArg(Lk),
			fArg(scale), bArg(causal))
	}
	if dq != nil {
		kf := be.fnAs(op, at, "flash_attn", fmt.Sprintf("flash_bwd_dq%d", Dh))
		be.launch(op, kf, dim2((Lq+faBR-1)/faBR, gridY(BH)), dim(cfg.dqThreads()), cfg.dqSmem(Dh),
			pArg(dq), pArg(q), pArg(k), pArg(v), pArg(dout), pArg(lse), pArg(Dr), iArg(BH), iArg(Lq), iArg(Lk),
			fArg(scale), bArg(causal))
	}
}
