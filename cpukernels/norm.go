package cpukernels

import (
	"math"

	"seqbench/nn"
)

// RMSNorm normalises each row of x (rows, d) by its root mean square:
//
//	for r := 0; r < rows; r++ {
//		rstd[r] = 1 / sqrt(Σ_c x[r,c]²/d + eps)
//		for c := 0; c < d; c++ {
//			out[r,c] = x[r,c]·rstd[r]·w[c]
//		}
//	}
func (be *Backend[T]) RMSNorm(out, rstd, x, w nn.Buffer, rows, d int, eps float64) {
	const op = "RMSNorm"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	os, rs := data[T](out, n, op, "out"), data[T](rstd, rows, op, "rstd")
	xs, ws := data[T](x, n, op, "x"), data[T](w, d, op, "w")
	be.parallelFor(rows, rowGrain(d), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := xs[r*d:(r+1)*d], os[r*d:(r+1)*d]
			ss := 0.0
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			s := 1 / math.Sqrt(ss/float64(d)+eps)
			rs[r] = T(s)
			for c, v := range xr {
				or[c] = T(float64(v) * s * float64(ws[c]))
			}
		}
	})
}

// RMSNormBackward accumulates the gradients of RMSNorm, with s = rstd[r]:
//
//	dx[r,c] += s·w[c]·g[r,c] − s³/d · x[r,c] · Σ_k g[r,k]·w[k]·x[r,k]
//	dw[c]   += Σ_r g[r,c]·x[r,c]·s
//
// dx or dw may be nil. dw is summed in float64 over fixed blocks of rows, so
// it does not depend on the number of workers.
func (be *Backend[T]) RMSNormBackward(dx, dw, x, w, rstd, dout nn.Buffer, rows, d int) {
	const op = "RMSNormBackward"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	xs, ws := data[T](x, n, op, "x"), data[T](w, d, op, "w")
	rs, gs := data[T](rstd, rows, op, "rstd"), data[T](dout, n, op, "dout")
	var dxs, dws []T
	if dx != nil {
		dxs = data[T](dx, n, op, "dx")
	}
	if dw != nil {
		dws = data[T](dw, d, op, "dw")
	}
	if dxs == nil && dws == nil {
		return
	}
	size, nb := normRowBlocks(rows, d)
	var part []float64
	if dws != nil {
		part = make([]float64, nb*d)
	}
	be.parallelFor(nb, 1, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			for r := blk * size; r < min((blk+1)*size, rows); r++ {
				xr, gr := xs[r*d:(r+1)*d], gs[r*d:(r+1)*d]
				s := float64(rs[r])
				if part != nil {
					pw := part[blk*d : (blk+1)*d]
					for c, g := range gr {
						pw[c] += float64(g) * float64(xr[c]) * s
					}
				}
				if dxs != nil {
					dot := 0.0
					for c, g := range gr {
						dot += float64(g) * float64(ws[c]) * float64(xr[c])
					}
					k := s * s * s * dot / float64(d)
					dr := dxs[r*d : (r+1)*d]
					for c, g := range gr {
						dr[c] += T(s*float64(ws[c])*float64(g) - k*float64(xr[c]))
					}
				}
			}
		}
	})
	if dws != nil {
		be.addBlockSums(dws, part, nb, d)
	}
}

// LayerNorm normalises each row of x (rows, d) to zero mean and unit
// (biased) variance, then scales and shifts:
//
//	for r := 0; r < rows; r++ {
//		mean[r] = Σ_c x[r,c]/d
//		rstd[r] = 1 / sqrt(Σ_c (x[r,c] − mean[r])²/d + eps)
//		for c := 0; c < d; c++ {
//			out[r,c] = (x[r,c] − mean[r])·rstd[r]·w[c] + b[c]
//		}
//	}
//
// b may be nil (no bias).
func (be *Backend[T]) LayerNorm(out, mean, rstd, x, w, b nn.Buffer, rows, d int, eps float64) {
	const op = "LayerNorm"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	os, xs, ws := data[T](out, n, op, "out"), data[T](x, n, op, "x"), data[T](w, d, op, "w")
	ms, rs := data[T](mean, rows, op, "mean"), data[T](rstd, rows, op, "rstd")
	var bs []T
	if b != nil {
		bs = data[T](b, d, op, "b")
	}
	be.parallelFor(rows, rowGrain(d), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, or := xs[r*d:(r+1)*d], os[r*d:(r+1)*d]
			mu := 0.0
			for _, v := range xr {
				mu += float64(v)
			}
			mu /= float64(d)
			ss := 0.0
			for _, v := range xr {
				ss += (float64(v) - mu) * (float64(v) - mu)
			}
			s := 1 / math.Sqrt(ss/float64(d)+eps)
			ms[r], rs[r] = T(mu), T(s)
			for c, v := range xr {
				y := (float64(v) - mu) * s * float64(ws[c])
				if bs != nil {
					y += float64(bs[c])
				}
				or[c] = T(y)
			}
		}
	})
}

