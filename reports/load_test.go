package reports

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"seqbench/bench"
	"seqbench/cpukernels"
	"seqbench/train"
)

func TestLoadEmptyAndMissingFolders(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	require.ErrorIs(t, err, ErrNoResults)
	require.ErrorContains(t, err, "summary.json")
	require.ErrorContains(t, err, "<experiment>/<run>")

	// Folders that hold something else entirely.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "exp", "plots"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "exp", "notes.txt"), []byte("x"), 0o644))
	_, err = Load(dir)
	require.ErrorIs(t, err, ErrNoResults)

	_, err = Load(filepath.Join(dir, "nope"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = Load(filepath.Join(dir, "exp", "notes.txt"))
	require.ErrorContains(t, err, "not a folder")
}

func quickRun(arch string, seed int) synthRun {
	return synthRun{arch: arch, params: 25000, flops: 5e4,
		task:  map[string]any{"name": "copying", "seq_len": 32},
		train: map[string]any{"steps": 60, "seed": seed}, model: map[string]any{"d_model": 32},
		overrides: map[string]string{"train.seed": strconv.Itoa(seed)},
		steps:     60, evalEvery: 20, batchTok: 512, curve: decay(2.1, 0.01, 1, 15)}
}

// The same runs load alike from the results root, the experiment folder
// and (one of them) from its own folder.
func TestLoadLayouts(t *testing.T) {
	root := t.TempDir()
	exp := filepath.Join(root, "exp")
	run1 := writeRun(t, exp, "exp", quickRun("transformer", 1))
	writeRun(t, exp, "exp", quickRun("transformer", 2))
	writeRun(t, filepath.Join(root, "other"), "other", quickRun("lstm", 1))
	// The report's own output does not look like runs.
	require.NoError(t, os.MkdirAll(filepath.Join(exp, "plots"), 0o755))

	res, err := Load(root)
	require.NoError(t, err)
	require.Len(t, res.Experiments, 2)
	require.Equal(t, "exp", res.Experiments[0].Name)
	require.Len(t, res.Experiments[0].Runs, 2)

	res, err = Load(exp)
	require.NoError(t, err)
	require.Len(t, res.Experiments, 1)
	require.Equal(t, "exp", res.Experiments[0].Name)
	require.Len(t, res.Experiments[0].Runs, 2)
	r := res.Experiments[0].Runs[0]
	require.Equal(t, train.StatusOK, r.Status)
	require.Equal(t, "32", r.Config["task.seq_len"])
	require.Equal(t, "transformer", r.Config["model.arch"])
	require.NotEmpty(t, r.Metrics)

	res, err = Load(run1)
	require.NoError(t, err)
	require.Len(t, res.Experiments, 1)
	require.Equal(t, "exp", res.Experiments[0].Name)
	require.Len(t, res.Experiments[0].Runs, 1)
	require.Empty(t, res.Warnings)
}

// A folder of runs that all went wrong still gives a report: the table
// with each status and reason, and no plot.
func TestRenderBrokenRuns(t *testing.T) {
	root := t.TempDir()
	writeBrokenExperiment(t, filepath.Join(root, "broken"))
	res, err := Load(root)
	require.NoError(t, err)
	byStatus := map[string]int{}
	for _, r := range res.Experiments[0].Runs {
		byStatus[r.Status]++
	}
	require.Equal(t, map[string]int{train.StatusFailed: 1, train.StatusDiverged: 1, StatusIncomplete: 2, StatusUnreadable: 1}, byStatus)
	require.Len(t, res.Warnings, 1) // the torn metrics line
	require.Contains(t, res.Warnings[0], "skipped 1 of")

	rep, err := Write(res, root, Options{DPI: 50})
	require.NoError(t, err)
	require.Empty(t, rep.Plots)
	checkHTML(t, rep.HTML, 0)
	md, err := os.ReadFile(rep.Markdown)
	require.NoError(t, err)
	for _, want := range []string{"failed: panic: index out of range", "diverged: gradient of layers.0.w_ih",
		"incomplete: no summary.json", "unreadable: summary.json", "nothing to plot", "## Warnings"} {
		require.Contains(t, string(md), want)
	}
	// The incomplete run that logged metrics shows its progress so far.
	var text bytes.Buffer
	require.NoError(t, WriteText(&text, res))
	require.Contains(t, text.String(), "incomplete")
}

// Runs with NaN (null) and zero losses in their metrics: the curves leave
// those points out of the log axis instead of failing or drawing NaN.
func TestCurvesWithNaNAndZeroLosses(t *testing.T) {
	root := t.TempDir()
	exp := filepath.Join(root, "copy")
	for seed := 1; seed <= 2; seed++ {
		s := quickRun("mamba1", seed)
		s.curve = func(step int) (float64, float64) {
			switch {
			case step == 20:
				return math.NaN(), 0.5 // written as null
			case step >= 40:
				return 0, 1 // a perfect copy: loss 0
			}
			return 2 * math.Exp(-float64(step)/5), 0.5
		}
		writeRun(t, exp, "copy", s)
	}
	res, err := Load(root)
	require.NoError(t, err)
	rep, err := Write(res, root, Options{DPI: 50})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Plots)
	for _, p := range rep.Plots {
		if strings.HasSuffix(p, ".svg") {
			checkSVG(t, p)
		} else {
			checkPNG(t, p)
		}
	}
}

func TestPanelDropsPointsLogAxesCannotShow(t *testing.T) {
	pn := newPanel("", "x", "y", log2, log10)
	th := pn.line([]float64{1, 2, 0, 4, 8, math.NaN(), -1}, []float64{1, 0, 3, math.Inf(1), 0.5, 1, 1}, style{}.line(1), nil)
	require.NotNil(t, th)
	require.Equal(t, 5, pn.dropped)
	require.InDelta(t, 0, pn.xmin, 1e-12) // log2(1)
	require.InDelta(t, 3, pn.xmax, 1e-12) // log2(8)
	// Nothing drawable: the panel says so rather than panicking.
	empty := newPanel("loss", "x", "y", log10, log10)
	require.Nil(t, empty.line([]float64{0, -1}, []float64{1, 2}, style{}.line(1), nil))
	f := &figure{name: "t", panels: [][]*panel{{pn, empty}}}
	_, err := f.renderSVG(false)
	require.NoError(t, err)
	require.Equal(t, "loss (no data)", empty.p.Title.Text)
}

func TestBenchFiles(t *testing.T) {
	root := t.TempDir()
	writeBenchFile(t, filepath.Join(root, "a.bench.json"))
	// A duplicate that replaces an earlier value, and entries the report
	// cannot use.
	require.NoError(t, os.WriteFile(filepath.Join(root, "b.bench.json"), []byte(`{"device": "H200", "results": [
	 {"op": "ssd", "impl": "cuda-fused", "seq_len": 1024, "pass": "fwd", "median_s": 0.001, "bytes": 12},
	 {"op": "ssd", "impl": "cuda-fused", "seq_len": 1024, "pass": "fwd", "median_s": 0.002},
	 {"op": "ssd", "impl": "cuda-fused", "seq_len": 0, "pass": "fwd", "median_s": 0.001},
	 {"op": "ssd", "impl": "cuda-fused", "seq_len": 64, "pass": "bwd", "median_s": 0.001},
	 {"op": "ssd", "impl": "cuda-fused", "seq_len": 64, "pass": "fwd", "median_s": null}
	]}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "c.bench.json"), []byte(`{"results": [`), 0o644))
	// A later file that repeats a result of a.bench.json replaces it, and
	// says so.
	require.NoError(t, os.WriteFile(filepath.Join(root, "d.bench.json"), []byte(`{"device": "NVIDIA H200", "results": [
	 {"op": "attention", "impl": "cuda-fused", "seq_len": 1024, "pass": "fwd", "median_s": 7}]}`), 0o644))
	res, err := Load(root)
	require.NoError(t, err)
	require.Empty(t, res.Experiments)
	require.Len(t, res.Warnings, 3)
	require.Contains(t, res.Warnings[2], "d.bench.json: 1 results replace those of")
	require.Contains(t, res.Warnings[2], "a.bench.json")
	var ssd []BenchResult
	for _, r := range res.Bench {
		if r.Op == "ssd" {
			ssd = append(ssd, r)
		}
	}
	require.Len(t, ssd, 1)
	require.Equal(t, 0.002, ssd[0].Median)
	for _, r := range res.Bench {
		if r.Op == "attention" && r.Impl == "cuda-fused" {
			require.Equal(t, "NVIDIA H200", r.Device) // from the file
			if r.L == 1024 && r.Pass == bench.PassForward {
				require.Equal(t, 7.0, r.Median)
			}
		}
	}
	figs := benchFigures(res.Bench)
	require.Len(t, figs, 3) // attention, selective_scan, ssd
	rep, err := Write(res, root, Options{DPI: 50})
	require.NoError(t, err)
	require.Len(t, rep.Plots, 6)
	checkHTML(t, rep.HTML, 3)
}

// An MQAR experiment with both curricula: the sentence lists them readably
// and leaves out the seq_len and num_kv_pairs they replace.
func TestExperimentSentenceCurricula(t *testing.T) {
	cfg, err := flattenYAML([]byte(`task: {name: mqar, vocab: 64, seq_len: 256, num_kv_pairs: 16,
  train_curriculum: [{seq_len: 32, num_kv_pairs: 4}, {seq_len: 64, num_kv_pairs: 8}],
  test_curriculum: [{seq_len: 32, num_kv_pairs: 4}]}
model: {arch: mamba2}
`))
	require.NoError(t, err)
	require.Equal(t, "[{num_kv_pairs: 4, seq_len: 32}, {num_kv_pairs: 8, seq_len: 64}]", cfg["task.train_curriculum"])
	run := &Run{Name: "mamba2-x", Config: cfg, Status: train.StatusOK,
		Summary: train.Summary{Arch: "mamba2", Task: "mqar", Status: train.StatusOK}}
	e := &Experiment{Name: "mqar", Runs: []*Run{run}}
	got := experimentSentence(e, analyse(e.Runs))
	require.Contains(t, got, "test_curriculum=[{num_kv_pairs: 4, seq_len: 32}]")
	require.NotContains(t, got, "seq_len=256")
	require.NotContains(t, got, "num_kv_pairs=16")
	require.Contains(t, got, "vocab=64")

	// With one curriculum only, the other side still uses them.
	delete(cfg, "task.test_curriculum")
	require.Contains(t, experimentSentence(e, analyse(e.Runs)), "seq_len=256")
}

// What `seqbench bench` writes, the report reads whole: every result, no
// warning, the variants apart.
func TestBenchRunReport(t *testing.T) {
	o := bench.DefaultOptions()
	o.Ops, o.Lengths, o.Repeat, o.Ceilings = []string{"selective_scan", "rmsnorm"}, []int{8, 16}, 1, false
	o.Warmup, o.MinSample = time.Microsecond, time.Microsecond
	f, err := bench.Run(bench.NewDevice(cpukernels.New[float32](), "", ""), o)
	require.NoError(t, err)
	dir := t.TempDir()
	_, err = bench.WriteFiles(f, filepath.Join(dir, "cpu.bench.json"))
	require.NoError(t, err)
	res, err := Load(dir)
	require.NoError(t, err)
	require.Empty(t, res.Warnings)
	require.Len(t, res.Bench, len(f.Results))
	for i, r := range res.Bench {
		require.Equal(t, f.Results[i], r.Result)
		require.Equal(t, f.Device, r.Device)
	}
}
