package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/arch"
	"seqbench/sweep"
)

// A two-size, two-arch scaling study on the shipped byte-level corpus, its
// steps derived from tokens_per_param, runs on the CPU and its report fits
// and draws a law per arch.
func TestScalingStudyOnShippedCorpus(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	corpus := filepath.Join(wd, "..", "..", "configs", "data")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "study.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`name: study
task: {name: lm, train: %s, val: %s, seq_len: 32}
train: {steps: 0, tokens_per_param: 2, batch_size: 8, lr: 1.0e-2, warmup: 5, eval_every: 1000, eval_batches: 2, log_every: 50}
models:
  - {arch: transformer, n_heads: 2}
  - {arch: mamba1}
sweep:
  zip:
    - {model.d_model: [8, 16], model.n_layers: [1, 2]}
`, filepath.Join(corpus, "seqbench_text_train.bin"), filepath.Join(corpus, "seqbench_text_val.bin"))), 0o644))
	out := filepath.Join(dir, "results")
	code, _, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runCLI(t, "report", out)
	require.Equal(t, 0, code, stderr)
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	require.NoError(t, err)
	report := string(md)
	require.Contains(t, report, "### Scaling fits")
	for _, a := range []string{"transformer", "mamba1"} {
		require.Regexp(t, "\\| "+a+" +\\| +2 \\| L = [0-9.e+]+·C\\^−", report)
	}
	for _, ext := range []string{".png", ".svg"} {
		_, err := os.Stat(filepath.Join(out, "plots", "study-scaling"+ext))
		require.NoError(t, err)
	}
	svg, err := os.ReadFile(filepath.Join(out, "plots", "study-scaling.svg"))
	require.NoError(t, err)
	require.Contains(t, string(svg), "compute-optimal frontier")
}

// configs/scaling_gpt2.yaml: six archs at five sizes, each spanning at
// least 1.5 orders of magnitude of non-embedding parameters, steps from 20
// tokens per parameter at 16 x 512 tokens a step.
func TestScalingGPT2Config(t *testing.T) {
	t.Chdir("../..")
	exp, err := sweep.Load("configs/scaling_gpt2.yaml")
	require.NoError(t, err)
	sizes := map[string][]int{}
	for _, r := range exp.Runs {
		n := arch.NonEmbeddingParams(r.Model)
		sizes[r.Arch] = append(sizes[r.Arch], n)
		require.Equal(t, int(math.Ceil(20*float64(n)/(16*512))), r.Train.Steps, r.Name)
		require.Equal(t, 0.95, r.Train.Beta2)
		require.Less(t, r.Train.Warmup, r.Train.Steps, r.Name)
	}
	require.Len(t, sizes, 6)
	for a, ns := range sizes {
		require.Len(t, ns, 5, a)
		span := math.Log10(float64(ns[len(ns)-1]) / float64(ns[0]))
		require.GreaterOrEqual(t, span, 1.5, "%s: N %v spans %.2f orders of magnitude", a, ns, span)
	}
}
