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
// tensor cores"): blocks of faThreads (8 warps of 16 query rows) own faBR
// query rows and stream K, V in tiles of faBC keys through two
// shared-memory stages; shared-memory rows of bf16 are padded by faPad
// elements.
const (
	faBR      = 128
	faBC      = 64
	faThreads = 256
	faPad     = 8
)

var _ = defineContract("flash_attn", contract{consts: func(nn.DType) map[string]int {
	return map[string]int{"FA_BR": faBR, "FA_BC": faBC, "FA_THREADS": faThreads, "FA_PAD": faPad}
}})

// flashFwdSmem is the forward's shared memory in bytes at head dim D: the
// Q tile and two stages of K and V tiles, bf16 rows of D + faPad.
func flashFwdSmem(D int) int { return (faBR + 4*faBC) * (D + faPad) * 2 }

// useFlashAttn reports whether Attention runs on the tensor-core kernel:
// switched on, bfloat16 activations, head dim 64 or 128, positions that fit
// the kernel's int, the shared memory fits, and every buffer 16-byte
// aligned (cp.async copies 16 bytes).
func (be *Backend) useFlashAttn(at nn.DType, Lq, Lk, Dh int, bufs ...*Buffer) bool {
	if !be.flashAttn || at != nn.BFloat16 || (Dh != 64 && Dh != 128) || max(Lq, Lk) > math.MaxInt32-faBR ||
		flashFwdSmem(Dh) > be.dev.MaxSharedOptin {
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
	be.launch(op, kf, dim2((Lq+faBR-1)/faBR, gridY(BH)), dim(faThreads), flashFwdSmem(Dh),
		pArg(out), pArg(lse), pArg(q), pArg(k), pArg(v), iArg(BH), iArg(Lq), iArg(Lk), fArg(scale), bArg(causal))
}
