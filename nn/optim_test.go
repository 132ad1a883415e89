package nn_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

func TestScheduleGolden(t *testing.T) {
	cos := nn.NewSchedule("cosine", 1e-3, 10, 110)
	constant := nn.NewSchedule("constant", 1e-3, 4, 100)
	noFloor := nn.Schedule{Kind: "cosine", Base: 2, Total: 100}
	for i, tc := range []struct {
		s    nn.Schedule
		step int
		want float64
	}{
		{cos, 0, 1e-4}, // warmup starts at Base/Warmup, not 0
		{cos, 4, 5e-4},
		{cos, 9, 1e-3},
		{cos, 10, 1e-3},                  // cosine starts at Base
		{cos, 35, 8.681980515339464e-4},  // 1e-4 + 9e-4·(1+cos(π/4))/2
		{cos, 60, 5.5e-4},                // halfway
		{cos, 85, 2.3180194846605362e-4}, // 1e-4 + 9e-4·(1−cos(π/4))/2
		{cos, 110, 1e-4},                 // floor at Total
		{cos, 1000, 1e-4},                // and after
		{constant, 0, 2.5e-4},
		{constant, 3, 1e-3},
		{constant, 4, 1e-3},
		{constant, 1000, 1e-3},
		{noFloor, 0, 2},
		{noFloor, 50, 1},
		{noFloor, 100, 0},
	} {
		if got := tc.s.At(tc.step); math.Abs(got-tc.want) > 1e-15*math.Max(1, tc.want) {
			t.Errorf("case %d: %s At(%d) = %.17g, want %.17g", i, tc.s.Kind, tc.step, got, tc.want)
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	if err := nn.NewSchedule("cosine", 1e-3, 10, 110).Validate(); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		s    nn.Schedule
		want string
	}{
		{nn.NewSchedule("linear", 1e-3, 0, 10), "schedule"},
		{nn.NewSchedule("cosine", math.NaN(), 0, 10), "lr"},
		{nn.NewSchedule("cosine", 1e-3, -1, 10), "warmup"},
		{nn.NewSchedule("cosine", 1e-3, 10, 10), "warmup"},
		{nn.Schedule{Kind: "constant", Base: 1, MinRatio: 2}, "min_lr_ratio"},
	} {
		err := tc.s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("case %d: error %v, want one naming %s", i, err, tc.want)
		}
	}
}

// optQuadratic sets the gradient of ½·Σ a_i (x_i − c_i)² and returns its value.
func optQuadratic(b nn.Backend, p *nn.Tensor, a, c []float64) float64 {
	x := b.Read(p.Data)
	g := make([]float64, len(x))
	f := 0.0
	for i := range x {
		g[i] = a[i] * (x[i] - c[i])
		f += 0.5 * a[i] * (x[i] - c[i]) * (x[i] - c[i])
	}
	b.Write(p.Grad(), g)
	return f
}

// AdamW with a cosine schedule must drive an ill-conditioned quadratic
// (curvatures over 4 decades) to its minimum: Adam's per-coordinate scaling
// is what makes that work.
func TestAdamWQuadratic(t *testing.T) {
	b := cpukernels.New[float64]()
	p := nn.NewParam(b, 4)
	b.Write(p.Data, []float64{3, -2, 0.5, 10})
	a := []float64{1e-2, 1, 10, 100}
	c := []float64{1, 2, -3, 4}
	opt := nn.NewAdamW(b, []nn.Param{{Name: "x", T: p, Decay: true}}, 0) // no decay: the minimum stays at c
	sched := nn.Schedule{Kind: "cosine", Base: 0.1, Warmup: 10, Total: 2000, MinRatio: 0}
	f0 := optQuadratic(b, p, a, c)
	for step := range sched.Total {
		optQuadratic(b, p, a, c)
		opt.Step(sched.At(step))
	}
	x := b.Read(p.Data)
	for i := range x {
		if math.Abs(x[i]-c[i]) > 1e-3 {
			t.Errorf("x[%d] = %g, want %g (f0 %g)", i, x[i], c[i], f0)
		}
	}
	if opt.Steps != sched.Total {
		t.Errorf("Steps = %d, want %d", opt.Steps, sched.Total)
	}
}

