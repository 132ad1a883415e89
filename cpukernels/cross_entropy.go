package cpukernels

import (
	"math"

	"seqbench/nn"
)

// CrossEntropy is the softmax cross-entropy of each row of logits (rows, V):
//
//	for r := 0; r < rows; r++ {
//		lse[r] = log Σ_c exp(logits[r,c])        // max-shifted, in float64
//		loss[r] = lse[r] − logits[r, targets[r]] // 0 when targets[r] == ignore
//	}
//
// lse is computed for ignored rows too. It panics when a target other than
// ignore is outside [0, V).
func (be *Backend[T]) CrossEntropy(loss, lse, logits nn.Buffer, targets []int32, rows, V int, ignore int32) {
	const op = "CrossEntropy"
	ls, es := data[T](loss, rows, op, "loss"), data[T](lse, rows, op, "lse")
	xs := data[T](logits, rows*V, op, "logits")
	check(op, nn.CheckTargets(targets, rows, V, ignore))
	lo := expLimit[T]()
	be.parallelFor(rows, rowGrain(V), func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			xr := xs[r*V : (r+1)*V]
			m := math.Inf(-1)
			for _, v := range xr {
				m = max(m, float64(v))
			}
			s := 0.0
			for _, v := range xr {
				if a := float64(v) - m; !(a < lo) { // NaN propagates
					s += math.Exp(a)
				}
			}
			l := m + math.Log(s)
			es[r] = T(l)
			if t := targets[r]; t == ignore {
				ls[r] = 0
			} else {
				ls[r] = T(l - float64(xr[t]))
			}
		}
	})
}

// CrossEntropyBackward accumulates the gradient of CrossEntropy, using the
// lse it saved:
//
//	for r := 0; r < rows; r++ {
//		if t := targets[r]; t != ignore {
//			dlogits[r,c] += dloss[r]·(exp(logits[r,c] − lse[r]) − [c == t])
//		}
//	}
//
// Ignored rows of dlogits are left untouched; results below the smallest
// normal T (tail probabilities times a small dloss) are flushed to 0.
func (be *Backend[T]) CrossEntropyBackward(dlogits, logits, lse, dloss nn.Buffer, targets []int32, rows, V int, ignore int32) {
	const op = "CrossEntropyBackward"
	n := rows * V
	ds, xs := data[T](dlogits, n, op, "dlogits"), data[T](logits, n, op, "logits")
	es, gs := data[T](lse, rows, op, "lse"), data[T](dloss, rows, op, "dloss")
	check(op, nn.CheckTargets(targets, rows, V, ignore))
	lo, tiny := expLimit[T](), minNormal[T]()
	be.parallelFor(rows, rowGrain(V), func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			t := targets[r]
			if t == ignore {
				continue
			}
			xr, dr := xs[r*V:(r+1)*V], ds[r*V:(r+1)*V]
			l, g := float64(es[r]), float64(gs[r])
			for c, v := range xr {
				p := 0.0
				if a := float64(v) - l; !(a < lo) {
					p = math.Exp(a)
				}
				if c == int(t) {
					p--
				}
				dr[c] = flush[T](float64(dr[c])+g*p, tiny)
			}
		}
	})
}

// ArgmaxRows returns, for each row of x (rows, cols), the index of its
// largest value, the first one on ties. A NaN counts as larger than any
// number (as torch.argmax), so a row holding one answers its first NaN.
func (be *Backend[T]) ArgmaxRows(x nn.Buffer, rows, cols int) []int32 {
	const op = "ArgmaxRows"
	check(op, nn.CheckRows(rows, cols))
	xs := data[T](x, rows*cols, op, "x")
	idx := make([]int32, rows)
	be.parallelFor(rows, rowGrain(cols), func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			xr := xs[r*cols : (r+1)*cols]
			best := 0
			for c, v := range xr {
				if b := xr[best]; b == b && (v > b || v != v) {
					best = c
				}
			}
			idx[r] = int32(best)
		}
	})
	return idx
}
