package nn

import (
	"fmt"
	"math"
)

// AttnDrop is dropout on attention's probabilities (torch's attention
// dropout, as Zoology's SelfAttention applies it): during training each
// probability p_ij of pair (b, h) is zeroed with probability P and the rest
// are scaled by 1/(1−P), before they weigh the values. The log-sum-exp a
// forward saves is that of the undropped probabilities.
//
// The mask is not stored and not drawn on the host: whether p_ij survives
// is a hash of (Seed, bh, i, j), so a backend's forward and backward (and
// every backend) compute the same mask wherever they need it, tile by tile.
// The zero AttnDrop drops nothing.
type AttnDrop struct {
	P    float64 // probability of dropping, in [0, 1)
	Seed uint64
}

// On reports whether d drops anything.
func (d AttnDrop) On() bool { return d.P > 0 }

// Threshold is P in units of 2⁻²⁴: a pair is dropped when the top 24 bits
// of its hash are below it. Integer, so that every backend draws the same
// mask bit for bit.
func (d AttnDrop) Threshold() int64 { return int64(math.Round(d.P * (1 << 24))) }

// KeepScale is the factor of a kept probability, 1/(1−P).
func (d AttnDrop) KeepScale() float64 { return 1 / (1 - d.P) }

// Mask is d's mask for an attention of Lq queries and Lk keys, its
// threshold and scale worked out once for the pairs it is asked about.
func (d AttnDrop) Mask(Lq, Lk int) AttnMask {
	return AttnMask{on: d.On(), seed: d.Seed, thr: d.Threshold(), keep: d.KeepScale(), lq: Lq, lk: Lk}
}

// AttnMask is an AttnDrop applied to one attention's shape (AttnDrop.Mask).
type AttnMask struct {
	on     bool
	seed   uint64
	thr    int64
	keep   float64
	lq, lk int
}

// Factor is the factor of probability p_ij of pair bh: 0 when dropped,
// 1/(1−P) when kept, 1 when the dropout is off.
func (m AttnMask) Factor(bh, i, j int) float64 {
	if !m.on {
		return 1
	}
	if int64(AttnDropHash(m.seed, uint64((bh*m.lq+i)*m.lk+j))>>40) < m.thr {
		return 0
	}
	return m.keep
}

// AttnDropHash is splitmix64's output function of seed + idx·γ (γ the
// golden-ratio increment): a pair's 64 random bits, a pure function of its
// index so that a kernel can recompute it anywhere. attention.cu's
// attn_drop computes the same bits.
func AttnDropHash(seed, idx uint64) uint64 {
	x := seed + idx*0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// CheckAttnDrop rejects a dropout probability outside [0, 1).
func CheckAttnDrop(d AttnDrop) error {
	if !(d.P >= 0 && d.P < 1) {
		return fmt.Errorf("attention dropout p = %v, must be in [0, 1)", d.P)
	}
	return nil
}
