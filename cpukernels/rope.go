package cpukernels

import (
	"math"

	"seqbench/nn"
)

// RoPE rotates each head vector of x (B, H, L, Dh) by the angle of its
// position, pairing element i with i+h, h = Dh/2 (rotate_half: the
// GPT-NeoX / HF Llama layout):
//
//	for i := 0; i < h; i++ {
//		θ := float64(pos0+l) · math.Pow(base, −2i/Dh)
//		out[.., l, i]   = x[.., l, i]·cos θ − x[.., l, i+h]·sin θ
//		out[.., l, i+h] = x[.., l, i+h]·cos θ + x[.., l, i]·sin θ
//	}
//
// Dh must be even. out may be x.
func (be *Backend[T]) RoPE(out, x nn.Buffer, B, H, L, Dh, pos0 int, base float64) {
	be.rope("RoPE", out, x, B, H, L, Dh, pos0, base, false)
}

// RoPEAt is RoPE from position pos[0].
func (be *Backend[T]) RoPEAt(out, x nn.Buffer, B, H, L, Dh int, pos nn.Buffer, base float64) {
	be.rope("RoPEAt", out, x, B, H, L, Dh, be.position("RoPEAt", "pos", pos), base, false)
}

// RoPEBackward accumulates the adjoint of RoPE, the rotation by −θ:
//
//	dx[.., l, i]   += g[.., l, i]·cos θ + g[.., l, i+h]·sin θ
//	dx[.., l, i+h] += g[.., l, i+h]·cos θ − g[.., l, i]·sin θ
func (be *Backend[T]) RoPEBackward(dx, dout nn.Buffer, B, H, L, Dh, pos0 int, base float64) {
	be.rope("RoPEBackward", dx, dout, B, H, L, Dh, pos0, base, true)
}

// rope writes dst = rotate(src, θ), or with backward dst += rotate(src, −θ).
func (be *Backend[T]) rope(op string, dst, src nn.Buffer, B, H, L, Dh, pos0 int, base float64, backward bool) {
	check(op, nn.CheckRoPE(B, H, L, Dh))
	n := B * H * L * Dh
	dname, sname := "out", "x"
	if backward {
		dname, sname = "dx", "dout"
	}
	ds, ss := data[T](dst, n, op, dname), data[T](src, n, op, sname)
	h := Dh / 2
	cos, sin := be.ropeTable(L, Dh, pos0, base)
	be.parallelFor(B*H*L, rowGrain(Dh), func(lo, hi int) {
		for row := lo; row < hi; row++ {
			l := row % L
			cr, sr := cos[l*h:(l+1)*h], sin[l*h:(l+1)*h]
			s, d := ss[row*Dh:(row+1)*Dh], ds[row*Dh:(row+1)*Dh]
			for i := range h {
				a, b := float64(s[i]), float64(s[i+h])
				if backward {
					d[i] += T(a*cr[i] + b*sr[i])
					d[i+h] += T(b*cr[i] - a*sr[i])
				} else {
					d[i], d[i+h] = T(a*cr[i]-b*sr[i]), T(b*cr[i]+a*sr[i])
				}
			}
		}
	})
}

// ropeTable returns cos θ and sin θ (L, Dh/2) for positions pos0 … pos0+L−1.
func (be *Backend[T]) ropeTable(L, Dh, pos0 int, base float64) (cos, sin []float64) {
	h := Dh / 2
	inv := make([]float64, h)
	for i := range inv {
		inv[i] = math.Pow(base, -float64(2*i)/float64(Dh))
	}
	cos, sin = make([]float64, L*h), make([]float64, L*h)
	be.parallelFor(L, max(1, 2048/h), func(lo, hi int) {
		for l := lo; l < hi; l++ {
			p := float64(pos0 + l)
			for i, f := range inv {
				sin[l*h+i], cos[l*h+i] = math.Sincos(p * f)
			}
		}
	})
	return cos, sin
}
