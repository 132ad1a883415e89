package bench

import (
	"io"
	"testing"
)

// malformedBench are bench files Parse must reject, seeds of FuzzParse.
var malformedBench = []string{
	``,
	`null`,
	`[]`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "", "samples_s": [1e-3]}]}`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "A/L=1", "samples_s": []}]}`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "A/L=1", "samples_s": [0]}]}`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "A/L=1", "samples_s": [-1e-3]}]}`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "A/L=1", "samples_s": [1e400]}]}`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "A/L=1", "samples_s": [1e-3]}, {"name": "A/L=1", "samples_s": [1e-3]}]}`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "A/L=1", "samples_s": "1e-3"}]}`,
	`{"schema": "other/1", "results": []}`,
	`{"schema": "seqbench-bench/1", "results": [{"name": "A/L=1", "samples_s": [1e-3]`,
}

// FuzzParse: Parse never panics, and a file it accepts can be compared with
// itself, printed as a table and written in the benchmark format (what
// `regress` and `bench` do with it) without a panic.
func FuzzParse(f *testing.F) {
	f.Add(`{"schema": "seqbench-bench/1", "suite": "kernels", "device": "cpu", "backend": "cpu-float32",
		"results": [{"name": "Attention/pass=fwd/B=1/H=2/Dh=16/L=64", "op": "attention", "impl": "cpu-float32", "pass": "fwd",
		"seq_len": 64, "shape": {"B": 1, "H": 2, "Dh": 16, "L": 64}, "reps_per_sample": 1,
		"samples_s": [1e-3, 2e-3, 1.5e-3], "median_s": 1.5e-3, "bytes": 1e6, "flops": 1e7}]}`)
	for _, s := range malformedBench {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		file, err := Parse("fuzz.bench.json", []byte(data))
		if err != nil {
			if file != nil {
				t.Fatalf("error %v with a file", err)
			}
			return
		}
		if _, err := Compare(file, file, CompareOptions{Threshold: 0.05, Alpha: 0.05}); err != nil {
			t.Logf("compare: %v", err)
		}
		_ = WriteTable(io.Discard, file)
		_ = WriteBenchfmt(io.Discard, file)
	})
}
