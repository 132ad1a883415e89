package reports

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v4"

	"seqbench/bench"
	"seqbench/train"
)

// synthRun describes a run folder to write, as `seqbench run` would.
type synthRun struct {
	arch      string
	task      map[string]any
	train     map[string]any
	model     map[string]any
	overrides map[string]string
	params    int
	flops     float64 // forward FLOPs per token
	steps     int
	evalEvery int
	batchTok  int // tokens per step
	// curve gives the eval loss and accuracy at a step (the train loss is
	// the eval loss with noise).
	curve func(step int) (loss, acc float64)
	// segments are the per-length evaluations of a segmented task.
	segments []train.SegmentSummary
	status   string // "" = ok
	reason   string
	// What to leave out: a partial run has only config.yaml.
	onlyConfig, noSummary bool
	started               time.Time // the summary's started_at; zero: 2025-01-01
}

func (s synthRun) name() string {
	data, _ := json.Marshal([]any{s.arch, s.task, s.train, s.model})
	var h uint32 = 2166136261
	for _, b := range data {
		h = (h ^ uint32(b)) * 16777619
	}
	return fmt.Sprintf("%s-%08x", s.arch, h)
}

// writeRun writes config.yaml, metrics.jsonl and summary.json under
// expDir/<arch>-<hash>/ and returns the run folder.
func writeRun(t testing.TB, expDir, exp string, s synthRun) string {
	t.Helper()
	dir := filepath.Join(expDir, s.name())
	require.NoError(t, os.MkdirAll(dir, 0o755))
	model := map[string]any{"arch": s.arch}
	for k, v := range s.model {
		model[k] = v
	}
	cfg, err := yaml.Marshal(map[string]any{"experiment": exp, "task": s.task, "train": s.train, "model": model})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), cfg, 0o644))
	if s.onlyConfig {
		return dir
	}
	rng := rand.New(rand.NewPCG(uint64(len(dir)), 7))
	f, err := os.Create(filepath.Join(dir, "metrics.jsonl"))
	require.NoError(t, err)
	enc := json.NewEncoder(f)
	sum := train.Summary{Experiment: exp, Run: s.name(), ID: s.name()[len(s.arch)+1:], Arch: s.arch,
		Task: fmt.Sprint(s.task["name"]), Overrides: s.overrides, Params: s.params, FLOPsPerToken: s.flops,
		Status: train.StatusOK, Backend: "cpu-float32", Device: "cpu", GitRevision: "abc1234",
		BestLoss: train.Num(math.NaN()), FinalLoss: train.Num(math.NaN()), TrainLoss: train.Num(math.NaN()),
		StartedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if !s.started.IsZero() {
		sum.StartedAt = s.started
	}
	for step := 1; step <= s.steps; step++ {
		if step != 1 && step%max(s.evalEvery/2, 1) != 0 && step != s.steps {
			continue
		}
		loss, acc := s.curve(step)
		m := train.Metrics{Step: step, Tokens: int64(step * s.batchTok), Loss: train.Num(loss * (1 + 0.08*rng.NormFloat64())),
			Accuracy: acc, LR: 1e-3, TokensPerSec: 5000, WallSeconds: float64(step) * 0.01}
		if step%s.evalEvery == 0 || step == s.steps {
			el, ea := train.Num(loss), acc
			m.EvalLoss, m.EvalAccuracy = &el, &ea
			sum.FinalLoss, sum.FinalAccuracy = el, ea
			if math.IsNaN(float64(sum.BestLoss)) || float64(el) < float64(sum.BestLoss) {
				sum.BestLoss = el
			}
			sum.BestAccuracy = max(sum.BestAccuracy, ea)
		}
		require.NoError(t, enc.Encode(m))
		sum.Steps, sum.Tokens = step, m.Tokens
	}
	require.NoError(t, f.Close())
	if s.noSummary {
		return dir
	}
	sum.WallSeconds = float64(s.steps) * 0.01
	sum.Segments = s.segments
	sum.SeqLen, _ = s.task["seq_len"].(int)
	sum.TokensPerSec = float64(sum.Tokens) / sum.WallSeconds
	if s.status != "" {
		sum.Status, sum.Reason = s.status, s.reason
		if s.status == train.StatusDiverged {
			sum.FinalLoss = train.Num(math.NaN())
		}
	}
	data, err := json.MarshalIndent(sum, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "summary.json"), data, 0o644))
	return dir
}

// decay is a learning curve that falls from l0 to lInf with time constant
// tau, accuracy rising to accInf alongside.
func decay(l0, lInf, accInf, tau float64) func(int) (float64, float64) {
	return func(step int) (float64, float64) {
		e := math.Exp(-float64(step) / tau)
		return lInf + (l0-lInf)*e, accInf * (1 - e)
	}
}

