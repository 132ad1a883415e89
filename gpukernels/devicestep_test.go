package gpukernels

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/nn"
	"seqbench/trainstep"
)

// The device-side step ops give what nn's host definitions give, bit for
// bit: the mean loss and its gradient (counted targets, none counted),
// the argmax into a buffer (ties, bfloat16 rows), and the clipped, guarded
// update (clip on and off, a NaN loss, an infinite gradient), in float32
// and bfloat16.
func TestGPUDeviceStep(t *testing.T) {
	f32 := gpu(t, nn.Float32)
	bf, err := newBF16(f32)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []nn.MixedBackend{mixedOf(f32), bf} {
		rng := rand.New(rand.NewPCG(5, 6))
		normals := func(n int) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			return v
		}
		t.Run(b.Name()+"/MeanLoss", func(t *testing.T) {
			const rows = 1000
			loss := b.Alloc(rows)
			b.Write(loss, normals(rows))
			g := b.Alloc(1)
			b.Fill(g, 0.37)
			for _, ignored := range []int{0, 313, rows} {
				targets := make([]int32, rows)
				for i := range ignored {
					targets[i] = -100
				}
				got, want := b.Alloc(1), b.Alloc(1)
				b.(nn.DeviceLoss).MeanLoss(got, loss, targets, -100)
				nn.HostMeanLoss(b, want, loss, targets, -100)
				if g, w := b.Read(got)[0], b.Read(want)[0]; math.Float64bits(g) != math.Float64bits(w) {
					t.Errorf("%d ignored: mean %v, the host's %v", ignored, g, w)
				}
				for _, up := range []nn.Buffer{nil, g} {
					got, want := b.Alloc(77), b.Alloc(77)
					b.(nn.DeviceLoss).MeanLossGrad(got, up, targets, -100)
					nn.HostMeanLossGrad(b, want, up, targets, -100)
					if g, w := b.Read(got), b.Read(want); !slices.Equal(g, w) {
						t.Errorf("%d ignored, upstream %v: gradient %v, the host's %v", ignored, up != nil, g[:3], w[:3])
					}
				}
			}
		})
		t.Run(b.Name()+"/ArgmaxRowsInto", func(t *testing.T) {
			const rows, cols = 37, 1031
			x := b.AllocAs(rows*cols, b.ActDType())
			v := normals(rows * cols)
			for i := range v {
				v[i] = math.Round(v[i] * 2) // many ties
			}
			b.Write(x, v)
			dst := b.Alloc(rows)
			b.(nn.ArgmaxSetter).ArgmaxRowsInto(dst, x, rows, cols)
			want := b.ArgmaxRows(x, rows, cols)
			for i, g := range b.Read(dst) {
				if int32(g) != want[i] {
					t.Fatalf("row %d: %v, ArgmaxRows %d", i, g, want[i])
				}
			}
		})
		for _, c := range []struct {
			name         string
			gscale, clip float64
			loss         float64
			infGrad      bool
		}{
			{"clipped", 10, 1, 2.5, false},
			{"below_clip", 0.01, 1, 2.5, false},
			{"no_clip", 10, 0, 2.5, false},
			{"nan_loss", 1, 1, math.NaN(), false},
			{"inf_gradient", 1, 1, 2.5, true},
		} {
			t.Run(b.Name()+"/AdamWClipped/"+c.name, func(t *testing.T) {
				// run updates fresh tensors (the same values each time) by
				// device or by the host's definition, and returns every
				// parameter, moment and copy, and the stats.
				run := func(device bool) (vals [][]float64, stats []float64) {
					r := rand.New(rand.NewPCG(7, 8))
					var ts []nn.AdamWTensor
					for i, n := range []int{5, 70000, 1, 8193} {
						p, g, m, v := b.Alloc(n), b.Alloc(n), b.Alloc(n), b.Alloc(n)
						pv, gv := make([]float64, n), make([]float64, n)
						for j := range pv {
							pv[j], gv[j] = r.NormFloat64(), c.gscale*r.NormFloat64()
						}
						if c.infGrad && i == 2 {
							gv[0] = math.Inf(-1)
						}
						b.Write(p, pv)
						b.Write(g, gv)
						ts = append(ts, nn.AdamWTensor{P: p, G: g, M: m, V: v, Copy: b.AllocAs(n, b.ActDType()),
							LR: 1e-3 * float64(i+1), WeightDecay: 0.1 * float64(i%2)})
					}
					a := &nn.AdamWArgs{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Step: 3}
					loss := b.Alloc(1)
					b.Fill(loss, c.loss)
					if device {
						st := b.(nn.ClippedAdamW).NewStepStats()
						b.(nn.ClippedAdamW).AdamWClipped(ts, a, c.clip, loss, st)
						stats = b.Read(st)[:3]
					} else {
						st := nn.NewHostStats()
						nn.HostAdamWClipped(b, ts, a, c.clip, loss, st)
						stats = st.(nn.HostStats)
					}
					for _, t := range ts {
						for _, x := range []nn.Buffer{t.P, t.M, t.V, t.Copy} {
							vals = append(vals, b.Read(x))
						}
					}
					return vals, stats
				}
				got, gs := run(true)
				want, ws := run(false)
				for i := range 3 {
					if !(math.Float64bits(gs[i]) == math.Float64bits(ws[i]) || math.IsNaN(gs[i]) && math.IsNaN(ws[i])) {
						t.Errorf("stats %v, the host's %v", gs, ws)
						break
					}
				}
				for i := range want {
					if !slices.Equal(got[i], want[i]) {
						t.Fatalf("buffer %d (tensor %d): %v…, the host's %v…", i, i/4, got[i][:1], want[i][:1])
					}
				}
			})
		}
	}
}

