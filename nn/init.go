package nn

import (
	"math"
	"math/rand/v2"
)

// Initializers draw host values from a caller-supplied RNG and write them
// through Backend.Write, so a model built from the same seed has the same
// weights on every backend and precision.

// Normal fills t with draws from N(0, std²).
func Normal(b Backend, t *Tensor, std float64, rng *rand.Rand) {
	v := make([]float64, t.Len())
	for i := range v {
		v[i] = std * rng.NormFloat64()
	}
	b.Write(t.Data, v)
}

// Uniform fills t with draws from U[lo, hi).
func Uniform(b Backend, t *Tensor, lo, hi float64, rng *rand.Rand) {
	v := make([]float64, t.Len())
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float64()
	}
	b.Write(t.Data, v)
}

// Zeros sets every element of t to 0.
func Zeros(b Backend, t *Tensor) { b.Fill(t.Data, 0) }

// Ones sets every element of t to 1.
func Ones(b Backend, t *Tensor) { b.Fill(t.Data, 1) }

// KaimingUniform is torch.nn.Linear's default weight init:
// kaiming_uniform_(a=√5) reduces to U(−1/√fanIn, 1/√fanIn). torch draws the
// bias from the same bound, which is why it is exported separately from
// Linear: callers use it for both.
func KaimingUniform(b Backend, t *Tensor, fanIn int, rng *rand.Rand) {
	bound := 1 / math.Sqrt(float64(max(fanIn, 1)))
	Uniform(b, t, -bound, bound, rng)
}
