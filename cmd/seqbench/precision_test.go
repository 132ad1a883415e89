package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

// `seqbench run` of a bf16 config on the CPU trains on cpu-bfloat16 and
// records the precision in summary.json.
func TestRunBF16OnCPU(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bf16.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`name: bf
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 10, batch_size: 8, lr: 1.0e-2, warmup: 2, eval_every: 10, precision: bf16}
models: [{arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}]
`), 0o644))
	out := filepath.Join(dir, "results")
	code, _, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	runs, _ := filepath.Glob(filepath.Join(out, "bf", "transformer-*"))
	require.Len(t, runs, 1)
	sum, err := train.ReadSummary(runs[0])
	require.NoError(t, err)
	require.Equal(t, train.StatusOK, sum.Status, sum.Reason)
	require.Equal(t, "bf16", sum.Precision)
	require.Equal(t, "cpu-bfloat16", sum.Backend)
}

// `seqbench devices` names the CPU's bf16 backend.
func TestDevicesNamesBF16(t *testing.T) {
	code, stdout, _ := runCLI(t, "devices")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "cpu-bfloat16 (precision bf16)")
}