// writeSyntheticResults writes a results root with the shapes of the
// paper experiments: a selective-copying length sweep over three seeds, an
// MQAR grid (d_model × seq_len × lr, Mamba at two state sizes) with enough
// sizes for scaling curves, a folder of broken runs, and a bench file.
func writeSyntheticResults(t testing.TB, root string) {
	t.Helper()
	// Selective copying: accuracy against sequence length.
	exp := filepath.Join(root, "selective-copy")
	for _, arch := range []string{"transformer", "s4d", "mamba1"} {
		for _, L := range []int{64, 128, 256, 512, 1024} {
			for seed := 1; seed <= 3; seed++ {
				acc := map[string]float64{"transformer": 1.1 - 0.12*math.Log2(float64(L)/32), "s4d": 0.35, "mamba1": 0.99}[arch]
				acc = math.Min(1, math.Max(0.05, acc+0.02*float64(seed-2)))
				s := synthRun{arch: arch, params: 74000 + 1000*archRank(arch), flops: 150000 + 80*float64(L),
					task:      map[string]any{"name": "selective_copy", "seq_len": L, "num_tokens": 16, "vocab": 16},
					train:     map[string]any{"steps": 400, "lr": 0.001, "seed": seed},
					model:     map[string]any{"d_model": 64, "n_layers": 2},
					overrides: map[string]string{"task.seq_len": strconv.Itoa(L), "train.seed": strconv.Itoa(seed)},
					steps:     400, evalEvery: 40, batchTok: 32 * L,
					curve: decay(2.8, 2.8*(1-acc)+1e-3, acc, 60+float64(seed)*10)}
				if arch == "mamba1" && L == 1024 && seed == 3 {
					s.status, s.reason = train.StatusDiverged, "loss is NaN at step 212"
				}
				writeRun(t, exp, "selective-copy", s)
			}
		}
	}
	// MQAR, Zoology style: accuracy against d_model per sequence length,
	// best over two learning rates; the sizes double as scaling points.
	exp = filepath.Join(root, "mqar")
	type model struct {
		arch   string
		dState int
	}
	for _, m := range []model{{"transformer", 0}, {"mamba1", 16}, {"mamba1", 64}, {"gla", 0}} {
		for _, d := range []int{32, 64, 128, 256} {
			for _, L := range []int{64, 256} {
				for _, lr := range []float64{1e-3, 3e-3} {
					params := 8192*d*2 + 12*d*d*2 + m.dState*d*4
					capacity := float64(d) * map[string]float64{"transformer": 4, "mamba1": 0.5 + float64(m.dState)/64, "gla": 1}[m.arch]
					acc := math.Min(0.995, capacity/float64(L)*1.3)
					if lr == 1e-3 {
						acc *= 0.9
					}
					loss := 9 * math.Pow(float64(params), -0.2) * (1.2 - acc*0.5)
					mod := map[string]any{"d_model": d, "n_layers": 2}
					if m.dState > 0 {
						mod["d_state"] = m.dState
					}
					writeRun(t, exp, "mqar", synthRun{arch: m.arch, params: params, flops: 6 * float64(params),
						task:      map[string]any{"name": "mqar", "seq_len": L, "num_kv_pairs": L / 8, "vocab": 8192},
						train:     map[string]any{"steps": 300, "lr": lr, "seed": 1},
						model:     mod,
						overrides: map[string]string{"task.seq_len": strconv.Itoa(L), "train.lr": fmt.Sprint(lr)},
						steps:     300, evalEvery: 50, batchTok: 64 * L, curve: decay(9, loss, acc, 50)})
				}
			}
		}
	}
	// Induction heads: trained at 64, evaluated up to 1024; the
	// transformer degrades past 2x and runs out of memory at the end.
	exp = filepath.Join(root, "induction")
	for _, arch := range []string{"transformer", "mamba1"} {
		for seed := 1; seed <= 2; seed++ {
			var segs []train.SegmentSummary
			for e := 6; e <= 10; e++ {
				L := 1 << e
				acc := 1.0 - 0.01*float64(seed)
				if arch == "transformer" && L > 128 {
					acc = 0.9 / float64(L/128) * (1 + 0.05*float64(seed))
				}
				sg := train.SegmentSummary{Name: "L=" + strconv.Itoa(L), SeqLen: L, Status: train.SegmentOK,
					FinalAccuracy: acc, BestAccuracy: acc, FinalLoss: train.Num(2 * (1 - acc)), BestLoss: train.Num(2 * (1 - acc))}
				if arch == "transformer" && L == 1024 {
					sg = train.SegmentSummary{Name: sg.Name, SeqLen: L, Status: train.SegmentOOM,
						FinalLoss: train.Num(math.NaN()), BestLoss: train.Num(math.NaN())}
				}
				segs = append(segs, sg)
			}
			writeRun(t, exp, "induction", synthRun{arch: arch, params: 60000, flops: 1.2e5,
				task:  map[string]any{"name": "induction_heads", "seq_len": 64, "vocab": 16, "eval_lengths": []int{64, 128, 256, 512, 1024}},
				train: map[string]any{"steps": 200, "seed": seed}, model: map[string]any{"d_model": 64},
				overrides: map[string]string{"train.seed": strconv.Itoa(seed)},
				steps:     200, evalEvery: 50, batchTok: 32 * 64, curve: decay(2.8, 0.01, 1, 30), segments: segs})
		}
	}
	writeBrokenExperiment(t, filepath.Join(root, "broken"))
	writeBenchFile(t, filepath.Join(root, "bench", "kernels.bench.json"))
}