// mixedOf is the float32 backend as a MixedBackend whose activations are
// float32 (the test's loop runs both precisions through one interface).
func mixedOf(be *Backend) nn.MixedBackend { return f32Mixed{be} }

type f32Mixed struct{ *Backend }

func (m f32Mixed) AllocAs(n int, dt nn.DType) nn.Buffer {
	if dt != nn.Float32 {
		panic(fmt.Sprintf("f32Mixed.AllocAs: %v", dt))
	}
	return m.Alloc(n)
}
func (m f32Mixed) ActDType() nn.DType { return nn.Float32 }

// A training step captured as a graph and replayed gives the losses,
// gradient norms, predictions and final weights of the same steps run
// eagerly, bit for bit, for every architecture in float32 and bfloat16;
// the learning rate changes every step, some targets are ignored, and a
// batch of another length frees the graph, runs eagerly and is captured
// again. Every architecture's step must capture (no read-back inside).
func TestGPUTrainStepGraph(t *testing.T) {
	be := graphBackend(t)
	bf, err := newBF16(be)
	if err != nil {
		t.Fatal(err)
	}
	const V, B = 50, 3
	lengths := []int{16, 16, 16, 16, 24, 24, 24, 16}
	for _, block := range []string{
		"{arch: mamba1, d_model: 32, n_layers: 2}",
		"{arch: mamba2, d_model: 64, n_layers: 2, headdim: 16, d_state: 16}",
		"{arch: transformer, d_model: 64, n_layers: 2, n_heads: 1}",
		"{arch: s4d, d_model: 32, n_layers: 2}",
		"{arch: lstm, d_model: 32, n_layers: 2}",
		"{arch: hybrid, d_model: 64, pattern: mamba2 attention, mamba2: {headdim: 16, d_state: 16}}",
	} {
		for _, b := range []nn.Backend{be, bf} {
			t.Run(fmt.Sprintf("%s/%s", block, b.Name()), func(t *testing.T) {
				type stepOut struct {
					loss, norm float64
					pred       []int32
					replayed   bool
				}
				train := func(graph bool) ([]stepOut, []float64, string) {
					var node yaml.Node
					if err := yaml.Load([]byte(block), &node); err != nil {
						t.Fatal(err)
					}
					cfg, err := arch.Decode(node.Content[0])
					if err != nil {
						t.Fatal(err)
					}
					m, err := cfg.Build(arch.Env{Backend: b, Vocab: V, MaxLen: 32, RNG: rand.New(rand.NewPCG(3, 4))})
					if err != nil {
						t.Fatal(err)
					}
					ps := m.Params()
					defer nn.FreeParams(b, ps)
					opt := nn.NewAdamW(b, ps, 0.1)
					defer opt.Free()
					var log bytes.Buffer
					run := trainstep.New(b, m, ps, opt, trainstep.Options{GradClip: 0.5, Ignore: -1, Graph: graph, Capturer: be, Log: &log})
					defer run.Free()
					rng := rand.New(rand.NewPCG(9, 10))
					var outs []stepOut
					for i, L := range lengths {
						bt := trainstep.Batch{Inputs: make([]int32, B*L), Targets: make([]int32, B*L), B: B, L: L}
						for j := range bt.Inputs {
							bt.Inputs[j], bt.Targets[j] = int32(rng.IntN(V)), int32(rng.IntN(V))
							if rng.IntN(5) == 0 {
								bt.Targets[j] = -1
							}
						}
						r := run.Step(bt, 1e-3*float64(8-i)/8, i%3 == 0)
						outs = append(outs, stepOut{r.Loss, r.GradNorm, r.Pred, r.Replayed})
					}
					var w []float64
					for _, p := range ps {
						w = append(w, b.Read(p.T.Data)...)
					}
					return outs, w, log.String()
				}
				want, wantW, _ := train(false)
				got, gotW, log := train(true)
				if log != "" {
					t.Fatalf("the step did not capture: %s", log)
				}
				// Replayed: the steps after the first of each length's run.
				for i, wantReplay := range []bool{false, true, true, true, false, true, true, false} {
					if got[i].replayed != wantReplay {
						t.Errorf("step %d replayed %v, want %v", i, got[i].replayed, wantReplay)
					}
				}
				for i := range want {
					g, w := got[i], want[i]
					if math.Float64bits(g.loss) != math.Float64bits(w.loss) || math.Float64bits(g.norm) != math.Float64bits(w.norm) || !slices.Equal(g.pred, w.pred) {
						t.Fatalf("step %d: loss %v norm %v by the graph, %v and %v eagerly (predictions equal: %v)", i, g.loss, g.norm, w.loss, w.norm, slices.Equal(g.pred, w.pred))
					}
				}
				if !slices.Equal(gotW, wantW) {
					t.Errorf("the weights after the steps differ from eager training's")
				}
			})
		}
	}
}
