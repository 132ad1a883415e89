package tasks

import "testing"

// TestSeqRandDistinctStreams checks that neighbouring (seed, split, index,
// seq) tuples, including the ones a careless mix would confuse (train 1 vs
// eval 0, index vs seq swapped), start distinct streams.
func TestSeqRandDistinctStreams(t *testing.T) {
	type key struct {
		seed  uint64
		split Split
		index int64
		seq   int
	}
	seen := map[uint64]key{}
	for seed := range uint64(3) {
		for _, split := range []Split{Train, Eval} {
			for index := int64(-2); index < 40; index++ {
				for seq := range 8 {
					k := key{seed, split, index, seq}
					v := seqRand(seed, split, index, seq).Uint64()
					if prev, dup := seen[v]; dup {
						t.Fatalf("streams %+v and %+v start with the same value %#x", prev, k, v)
					}
					seen[v] = k
				}
			}
		}
	}
}

func TestSplitmix64Reference(t *testing.T) {
	// First outputs of the SplitMix64 generator seeded with 0, as in the
	// reference C implementation (state += golden; mix(state)).
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	var state uint64
	for i, w := range want {
		if got := splitmix64(state); got != w {
			t.Errorf("output %d: got %#x, want %#x", i, got, w)
		}
		state += 0x9e3779b97f4a7c15
	}
}
