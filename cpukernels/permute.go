package cpukernels

import "seqbench/nn"

// Permute writes out = x transposed by perm: out dim i is x dim perm[i].
// With x of shape s and out of shape t (t[i] = s[perm[i]]), for rank 3:
//
//	for i0 := 0; i0 < t[0]; i0++ {
//		for i1 := 0; i1 < t[1]; i1++ {
//			for i2 := 0; i2 < t[2]; i2++ {
//				var j [3]int // the x index
//				j[perm[0]], j[perm[1]], j[perm[2]] = i0, i1, i2
//				out[(i0*t[1]+i1)*t[2]+i2] (+)= x[(j[0]*s[1]+j[1])*s[2]+j[2]]
//			}
//		}
//	}
//
// Dimensions that stay adjacent (or have size 1) are merged first
// (nn.PlanPermute), so a permutation that keeps the last dim walks
// contiguous rows.
func (be *Backend[T]) Permute(out, x nn.Buffer, shape []int, perm []int, accumulate bool) {
	plan, err := nn.PlanPermute(shape, perm)
	check("Permute", err)
	n := plan.N
	o := data[T](out, n, "Permute", "out")[:n]
	xs := data[T](x, n, "Permute", "x")[:n]
	if n == 0 {
		return
	}
	dims, strides, r := plan.Dims, plan.Strides, plan.Rank
	if r == 0 || (r == 1 && strides[0] == 1) {
		be.parallelFor(n, copyGrain, func(lo, hi int) {
			if accumulate {
				for i, v := range xs[lo:hi] {
					o[lo+i] += v
				}
			} else {
				copy(o[lo:hi], xs[lo:hi])
			}
		})
		return
	}
	// Row by row over the innermost out dim; rows split among workers.
	inner, istride := dims[r-1], strides[r-1]
	rows := n / inner
	be.parallelFor(rows, max(1, copyGrain/inner), func(lo, hi int) {
		var idx [nn.MaxPermuteRank]int // out index of row lo over dims[:r-1]
		rem, src := lo, 0
		for k := r - 2; k >= 0; k-- {
			idx[k] = rem % dims[k]
			rem /= dims[k]
			src += idx[k] * strides[k]
		}
		for row := lo; row < hi; row++ {
			dst := o[row*inner : (row+1)*inner]
			if istride == 1 {
				if accumulate {
					for i, v := range xs[src : src+inner] {
						dst[i] += v
					}
				} else {
					copy(dst, xs[src:src+inner])
				}
			} else {
				j := src
				if accumulate {
					for i := range dst {
						dst[i] += xs[j]
						j += istride
					}
				} else {
					for i := range dst {
						dst[i] = xs[j]
						j += istride
					}
				}
			}
			// Advance the odometer over dims[:r-1].
			for k := r - 2; k >= 0; k-- {
				idx[k]++
				src += strides[k]
				if idx[k] < dims[k] {
					break
				}
				src -= idx[k] * strides[k]
				idx[k] = 0
			}
		}
	})
}
