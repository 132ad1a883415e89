package cpukernels

import (
	"math"

	"seqbench/nn"
)

// Attention is fused scaled dot-product attention for q (B, H, Lq, Dh) and
// k, v (B, H, Lk, Dh), with the causal mask aligned to the end (query i sees
// key j iff j ≤ i + Lk − Lq). For each (b, h) and query row i:
//
//	s_j    = scale · q_i·k_j           for every visible j
//	lse_i  = log Σ_j exp(s_j)          // max-shifted, in float64
//	out_i  = Σ_j exp(s_j − lse_i) · v_j
//
// lse is (B, H, Lq). Each worker holds one row of scores: memory is O(Lk)
// per worker, never O(Lq·Lk). Causal needs Lk ≥ Lq.
func (be *Backend[T]) Attention(out, lse, q, k, v nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool) {
	const op = "Attention"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	be.attention(op, out, lse, q, k, v, B, H, Lq, Lk, Lk, Dh, scale, causal, nn.AttnDrop{})
}

// AttentionDropout is Attention with dropout on the probabilities
// (nn.AttnDrop): each kept p_ij weighs v_j scaled by 1/(1−P), the sum and
// lse are the undropped ones.
func (be *Backend[T]) AttentionDropout(out, lse, q, k, v nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	const op = "AttentionDropout"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	check(op, nn.CheckAttnDrop(drop))
	be.attention(op, out, lse, q, k, v, B, H, Lq, Lk, Lk, Dh, scale, causal, drop)
}

// AttentionCached is Attention's causal forward over the first
// Lk = filled[0] rows (clamped to [Lq, kvRows]) of each (b, h) block of a
// cache k, v (B, H, kvRows, Dh).
func (be *Backend[T]) AttentionCached(out, lse, q, k, v nn.Buffer, B, H, Lq int, filled nn.Buffer, kvRows, Dh int, scale float64) {
	const op = "AttentionCached"
	check(op, nn.CheckAttentionCached(B, H, Lq, kvRows, Dh))
	Lk := min(max(be.position(op, "filled", filled), Lq), kvRows)
	be.attention(op, out, lse, q, k, v, B, H, Lq, Lk, kvRows, Dh, scale, true, nn.AttnDrop{})
}

// position reads a position buffer (nn.PositionAt), panicking with the op
// and the argument where it holds no position.
func (be *Backend[T]) position(op, name string, pos nn.Buffer) int {
	p, err := nn.PositionAt(float64(data[T](pos, 1, op, name)[0]))
	check(op, err)
	return p
}

// attention is the forward of both, k and v holding kvRows rows per (b, h).
func (be *Backend[T]) attention(op string, out, lse, q, k, v nn.Buffer, B, H, Lq, Lk, kvRows, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	nq, nk := B*H*Lq*Dh, B*H*kvRows*Dh
	os, es := data[T](out, nq, op, "out"), data[T](lse, B*H*Lq, op, "lse")
	qs, ks, vs := data[T](q, nq, op, "q"), data[T](k, nk, op, "k"), data[T](v, nk, op, "v")
	lo := expLimit[T]()
	mask := drop.Mask(Lq, Lk)
	be.parallelFor(B*H*Lq, max(1, 16384/max(1, Lk*Dh)), func(r0, r1 int) {
		s := make([]float64, Lk)
		acc := make([]float64, Dh)
		for row := r0; row < r1; row++ {
			bh, i := row/Lq, row%Lq
			kb, vb := ks[bh*kvRows*Dh:(bh*kvRows+Lk)*Dh], vs[bh*kvRows*Dh:(bh*kvRows+Lk)*Dh]
			qi := qs[row*Dh : (row+1)*Dh]
			nv := visibleKeys(i, Lq, Lk, causal)
			m := math.Inf(-1)
			for j := range nv {
				s[j] = scale * attnDot(qi, kb[j*Dh:(j+1)*Dh])
				m = max(m, s[j])
			}
			sum := 0.0
			clear(acc)
			for j := range nv {
				a := s[j] - m
				if a < lo {
					continue
				}
				p := math.Exp(a)
				sum += p
				f := mask.Factor(bh, i, j)
				if f == 0 {
					continue
				}
				p *= f
				for c, x := range vb[j*Dh : (j+1)*Dh] {
					acc[c] += p * float64(x)
				}
			}
			oi := os[row*Dh : (row+1)*Dh]
			for c, x := range acc {
				oi[c] = T(x / sum)
			}
			es[row] = T(m + math.Log(sum))
		}
	})
}

