package cpukernels

import (
	"fmt"
	"math"
	"math/bits"

	"seqbench/nn"
)

// The long causal convolution of S4D through the FFT: O(L log L) per row
// instead of the O(L²) direct sum. Transforms are radix-2 complex FFTs in
// float64 of size n, the smallest power of two ≥ 2L: zero-padding to 2L
// makes the circular convolution equal the linear one on the first L
// outputs (wrapped terms land on the zero padding).
//
// Two real rows go through one complex transform: for rows x1, x2 with the
// same real kernel K, IFFT(FFT(x1 + i·x2)·FFT(K)) = x1∗K + i·(x2∗K), since
// the convolution is linear and K is real. The backward's correlations use
// the same pairing.

// fftPlan is a radix-2 complex FFT of size n (a power of two).
type fftPlan struct {
	n   int
	tw  []complex128 // exp(−2πi·j/n), j < n/2: the forward's twiddles
	twc []complex128 // their conjugates: the inverse's
	rev []int32      // bit reversal of [0, n)
}

func newFFTPlan(n int) *fftPlan {
	if n < 1 || n&(n-1) != 0 {
		panic(fmt.Sprintf("cpukernels: FFT size %d is not a power of two", n))
	}
	p := &fftPlan{n: n, tw: make([]complex128, n/2), twc: make([]complex128, n/2), rev: make([]int32, n)}
	for j := range p.tw {
		// Each twiddle computed directly: a recurrence would drift.
		s, c := math.Sincos(-2 * math.Pi * float64(j) / float64(n))
		p.tw[j], p.twc[j] = complex(c, s), complex(c, -s)
	}
	shift := 64 - bits.Len(uint(n-1))
	for i := range p.rev {
		if n > 1 {
			p.rev[i] = int32(bits.Reverse64(uint64(i)) >> shift)
		}
	}
	return p
}

// fftSize is the transform size of FFTConv for length L.
func fftSize(L int) int {
	n := 1
	for n < 2*L {
		n <<= 1
	}
	return n
}

