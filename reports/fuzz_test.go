package reports

import (
	"io"
	"testing"
)

// FuzzParseBench: a bench file never panics the report: parsed, its valid
// results (check) tabulated and laid out as figures.
func FuzzParseBench(f *testing.F) {
	f.Add(`{"schema": "seqbench-bench/1", "device": "NVIDIA H200", "results": [
		{"op": "attention", "impl": "cuda-float32", "pass": "fwd", "seq_len": 1024, "median_s": 1e-4, "variant": "B=1 H=8 Dh=64",
		 "bytes_per_s": 1e12, "flops_per_s": 1e14, "frac_bw": 0.3, "frac_flops": 0.2},
		{"op": "attention", "impl": "cuda-float32", "pass": "fwdbwd", "seq_len": 2048, "median_s": 5e-4}]}`)
	f.Add(`[{"op": "ssd", "impl": "cpu-float32", "pass": "fwd", "seq_len": 64, "median_s": 2e-3, "device": "cpu"}]`)
	for _, s := range []string{``, `{`, `[`, `null`, `{"results": null}`, `{"results": [null]}`, `{"results": {}}`,
		`[{"op": "x", "impl": "y", "pass": "fwd", "seq_len": -1, "median_s": 1}]`,
		`[{"op": "x", "impl": "y", "pass": "bwd", "seq_len": 8, "median_s": 1}]`,
		`[{"op": "x", "impl": "y", "pass": "fwd", "seq_len": 8, "median_s": 0}]`,
		`[{"op": "x", "impl": "y", "pass": "fwd", "seq_len": 8, "median_s": 1e308}]`,
		`[{"op": "x", "impl": "y", "pass": "fwd", "seq_len": 9223372036854775807, "median_s": 1e-300}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		rs, err := parseBenchFile([]byte(data))
		if err != nil {
			return
		}
		var ok []BenchResult
		for _, r := range rs {
			if r.check() == nil {
				ok = append(ok, r)
			}
		}
		if len(ok) == 0 {
			return
		}
		if err := benchTable(ok).writeText(io.Discard); err != nil {
			t.Fatal(err)
		}
		benchFigures(ok)
	})
}