// AttentionBackward accumulates the gradients of Attention from the out
// and lse it saved (the flash-attention backward). For each (b, h), with
// p_ij = exp(scale·q_i·k_j − lse_i) over the visible pairs:
//
//	D_i   = Σ_d dout_i·out_i
//	ds_ij = p_ij · (dout_i·v_j − D_i)
//	dq_i += scale · Σ_j ds_ij · k_j
//	dk_j += scale · Σ_i ds_ij · q_i
//	dv_j += Σ_i p_ij · dout_i
//
// Any of dq, dk, dv may be nil. When there are at least as many (b, h)
// pairs as workers, each worker owns whole pairs and sums their dk and dv
// in float64 scratch of Lk·Dh. Otherwise two row-parallel passes run, one
// over query rows (D and dq) and one over key rows (dk and dv, each key
// summing over the queries that see it); they compute the scores twice and
// keep only D, the size of lse. No worker writes another's rows, and every
// sum runs in a fixed order.
func (be *Backend[T]) AttentionBackward(dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool) {
	const op = "AttentionBackward"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	be.attentionBackward(op, dq, dk, dv, q, k, v, out, lse, dout, B, H, Lq, Lk, Dh, scale, causal, nn.AttnDrop{})
}

// AttentionDropoutBackward is AttentionBackward with AttentionDropout's
// mask: p_ij·f_ij weighs dout_i in dv_j, and ds_ij = p_ij·(f_ij·dout_i·v_j − D_i).
func (be *Backend[T]) AttentionDropoutBackward(dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	const op = "AttentionDropoutBackward"
	check(op, nn.CheckAttention(B, H, Lq, Lk, Dh, causal))
	check(op, nn.CheckAttnDrop(drop))
	be.attentionBackward(op, dq, dk, dv, q, k, v, out, lse, dout, B, H, Lq, Lk, Dh, scale, causal, drop)
}

func (be *Backend[T]) attentionBackward(op string, dq, dk, dv, q, k, v, out, lse, dout nn.Buffer, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) {
	nq, nk := B*H*Lq*Dh, B*H*Lk*Dh
	a := attnArgs[T]{
		B: B, H: H, Lq: Lq, Lk: Lk, Dh: Dh, scale: scale, causal: causal, mask: drop.Mask(Lq, Lk),
		q: data[T](q, nq, op, "q"), k: data[T](k, nk, op, "k"), v: data[T](v, nk, op, "v"),
		out: data[T](out, nq, op, "out"), lse: data[T](lse, B*H*Lq, op, "lse"), dout: data[T](dout, nq, op, "dout"),
	}
	if dq != nil {
		a.dq = data[T](dq, nq, op, "dq")
	}
	if dk != nil {
		a.dk = data[T](dk, nk, op, "dk")
	}
	if dv != nil {
		a.dv = data[T](dv, nk, op, "dv")
	}
	if (a.dq == nil && a.dk == nil && a.dv == nil) || B*H*Lq == 0 {
		return
	}
	if B*H >= be.workers {
		be.parallelFor(B*H, 1, func(lo, hi int) { a.backwardPairs(lo, hi) })
		return
	}
	// Too few pairs to keep every worker busy: split the rows instead.
	D := make([]float64, B*H*Lq)
	grain := max(1, 16384/(Lk*Dh))
	be.parallelFor(B*H*Lq, grain, func(lo, hi int) { a.backwardQueryRows(D, lo, hi) })
	if a.dk != nil || a.dv != nil {
		be.parallelFor(B*H*Lk, max(1, 16384/(Lq*Dh)), func(lo, hi int) { a.backwardKeyRows(D, lo, hi) })
	}
}

