package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"seqbench/bench"
)

// benchFile writes a bench file whose benchmarks have the given samples
// (seconds), on device dev.
func benchFile(t *testing.T, dir, name, dev string, samples map[string][]float64) string {
	t.Helper()
	f := &bench.File{Schema: bench.SchemaVersion, Suite: "kernels", Device: dev, Backend: "cpu-float32"}
	for _, n := range []string{"RMSNorm/pass=fwd/B=1/D=512/L=128", "SelectiveScan/pass=fwd/B=1/D=256/N=16/L=512",
		"SelectiveScan/pass=fwdbwd/B=1/D=256/N=16/L=512"} {
		if s, ok := samples[n]; ok {
			f.Results = append(f.Results, bench.Result{Name: n, Op: "op", Impl: "cpu-float32", Pass: "fwd", L: 1, Samples: s})
		}
	}
	path := filepath.Join(dir, name)
	_, err := bench.WriteFiles(f, path)
	require.NoError(t, err)
	return path
}

// noisy returns n samples of median around center with relative noise.
func noisy(rng *rand.Rand, n int, center, noise float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = center * (1 + noise*rng.NormFloat64())
	}
	return s
}

const (
	rms  = "RMSNorm/pass=fwd/B=1/D=512/L=128"
	scan = "SelectiveScan/pass=fwd/B=1/D=256/N=16/L=512"
	scb  = "SelectiveScan/pass=fwdbwd/B=1/D=256/N=16/L=512"
)

func TestRegressIdenticalSamplesPass(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	s := map[string][]float64{rms: noisy(rng, 10, 1e-3, 0.02), scan: noisy(rng, 10, 5e-3, 0.02)}
	a := benchFile(t, dir, "a.bench.json", "cpu0", s)
	b := benchFile(t, dir, "b.bench.json", "cpu0", s)
	code, out, errOut := runCLI(t, "regress", a, b)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "same", verdict(out, rms))
	assert.Equal(t, "same", verdict(out, scan))
	assert.Contains(t, out, "2 compared, 0 slower by more than 5%")

	// Constant samples (every value tied) are the same too.
	c := benchFile(t, dir, "c.bench.json", "cpu0", map[string][]float64{rms: {1, 1, 1, 1, 1}})
	code, out, _ = runCLI(t, "regress", c, c)
	assert.Equal(t, 0, code)
	assert.Equal(t, "same", verdict(out, rms))
}

func TestRegressSlowdownFails(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(2, 1))
	old := benchFile(t, dir, "old.bench.json", "cpu0", map[string][]float64{
		rms: noisy(rng, 10, 1e-3, 0.02), scan: noisy(rng, 10, 5e-3, 0.02), scb: noisy(rng, 10, 9e-3, 0.02)})
	cur := benchFile(t, dir, "new.bench.json", "cpu0", map[string][]float64{
		rms: noisy(rng, 10, 1.2e-3, 0.02), scan: noisy(rng, 10, 5e-3, 0.02), scb: noisy(rng, 10, 7e-3, 0.02)})
	code, out, errOut := runCLI(t, "regress", old, cur)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, errOut, "1 of 3 benchmarks are slower than the baseline by more than 5%")
	assert.Equal(t, "slower", verdict(out, rms))
	assert.Regexp(t, `\+(19|20)\.\d\d%`, lineWith(out, rms))
	assert.Equal(t, "same", verdict(out, scan))
	assert.Equal(t, "faster", verdict(out, scb))

	// A threshold above the slowdown lets it pass.
	code, _, _ = runCLI(t, "regress", old, cur, "--threshold", "25%")
	assert.Equal(t, 0, code)
	code, _, _ = runCLI(t, "regress", "--threshold=0.25", old, cur)
	assert.Equal(t, 0, code)
}

func TestRegressNoiseWithinThresholdPasses(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 1))
	old := benchFile(t, dir, "old.bench.json", "cpu0", map[string][]float64{rms: noisy(rng, 10, 1e-3, 0.03), scan: noisy(rng, 10, 5e-3, 0.03)})
	// 2% slower plus noise: possibly significant, but under the 5% threshold.
	cur := benchFile(t, dir, "new.bench.json", "cpu0", map[string][]float64{rms: noisy(rng, 10, 1.02e-3, 0.03), scan: noisy(rng, 10, 4.97e-3, 0.03)})
	code, out, errOut := runCLI(t, "regress", old, cur)
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "same", verdict(out, rms))
	assert.Equal(t, "same", verdict(out, scan))
}