// The first step is exactly lr·g/(|g|+eps) (bias correction makes m̂ = g,
// v̂ = g²) plus decoupled decay lr·wd·p for Decay params only; a tensor
// listed twice is updated once.
func TestAdamWFirstStep(t *testing.T) {
	b := cpukernels.New[float64]()
	w, n := nn.NewParam(b, 3), nn.NewParam(b, 3)
	p0 := []float64{1, -2, 3}
	g := []float64{0.5, 0, -4}
	for _, x := range []*nn.Tensor{w, n} {
		b.Write(x.Data, p0)
		b.Write(x.Grad(), g)
	}
	const lr, wd = 0.1, 0.5
	opt := nn.NewAdamW(b, []nn.Param{{Name: "w", T: w, Decay: true}, {Name: "n", T: n}, {Name: "tied", T: w, Decay: true}}, wd)
	if len(opt.Slots()) != 2 {
		t.Fatalf("%d slots, want 2 (tied tensor once)", len(opt.Slots()))
	}
	opt.Step(lr)
	gotW, gotN := b.Read(w.Data), b.Read(n.Data)
	for i := range p0 {
		adam := lr * g[i] / (math.Abs(g[i]) + 1e-8)
		if want := p0[i] - adam - lr*wd*p0[i]; math.Abs(gotW[i]-want) > 1e-12 {
			t.Errorf("decayed w[%d] = %.15g, want %.15g", i, gotW[i], want)
		}
		if want := p0[i] - adam; math.Abs(gotN[i]-want) > 1e-12 {
			t.Errorf("undecayed n[%d] = %.15g, want %.15g", i, gotN[i], want)
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	b := cpukernels.New[float64]()
	x, y := nn.NewParam(b, 1), nn.NewParam(b, 1)
	ps := []nn.Param{{Name: "x", T: x}, {Name: "y", T: y}, {Name: "x_tied", T: x}}
	set := func(gx, gy float64) {
		b.Write(x.Grad(), []float64{gx})
		b.Write(y.Grad(), []float64{gy})
	}
	grads := func() (float64, float64) { return b.Read(x.Grad())[0], b.Read(y.Grad())[0] }

	set(3, 4)
	if norm := nn.ClipGradNorm(b, ps, 10); norm != 5 {
		t.Errorf("norm %g, want 5 (tied tensor counted once)", norm)
	}
	if gx, gy := grads(); gx != 3 || gy != 4 {
		t.Errorf("below max: grads changed to %g, %g", gx, gy)
	}

	if norm := nn.ClipGradNorm(b, ps, 1); norm != 5 {
		t.Errorf("norm %g, want the pre-clip 5", norm)
	}
	s := 1 / (5 + 1e-6)
	if gx, gy := grads(); math.Abs(gx-3*s) > 1e-15 || math.Abs(gy-4*s) > 1e-15 {
		t.Errorf("clipped grads %g, %g, want %g, %g", gx, gy, 3*s, 4*s)
	}

	set(math.Inf(1), 4)
	if norm := nn.ClipGradNorm(b, ps, 1); !math.IsInf(norm, 1) {
		t.Errorf("norm %g, want +Inf", norm)
	}
	if gx, gy := grads(); !math.IsInf(gx, 1) || gy != 4 {
		t.Errorf("non-finite norm: grads changed to %g, %g", gx, gy)
	}
}

// batchReducer is a CPU backend that answers SumSquaresEach itself and
// counts how the clip asks for its sums.
type batchReducer struct {
	nn.Backend
	each, single int
}

func (r *batchReducer) SumSquaresEach(xs []nn.Buffer) []float64 {
	r.each++
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = r.Backend.SumSquares(x)
	}
	return out
}

func (r *batchReducer) SumSquares(x nn.Buffer) float64 {
	r.single++
	return r.Backend.SumSquares(x)
}

// On a backend that reduces many buffers in one round trip the clip asks
// once per step, whatever the number of parameters.
func TestClipGradNormOneRoundTrip(t *testing.T) {
	b := &batchReducer{Backend: cpukernels.New[float64]()}
	var ps []nn.Param
	for i := range 5 {
		p := nn.NewParam(b, 2)
		b.Write(p.Grad(), []float64{float64(i), 1})
		ps = append(ps, nn.Param{Name: fmt.Sprint("p", i), T: p})
	}
	if norm := nn.ClipGradNorm(b, ps, 0); norm != math.Sqrt(0+1+2+5+10+17) {
		t.Errorf("norm %g, want √35", norm)
	}
	if b.each != 1 || b.single != 0 {
		t.Errorf("ClipGradNorm made %d SumSquaresEach and %d SumSquares calls, want 1 and 0", b.each, b.single)
	}
}

// Weight-decay policies and parameter groups, on the exact first step:
// matrices decays Decay params only; DecayAll decays every param; a group
// with NoDecay is never decayed, and its MaxLR scales its learning rate by
// MaxLR/BaseLR (the same schedule at a lower peak).
func TestAdamWPolicyAndGroups(t *testing.T) {
	const lr, base, wd = 0.05, 0.1, 0.5
	kernel := &nn.ParamGroup{Name: "kernel", MaxLR: 1e-3, NoDecay: true}
	capped := &nn.ParamGroup{Name: "capped", MaxLR: 1e-3}
	p0 := []float64{1, -2, 3}
	g := []float64{0.5, 0, -4}
	for _, all := range []bool{false, true} {
		b := cpukernels.New[float64]()
		ts := make([]*nn.Tensor, 4)
		for i := range ts {
			ts[i] = nn.NewParam(b, 3)
			b.Write(ts[i].Data, p0)
			b.Write(ts[i].Grad(), g)
		}
		opt := nn.NewAdamW(b, []nn.Param{{Name: "w", T: ts[0], Decay: true}, {Name: "n", T: ts[1]},
			{Name: "k", T: ts[2], Group: kernel}, {Name: "c", T: ts[3], Group: capped}}, wd)
		opt.DecayAll, opt.BaseLR = all, base
		opt.Step(lr)
		for j, tc := range []struct {
			lr    float64
			decay bool
		}{{lr, true}, {lr, all}, {lr * 1e-3 / base, false}, {lr * 1e-3 / base, all}} {
			got := b.Read(ts[j].Data)
			for i := range p0 {
				want := p0[i] - tc.lr*g[i]/(math.Abs(g[i])+1e-8)
				if tc.decay {
					want -= tc.lr * wd * p0[i]
				}
				if math.Abs(got[i]-want) > 1e-12 {
					t.Errorf("all=%v param %d [%d] = %.15g, want %.15g (lr %g, decay %v)", all, j, i, got[i], want, tc.lr, tc.decay)
				}
			}
		}
	}
}

// LR: no group or no cap leaves lr; a cap above BaseLR leaves it; with
// BaseLR 0 the cap is min(lr, MaxLR) at each step.
func TestAdamWGroupLR(t *testing.T) {
	b := cpukernels.New[float64]()
	opt := nn.NewAdamW(b, nil, 0)
	p := nn.Param{Name: "p", Group: &nn.ParamGroup{MaxLR: 1e-3}}
	for i, tc := range []struct {
		base, lr, want float64
		p              nn.Param
	}{
		{0.01, 0.005, 0.005, nn.Param{Name: "free"}},
		{0.01, 0.005, 0.0005, p},
		{1e-4, 5e-5, 5e-5, p},
		{0, 0.005, 1e-3, p},
		{0, 5e-4, 5e-4, p},
	} {
		opt.BaseLR = tc.base
		if got := opt.LR(tc.p, tc.lr); math.Abs(got-tc.want) > 1e-18 {
			t.Errorf("case %d: LR = %g, want %g", i, got, tc.want)
		}
	}
}
