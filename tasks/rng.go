package tasks

import "math/rand/v2"

// seqRand returns the random stream of sequence seq of batch index of a split.
//
// Every sequence gets its own stream, so a batch is a pure function of
// (task config, seed, split, index) and a batch of size 8 holds exactly the
// first 8 sequences of the batch of size 16: changing the batch size in a
// sweep does not change which examples the model sees first.
//
// All four inputs are hashed into both 64-bit words of the PCG state. The two
// seed words are PCG's 128-bit state, not a stream selector, so passing
// (seed, index) directly would start streams that share a word (same seed,
// or same index) at related states: with equal low words the difference of
// the high words evolves linearly. Hashed states are independent random
// points of the 2^128 cycle, so two streams (train and eval included) overlap
// only with probability about (draws per sequence)/2^64.
func seqRand(seed uint64, split Split, index int64, seq int) *rand.Rand {
	hi := hashWords(0x5eb0bec4_c0b1e5a1, seed, uint64(split), uint64(index), uint64(seq))
	lo := hashWords(0x9e3779b9_7f4a7c15, seed, uint64(split), uint64(index), uint64(seq))
	return rand.New(rand.NewPCG(hi, lo))
}

// hashWords chains splitmix64 over words, starting from key. splitmix64's
// finalizer is a bijection of 64-bit words, so each step keeps distinct
// prefixes distinct and only a 2^-64 chance collision can merge two tuples.
func hashWords(key uint64, words ...uint64) uint64 {
	h := key
	for _, w := range words {
		h = splitmix64(h ^ w)
	}
	return h
}

// splitmix64 is the output function of Steele, Lea and Flood's SplitMix64
// (the increment included), a well-tested 64-bit mixer: every input bit
// affects every output bit.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newBatch allocates a batch of size sequences of length seqLen with every
// target set to Ignore, so generators only write the scored positions.
// size < 0 is a caller's bug (train validates batch_size), hence the panic.
func newBatch(size, seqLen int) Batch {
	if size < 0 {
		panic("tasks: negative batch size")
	}
	b := Batch{B: size, L: seqLen, Inputs: make([]int32, size*seqLen), Targets: make([]int32, size*seqLen)}
	for i := range b.Targets {
		b.Targets[i] = Ignore
	}
	return b
}
