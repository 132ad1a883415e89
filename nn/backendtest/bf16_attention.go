package backendtest

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// RunBF16AttentionTiles checks Attention and AttentionBackward on bfloat16
// activations at the head dims and lengths of real models (Dh 64 and 128,
// sequences past one 64-row tile; the CUDA backend serves these with its
// register-tiled kernels, which testBF16Attention's small head dims never
// reach), with Lq ≠ Lk and with some gradients not wanted. The tolerances
// are testBF16Attention's (this file's header, bf16.go). The gradients are
// compared with refAttentionGrads, the float64 backward in closed form
// (finite differences at these sizes would take minutes on a CPU); a small
// case first checks refAttentionGrads against finite differences.
func RunBF16AttentionTiles(t *testing.T, b nn.MixedBackend) {
	cases := []attnCase{
		{B: 1, H: 2, Lq: 5, Lk: 7, Dh: 6, causal: true}, // checks refAttentionGrads
		{B: 1, H: 2, Lq: 65, Lk: 65, Dh: 64, causal: true},
		{B: 2, H: 1, Lq: 70, Lk: 40, Dh: 64, causal: false},
		{B: 1, H: 1, Lq: 31, Lk: 130, Dh: 128, causal: true}, // a block continuing a KV cache
		{B: 1, H: 1, Lq: 1, Lk: 129, Dh: 128, causal: true},  // one decode step
		{B: 1, H: 2, Lq: 45, Lk: 77, Dh: 64, causal: true, noDQ: true},
		{B: 1, H: 2, Lq: 45, Lk: 77, Dh: 128, causal: false, noDKV: true},
		{B: 1, H: 2, Lq: 5, Lk: 7, Dh: 6, causal: true, drop: 0.3},    // checks refAttentionGrads with dropout
		{B: 1, H: 2, Lq: 65, Lk: 65, Dh: 64, causal: true, drop: 0.1}, // dropout leaves the tiled kernels
	}
	desc := func(c attnCase) string {
		s := fmt.Sprintf("B%d_H%d_Lq%d_Lk%d_Dh%d_causal%v", c.B, c.H, c.Lq, c.Lk, c.Dh, c.causal)
		if c.drop > 0 {
			s += fmt.Sprintf("_drop%g", c.drop)
		}
		if c.noDQ {
			s += "_noDQ"
		}
		if c.noDKV {
			s += "_noDKV"
		}
		return s
	}
	runCases(t, b, "BF16AttentionTiles", cases, desc, (*tester).checkBF16Attention)
	t.Run("Cached", func(t *testing.T) { testAttentionCached(t, b, nn.BFloat16) })
	t.Run("StepPositions", func(t *testing.T) { testStepPositions(t, b, nn.BFloat16) })
}

