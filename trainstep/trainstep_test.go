package trainstep_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	_ "seqbench/arch/mamba1"
	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/trainstep"
)

// failingCapturer is a CPU backend with the device-side step ops (nn's
// host ways) whose captures always fail, as a capture on a GPU does when
// an op inside it waits for the device.
type failingCapturer struct {
	nn.Backend
	captures []int // the optimizer's step count at each capture
	opt      *nn.AdamW
}

func (f *failingCapturer) Capture(fn func()) (nn.Graph, error) {
	f.captures = append(f.captures, f.opt.Steps)
	// A real capture runs fn's host code (the update counts its step)
	// but none of its device work, then fails.
	f.opt.Steps++
	return nil, errors.New("an op waits for the device")
}

func (f *failingCapturer) MeanLoss(out, loss nn.Buffer, targets []int32, ignore int32) {
	nn.HostMeanLoss(f.Backend, out, loss, targets, ignore)
}
func (f *failingCapturer) MeanLossGrad(dloss, g nn.Buffer, targets []int32, ignore int32) {
	nn.HostMeanLossGrad(f.Backend, dloss, g, targets, ignore)
}
func (f *failingCapturer) NewStepStats() nn.Buffer { return nn.NewHostStats() }
func (f *failingCapturer) AdamWClipped(ts []nn.AdamWTensor, a *nn.AdamWArgs, maxNorm float64, loss, stats nn.Buffer) {
	nn.HostAdamWClipped(f.Backend, ts, a, maxNorm, loss, stats)
}
func (f *failingCapturer) ArgmaxRowsInto(dst, x nn.Buffer, rows, cols int) {
	nn.HostArgmaxRowsInto(f.Backend, dst, x, rows, cols)
}

// steps trains a small Mamba-1 for n steps on be and returns each step's
// loss and gradient norm, the predictions of the steps that asked, and
// the final weights.
func steps(t *testing.T, be nn.Backend, graph bool, onOpt func(*nn.AdamW)) (losses []float64, preds [][]int32, weights []float64, log string) {
	t.Helper()
	var node yaml.Node
	if err := yaml.Load([]byte("{arch: mamba1, d_model: 16, n_layers: 2}"), &node); err != nil {
		t.Fatal(err)
	}
	cfg, err := arch.Decode(node.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	const V, B, L = 20, 2, 8
	m, err := cfg.Build(arch.Env{Backend: be, Vocab: V, MaxLen: L, RNG: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	ps := m.Params()
	opt := nn.NewAdamW(be, ps, 0.1)
	if onOpt != nil {
		onOpt(opt)
	}
	var sb strings.Builder
	run := trainstep.New(be, m, ps, opt, trainstep.Options{GradClip: 0.1, Ignore: -1, Graph: graph, Log: &sb})
	defer run.Free()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 4 {
		b := trainstep.Batch{Inputs: make([]int32, B*L), Targets: make([]int32, B*L), B: B, L: L}
		for j := range b.Inputs {
			b.Inputs[j], b.Targets[j] = int32(rng.IntN(V)), int32(rng.IntN(V))
		}
		b.Targets[3] = -1
		r := run.Step(b, 1e-2/float64(i+1), i%2 == 1)
		if r.Replayed || r.Skipped {
			t.Fatalf("step %d: replayed %v, skipped %v", i, r.Replayed, r.Skipped)
		}
		losses = append(losses, r.Loss, r.GradNorm)
		preds = append(preds, r.Pred)
	}
	if opt.Steps != 4 {
		t.Errorf("the optimizer counted %d steps, want 4", opt.Steps)
	}
	for _, p := range ps {
		weights = append(weights, be.Read(p.T.Data)...)
	}
	return losses, preds, weights, sb.String()
}

// A Runner steps eagerly where the backend cannot capture; where a capture
// fails (attempted once, at the second step of a shape, after an eager
// one) it says why once, leaves the optimizer as it was and trains on
// eagerly with the same results.
func TestRunnerCaptureFails(t *testing.T) {
	cpu := cpukernels.New[float64]()
	wantL, wantP, wantW, log := steps(t, cpu, true, nil)
	if log != "" {
		t.Errorf("a backend without graphs logged %q", log)
	}
	for i, p := range wantP {
		if (p != nil) != (i%2 == 1) {
			t.Errorf("step %d: predictions %v, asked for %v", i, p, i%2 == 1)
		}
	}
	fc := &failingCapturer{Backend: cpu}
	gotL, gotP, gotW, log := steps(t, fc, true, func(o *nn.AdamW) { fc.opt = o })
	if !strings.Contains(log, "an op waits for the device") || strings.Count(log, "\n") != 1 {
		t.Errorf("log %q, want one line with the capture's error", log)
	}
	if !slices.Equal(fc.captures, []int{1}) {
		t.Errorf("captures at optimizer steps %v, want one after the first step", fc.captures)
	}
	if !slices.EqualFunc(gotL, wantL, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }) ||
		!slices.EqualFunc(gotP, wantP, slices.Equal) || !slices.Equal(gotW, wantW) {
		t.Errorf("after a failed capture: losses %v, want %v (predictions and weights equal: %v %v)", gotL, wantL,
			slices.EqualFunc(gotP, wantP, slices.Equal), slices.Equal(gotW, wantW))
	}
}