// attnArgs holds the unwrapped operands of one AttentionBackward call.
type attnArgs[T Float] struct {
	B, H, Lq, Lk, Dh int
	scale            float64
	causal           bool
	mask             nn.AttnMask // the dropout's, for (Lq, Lk)
	q, k, v          []T
	out, lse, dout   []T
	dq, dk, dv       []T // nil: not wanted
}

// backwardPairs does every gradient of the (b, h) pairs [lo, hi) in one pass
// over the query rows, keeping dk and dv in float64 until the pair is done.
func (a *attnArgs[T]) backwardPairs(lo, hi int) {
	Lq, Lk, Dh := a.Lq, a.Lk, a.Dh
	emin := expLimit[T]()
	dq := make([]float64, Dh)
	var dk, dv []float64
	if a.dk != nil {
		dk = make([]float64, Lk*Dh)
	}
	if a.dv != nil {
		dv = make([]float64, Lk*Dh)
	}
	for bh := lo; bh < hi; bh++ {
		kb, vb := a.k[bh*Lk*Dh:(bh+1)*Lk*Dh], a.v[bh*Lk*Dh:(bh+1)*Lk*Dh]
		clear(dk)
		clear(dv)
		for i := range Lq {
			row := bh*Lq + i
			qi, gi := a.q[row*Dh:(row+1)*Dh], a.dout[row*Dh:(row+1)*Dh]
			Di := attnDot(gi, a.out[row*Dh:(row+1)*Dh])
			l := float64(a.lse[row])
			clear(dq)
			for j := range visibleKeys(i, Lq, Lk, a.causal) {
				kj, vj := kb[j*Dh:(j+1)*Dh], vb[j*Dh:(j+1)*Dh]
				e := a.scale*attnDot(qi, kj) - l
				if e < emin {
					continue
				}
				p, f := math.Exp(e), a.mask.Factor(bh, i, j)
				if dv != nil && f != 0 {
					attnAxpy(dv[j*Dh:(j+1)*Dh], p*f, gi)
				}
				if a.dq == nil && dk == nil {
					continue
				}
				ds := a.scale * p * (f*attnDot(gi, vj) - Di)
				if a.dq != nil {
					attnAxpy(dq, ds, kj)
				}
				if dk != nil {
					attnAxpy(dk[j*Dh:(j+1)*Dh], ds, qi)
				}
			}
			if a.dq != nil {
				attnAdd(a.dq[row*Dh:(row+1)*Dh], dq)
			}
		}
		if dk != nil {
			attnAdd(a.dk[bh*Lk*Dh:(bh+1)*Lk*Dh], dk)
		}
		if dv != nil {
			attnAdd(a.dv[bh*Lk*Dh:(bh+1)*Lk*Dh], dv)
		}
	}
}

