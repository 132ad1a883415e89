package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

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
