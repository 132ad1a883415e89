package gpukernels

import (
	"fmt"
	"math"
	"testing"

	"seqbench/nn"
)

// scanShape is one selective-scan case: every optional input present
// unless a flag drops it.
type scanShape struct {
	B, D, L, N, G      int
	noZ, noD, softplus bool
	h0                 bool
}

func TestGPUSelectiveScan(t *testing.T) {
	needGPU(t)
	shapes := seqShapes(t, []scanShape{
		{B: 1, D: 1, L: 1, N: 1, G: 1, softplus: true},
		{B: 2, D: 6, L: 37, N: 5, G: 3, softplus: true, h0: true},
		{B: 1, D: 3, L: 33, N: 1, G: 1, noZ: true, noD: true},
		{B: 3, D: 4, L: 9, N: 16, G: 2, softplus: true},
	}, []scanShape{
		{B: 2, D: 130, L: 70, N: 16, G: 2, softplus: true, h0: true}, // several channel blocks per group
		{B: 1, D: 5, L: 45, N: 70, G: 1, softplus: true},             // 32 lanes a channel
		{B: 2, D: 3, L: 41, N: 200, G: 1, softplus: true, h0: true},  // 16 states a lane
		{B: 1, D: 64, L: 1000, N: 16, G: 1, softplus: true},
		// The chunked kernels: several chunks, an unaligned L, a partial
		// last block, several blocks a group, N up to 256, B·D of 1.
		{B: 1, D: 1, L: 4097, N: 16, G: 1, softplus: true, h0: true},
		{B: 2, D: 36, L: 1030, N: 16, G: 2, softplus: true, h0: true},
		{B: 1, D: 20, L: 515, N: 256, G: 1, softplus: true},
		{B: 3, D: 9, L: 2, N: 3, G: 1, noZ: true, softplus: true, h0: true},
	})
	for _, dt := range dtypes {
		for _, s := range shapes {
			for _, seq := range []bool{false, true} {
				if seq && (s.L > 1000 || s.L < 2) {
					continue // the one-step kernels are checked at the shorter lengths
				}
				path := "chunked"
				if seq || s.L < 2 {
					path = "sequential"
				}
				name := fmt.Sprintf("%s/%s/B%d_D%d_L%d_N%d_G%d", dt, path, s.B, s.D, s.L, s.N, s.G)
				t.Run(name, func(t *testing.T) { scanCheck(t, dt, s, seq) })
			}
		}
	}
}

func scanCheck(t *testing.T, dt nn.DType, s scanShape, sequential bool) {
	B, D, L, N, G := s.B, s.D, s.L, s.N, s.G
	nBDL, nBGNL := B*D*L, B*G*N*L
	ck := newChecker(t, dt, "SelectiveScan", uint64(nBDL*N+G))
	ck.g.scanSequential = sequential
	defer func() { ck.g.scanSequential = false }()
	// ga and ca are the same inputs on the GPU and on the CPU.
	ga := nn.ScanArgs{B: B, D: D, L: L, N: N, G: G, DeltaSoftplus: s.softplus}
	ca := ga
	set := func(p pair, g, c *nn.Buffer) { *g, *c = p.g, p.c }
	set(ck.in(ck.randn(nBDL, 1)), &ga.U, &ca.U)
	delta := ck.randn(nBDL, 1)
	if !s.softplus {
		for i := range delta {
			delta[i] = 0.05 + 0.5*math.Abs(delta[i])
		}
	}
	set(ck.in(delta), &ga.Delta, &ca.Delta)
	Av := ck.randn(D*N, 0.5)
	for i := range Av {
		Av[i] = -math.Exp(Av[i])
	}
	set(ck.in(Av), &ga.A, &ca.A)
	set(ck.in(ck.randn(nBGNL, 1)), &ga.Bm, &ca.Bm)
	set(ck.in(ck.randn(nBGNL, 1)), &ga.Cm, &ca.Cm)
	if !s.noD {
		set(ck.in(ck.randn(D, 1)), &ga.Dskip, &ca.Dskip)
	}
	if !s.noZ {
		set(ck.in(ck.randn(nBDL, 1)), &ga.Z, &ca.Z)
	}
	set(ck.in(ck.randn(D, 0.5)), &ga.DeltaBias, &ca.DeltaBias)
	if s.h0 {
		set(ck.in(ck.randn(B*D*N, 1)), &ga.H0, &ca.H0)
	}
	out, hT := ck.out(nBDL, false), ck.out(B*D*N, false)
	ck.g.SelectiveScan(out.g, hT.g, ga)
	ck.c.SelectiveScan(out.c, hT.c, ca)
	ck.fwd("out", out)
	ck.fwd("hT", hT)

	dout := ck.in(ck.randn(nBDL, 1))
	grads := map[string]pair{
		"dU": ck.acc(nBDL, false), "dDelta": ck.acc(nBDL, false), "dA": ck.acc(D*N, false),
		"dBm": ck.acc(nBGNL, false), "dCm": ck.acc(nBGNL, false), "dDeltaBias": ck.acc(D, false),
	}
	if !s.noD {
		grads["dDskip"] = ck.acc(D, false)
	}
	if !s.noZ {
		grads["dZ"] = ck.acc(nBDL, false)
	}
	side := func(c bool) nn.ScanGrads {
		get := func(k string) nn.Buffer {
			p, ok := grads[k]
			if !ok {
				return nil
			}
			if c {
				return p.c
			}
			return p.g
		}
		return nn.ScanGrads{U: get("dU"), Delta: get("dDelta"), A: get("dA"), Bm: get("dBm"), Cm: get("dCm"),
			Dskip: get("dDskip"), Z: get("dZ"), DeltaBias: get("dDeltaBias")}
	}
	ck.g.SelectiveScanBackward(side(false), ga, dout.g)
	ck.c.SelectiveScanBackward(side(true), ca, dout.c)
	for _, k := range []string{"dU", "dDelta", "dA", "dBm", "dCm", "dDskip", "dZ", "dDeltaBias"} {
		if p, ok := grads[k]; ok {
			ck.grad(k, p)
		}
	}
}
