package nn

import "testing"

// AttnDropHash(seed, i) is splitmix64's i-th output from state seed: the
// first outputs from state 0 are the generator's published test values.
func TestAttnDropHashIsSplitMix64(t *testing.T) {
	for i, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		if got := AttnDropHash(0, uint64(i+1)); got != want {
			t.Errorf("AttnDropHash(0, %d) = %#x, want %#x", i+1, got, want)
		}
	}
}

// A mask drops about P of the pairs, scales the rest by 1/(1−P), and is 1
// everywhere when off.
func TestAttnDropFactor(t *testing.T) {
	const Lq, Lk = 64, 64
	for _, p := range []float64{0.1, 0.5} {
		d := AttnDrop{P: p, Seed: 12345}
		dropped := 0
		for bh := range 8 {
			for i := range Lq {
				for j := range Lk {
					switch f := d.Mask(Lq, Lk).Factor(bh, i, j); f {
					case 0:
						dropped++
					case 1 / (1 - p):
					default:
						t.Fatalf("p %v: factor %v, want 0 or %v", p, f, 1/(1-p))
					}
				}
			}
		}
		n := 8 * Lq * Lk
		if rate := float64(dropped) / float64(n); rate < p-0.02 || rate > p+0.02 {
			t.Errorf("p %v: dropped %.4f of %d pairs", p, rate, n)
		}
	}
	if f := (AttnDrop{Seed: 3}).Mask(4, 5).Factor(1, 2, 3); f != 1 {
		t.Errorf("off: factor %v, want 1", f)
	}
	if err := CheckAttnDrop(AttnDrop{P: 1}); err == nil {
		t.Error("P = 1 accepted")
	}
}
