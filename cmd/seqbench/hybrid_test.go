package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

// configs/hybrid_lm.yaml, shrunk (d_model 32, 2 steps of batch 2, one eval
// batch) but with its five patterns, trains on the CPU: every run ends ok
// and its config.yaml holds the pattern it was given. (The shipped hybrid
// configs' dry runs are TestSweepPlanShippedConfigs's.)
func TestHybridLMConfigTrains(t *testing.T) {
	t.Chdir("../..") // the config's data paths are relative to the repository root
	data, err := os.ReadFile("configs/hybrid_lm.yaml")
	require.NoError(t, err)
	src := string(data)
	for _, r := range [][2]string{
		{"steps: 1000", "steps: 2"}, {"batch_size: 16", "batch_size: 2"}, {"eval_every: 100", "eval_every: 2"},
		{"eval_batches: 8", "eval_batches: 1"}, {"warmup: 100", "warmup: 1"},
		{"d_model: 128", "d_model: 32"}, {"headdim: 32", "headdim: 16"},
	} {
		require.Equal(t, 1, strings.Count(src, r[0]), "%q in configs/hybrid_lm.yaml", r[0])
		src = strings.Replace(src, r[0], r[1], 1)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	code, _, stderr := runCLI(t, "run", writeConfig(t, dir, src), "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	runs, err := filepath.Glob(filepath.Join(out, "hybrid-lm", "hybrid-*"))
	require.NoError(t, err)
	require.Len(t, runs, 5)
	patterns := map[string]bool{}
	for _, r := range runs {
		s, err := train.ReadSummary(r)
		require.NoError(t, err)
		require.Equal(t, train.StatusOK, s.Status, s.Reason)
		require.Equal(t, 2, s.Steps)
		cfg, err := os.ReadFile(filepath.Join(r, "config.yaml"))
		require.NoError(t, err)
		for _, line := range strings.Split(string(cfg), "\n") {
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "pattern: "); ok {
				patterns[p] = true
			}
		}
	}
	require.Len(t, patterns, 5, "patterns in the runs' config.yaml: %v", patterns)
}