// transform is the in-place DFT of x (len n),
//
//	X[j] = Σ_t x[t]·exp(∓2πi·j·t/n)   (− forward, + inverse; unnormalised)
//
// by iterative Cooley–Tukey: bit-reversal permutation, then log₂ n
// butterfly passes.
func (p *fftPlan) transform(x []complex128, inverse bool) {
	n, tw := p.n, p.tw
	if inverse {
		tw = p.twc
	}
	x = x[:n]
	for i, r := range p.rev {
		if int(r) > i {
			x[i], x[r] = x[r], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half, step := size/2, n/size
		for start := 0; start < n; start += size {
			a, b := x[start:start+half], x[start+half:start+size]
			for j := range a {
				t := tw[j*step] * b[j]
				a[j], b[j] = a[j]+t, a[j]-t
			}
		}
	}
}

// fftMinItems is how many work items FFTConv aims for at least, so that a
// few channels with a large batch still spread over the cores.
const fftMinItems = 16

// fftShares splits the (b, h) rows of a B×H problem into work items: item
// i is channel i/per and the share i%per of its ⌈B/2⌉ batch-row pairs,
// pairs [share·pairs/per, (share+1)·pairs/per). Each item transforms its
// channel's kernel once. The split depends on B and H only, never on the
// core count, so the backward's per-share sums (added in share order) give
// the same bits on every machine.
func fftShares(B, H int) (per, pairs int) {
	pairs = (B + 1) / 2
	per = max(1, min(pairs, (fftMinItems+H-1)/H))
	return per, pairs
}

// loadPair fills buf (len n) with x1 + i·x2 zero-padded (x2 nil: 0).
func loadPair[T Float](buf []complex128, x1, x2 []T) {
	for t, v := range x1 {
		im := 0.0
		if x2 != nil {
			im = float64(x2[t])
		}
		buf[t] = complex(float64(v), im)
	}
	clear(buf[len(x1):])
}

// kernelSpectrum fills kf with the FFT of K's row h zero-padded to n.
func kernelSpectrum[T Float](p *fftPlan, kf []complex128, ks []T) {
	loadPair(kf, ks, nil)
	p.transform(kf, false)
}

// FFTConv is the causal convolution of u (B, H, L) with K (H, L) plus the
// skip (Dskip nil: none), through FFTs of size n ≥ 2L:
//
//	for b, h, t: out[b,h,t] = Σ_{k≤t} K[h,k]·u[b,h,t−k] + Dskip[h]·u[b,h,t]
//
// Parallel over (channel, share of the batch); each worker holds two
// length-n complex rows.
func (be *Backend[T]) FFTConv(out, u, K, Dskip nn.Buffer, B, H, L int) {
	const op = "FFTConv"
	check(op, nn.CheckFFTConv(B, H, L))
	os, us, ks := data[T](out, B*H*L, op, "out"), data[T](u, B*H*L, op, "u"), data[T](K, H*L, op, "K")
	var ds []T
	if Dskip != nil {
		ds = data[T](Dskip, H, op, "Dskip")
	}
	if B*H*L == 0 {
		return
	}
	n := fftSize(L)
	p := newFFTPlan(n)
	per, pairs := fftShares(B, H)
	inv := 1 / float64(n)
	be.parallelFor(H*per, 1, func(i0, i1 int) {
		kf, buf := make([]complex128, n), make([]complex128, n)
		for it := i0; it < i1; it++ {
			h, share := it/per, it%per
			d := 0.0
			if ds != nil {
				d = float64(ds[h])
			}
			kernelSpectrum(p, kf, ks[h*L:(h+1)*L])
			for pair := share * pairs / per; pair < (share+1)*pairs/per; pair++ {
				b1, b2 := 2*pair, 2*pair+1
				x1, o1 := us[(b1*H+h)*L:(b1*H+h+1)*L], os[(b1*H+h)*L:(b1*H+h+1)*L]
				var x2, o2 []T
				if b2 < B {
					x2, o2 = us[(b2*H+h)*L:(b2*H+h+1)*L], os[(b2*H+h)*L:(b2*H+h+1)*L]
				}
				loadPair(buf, x1, x2)
				p.transform(buf, false)
				for j, v := range kf {
					buf[j] *= v
				}
				p.transform(buf, true)
				for t := range L {
					o1[t] = T(real(buf[t])*inv + d*float64(x1[t]))
				}
				if x2 != nil {
					for t := range L {
						o2[t] = T(imag(buf[t])*inv + d*float64(x2[t]))
					}
				}
			}
		}
	})
}

// FFTConvBackward accumulates FFTConv's gradients (any of du, dK, dDskip
// may be nil; dDskip is ignored without Dskip):
//
//	du[b,h,s] += Σ_{t≥s} dout[b,h,t]·K[h,t−s] + Dskip[h]·dout[b,h,s]
//	dK[h,k]   += Σ_b Σ_{t≥k} dout[b,h,t]·u[b,h,t−k]
//	dDskip[h] += Σ_b Σ_t dout[b,h,t]·u[b,h,t]
//
// The correlations are IFFT(FFT(dout)·conj(FFT(K))) and, summed over b in
// the frequency domain, Re IFFT(Σ FFT(dout_b)·conj(FFT(u_b))): for paired
// rows x = x1 + i·x2, Re(dx·conj(ux)) = d1·u1 + d2·u2, the wanted sum, so
// the pairing needs no unmixing. Parallel as FFTConv; the per-share sums of
// dK and dDskip are kept apart and added in share order afterwards
// (deterministic, see fftShares).
func (be *Backend[T]) FFTConvBackward(du, dK, dDskip, u, K, Dskip, dout nn.Buffer, B, H, L int) {
	const op = "FFTConvBackward"
	check(op, nn.CheckFFTConv(B, H, L))
	us, ks, gs := data[T](u, B*H*L, op, "u"), data[T](K, H*L, op, "K"), data[T](dout, B*H*L, op, "dout")
	var dus, dks, dds, ds []T
	if du != nil {
		dus = data[T](du, B*H*L, op, "du")
	}
	if dK != nil {
		dks = data[T](dK, H*L, op, "dK")
	}
	if Dskip != nil {
		ds = data[T](Dskip, H, op, "Dskip")
		if dDskip != nil {
			dds = data[T](dDskip, H, op, "dDskip")
		}
	}
	if B*H*L == 0 || (dus == nil && dks == nil && dds == nil) {
		return
	}
	n := fftSize(L)
	p := newFFTPlan(n)
	per, pairs := fftShares(B, H)
	inv := 1 / float64(n)
	var partK, partD []float64 // per item: L sums of dK, one of dDskip
	if dks != nil {
		partK = make([]float64, H*per*L)
	}
	if dds != nil {
		partD = make([]float64, H*per)
	}
	be.parallelFor(H*per, 1, func(i0, i1 int) {
		kf, gx, ux, acc := make([]complex128, n), make([]complex128, n), make([]complex128, n), make([]complex128, n)
		for it := i0; it < i1; it++ {
			h, share := it/per, it%per
			d := 0.0
			if ds != nil {
				d = float64(ds[h])
			}
			if dus != nil {
				kernelSpectrum(p, kf, ks[h*L:(h+1)*L])
			}
			clear(acc)
			dD := 0.0
			for pair := share * pairs / per; pair < (share+1)*pairs/per; pair++ {
				b1, b2 := 2*pair, 2*pair+1
				r1 := (b1*H + h) * L
				g1, x1 := gs[r1:r1+L], us[r1:r1+L]
				var g2, x2 []T
				if b2 < B {
					r2 := (b2*H + h) * L
					g2, x2 = gs[r2:r2+L], us[r2:r2+L]
				}
				if dds != nil {
					for t := range L {
						dD += float64(g1[t]) * float64(x1[t])
					}
					for t := range g2 {
						dD += float64(g2[t]) * float64(x2[t])
					}
				}
				loadPair(gx, g1, g2)
				p.transform(gx, false)
				if dks != nil {
					loadPair(ux, x1, x2)
					p.transform(ux, false)
					for j, v := range ux {
						acc[j] += gx[j] * complex(real(v), -imag(v))
					}
				}
				if dus != nil {
					for j, v := range kf {
						gx[j] *= complex(real(v), -imag(v))
					}
					p.transform(gx, true)
					o1 := dus[r1 : r1+L]
					for t := range L {
						o1[t] += T(real(gx[t])*inv + d*float64(g1[t]))
					}
					if g2 != nil {
						r2 := (b2*H + h) * L
						o2 := dus[r2 : r2+L]
						for t := range L {
							o2[t] += T(imag(gx[t])*inv + d*float64(g2[t]))
						}
					}
				}
			}
			if dks != nil {
				p.transform(acc, true)
				part := partK[it*L : (it+1)*L]
				for k := range part {
					part[k] = real(acc[k]) * inv
				}
			}
			if dds != nil {
				partD[it] = dD
			}
		}
	})
	for h := range H {
		if dks != nil {
			row := dks[h*L : (h+1)*L]
			for k := range row {
				s := float64(row[k])
				for share := range per {
					s += partK[(h*per+share)*L+k]
				}
				row[k] = T(s)
			}
		}
		if dds != nil {
			s := float64(dds[h])
			for share := range per {
				s += partD[h*per+share]
			}
			dds[h] = T(s)
		}
	}
}
