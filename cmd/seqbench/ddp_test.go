package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/sweep"
	"seqbench/train"
)

// `seqbench run` of a config with train.gpus: 2 on the CPU trains both
// ranks in its own process; the run folder records the setting.
func TestRunDataParallelOnCPU(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, strings.Replace(goodConfig, "eval_batches: 1}", "eval_batches: 1, gpus: 2}", 1))
	out := filepath.Join(dir, "results")
	code, _, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	runs, err := filepath.Glob(filepath.Join(out, "tiny", "transformer-*"))
	require.NoError(t, err)
	require.Len(t, runs, 1)
	s, err := train.ReadSummary(runs[0])
	require.NoError(t, err)
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	require.Equal(t, 6, s.Steps)
	spec, err := sweep.LoadRun(runs[0])
	require.NoError(t, err)
	require.Equal(t, 2, spec.Train.GPUs)
}
