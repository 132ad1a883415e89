package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
	"seqbench/sweep"
)

// `sweep plan --cost` counts each run's steps, tokens and FLOPs and the
// total; `--device` measures, predicts each run's time and peak memory,
// sets the total against --budget and leaves plan.json for `sweep run`.
func TestSweepPlanCostAndBudget(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, goodConfig+"sweep: {seed: [1, 2], model.d_model: [8, 16]}\n")
	out := filepath.Join(dir, "results")

	code, stdout, stderr := runCLI(t, "sweep", "plan", cfg, "--out", out, "--cost")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `steps +tokens +FLOPs +settings`, stdout)
	require.Regexp(t, `transformer-\w+ +- +6 +288 +\d\.\d+e\+\d+ `, stdout) // 6 steps × 4 × 12 tokens
	require.Regexp(t, `to train: 4 runs, \d\.\d+e\+\d+ training FLOPs\n$`, stdout)
	require.NotContains(t, stdout, "wall-clock")

	code, stdout, stderr = runCLI(t, "sweep", "plan", cfg, "--out", out, "--device", "cpu", "--workers", "2",
		"--budget", "1h", "--measure-steps", "2", "--measure-warmup", "1")
	require.Equal(t, 0, code, stderr)
	require.Len(t, regexp.MustCompile(`(?m)^measured `).FindAllString(stderr, -1), 2, "one measurement per size: %s", stderr)
	require.Regexp(t, `time +peak mem +settings`, stdout)
	require.Regexp(t, `on cpu-float32: \w+ of training, \w+ wall-clock with 2 workers`, stdout)
	require.Regexp(t, `fits the budget of 1h0m0s \(\w+ to spare\)`, stdout)
	plan, err := sweep.ReadPlan(filepath.Join(out, "tiny"))
	require.NoError(t, err)
	require.Equal(t, "cpu", plan.Device)
	require.Len(t, plan.Runs, 4)

	code, stdout, stderr = runCLI(t, "sweep", "plan", cfg, "--out", out, "--device", "cpu", "--budget", "1ns",
		"--measure-steps", "1", "--measure-warmup", "1")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "does not fit the budget of 1ns: over by")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--budget", "1h"}, "--budget and --workers need --device"},
		{[]string{"--device", "cpu", "--workers", "-1"}, "--workers -1"},
		{[]string{"--device", "cpu", "--measure-steps", "0"}, "--measure-steps 0"},
		{[]string{"--device", "tpu"}, "tpu"},
	} {
		code, _, stderr := runCLI(t, append([]string{"sweep", "plan", cfg, "--out", out}, c.args...)...)
		require.Equal(t, 2, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, c.want, "%v", c.args)
	}
}

// --cost counts the shipped experiments of every kind: a MAD suite, a
// grid of sizes with steps from tokens_per_param, hybrids.
func TestSweepPlanCostShippedConfigs(t *testing.T) {
	t.Chdir("../..")
	for _, name := range []string{"mad_cpu.yaml", "scaling_lm.yaml", "hybrid_mqar_cpu.yaml"} {
		code, stdout, stderr := runCLI(t, "sweep", "plan", filepath.Join("configs", name), "--out", t.TempDir(), "--cost")
		require.Equal(t, 0, code, "%s: %s", name, stderr)
		require.Regexp(t, `to train: \d+ runs, \d\.\d+e\+\d+ training FLOPs\n$`, stdout, name)
		require.NotContains(t, stdout, " - training FLOPs", name)
	}
}

// fakeGPU is a backend that reports a device of mem bytes, as the CUDA
// backend does.
type fakeGPU struct {
	nn.Backend
	mem uint64
}

func (g fakeGPU) Device() cuda.Device { return cuda.Device{TotalMem: g.mem} }

// On CUDA, sweep run's default pool packs as many runs a GPU as
// plan.json's largest measured peak allows (one GPU visible here: none).
func TestPackedWorkers(t *testing.T) {
	dir := t.TempDir()
	exp, err := sweep.Load(writeConfig(t, dir, goodConfig+"sweep: {seed: [1, 2, 3, 4, 5, 6]}\n"))
	require.NoError(t, err)
	out := filepath.Join(dir, "results")
	pend := sweep.Pending(out, exp, false)
	dev := device{"cuda", fakeGPU{cpukernels.New[float32](), 10 << 30}}
	var stderr strings.Builder
	require.Equal(t, 1, packedWorkers(&stderr, out, exp, pend, dev), "no plan.json: one run a GPU")
	require.Contains(t, stderr.String(), "no plan.json measured on cuda")

	est := make([]sweep.Estimate, len(exp.Runs))
	for i := range est {
		est[i].Seconds, est[i].PeakMemBytes = 1, 2<<30
	}
	require.NoError(t, sweep.WritePlan(filepath.Join(out, exp.Name), "cuda", "cuda-float32", exp, est))
	stderr.Reset()
	require.Equal(t, 4, packedWorkers(&stderr, out, exp, pend, dev), stderr.String()) // 80 % of 10 GiB / 2 GiB
	require.Equal(t, 3, packedWorkers(&stderr, out, exp, pend[:3], dev), "never more than the runs left")
	require.Equal(t, 0, packedWorkers(&stderr, out, exp, pend, device{"cpu", cpukernels.New[float32]()}))
}
