package backendtest

import (
	"math"

	"seqbench/nn"
)

// The float64 references: each op written the obvious way, as loops, from
// the nn.Backend doc comments. Backwards are not written here; they are the
// finite-difference VJPs of these forwards (see vjp).

func refAct(kind nn.Activation, x float64) float64 {
	switch kind {
	case nn.Identity:
		return x
	case nn.ReLU:
		if x > 0 {
			return x
		}
		return 0
	case nn.GELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case nn.GELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case nn.SiLU:
		return x / (1 + math.Exp(-x))
	case nn.Sigmoid:
		return 1 / (1 + math.Exp(-x))
	case nn.Tanh:
		return math.Tanh(x)
	case nn.Softplus: // torch: threshold 20
		if x > 20 {
			return x
		}
		return math.Log1p(math.Exp(x))
	case nn.Exp:
		return math.Exp(x)
	}
	panic("backendtest: unknown activation " + kind.String())
}

var activations = []nn.Activation{nn.Identity, nn.ReLU, nn.GELU, nn.GELUTanh, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Exp}

// refCopyBlock is dst[dstOff + r·dstStride + c] (+)= src[srcOff + r·srcStride + c].
func refCopyBlock(dst []float64, dstOff, dstStride int, src []float64, srcOff, srcStride, rows, cols int, accumulate bool) {
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			v := src[srcOff+r*srcStride+c]
			if accumulate {
				v += dst[dstOff+r*dstStride+c]
			}
			dst[dstOff+r*dstStride+c] = v
		}
	}
}

