package cpukernels

import "seqbench/nn"

// Conv1D is the causal depthwise convolution of x (B, C, L) with w (C, W)
// and optional bias (C), then act (Identity or SiLU). With x[b,c,t] for
// t < 0 taken from state[b,c,W−1+t] (zeros when state is nil):
//
//	for b, c, t {
//		p := bias[c]
//		for k := 0; k < W; k++ {
//			p += w[c,k] * x[b,c,t−W+1+k]
//		}
//		out[b,c,t] = act(p)
//	}
//
// A given state (B, C, W−1) is then overwritten with the last W−1 inputs
// of [state, x], so the next call continues the sequence (step mode). Sums
// run in float64; rows (b, c) are independent and split among workers.
func (be *Backend[T]) Conv1D(out, x, w, bias, state nn.Buffer, B, C, L, W int, act nn.Activation) {
	const op = "Conv1D"
	check(op, nn.CheckConv1D(B, C, L, W, act))
	n := B * C * L
	os, xs, ws := data[T](out, n, op, "out"), data[T](x, n, op, "x"), data[T](w, C*W, op, "w")
	var bs, ss []T
	if bias != nil {
		bs = data[T](bias, C, op, "bias")
	}
	S := W - 1 // carried inputs per row
	if state != nil {
		ss = data[T](state, B*C*S, op, "state")
	}
	lim, tiny := expLimit[T](), minNormal[T]()
	silu := act == nn.SiLU
	be.parallelFor(B*C, max(1, copyGrain/max(1, L*W)), func(lo, hi int) {
		// xp holds the W−1 carried inputs followed by the row: xp[S+t] = x[t].
		xp := make([]float64, S+L)
		for r := lo; r < hi; r++ {
			c := r % C
			xr, or := xs[r*L:(r+1)*L], os[r*L:(r+1)*L]
			if ss != nil {
				for j, v := range ss[r*S : (r+1)*S] {
					xp[j] = float64(v)
				}
			} else {
				clear(xp[:S])
			}
			for t, v := range xr {
				xp[S+t] = float64(v)
			}
			wr := ws[c*W : (c+1)*W]
			b0 := 0.0
			if bs != nil {
				b0 = float64(bs[c])
			}
			for t := range or {
				p := b0
				win := xp[t : t+W]
				for k, wk := range wr {
					p += float64(wk) * win[k]
				}
				if silu {
					p *= sigmoid(p, lim)
				}
				or[t] = flush[T](p, tiny)
			}
			if ss != nil {
				// The last S entries of [state, x]; they may still come from
				// the old state when L < S.
				for j := range S {
					ss[r*S+j] = T(xp[L+j])
				}
			}
		}
	})
}

// Conv1DBackward accumulates the gradients of Conv1D started from a zero
// state. It recomputes the pre-activation p and, with dp = act'(p)·dout:
//
//	dx[b,c,t−W+1+k] += w[c,k]·dp[b,c,t]      (for t−W+1+k ≥ 0)
//	dw[c,k]         += Σ_{b,t} dp[b,c,t]·x[b,c,t−W+1+k]
//	dbias[c]        += Σ_{b,t} dp[b,c,t]
//
// Any of dx, dw, dbias may be nil. Workers own channels (looping over the
// batch inside), so every gradient element has one writer and dw, dbias are
// summed in float64 in a fixed order.
func (be *Backend[T]) Conv1DBackward(dx, dw, dbias, x, w, bias, dout nn.Buffer, B, C, L, W int, act nn.Activation) {
	const op = "Conv1DBackward"
	check(op, nn.CheckConv1D(B, C, L, W, act))
	n := B * C * L
	xs, ws, gs := data[T](x, n, op, "x"), data[T](w, C*W, op, "w"), data[T](dout, n, op, "dout")
	var bs, dxs, dws, dbs []T
	if bias != nil {
		bs = data[T](bias, C, op, "bias")
	}
	if dx != nil {
		dxs = data[T](dx, n, op, "dx")
	}
	if dw != nil {
		dws = data[T](dw, C*W, op, "dw")
	}
	if dbias != nil {
		dbs = data[T](dbias, C, op, "dbias")
	}
	if dxs == nil && dws == nil && dbs == nil {
		return
	}
	lim, tiny := expLimit[T](), minNormal[T]()
	silu := act == nn.SiLU
	S := W - 1
	be.parallelFor(C, max(1, copyGrain/max(1, B*L*W)), func(lo, hi int) {
		xp := make([]float64, S+L) // zero-padded row: xp[S+t] = x[t]
		dp := make([]float64, L+S) // dp[t], zero-padded after L
		dwAcc := make([]float64, W)
		for c := lo; c < hi; c++ {
			wr := ws[c*W : (c+1)*W]
			b0 := 0.0
			if bs != nil {
				b0 = float64(bs[c])
			}
			clear(dwAcc)
			dbAcc := 0.0
			for b := range B {
				r := b*C + c
				xr, gr := xs[r*L:(r+1)*L], gs[r*L:(r+1)*L]
				for t, v := range xr {
					xp[S+t] = float64(v)
				}
				for t, g := range gr {
					d := float64(g)
					if silu {
						p := b0
						for k, wk := range wr {
							p += float64(wk) * xp[t+k]
						}
						s := sigmoid(p, lim)
						d *= s * (1 + p*(1-s))
					}
					dp[t] = d
					dbAcc += d
					for k := range dwAcc {
						dwAcc[k] += d * xp[t+k]
					}
				}
				if dxs != nil {
					// dx[u] = Σ_k w[k]·dp[u+S−k]; dp is 0 past L.
					dr := dxs[r*L : (r+1)*L]
					for u := range dr {
						s := float64(dr[u])
						for k, wk := range wr {
							s += float64(wk) * dp[u+S-k]
						}
						dr[u] = flush[T](s, tiny)
					}
				}
			}
			if dws != nil {
				for k, v := range dwAcc {
					dws[c*W+k] = T(float64(dws[c*W+k]) + v)
				}
			}
			if dbs != nil {
				dbs[c] = T(float64(dbs[c]) + dbAcc)
			}
		}
	})
}
