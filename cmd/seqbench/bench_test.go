package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"seqbench/bench"
)

// `seqbench bench` writes a JSON file regress reads and the report draws,
// and the benchmark-format lines beside it; comparing a run with itself
// passes.
func TestBenchCommandThenRegressAndReport(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "cpu.bench.json")
	code, stdout, stderr := runCLI(t, "bench", "--device", "cpu", "--ops", "rmsnorm,conv1d", "--lengths", "8,16",
		"--repeat", "4", "--warmup", "1ms", "--min-sample", "50us", "--ceilings=false", "--quiet", "--out", out)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "rmsnorm")
	assert.Contains(t, stdout, "B=1 C=512 W=4 L=16")
	assert.Contains(t, stdout, "cpu.bench.txt (benchstat format)")
	f, err := bench.ReadFile(out)
	require.NoError(t, err)
	assert.Len(t, f.Results, 8)
	assert.Equal(t, "cpu-float32", f.Backend)
	txt, err := os.ReadFile(filepath.Join(dir, "cpu.bench.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(txt), "BenchmarkRMSNorm/pass=fwd/B=1/D=512/L=8 ")

	code, stdout, stderr = runCLI(t, "regress", out, out)
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "8 compared, 0 slower")

	code, stdout, stderr = runCLI(t, "report", dir)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "kernel benchmarks")
	assert.FileExists(t, filepath.Join(dir, "report.md"))
}

func TestBenchCommandErrors(t *testing.T) {
	for i, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--suite", "fast"}, `--suite "fast"`},
		{[]string{"bench", "--ops", "flash"}, `unknown op "flash"`},
		{[]string{"bench", "--lengths", "8,x"}, `--lengths: "x"`},
		{[]string{"bench", "--batch", "0"}, `--batch: "0"`},
		{[]string{"bench", "--repeat", "0"}, "--repeat 0"},
		{[]string{"bench", "--device", "tpu"}, `--device "tpu"`},
		{[]string{"bench", "extra"}, "unexpected arguments extra"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		assert.Equal(t, 2, code, "case %d: %s", i, stderr)
		assert.Contains(t, stderr, c.want, "case %d", i)
	}
}
