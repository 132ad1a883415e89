package reports

import (
	"io"
	"os"
	"path/filepath"
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

// FuzzLoadRun: a run folder's files (config.yaml, metrics.jsonl,
// summary.json), whatever they hold, never panic Load, the terminal tables
// or the report's layout; a broken run gets a status, not a crash.
func FuzzLoadRun(f *testing.F) {
	dir := f.TempDir()
	good := writeRun(f, filepath.Join(dir, "exp"), "exp", quickRun("transformer", 1))
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(good, name))
		if err != nil {
			f.Fatal(err)
		}
		return string(data)
	}
	cfg, metrics, summary := read("config.yaml"), read("metrics.jsonl"), read("summary.json")
	f.Add(cfg, metrics, summary)
	f.Add("", "", "")
	f.Add("[1, 2", `{"step": 1, "loss": "x"}`+"\n"+`{"step":`, `{"status": "ok", "params": `)
	f.Add("task: {seq_len: .nan}\ntrain: {steps: -1}\nmodel: {arch: [1]}\n", `{"step": -5, "loss": null, "eval_loss": 1e999}`, `{"status": "ok", "final_loss": null, "steps": -1, "overrides": {"task.seq_len": "x"}}`)
	f.Add("a: &a [1, 2]\nb: [*a, *a]\n", "null\n[]\n", `{"status": "", "segments": [{"name": "L=8", "seq_len": -8, "status": "ok"}]}`)
	f.Fuzz(func(t *testing.T, cfg, metrics, summary string) {
		run := filepath.Join(t.TempDir(), "exp", "transformer-0123456789")
		if err := os.MkdirAll(run, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"config.yaml": cfg, "metrics.jsonl": metrics, "summary.json": summary} {
			if data != "" {
				if err := os.WriteFile(filepath.Join(run, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		res, err := Load(filepath.Dir(filepath.Dir(run)))
		if err != nil {
			return // nothing that looks like a run
		}
		if err := WriteText(io.Discard, res); err != nil {
			t.Fatal(err)
		}
		document(res)
	})
}
