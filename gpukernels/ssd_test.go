package gpukernels

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"seqbench/nn"
)

type ssdShape struct {
	B, L, H, P, G, N, Q int
	softplus, h0, noD   bool
}

func TestGPUSSD(t *testing.T) {
	needGPU(t)
	shapes := seqShapes(t, []ssdShape{
		{B: 1, L: 1, H: 1, P: 1, G: 1, N: 1, Q: 8, softplus: true},
		{B: 2, L: 37, H: 4, P: 3, G: 2, N: 5, Q: 8, softplus: true, h0: true},
		{B: 1, L: 29, H: 3, P: 5, G: 1, N: 3, Q: 16, noD: true},
		{B: 3, L: 13, H: 2, P: 1, G: 2, N: 33, Q: 4, softplus: true}, // 16 states a lane
	}, []ssdShape{
		{B: 2, L: 100, H: 4, P: 64, G: 1, N: 64, Q: 32, softplus: true, h0: true},
		{B: 1, L: 77, H: 6, P: 17, G: 3, N: 130, Q: 16, softplus: true},
		{B: 2, L: 300, H: 2, P: 7, G: 2, N: 1, Q: 64, softplus: true},
	})
	for _, dt := range dtypes {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("%s/B%d_L%d_H%d_P%d_G%d_N%d", dt, s.B, s.L, s.H, s.P, s.G, s.N), func(t *testing.T) {
				ssdCheck(t, dt, s)
			})
		}
	}
}

func ssdCheck(t *testing.T, dt nn.DType, s ssdShape) {
	B, L, H, P, G, N := s.B, s.L, s.H, s.P, s.G, s.N
	nx, nd, nbc := B*L*H*P, B*L*H, B*L*G*N
	ck := newChecker(t, dt, "SSD", uint64(nx+N))
	ga := nn.SSDArgs{B: B, L: L, H: H, P: P, G: G, N: N, Chunk: s.Q, DtSoftplus: s.softplus}
	ca := ga
	set := func(p pair, g, c *nn.Buffer) { *g, *c = p.g, p.c }
	set(ck.in(ck.randn(nx, 1)), &ga.X, &ca.X)
	dts := ck.randn(nd, 0.5)
	for i := range dts {
		if s.softplus {
			dts[i] -= 1
		} else {
			dts[i] = 0.05 + 0.3*math.Abs(dts[i])
		}
	}
	set(ck.in(dts), &ga.Dt, &ca.Dt)
	A := ck.randn(H, 0.5)
	for i := range A {
		A[i] = -math.Exp(A[i])
	}
	set(ck.in(A), &ga.A, &ca.A)
	set(ck.in(ck.randn(nbc, 1)), &ga.Bm, &ca.Bm)
	set(ck.in(ck.randn(nbc, 1)), &ga.Cm, &ca.Cm)
	if !s.noD {
		set(ck.in(ck.randn(H, 1)), &ga.Dskip, &ca.Dskip)
	}
	bias := ck.randn(H, 0.3)
	if !s.softplus {
		for i := range bias {
			bias[i] = math.Abs(bias[i])
		}
	}
	set(ck.in(bias), &ga.DtBias, &ca.DtBias)
	if s.h0 {
		set(ck.in(ck.randn(B*H*P*N, 1)), &ga.H0, &ca.H0)
	}
	out, hT := ck.out(nx, false), ck.out(B*H*P*N, false)
	ck.g.SSD(out.g, hT.g, ga)
	ck.c.SSD(out.c, hT.c, ca)
	ck.fwd("out", out)
	ck.fwd("hT", hT)

	dout := ck.in(ck.randn(nx, 1))
	grads := map[string]pair{"dX": ck.acc(nx, false), "dDt": ck.acc(nd, false), "dA": ck.acc(H, false),
		"dBm": ck.acc(nbc, false), "dCm": ck.acc(nbc, false), "dDtBias": ck.acc(H, false)}
	if !s.noD {
		grads["dDskip"] = ck.acc(H, false)
	}
	side := func(c bool) nn.SSDGrads {
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
		return nn.SSDGrads{X: get("dX"), Dt: get("dDt"), A: get("dA"), Bm: get("dBm"), Cm: get("dCm"),
			Dskip: get("dDskip"), DtBias: get("dDtBias")}
	}
	ck.g.SSDBackward(side(false), ga, dout.g)
	ck.c.SSDBackward(side(true), ca, dout.c)
	for _, k := range []string{"dX", "dDt", "dA", "dBm", "dCm", "dDskip", "dDtBias"} {
		if p, ok := grads[k]; ok {
			ck.grad(k, p)
		}
	}
}

// TestSSDKernelActivationParams pins which parameters of the SSD kernels
// are activations (act_t: bf16 in the bfloat16 build) against
// docs/PRECISION.md's table; every other pointer is real or double (the
// parameters, H0, hT, the parameters' gradients and the scratch), which
// SSD and SSDBackward check with actType and wantOwn before launching.
func TestSSDKernelActivationParams(t *testing.T) {
	src, err := kernelSource("ssd", nn.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := kernelParams(src)
	if err != nil {
		t.Fatal(err)
	}
	fwd := []string{"out", "x", "dt", "Bm", "Cm"}
	bwdF := []string{"dCm", "dout", "x", "dt", "Bm", "Cm"}
	bwdR := []string{"dX", "dBm", "dout", "x", "dt", "Bm", "Cm"}
	want := map[string][]string{
		"ssd_fwd_4": fwd, "ssd_fwd_16": fwd, "ssd_fwd_64": fwd,
		"ssd_bwd_f_4": bwdF, "ssd_bwd_f_16": bwdF, "ssd_bwd_f_64": bwdF,
		"ssd_bwd_r_4": bwdR, "ssd_bwd_r_16": bwdR, "ssd_bwd_r_64": bwdR,
		"ssd_bwd_dt": {"dDt", "dt"}, "ssd_add_parts_r": {"out"}, "ssd_add_parts": nil,
	}
	if len(sigs) != len(want) {
		t.Errorf("ssd.cu has %d kernels, the test knows %d: %v", len(sigs), len(want), sigs)
	}
	for k, acts := range want {
		ps, ok := sigs[k]
		if !ok {
			t.Errorf("ssd.cu has no kernel %s", k)
			continue
		}
		var got []string
		for _, p := range ps {
			words := strings.Fields(strings.ReplaceAll(p, "*", " * "))
			name := words[len(words)-1]
			switch {
			case slices.Contains(words, "act_t"):
				got = append(got, name)
			case slices.Contains(words, "*") && !slices.Contains(words, "real") && !slices.Contains(words, "double"):
				t.Errorf("%s: pointer parameter %q is neither act_t, real nor double", k, p)
			}
		}
		if !slices.Equal(got, acts) {
			t.Errorf("%s: act_t parameters %v, want %v", k, got, acts)
		}
	}
}