// checkBF16Attention runs one case's forward and backward on bfloat16
// q, k, v (float32 lse) against the float64 reference, with
// testBF16Attention's tolerances; the gradients come from
// refAttentionGrads, itself checked against finite differences on small
// cases. A case with drop > 0 runs AttentionDropout and its backward.
func (tt *tester) checkBF16Attention(c attnCase) {
	scale := 1 / math.Sqrt(float64(c.Dh))
	nq, nk, nl := c.B*c.H*c.Lq*c.Dh, c.B*c.H*c.Lk*c.Dh, c.B*c.H*c.Lq
	q, qs := tt.inputAs(bf16, tt.randn(nq))
	k, ks := tt.inputAs(bf16, tt.randn(nk))
	v, vs := tt.inputAs(bf16, tt.randn(nk))
	var drop nn.AttnDrop
	if c.drop > 0 {
		drop = nn.AttnDrop{P: c.drop, Seed: tt.rng.Uint64()}
	}
	out, lse := tt.outputAs(bf16, nq), tt.outputAs(fp32, nl)
	if drop.On() {
		tt.b.AttentionDropout(out, lse, q, k, v, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
	} else {
		tt.b.Attention(out, lse, q, k, v, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	}
	wantOut, wantLse := refAttentionDropout(qs, ks, vs, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
	absV := make([]float64, len(vs))
	for i, x := range vs {
		absV[i] = math.Abs(x)
	}
	pAbsV, _ := refAttentionDropout(qs, ks, absV, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
	AssertClose(tt, "out", tt.resultAs("out", out, nq), wantOut, tt.fwdTol+u*(1+norm(pAbsV)/norm(wantOut)))
	tt.checkOut("lse", lse, nl, wantLse)

	dout, douts := tt.inputAs(bf16, tt.randn(nq))
	var dq, dk, dv accum
	if !c.noDQ {
		dq = tt.accumAs(bf16, nq)
	}
	if !c.noDKV {
		dk, dv = tt.accumAs(bf16, nk), tt.accumAs(bf16, nk)
	}
	if drop.On() {
		tt.b.AttentionDropoutBackward(dq.buf, dk.buf, dv.buf, q, k, v, out, lse, dout, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
	} else {
		tt.b.AttentionBackward(dq.buf, dk.buf, dv.buf, q, k, v, out, lse, dout, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal)
	}
	wq, wk, wv := refAttentionGrads(qs, ks, vs, douts, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
	if nq+2*nk <= 300 {
		f := func() []float64 {
			o, _ := refAttentionDropout(qs, ks, vs, c.B, c.H, c.Lq, c.Lk, c.Dh, scale, c.causal, drop)
			return o
		}
		AssertClose(tt, "refAttentionGrads dq", wq, vjp(f, qs, douts), 1e-6)
		AssertClose(tt, "refAttentionGrads dk", wk, vjp(f, ks, douts), 1e-6)
		AssertClose(tt, "refAttentionGrads dv", wv, vjp(f, vs, douts), 1e-6)
	}
	if !c.noDQ {
		tt.checkAccum("dq", dq, wq)
	}
	if !c.noDKV {
		tt.checkAccum("dk", dk, wk)
		tt.checkAccum("dv", dv, wv)
	}
}

// refAttentionGrads is the float64 gradient of refAttentionDropout's out,
// paired with dout, with respect to q, k and v: with p_ij the softmax
// weights and f_ij the dropout factors,
//
//	ds_ij = p_ij · (f_ij · dout_i·v_j − dout_i·out_i)
//	dq_i  = scale · Σ_j ds_ij · k_j
//	dk_j  = scale · Σ_i ds_ij · q_i
//	dv_j  = Σ_i p_ij · f_ij · dout_i
func refAttentionGrads(q, k, v, dout []float64, B, H, Lq, Lk, Dh int, scale float64, causal bool, drop nn.AttnDrop) (dq, dk, dv []float64) {
	out, lse := refAttentionDropout(q, k, v, B, H, Lq, Lk, Dh, scale, causal, drop)
	dq, dk, dv = make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
	mask := drop.Mask(Lq, Lk)
	for bh := 0; bh < B*H; bh++ {
		for i := 0; i < Lq; i++ {
			row := (bh*Lq + i) * Dh
			qi, gi, oi := q[row:row+Dh], dout[row:row+Dh], out[row:row+Dh]
			di := dot(gi, oi)
			for j := 0; j < Lk; j++ {
				if causal && j > i+Lk-Lq {
					continue
				}
				col := (bh*Lk + j) * Dh
				kj, vj := k[col:col+Dh], v[col:col+Dh]
				p, f := math.Exp(scale*dot(qi, kj)-lse[bh*Lq+i]), mask.Factor(bh, i, j)
				ds := p * (f*dot(gi, vj) - di)
				for d := 0; d < Dh; d++ {
					dq[row+d] += scale * ds * kj[d]
					dk[col+d] += scale * ds * qi[d]
					dv[col+d] += p * f * gi[d]
				}
			}
		}
	}
	return dq, dk, dv
}
