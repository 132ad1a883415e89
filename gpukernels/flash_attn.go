package gpukernels

import (
	"fmt"
	"math"
	"os"

	"seqbench/nn"
)

// flashAttnFromEnv is the backend's flashAttn at creation: on only with
// SEQBENCH_FLASH_ATTN=1 (to time or try the tensor-core forward before it
// is the default).
func flashAttnFromEnv() bool { return os.Getenv("SEQBENCH_FLASH_ATTN") == "1" }

// The tensor-core attention forward (flash_attn.cu, NOTES.md "Attention on
// tensor cores"): blocks own faBR query rows and stream K, V through two
// shared-memory stages; shared-memory rows of bf16 are padded by faPad
// elements.
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

// useFlashAttn reports whether Attention runs on the tensor-core kernel:
// switched on, bfloat16 activations, head dim 64 or 128, positions that fit
// the kernel's int, the shared memory fits, and every buffer 16-byte
// aligned (cp.async copies 16 bytes).
func (be *Backend) useFlashAttn(at nn.DType, Lq, Lk, Dh int, bufs ...*Buffer) bool {
	cfg, ok := flashConfigs[Dh]
	if !be.flashAttn || at != nn.BFloat16 || !ok || max(Lq, Lk) > math.MaxInt32-faBR || cfg.smem(Dh) > be.dev.MaxSharedOptin {
		return false
	}
	for _, b := range bufs {
		if b.ptr%16 != 0 {
			return false
		}
	}
	return true
}

// flashForward is Attention's forward on the tensor-core kernel, for
// Attention once its arguments are checked and the op entered.
func (be *Backend) flashForward(op string, at nn.DType, out, lse, q, k, v *Buffer, BH, Lq, Lk, Dh int, scale float64, causal bool) {
	be.flashRuns++
	kf := be.fnAs(op, at, "flash_attn", fmt.Sprintf("flash_fwd%d", Dh))
	cfg := flashConfigs[Dh]
	be.launch(op, kf, dim2((Lq+faBR-1)/faBR, gridY(BH)), dim(cfg.threads()), cfg.smem(Dh),
		pArg(out), pArg(lse), pArg(q), pArg(k), pArg(v), iArg(BH), iArg(Lq), iArg(Lk), fArg(scale), bArg(causal))
}