// backwardQueryRows stores D_i of the query rows [lo, hi) (over all pairs)
// in D and accumulates their dq.
func (a *attnArgs[T]) backwardQueryRows(D []float64, lo, hi int) {
	Lq, Lk, Dh := a.Lq, a.Lk, a.Dh
	emin := expLimit[T]()
	dq := make([]float64, Dh)
	for row := lo; row < hi; row++ {
		bh, i := row/Lq, row%Lq
		gi := a.dout[row*Dh : (row+1)*Dh]
		Di := attnDot(gi, a.out[row*Dh:(row+1)*Dh])
		D[row] = Di
		if a.dq == nil {
			continue
		}
		kb, vb := a.k[bh*Lk*Dh:(bh+1)*Lk*Dh], a.v[bh*Lk*Dh:(bh+1)*Lk*Dh]
		qi, l := a.q[row*Dh:(row+1)*Dh], float64(a.lse[row])
		clear(dq)
		for j := range visibleKeys(i, Lq, Lk, a.causal) {
			kj := kb[j*Dh : (j+1)*Dh]
			e := a.scale*attnDot(qi, kj) - l
			if e < emin {
				continue
			}
			ds := a.scale * math.Exp(e) * (a.mask.Factor(bh, i, j)*attnDot(gi, vb[j*Dh:(j+1)*Dh]) - Di)
			attnAxpy(dq, ds, kj)
		}
		attnAdd(a.dq[row*Dh:(row+1)*Dh], dq)
	}
}

// backwardKeyRows accumulates dk and dv of the key rows [lo, hi) (over all
// pairs), given D from backwardQueryRows.
func (a *attnArgs[T]) backwardKeyRows(D []float64, lo, hi int) {
	Lq, Lk, Dh := a.Lq, a.Lk, a.Dh
	emin := expLimit[T]()
	dk, dv := make([]float64, Dh), make([]float64, Dh)
	for krow := lo; krow < hi; krow++ {
		bh, j := krow/Lk, krow%Lk
		kj, vj := a.k[krow*Dh:(krow+1)*Dh], a.v[krow*Dh:(krow+1)*Dh]
		clear(dk)
		clear(dv)
		i0 := 0
		if a.causal {
			i0 = max(0, j-(Lk-Lq)) // the first query that sees key j
		}
		for i := i0; i < Lq; i++ {
			row := bh*Lq + i
			qi, gi := a.q[row*Dh:(row+1)*Dh], a.dout[row*Dh:(row+1)*Dh]
			e := a.scale*attnDot(qi, kj) - float64(a.lse[row])
			if e < emin {
				continue
			}
			p, f := math.Exp(e), a.mask.Factor(bh, i, j)
			if a.dv != nil && f != 0 {
				attnAxpy(dv, p*f, gi)
			}
			if a.dk != nil {
				attnAxpy(dk, a.scale*p*(f*attnDot(gi, vj)-D[row]), qi)
			}
		}
		if a.dk != nil {
			attnAdd(a.dk[krow*Dh:(krow+1)*Dh], dk)
		}
		if a.dv != nil {
			attnAdd(a.dv[krow*Dh:(krow+1)*Dh], dv)
		}
	}
}

// visibleKeys is the number of keys query i sees: all Lk, or with the
// causal mask aligned to the end, keys 0 … i + Lk − Lq.
func visibleKeys(i, Lq, Lk int, causal bool) int {
	if causal {
		return i + Lk - Lq + 1
	}
	return Lk
}

// attnDot is Σ_c a[c]·b[c] in float64, over four running sums so that the
// additions do not wait on each other.
func attnDot[T Float](a, b []T) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	c := 0
	for ; c+4 <= len(a); c += 4 {
		s0 += float64(a[c]) * float64(b[c])
		s1 += float64(a[c+1]) * float64(b[c+1])
		s2 += float64(a[c+2]) * float64(b[c+2])
		s3 += float64(a[c+3]) * float64(b[c+3])
	}
	for ; c < len(a); c++ {
		s0 += float64(a[c]) * float64(b[c])
	}
	return (s0 + s1) + (s2 + s3)
}

// attnAxpy is y += alpha·x with a float64 y.
func attnAxpy[T Float](y []float64, alpha float64, x []T) {
	x = x[:len(y)]
	for c := range y {
		y[c] += alpha * float64(x[c])
	}
}

// attnAdd is y += x, rounding x to T.
func attnAdd[T Float](y []T, x []float64) {
	y = y[:len(x)]
	for c, v := range x {
		y[c] += T(v)
	}
}