// refPermute returns x (shape) transposed so that out dim i is x dim perm[i].
func refPermute(x []float64, shape, perm []int) []float64 {
	rank := len(shape)
	xStride := make([]int, rank)
	s := 1
	for d := rank - 1; d >= 0; d-- {
		xStride[d] = s
		s *= shape[d]
	}
	outShape := make([]int, rank)
	for i, p := range perm {
		outShape[i] = shape[p]
	}
	out := make([]float64, len(x))
	idx := make([]int, rank) // multi-index into out
	for o := range out {
		src := 0
		for i, p := range perm {
			src += idx[i] * xStride[p]
		}
		out[o] = x[src]
		for d := rank - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < outShape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

// refGemm returns a copy of c after C_p = α·op(A_p)·op(B_p) + β·C_p on every
// batch p; elements outside the C_p matrices are copied unchanged.
func refGemm(a, b, c []float64, g nn.GemmArgs) []float64 {
	out := append([]float64(nil), c...)
	opA := func(p, i, l int) float64 {
		if g.TransA {
			return a[g.OffA+p*g.StrideA+l*g.LDA+i]
		}
		return a[g.OffA+p*g.StrideA+i*g.LDA+l]
	}
	opB := func(p, l, j int) float64 {
		if g.TransB {
			return b[g.OffB+p*g.StrideB+j*g.LDB+l]
		}
		return b[g.OffB+p*g.StrideB+l*g.LDB+j]
	}
	for p := 0; p < g.Batch; p++ {
		for i := 0; i < g.M; i++ {
			for j := 0; j < g.N; j++ {
				s := 0.0
				for l := 0; l < g.K; l++ {
					s += opA(p, i, l) * opB(p, l, j)
				}
				// Batches update C in turn: with StrideC = 0 each
				// scales what the previous one left.
				k := g.OffC + p*g.StrideC + i*g.LDC + j
				if g.Beta == 0 {
					out[k] = g.Alpha * s
				} else {
					out[k] = g.Alpha*s + g.Beta*out[k]
				}
			}
		}
	}
	return out
}

// refRMSNorm: rstd[r] = 1/sqrt(mean(x[r,:]²) + eps); out = x·rstd·w.
func refRMSNorm(x, w []float64, rows, d int, eps float64) (out, rstd []float64) {
	out, rstd = make([]float64, rows*d), make([]float64, rows)
	for r := 0; r < rows; r++ {
		ss := 0.0
		for c := 0; c < d; c++ {
			ss += x[r*d+c] * x[r*d+c]
		}
		rstd[r] = 1 / math.Sqrt(ss/float64(d)+eps)
		for c := 0; c < d; c++ {
			out[r*d+c] = x[r*d+c] * rstd[r] * w[c]
		}
	}
	return out, rstd
}

// refLayerNorm: mean, biased variance, rstd = 1/sqrt(var + eps);
// out = (x − mean)·rstd·w + b (b may be nil).
func refLayerNorm(x, w, b []float64, rows, d int, eps float64) (out, mean, rstd []float64) {
	out, mean, rstd = make([]float64, rows*d), make([]float64, rows), make([]float64, rows)
	for r := 0; r < rows; r++ {
		m := 0.0
		for c := 0; c < d; c++ {
			m += x[r*d+c]
		}
		m /= float64(d)
		v := 0.0
		for c := 0; c < d; c++ {
			v += (x[r*d+c] - m) * (x[r*d+c] - m)
		}
		v /= float64(d)
		mean[r], rstd[r] = m, 1/math.Sqrt(v+eps)
		for c := 0; c < d; c++ {
			out[r*d+c] = (x[r*d+c] - m) * rstd[r] * w[c]
			if b != nil {
				out[r*d+c] += b[c]
			}
		}
	}
	return out, mean, rstd
}

// refEmbedding: out[i, :] = table[ids[i], :].
func refEmbedding(table []float64, ids []int32, d int) []float64 {
	out := make([]float64, len(ids)*d)
	for i, id := range ids {
		copy(out[i*d:(i+1)*d], table[int(id)*d:(int(id)+1)*d])
	}
	return out
}

// refCrossEntropy: lse[r] = log Σ_v exp(logits[r,v]), loss[r] = lse[r] −
// logits[r, t_r], 0 on ignored rows.
func refCrossEntropy(logits []float64, targets []int32, rows, V int, ignore int32) (loss, lse []float64) {
	loss, lse = make([]float64, rows), make([]float64, rows)
	for r := 0; r < rows; r++ {
		row := logits[r*V : (r+1)*V]
		m := math.Inf(-1)
		for _, v := range row {
			m = max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		lse[r] = m + math.Log(s)
		if targets[r] != ignore {
			loss[r] = lse[r] - row[targets[r]]
		}
	}
	return loss, lse
}

// refRoPE rotates each (B, H) row l of x by position p = pos0 + l, pairing
// element i with i + Dh/2 (rotate_half):
//
//	out[i]      = x[i]·cos θ − x[i+Dh/2]·sin θ
//	out[i+Dh/2] = x[i+Dh/2]·cos θ + x[i]·sin θ,   θ = p·base^(−2i/Dh)
func refRoPE(x []float64, B, H, L, Dh, pos0 int, base float64) []float64 {
	out := make([]float64, len(x))
	half := Dh / 2
	for bh := 0; bh < B*H; bh++ {
		for l := 0; l < L; l++ {
			row := x[(bh*L+l)*Dh : (bh*L+l+1)*Dh]
			o := out[(bh*L+l)*Dh : (bh*L+l+1)*Dh]
			for i := 0; i < half; i++ {
				theta := float64(pos0+l) * math.Pow(base, -2*float64(i)/float64(Dh))
				c, s := math.Cos(theta), math.Sin(theta)
				o[i] = row[i]*c - row[i+half]*s
				o[i+half] = row[i+half]*c + row[i]*s
			}
		}
	}
	return out
}

// refAttention materializes the score matrix S = scale·q kᵀ of each (b, h),
// masks key j > i + Lk − Lq when causal, and returns out = softmax(S)·v and
// lse = log Σ_j exp(S[i, j]) over the unmasked keys.
func refAttention(q, k, v []float64, B, H, Lq, Lk, Dh int, scale float64, causal bool) (out, lse []float64) {
	return refAttentionDropout(q, k, v, B, H, Lq, Lk, Dh, scale, causal, nn.AttnDrop{})
}

// refAttentionDropout is refAttention with each softmax weight p_ij of pair
// bh multiplied by drop's factor for the pair (AttnMask.Factor) before it
// weighs v_j
// (lse stays the undropped one).
func refAttentionDropout(q, k, v []float64, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) (out, lse []float64) {
	out, lse = make([]float64, B*H*Lq*Dh), make([]float64, B*H*Lq)
	S := make([]float64, Lq*Lk)
	mask := drop.Mask(Lq, Lk)
	for bh := 0; bh < B*H; bh++ {
		qb, kb, vb := q[bh*Lq*Dh:], k[bh*Lk*Dh:], v[bh*Lk*Dh:]
		for i := 0; i < Lq; i++ {
			for j := 0; j < Lk; j++ {
				s := 0.0
				for d := 0; d < Dh; d++ {
					s += qb[i*Dh+d] * kb[j*Dh+d]
				}
				S[i*Lk+j] = scale * s
				if causal && j > i+Lk-Lq {
					S[i*Lk+j] = math.Inf(-1)
				}
			}
		}
		for i := 0; i < Lq; i++ {
			row := S[i*Lk : (i+1)*Lk]
			m := math.Inf(-1)
			for _, s := range row {
				m = max(m, s)
			}
			z := 0.0
			for j, s := range row {
				row[j] = math.Exp(s - m)
				z += row[j]
			}
			lse[bh*Lq+i] = m + math.Log(z)
			for d := 0; d < Dh; d++ {
				o := 0.0
				for j, p := range row {
					o += p / z * mask.Factor(bh, i, j) * vb[j*Dh+d]
				}
				out[(bh*Lq+i)*Dh+d] = o
			}
		}
	}
	return out, lse
}