// LayerNormBackward accumulates the gradients of LayerNorm, with
// x̂ = (x[r,c] − mean[r])·rstd[r] and ĝ = g[r,c]·w[c]:
//
//	dx[r,c] += rstd[r]·(ĝ − Σ_k ĝ_k/d − x̂·Σ_k ĝ_k·x̂_k/d)
//	dw[c]   += Σ_r g[r,c]·x̂
//	db[c]   += Σ_r g[r,c]
//
// Any of dx, dw, db may be nil. dw and db are summed in float64 over fixed
// blocks of rows, so they do not depend on the number of workers.
func (be *Backend[T]) LayerNormBackward(dx, dw, db, x, w, mean, rstd, dout nn.Buffer, rows, d int) {
	const op = "LayerNormBackward"
	check(op, nn.CheckRows(rows, d))
	n := rows * d
	xs, ws, gs := data[T](x, n, op, "x"), data[T](w, d, op, "w"), data[T](dout, n, op, "dout")
	ms, rs := data[T](mean, rows, op, "mean"), data[T](rstd, rows, op, "rstd")
	var dxs, dws, dbs []T
	if dx != nil {
		dxs = data[T](dx, n, op, "dx")
	}
	if dw != nil {
		dws = data[T](dw, d, op, "dw")
	}
	if db != nil {
		dbs = data[T](db, d, op, "db")
	}
	if dxs == nil && dws == nil && dbs == nil {
		return
	}
	size, nb := normRowBlocks(rows, d)
	var partW, partB []float64
	if dws != nil {
		partW = make([]float64, nb*d)
	}
	if dbs != nil {
		partB = make([]float64, nb*d)
	}
	be.parallelFor(nb, 1, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			for r := blk * size; r < min((blk+1)*size, rows); r++ {
				xr, gr := xs[r*d:(r+1)*d], gs[r*d:(r+1)*d]
				mu, s := float64(ms[r]), float64(rs[r])
				if partW != nil {
					pw := partW[blk*d : (blk+1)*d]
					for c, g := range gr {
						pw[c] += float64(g) * (float64(xr[c]) - mu) * s
					}
				}
				if partB != nil {
					pb := partB[blk*d : (blk+1)*d]
					for c, g := range gr {
						pb[c] += float64(g)
					}
				}
				if dxs != nil {
					m1, m2 := 0.0, 0.0
					for c, g := range gr {
						gh := float64(g) * float64(ws[c])
						m1 += gh
						m2 += gh * (float64(xr[c]) - mu) * s
					}
					m1 /= float64(d)
					m2 /= float64(d)
					dr := dxs[r*d : (r+1)*d]
					for c, g := range gr {
						gh := float64(g) * float64(ws[c])
						dr[c] += T(s * (gh - m1 - (float64(xr[c])-mu)*s*m2))
					}
				}
			}
		}
	})
	if dws != nil {
		be.addBlockSums(dws, partW, nb, d)
	}
	if dbs != nil {
		be.addBlockSums(dbs, partB, nb, d)
	}
}

// rowGrain is the fewest rows of length d worth a goroutine.
func rowGrain(d int) int { return max(1, 16384/max(d, 1)) }

// normRowBlocks splits rows of length d into count blocks of size rows for
// a row-parallel op that also sums over rows. The split depends only on the
// shape, never on the worker count, so the partial sums, and the result bit
// for bit, are the same on every machine.
func normRowBlocks(rows, d int) (size, count int) {
	size = max(1, 32768/max(d, 1))
	return size, (rows + size - 1) / size
}

// addBlockSums adds the nb partial rows of part (nb, d), summed in order,
// to dst:
//
//	for c := 0; c < d; c++ {
//		dst[c] += Σ_b part[b·d + c]
//	}
func (be *Backend[T]) addBlockSums(dst []T, part []float64, nb, d int) {
	be.parallelFor(d, max(1, 16384/max(nb, 1)), func(lo, hi int) {
		for c := lo; c < hi; c++ {
			s := 0.0
			for b := 0; b < nb; b++ {
				s += part[b*d+c]
			}
			dst[c] += T(s)
		}
	})
}