func TestRegressTooFewSamples(t *testing.T) {
	dir := t.TempDir()
	old := benchFile(t, dir, "old.bench.json", "cpu0", map[string][]float64{rms: {1, 1.01, 0.99}})
	cur := benchFile(t, dir, "new.bench.json", "cpu0", map[string][]float64{rms: {2, 2.01, 1.99}})
	code, out, _ := runCLI(t, "regress", old, cur)
	assert.Equal(t, 0, code, "3 samples a side can never reach p < 0.05")
	assert.Equal(t, "~", verdict(out, rms))
	assert.Contains(t, out, "too few samples")
}

func TestRegressMalformedInputExits2(t *testing.T) {
	dir := t.TempDir()
	good := benchFile(t, dir, "good.bench.json", "cpu0", map[string][]float64{rms: {1, 2, 3, 4}})
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	for i, c := range []struct {
		args []string
		want string
	}{
		{[]string{"regress", good, filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"regress", good, write("trunc.json", `{"schema": "seqbench-bench/1", "results": [`)}, "not a bench JSON file"},
		{[]string{"regress", write("text.json", "BenchmarkX 1 2 ns/op\n"), good}, "not a bench JSON file"},
		{[]string{"regress", good, write("other.json", `{"device": "x", "results": []}`)}, "not a seqbench bench file"},
		{[]string{"regress", good, write("nosamples.json", `{"schema": "seqbench-bench/1", "results": [{"name": "A"}]}`)}, "has no samples"},
		{[]string{"regress", good, write("neg.json", `{"schema": "seqbench-bench/1", "results": [{"name": "A", "samples_s": [1, -2]}]}`)}, "sample -2"},
		{[]string{"regress", good, write("dup.json", `{"schema": "seqbench-bench/1", "results": [{"name": "A", "samples_s": [1]}, {"name": "A", "samples_s": [1]}]}`)}, "appears twice"},
		{[]string{"regress", good, write("empty.json", `{"schema": "seqbench-bench/1", "device": "cpu0", "backend": "cpu-float32", "results": []}`)}, "no benchmark in common"},
		{[]string{"regress", good}, "takes BASELINE and CURRENT"},
		{[]string{"regress", good, good, "--threshold", "5"}, `--threshold "5"`},
		{[]string{"regress", good, good, "--threshold", "-1%"}, `--threshold "-1%"`},
		{[]string{"regress", good, good, "--alpha", "0"}, "--alpha 0"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		assert.Equal(t, 2, code, "case %d: %s", i, errOut)
		assert.Contains(t, errOut, c.want, "case %d", i)
	}
}

func TestRegressDeviceMismatch(t *testing.T) {
	dir := t.TempDir()
	s := map[string][]float64{rms: {1, 1.1, 0.9, 1.05, 0.95}}
	a := benchFile(t, dir, "a.bench.json", "NVIDIA H100", s)
	b := benchFile(t, dir, "b.bench.json", "NVIDIA H200", s)
	code, _, errOut := runCLI(t, "regress", a, b)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `different devices: baseline "NVIDIA H100"`)
	code, out, errOut := runCLI(t, "regress", a, b, "--allow-device-change")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "warning: comparing different devices")
}

// verdict is the last cell of the table row of benchmark name.
func verdict(out, name string) string {
	cells := strings.Split(strings.Trim(lineWith(out, name), "│ "), "│")
	return strings.TrimSpace(cells[len(cells)-1])
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// The header shows the host load of both runs and says when a file was
// interrupted.
func TestRegressShowsHostLoadAndInterrupted(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, l0, l1 float64, interrupted bool) string {
		f := &bench.File{Schema: bench.SchemaVersion, Suite: "kernels", Device: "gpu0", Backend: "cuda-float32",
			Interrupted: interrupted, Host: bench.Host{CPUs: 192, Load1Start: l0, Load1End: l1},
			Results: []bench.Result{{Name: rms, Samples: []float64{1e-3, 1.01e-3, 1.02e-3, 1.03e-3}}}}
		path := filepath.Join(dir, name)
		_, err := bench.WriteFiles(f, path)
		require.NoError(t, err)
		return path
	}
	a := write("a.bench.json", 0.4, 0.6, false)
	b := write("b.bench.json", 20.31, 21.5, true)
	code, out, errOut := runCLI(t, "regress", a, b)
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "host load (1 min) baseline 0.40 → 0.60, current 20.31 → 21.50 on 192 CPUs\n")
	assert.Contains(t, out, "current was interrupted: only the benchmarks it finished are compared\n")
	assert.NotContains(t, out, "baseline was interrupted")
}