// writeBrokenExperiment writes runs that did not finish: failed, diverged,
// partial (config.yaml only), killed (no summary, a torn metrics line) and
// one with a corrupt summary.json.
func writeBrokenExperiment(t testing.TB, exp string) {
	t.Helper()
	base := func(arch string, seed int) synthRun {
		return synthRun{arch: arch, params: 5000, flops: 1e4,
			task:  map[string]any{"name": "copying", "seq_len": 32},
			train: map[string]any{"steps": 100, "seed": seed}, model: map[string]any{"d_model": 16},
			overrides: map[string]string{"train.seed": strconv.Itoa(seed)},
			steps:     100, evalEvery: 20, batchTok: 256, curve: decay(2, 0.5, 0.6, 30)}
	}
	s := base("lstm", 1)
	s.status, s.reason = train.StatusFailed, "panic: index out of range [3] with length 3 | in lstm.Forward\ngoroutine 1 [running]:"
	writeRun(t, exp, "broken", s)
	s = base("gru", 1)
	s.status, s.reason = train.StatusDiverged, "gradient of layers.0.w_ih is not finite at step 37"
	writeRun(t, exp, "broken", s)
	s = base("mamba2", 1)
	s.onlyConfig = true
	writeRun(t, exp, "broken", s)
	s = base("mamba2", 2)
	s.noSummary = true
	dir := writeRun(t, exp, "broken", s)
	f, err := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"step":101,"tokens":25`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	s = base("s4d", 1)
	dir = writeRun(t, exp, "broken", s)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "summary.json"), []byte(`{"status": "ok", "params": `), 0o644))
}

// writeBenchFile writes path, a *.bench.json of GPU results as `seqbench
// bench` writes it, and beside it (path's name ending -cpu.bench.json)
// the CPU's.
func writeBenchFile(t testing.TB, path string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f := bench.File{Device: "NVIDIA H200"}
	cpu := bench.File{Device: "cpu"}
	for _, op := range []string{"selective_scan", "attention"} {
		for _, impl := range []string{"cpu-float32", "cuda-ref", "cuda-fused"} {
			for e := 6; e <= 14; e++ {
				L := 1 << e
				for _, pass := range []string{bench.PassForward, bench.PassForwardBackward} {
					work := float64(L)
					if op == "attention" {
						work = float64(L) * float64(L) / 256
					}
					speed := map[string]float64{"cpu-float32": 2e5, "cuda-ref": 2e7, "cuda-fused": 1e8}[impl]
					mult := 1.0
					if pass == bench.PassForwardBackward {
						mult = 2.6
					}
					r := bench.Result{Op: op, Impl: impl, L: L, Pass: pass,
						Median:      5e-6 + mult*work*64/speed,
						FracCeiling: math.Min(0.9, speed/1.2e8*(1-math.Exp(-float64(L)/2048)))}
					if impl == "cpu-float32" {
						r.FracCeiling = 0
					}
					if op == "selective_scan" && impl == "cuda-fused" && pass == bench.PassForward {
						// A second shape: the same colour, dashed.
						r2 := r
						r2.Variant, r2.Median = "B=8 D=1024", r.Median*3.5
						f.Results = append(f.Results, r2)
						r.Variant = "B=2 D=1024"
					} else if op == "selective_scan" {
						r.Variant = "B=2 D=1024"
					}
					if impl == "cpu-float32" {
						cpu.Results = append(cpu.Results, r)
					} else {
						f.Results = append(f.Results, r)
					}
				}
			}
		}
	}
	for p, f := range map[string]bench.File{path: f, strings.TrimSuffix(path, ".bench.json") + "-cpu.bench.json": cpu} {
		data, err := json.MarshalIndent(f, "", " ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
}
