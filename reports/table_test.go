package reports

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/bench"
	"seqbench/train"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./reports -run %s -update to create it", t.Name())
	require.Equal(t, string(want), string(got), "%s differs (go test -update rewrites it after a deliberate change)", path)
}

// tableRuns is an experiment in memory: two archs, a swept d_state and
// seq_len, two seeds, and one run of each kind that did not finish.
func tableRuns() []*Run {
	nan := train.Num(math.NaN())
	itoa := strconv.Itoa
	mk := func(arch string, dState, seqLen, seed int, acc, loss float64) *Run {
		cfg := map[string]string{"experiment": "demo", "model.arch": arch, "model.d_model": "64",
			"task.name": "selective_copy", "task.seq_len": itoa(seqLen), "task.vocab": "16",
			"train.lr": "0.001", "train.seed": itoa(seed)}
		if dState > 0 {
			cfg["model.d_state"] = itoa(dState)
		} else {
			cfg["model.n_heads"] = "4"
		}
		return &Run{Name: arch + "-" + itoa(dState) + itoa(seqLen) + itoa(seed), Config: cfg, Status: train.StatusOK,
			Summary: train.Summary{Arch: arch, Task: "selective_copy", Params: 74_240 + 130*dState, FLOPsPerToken: 1.5e5 + 64*float64(seqLen),
				Steps: 400, Tokens: 400 * 32 * int64(seqLen), FinalAccuracy: acc, BestAccuracy: min(1, acc+0.004),
				FinalLoss: train.Num(loss), BestLoss: train.Num(loss * 0.9), TokensPerSec: 12_345.6, WallSeconds: 83.27,
				Status: train.StatusOK}}
	}
	runs := []*Run{
		mk("mamba1", 64, 256, 1, 0.991, 0.0123),
		mk("mamba1", 16, 256, 2, 0.952, 0.151),
		mk("transformer", 0, 256, 1, 0.73, 0.74),
		mk("mamba1", 16, 256, 1, 0.948, 0.16),
		mk("transformer", 0, 256, 2, 0.75, 0.70),
		mk("transformer", 0, 1024, 1, 0.5, 1.41),
		mk("mamba1", 64, 256, 2, 0.993, 0.011),
	}
	failed := mk("transformer", 0, 1024, 2, 0, 0)
	failed.Status, failed.Reason = train.StatusFailed, "panic: bad | shape [4 16]\ngoroutine 7 [running]:\n..."
	failed.Summary.Status, failed.Summary.Reason = failed.Status, failed.Reason
	failed.Summary.FinalLoss, failed.Summary.BestLoss, failed.Summary.Steps = nan, nan, 0
	failed.Summary.FinalAccuracy, failed.Summary.BestAccuracy = 0, 0
	diverged := mk("mamba1", 16, 1024, 1, 0.4, 1.9)
	diverged.Status, diverged.Reason = train.StatusDiverged, "loss is NaN at step 212"
	diverged.Summary.FinalLoss = nan
	partial := &Run{Name: "mamba1-partial", Status: StatusIncomplete, Reason: "no summary.json (still running, or killed)",
		Config: map[string]string{"model.arch": "mamba1", "model.d_state": "64", "task.name": "selective_copy",
			"task.seq_len": "1024", "train.lr": "0.001", "train.seed": "1", "model.d_model": "64", "task.vocab": "16"}}
	partial.fillFromMetrics()
	return append(runs, failed, diverged, partial)
}

func TestRunsTableGolden(t *testing.T) {
	runs := tableRuns()
	d := analyse(runs)
	require.Equal(t, []string{"model.d_state"}, d.seriesKeys)
	require.Equal(t, []string{"task.seq_len"}, d.facetKeys)
	require.True(t, d.seedVaries)
	require.False(t, d.lrVaries)
	tab := runsTable(d, runs)
	var txt, md bytes.Buffer
	require.NoError(t, tab.writeText(&txt))
	require.NoError(t, tab.writeMarkdown(&md))
	golden(t, "runs.txt", txt.Bytes())
	golden(t, "runs.md", md.Bytes())
	// The header keeps its case and underscores; the '|' of the reason is
	// escaped in Markdown only.
	require.Contains(t, md.String(), "d_state")
	require.Contains(t, md.String(), `panic: bad \| shape [4 16]`)
	require.Contains(t, txt.String(), `panic: bad | shape [4 16]`)
	require.NotContains(t, md.String(), "goroutine")

	var seeds bytes.Buffer
	require.NoError(t, seedTable(d, runs).writeMarkdown(&seeds))
	golden(t, "seeds.md", seeds.Bytes())
}

// RunTable (the end of `seqbench run`) works from summaries alone, the
// swept values coming from their overrides.
func TestRunTableFromSummaries(t *testing.T) {
	var sums []train.Summary
	for _, task := range []string{"selective_copy", "copying"} {
		sums = append(sums, train.Summary{Arch: "transformer", Task: task, Overrides: map[string]string{"task.name": task},
			Params: 25_088, FLOPsPerToken: 54_000, FinalAccuracy: 0.742, BestAccuracy: 0.75, FinalLoss: 0.6141,
			BestLoss: 0.6, TokensPerSec: 12114, WallSeconds: 50.7, Status: train.StatusOK})
	}
	var txt bytes.Buffer
	require.NoError(t, RunTable(&txt, "", sums, false))
	golden(t, "runtable.txt", txt.Bytes())
}

func TestBenchTableGolden(t *testing.T) {
	rs := []BenchResult{
		{Result: bench.Result{Op: "ssd", Impl: "cuda-fused", L: 4096, Pass: bench.PassForward, Median: 0.000412}, Device: "H200"},
		{Result: bench.Result{Op: "ssd", Impl: "cuda-fused", L: 1024, Pass: bench.PassForward, Median: 0.0000987}, Device: "H200"},
		{Result: bench.Result{Op: "ssd", Impl: "cpu-float32", L: 1024, Pass: bench.PassForward, Median: 0.25}, Device: "cpu"},
		{Result: bench.Result{Op: "ssd", Impl: "cpu-float32", L: 1024, Pass: bench.PassForwardBackward, Median: 1.5}, Device: "cpu"},
		{Result: bench.Result{Op: "ssd", Impl: "cpu-float32", Variant: "B=2 D=256", L: 1024, Pass: bench.PassForwardBackward, Median: 3.25}, Device: "cpu"},
	}
	var md bytes.Buffer
	require.NoError(t, benchTable(rs).writeMarkdown(&md))
	golden(t, "bench.md", md.Bytes())
}

func TestNumberFormats(t *testing.T) {
	cases := map[float64]string{0: "0", 0.5: "0.5", 64: "64", 1024: "1024", 4096: "4096", 16384: "16.4k",
		2.5e6: "2.5M", 1.2345e9: "1.23B", 5e13: "5e13", 1e-5: "1e-5", 0.123456: "0.123", -3: "-3"}
	for v, want := range cases {
		require.Equal(t, want, humanFloat(v), "%v", v)
	}
	for e, want := range map[int]string{6: "64", 10: "1024", 13: "8192", 14: "16k", 20: "1M"} {
		require.Equal(t, want, pow2Label(e))
	}
	require.Equal(t, "10µs", shortSeconds(1e-5))
	require.Equal(t, "-", fmtLoss(math.NaN()))
	require.Equal(t, "0.01235", fmtLoss(0.012345))
	require.Equal(t, "1.600", fmtLoss(1.59997))
	require.Equal(t, "2.000", fmtLoss(2))
}
