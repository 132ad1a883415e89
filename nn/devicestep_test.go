package nn_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

// stepParams is three parameters with random weights and gradients, one
// of them in a group of its own (its own lr) and one exempt from decay.
func stepParams(be nn.Backend, rng *rand.Rand, gscale float64) []nn.Param {
	g := &nn.ParamGroup{Name: "slow", MaxLR: 1e-3, NoDecay: true}
	ps := []nn.Param{
		{Name: "w", T: nn.NewParam(be, 4, 3), Decay: true},
		{Name: "b", T: nn.NewParam(be, 3)},
		{Name: "a", T: nn.NewParam(be, 5), Group: g},
	}
	for _, p := range ps {
		w, gr := make([]float64, p.T.Len()), make([]float64, p.T.Len())
		for i := range w {
			w[i], gr[i] = rng.NormFloat64(), gscale*rng.NormFloat64()
		}
		be.Write(p.T.Data, w)
		be.Write(p.T.Grad(), gr)
	}
	return ps
}

func paramValues(be nn.Backend, ps []nn.Param) []float64 {
	var out []float64
	for _, p := range ps {
		out = append(out, be.Read(p.T.Data)...)
	}
	return out
}

// StepClipped is GradNorm, ClipFactor and StepScaled bit for bit, with the
// norm and the loss left in the stats; a non-finite loss or norm updates
// nothing and says so.
func TestAdamWStepClipped(t *testing.T) {
	for _, be := range []nn.Backend{cpukernels.New[float32](), cpukernels.New[float64]()} {
		for _, c := range []struct {
			name          string
			gscale, clip  float64
			loss          float64
			wantSkip      bool
			nanInGradient bool
		}{
			{"clipped", 10, 1, 2.5, false, false},
			{"below the clip", 0.01, 1, 2.5, false, false},
			{"no clip", 10, 0, 2.5, false, false},
			{"nan loss", 1, 1, math.NaN(), true, false},
			{"inf gradient", 1, 1, 2.5, true, true},
		} {
			t.Run(be.Name()+"/"+c.name, func(t *testing.T) {
				run := func(clipped bool) (params []float64, norm, loss float64, skipped bool, steps int) {
					ps := stepParams(be, rand.New(rand.NewPCG(1, 2)), c.gscale)
					if c.nanInGradient {
						g := be.Read(ps[1].T.Grad())
						g[2] = math.Inf(1)
						be.Write(ps[1].T.Grad(), g)
					}
					o := nn.NewAdamW(be, ps, 0.1)
					o.BaseLR = 3e-3
					lossBuf := be.Alloc(1)
					be.Fill(lossBuf, c.loss)
					if clipped {
						st := nn.NewStepStats(be)
						o.StepClipped(3e-3, c.clip, lossBuf, st)
						norm, loss, skipped = nn.ReadStats(be, st)
					} else {
						norm, loss = nn.GradNorm(be, ps), be.Read(lossBuf)[0]
						skipped = math.IsNaN(norm) || math.IsInf(norm, 0) || math.IsNaN(loss)
						if !skipped {
							o.StepScaled(3e-3, nn.ClipFactor(norm, c.clip))
						}
					}
					return paramValues(be, ps), norm, loss, skipped, o.Steps
				}
				want, wantNorm, wantLoss, wantSkip, _ := run(false)
				got, norm, loss, skipped, steps := run(true)
				if skipped != c.wantSkip || wantSkip != c.wantSkip {
					t.Fatalf("skipped %v (the host's way %v), want %v", skipped, wantSkip, c.wantSkip)
				}
				if math.Float64bits(norm) != math.Float64bits(wantNorm) || !(loss == wantLoss || math.IsNaN(loss) && math.IsNaN(wantLoss)) {
					t.Errorf("stats norm %v loss %v, want %v and %v", norm, loss, wantNorm, wantLoss)
				}
				if !slices.Equal(got, want) {
					t.Errorf("parameters %v, want %v", got, want)
				}
				if steps != 1 {
					t.Errorf("%d steps counted, want 1", steps)
				}
			})
		}
	}
}

// The host definitions of the device-side loss: the mean over counted
// targets and its gradient, 0 with none counted; the argmax into a buffer.
func TestHostDeviceLoss(t *testing.T) {
	be := cpukernels.New[float32]()
	loss := be.Alloc(4)
	be.Write(loss, []float64{1, 2, 0, 4})
	out, g, dl := be.Alloc(1), be.Alloc(1), be.Alloc(3)
	be.Fill(g, 3)
	for _, c := range []struct {
		targets    []int32
		mean, grad float64
	}{
		{[]int32{5, 6, -1, 7}, 7.0 / 3, 1},
		{[]int32{-1, -1, -1, -1}, 0, 0},
	} {
		nn.MeanLoss(be, out, loss, c.targets, -1)
		if got := be.Read(out)[0]; got != float64(float32(c.mean)) {
			t.Errorf("targets %v: mean %v, want %v", c.targets, got, c.mean)
		}
		nn.MeanLossGrad(be, dl, g, c.targets, -1)
		if got := be.Read(dl); got[2] != float64(float32(c.grad)) {
			t.Errorf("targets %v: gradient %v, want %v", c.targets, got, c.grad)
		}
	}
	x := be.Alloc(6)
	be.Write(x, []float64{1, 3, 2, 5, 5, 0})
	idx := be.Alloc(2)
	nn.ArgmaxRowsInto(be, idx, x, 2, 3)
	if got := be.Read(idx); !slices.Equal(got, []float64{1, 0}) {
		t.Errorf("argmax %v, want [1 0]", got)
	}
}
