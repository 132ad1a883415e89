package backendtest

import (
	"fmt"
	"testing"

	"seqbench/nn"
)

// normCase is one RMSNorm or LayerNorm shape. Tiny rows take a large eps:
// with d ≤ 2 and a small eps the normalised output hardly depends on x, so
// dx would be too small for a relative check of finite differences.
type normCase struct {
	rows, d      int
	eps          float64
	offset       float64 // added to x: a mean far from 0 (LayerNorm's cancellation)
	noDX, noDW   bool
	noBias, noDB bool // LayerNorm only
}

func normDesc(c normCase) string {
	s := fmt.Sprintf("%dx%d_eps%g", c.rows, c.d, c.eps)
	if c.offset != 0 {
		s += fmt.Sprintf("_offset%g", c.offset)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{c.noDX, "_noDX"}, {c.noDW, "_noDW"}, {c.noBias, "_noBias"}, {c.noDB, "_noDB"}} {
		if f.on {
			s += f.name
		}
	}
	return s
}

// optAccum allocates a gradient buffer unless the case skips it (nil).
func (tt *tester) optAccum(n int, skip bool) (accum, nn.Buffer) {
	if skip {
		return accum{}, nil
	}
	a := tt.accum(n, true)
	return a, a.buf
}

func testRMSNorm(t *testing.T, b nn.Backend) {
	cases := []normCase{
		{rows: 1, d: 1, eps: 0.5},
		{rows: 3, d: 2, eps: 0.5},
		{rows: 3, d: 8, eps: 1e-5},
		{rows: 5, d: 17, eps: 1e-5},
		{rows: 2, d: 64, eps: 1e-6},
		{rows: 37, d: 5, eps: 1e-5},
		{rows: 4, d: 9, eps: 1e-5, noDW: true},
		{rows: 4, d: 9, eps: 1e-5, noDX: true},
	}
	runCases(t, b, "RMSNorm", cases, normDesc, func(tt *tester, c normCase) {
		n := c.rows * c.d
		x, xs := tt.input(tt.randn(n))
		w, ws := tt.input(tt.uniform(c.d, 0.5, 1.5))
		out, rstd := tt.output(n), tt.output(c.rows)
		tt.b.RMSNorm(out, rstd, x, w, c.rows, c.d, c.eps)
		wantOut, wantRstd := refRMSNorm(xs, ws, c.rows, c.d, c.eps)
		tt.fwd("out", tt.result("out", out, n), wantOut)
		tt.fwd("rstd", tt.result("rstd", rstd, c.rows), wantRstd)

		dout, douts := tt.input(tt.randn(n))
		dx, dxBuf := tt.optAccum(n, c.noDX)
		dw, dwBuf := tt.optAccum(c.d, c.noDW)
		tt.b.RMSNormBackward(dxBuf, dwBuf, x, w, rstd, dout, c.rows, c.d)
		f := func() []float64 { o, _ := refRMSNorm(xs, ws, c.rows, c.d, c.eps); return o }
		if !c.noDX {
			tt.grad("dx", tt.delta("dx", dx), vjp(f, xs, douts))
		}
		if !c.noDW {
			tt.grad("dw", tt.delta("dw", dw), vjp(f, ws, douts))
		}
	})
}

func testLayerNorm(t *testing.T, b nn.Backend) {
	cases := []normCase{
		{rows: 1, d: 1, eps: 0.5},
		{rows: 3, d: 2, eps: 0.5},
		{rows: 3, d: 8, eps: 1e-5},
		{rows: 5, d: 17, eps: 1e-5},
		{rows: 2, d: 64, eps: 1e-6},
		{rows: 37, d: 5, eps: 1e-5},
		{rows: 4, d: 9, eps: 1e-5, offset: 30},
		{rows: 5, d: 17, eps: 1e-5, noBias: true, noDB: true},
		{rows: 5, d: 17, eps: 1e-5, noDB: true},
		{rows: 4, d: 9, eps: 1e-5, noDW: true},
		{rows: 4, d: 9, eps: 1e-5, noDX: true, noDB: true},
	}
	runCases(t, b, "LayerNorm", cases, normDesc, func(tt *tester, c normCase) {
		n := c.rows * c.d
		xv := tt.randn(n)
		for i := range xv {
			xv[i] += c.offset
		}
		x, xs := tt.input(xv)
		w, ws := tt.input(tt.uniform(c.d, 0.5, 1.5))
		var bias nn.Buffer
		var bs []float64
		if !c.noBias {
			bias, bs = tt.input(tt.randn(c.d))
		}
		out, mean, rstd := tt.output(n), tt.output(c.rows), tt.output(c.rows)
		tt.b.LayerNorm(out, mean, rstd, x, w, bias, c.rows, c.d, c.eps)
		wantOut, wantMean, wantRstd := refLayerNorm(xs, ws, bs, c.rows, c.d, c.eps)
		tt.fwd("out", tt.result("out", out, n), wantOut)
		tt.fwd("mean", tt.result("mean", mean, c.rows), wantMean)
		tt.fwd("rstd", tt.result("rstd", rstd, c.rows), wantRstd)

		dout, douts := tt.input(tt.randn(n))
		dx, dxBuf := tt.optAccum(n, c.noDX)
		dw, dwBuf := tt.optAccum(c.d, c.noDW)
		db, dbBuf := tt.optAccum(c.d, c.noDB)
		tt.b.LayerNormBackward(dxBuf, dwBuf, dbBuf, x, w, mean, rstd, dout, c.rows, c.d)
		f := func() []float64 { o, _, _ := refLayerNorm(xs, ws, bs, c.rows, c.d, c.eps); return o }
		if !c.noDX {
			tt.grad("dx", tt.delta("dx", dx), vjp(f, xs, douts))
		}
		if !c.noDW {
			tt.grad("dw", tt.delta("dw", dw), vjp(f, ws, douts))
		}
		if !c.noDB {
			tt.grad("db", tt.delta("db", db), vjp(f, bs, douts))
		}
	})
}
