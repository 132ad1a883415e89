package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"golang.org/x/perf/benchfmt"

	"seqbench/internal/atomicfile"
)

// WriteFiles writes the JSON record to path and the Go benchmark-format
// lines next to it (TextPath(path)), each atomically (temp file, rename).
func WriteFiles(f *File, path string) (textPath string, err error) {
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(path, append(data, '\n')); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := WriteBenchfmt(&buf, f); err != nil {
		return "", err
	}
	textPath = TextPath(path)
	return textPath, atomicfile.WriteFile(textPath, buf.Bytes())
}

// TextPath is where the benchmark-format lines of a JSON file go:
// kernels.bench.json -> kernels.bench.txt.
func TextPath(jsonPath string) string {
	return strings.TrimSuffix(jsonPath, ".json") + ".txt"
}

// ReadFile reads and checks a bench JSON file. Every error names the file
// and what is wrong: it is not JSON, not a seqbench bench file, or a
// result has no samples, a sample that is not a finite time > 0, or a
// name used twice.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse checks and decodes the bench JSON data of the file path (named in
// the errors), as ReadFile does.
func Parse(path string, data []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: not a bench JSON file: %v", path, err)
	}
	if !strings.HasPrefix(f.Schema, "seqbench-bench/") {
		return nil, fmt.Errorf("%s: schema %q is not a seqbench bench file (want %q)", path, f.Schema, SchemaVersion)
	}
	switch {
	case f.Precision == "":
		f.Precision = PrecisionFP32 // written before precisions existed
	case !slices.Contains(Precisions, f.Precision):
		return nil, fmt.Errorf("%s: precision %q is not allowed (one of %s)", path, f.Precision, strings.Join(Precisions, ", "))
	}
	seen := map[string]bool{}
	for i, r := range f.Results {
		switch {
		case r.Name == "":
			return nil, fmt.Errorf("%s: result %d has no name", path, i)
		case seen[r.Name]:
			return nil, fmt.Errorf("%s: benchmark %s appears twice", path, r.Name)
		case len(r.Samples) == 0:
			return nil, fmt.Errorf("%s: benchmark %s has no samples", path, r.Name)
		}
		seen[r.Name] = true
		for _, s := range r.Samples {
			if !(s > 0) || math.IsInf(s, 0) {
				return nil, fmt.Errorf("%s: benchmark %s has a sample %v (want finite seconds > 0)", path, r.Name, s)
			}
		}
	}
	return &f, nil
}

// WriteBenchfmt writes f in the Go benchmark format (golang.org/x/perf
// benchfmt), one line per sample so benchstat sees the spread:
//
//	BenchmarkSelectiveScan/pass=fwd/B=1/D=256/N=16/L=512 8 0.00123 sec/op 4.5e+09 B/s 1.2e+09 FLOP/s
//
// preceded by the configuration (device, backend, revision ...) and unit
// metadata saying that B/s, FLOP/s and tokens/s are better higher.
func WriteBenchfmt(w io.Writer, f *File) error {
	bw := benchfmt.NewWriter(w)
	for _, unit := range []string{"B/s", "FLOP/s", "tokens/s"} {
		if err := bw.Write(&benchfmt.UnitMetadata{UnitMetadataKey: benchfmt.UnitMetadataKey{Unit: unit, Key: "better"},
			OrigUnit: unit, Value: "higher"}); err != nil {
			return err
		}
	}
	cfg := []benchfmt.Config{}
	add := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			cfg = append(cfg, benchfmt.Config{Key: k, Value: []byte(v), File: true})
		}
	}
	add("goos", f.Host.GOOS)
	add("goarch", f.Host.GOARCH)
	add("pkg", "seqbench/bench")
	add("device", f.Device)
	add("backend", f.Backend)
	add("precision", f.Precision)
	add("driver", f.Driver)
	add("revision", f.Revision)
	add("suite", f.Suite)
	write := func(r Result) error {
		for _, s := range r.Samples {
			res := &benchfmt.Result{Config: cfg, Name: benchfmt.Name(r.Name), Iters: max(r.Reps, 1),
				Values: []benchfmt.Value{{Value: s, Unit: "sec/op"}}}
			if r.Bytes > 0 {
				res.Values = append(res.Values, benchfmt.Value{Value: r.Bytes / s, Unit: "B/s"})
			}
			if r.FLOPs > 0 {
				res.Values = append(res.Values, benchfmt.Value{Value: r.FLOPs / s, Unit: "FLOP/s"})
			}
			if r.Tokens > 0 {
				res.Values = append(res.Values, benchfmt.Value{Value: float64(r.Tokens) / s, Unit: "tokens/s"})
			}
			if err := bw.Write(res); err != nil {
				return err
			}
		}
		return nil
	}
	if c := f.Ceilings; c != nil {
		for _, r := range []Result{c.Copy, c.Gemm} {
			if err := write(r); err != nil {
				return err
			}
		}
	}
	for _, r := range f.Results {
		if err := write(r); err != nil {
			return err
		}
	}
	return nil
}

// tableOptions: header auto-format off (d_model stays d_model).
func tableOptions(right []bool) []tablewriter.Option {
	align := make([]tw.Align, len(right))
	for i, r := range right {
		align[i] = tw.AlignLeft
		if r {
			align[i] = tw.AlignRight
		}
	}
	return []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
	}
}

func renderTable(w io.Writer, header []string, right []bool, rows [][]string) error {
	t := tablewriter.NewTable(w, tableOptions(right)...)
	t.Header(header)
	for _, r := range rows {
		if err := t.Append(r); err != nil {
			return err
		}
	}
	return t.Render()
}

// WriteTable writes the results of f as a terminal table: the device and
// its ceilings, one row per benchmark, then what was skipped.
func WriteTable(w io.Writer, f *File) error {
	fmt.Fprintf(w, "%s suite on %s, backend %s, precision %s", f.Suite, f.Device, f.Backend, f.Precision)
	if f.Driver != "" {
		fmt.Fprintf(w, " (%s)", f.Driver)
	}
	fmt.Fprintf(w, ", %s timer, median of %d samples\n", f.Settings.Timer, f.Settings.Repeat)
	if c := f.Ceilings; c != nil {
		fmt.Fprintf(w, "ceilings: copy %.3g GB/s (read + write, %s), GEMM %.3g GFLOP/s (%s)\n",
			c.CopyBytesPerS/1e9, strings.TrimPrefix(c.Copy.Name, "Ceiling"), c.GemmFLOPsPerS/1e9, strings.TrimPrefix(c.Gemm.Name, "Ceiling"))
	}
	if h := f.Host; h.Load1Start > 0 || h.Load1End > 0 {
		fmt.Fprintf(w, "host load (1 min) %.2f → %.2f on %d CPUs\n", h.Load1Start, h.Load1End, h.CPUs)
	}
	if f.Interrupted {
		fmt.Fprintf(w, "interrupted: %d benchmarks finished, the rest did not run\n", len(f.Results))
	}
	var err error
	switch f.Suite {
	case "train", "memory":
		if err = stepTable(w, f); err == nil {
			err = profileTables(w, f)
		}
	case "generate":
		if err = generateTable(w, f); err == nil {
			againstTransformer(w, f)
			err = profileTables(w, f)
		}
	default:
		err = kernelTable(w, f)
	}
	if err != nil {
		return err
	}
	for _, s := range f.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.Name, s.Reason)
	}
	return nil
}

func pct(v float64) string {
	if v <= 0 || math.IsNaN(v) {
		return "-"
	}
	if v < 0.001 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// spread is the interquartile range over the median.
func spread(r Result) string {
	if r.Median <= 0 {
		return "-"
	}
	return fmt.Sprintf("±%.1f%%", 50*(r.Q3-r.Q1)/r.Median)
}

func kernelTable(w io.Writer, f *File) error {
	header := []string{"op", "pass", "shape", "median", "IQR/2", "GB/s", "GFLOP/s", "% copy BW", "% GEMM", "bound"}
	right := []bool{false, false, false, true, true, true, true, true, true, false}
	var rows [][]string
	for _, r := range f.Results {
		rows = append(rows, []string{r.Op, r.Pass, strings.TrimSpace(r.Variant + fmt.Sprintf(" L=%d", r.L)),
			HumanSeconds(r.Median), spread(r), fmt.Sprintf("%.3g", r.BytesPerS/1e9), fmt.Sprintf("%.3g", r.FLOPsPerS/1e9),
			pct(r.FracBandwidth), pct(r.FracFLOPs), r.Bound})
	}
	return renderTable(w, header, right, rows)
}

// stepTable is the train and memory suites' table; on a device that counts
// them (a GPU) it adds each step's device operations (launches) and host
// waits.
func stepTable(w io.Writer, f *File) error {
	header := []string{"arch", "params", "B", "L", "median step", "IQR/2", "tokens/s", "GFLOP/s", "% GEMM", "peak mem"}
	right := []bool{false, true, true, true, true, true, true, true, true, true}
	counted := slices.ContainsFunc(f.Results, func(r Result) bool { return r.StreamOps > 0 })
	if counted {
		header = append(header, "launches", "host waits")
		right = append(right, true, true)
	}
	var rows [][]string
	for _, r := range f.Results {
		row := []string{r.Arch, fmt.Sprint(r.Params), fmt.Sprint(r.Shape["B"]), fmt.Sprint(r.L),
			HumanSeconds(r.Median), spread(r), fmt.Sprintf("%.4g", r.TokensPerS), fmt.Sprintf("%.3g", r.FLOPsPerS/1e9),
			pct(r.FracFLOPs), humanBytes(r.PeakBytes)}
		if counted {
			row = append(row, fmt.Sprint(r.StreamOps), fmt.Sprint(r.HostWaits))
		}
		rows = append(rows, row)
	}
	return renderTable(w, header, right, rows)
}

// profileRows is how many labels a profile table lists before "other".
const profileRows = 15

// profileTables writes the time budget of each profiled step (or decoded
// token): where the device's time went, by operation and kernel, and how
// long it sat idle between operations.
func profileTables(w io.Writer, f *File) error {
	for _, r := range f.Results {
		p := r.Profile
		if p == nil || p.Span <= 0 {
			continue
		}
		what, one, median := fmt.Sprintf("step time budget, %s %s B=%d L=%d", r.Arch, f.Precision, r.Shape["B"], r.L), "step", r.Median
		if f.Suite == "generate" {
			what = fmt.Sprintf("decoded-token time budget, %s %s B=%d after a prompt of %d", r.Arch, f.Precision, r.Shape["B"], r.Shape["prompt"])
			one, median = "decoded token", r.DecodeS/float64(max(r.Shape["new"], 1))
		}
		fmt.Fprintf(w, "\n%s: one profiled %s, %d operations over %s; device busy %s (%.1f%%), idle between operations %s (median unprofiled %s %s)\n",
			what, one, p.Ops, HumanSeconds(p.Span), HumanSeconds(p.Busy), 100*p.Busy/p.Span,
			HumanSeconds(p.Gaps()), one, HumanSeconds(median))
		var rows [][]string
		add := func(label string, calls int, s float64) {
			rows = append(rows, []string{label, fmt.Sprint(calls), HumanSeconds(s), pct(s / p.Busy), HumanSeconds(s / float64(max(calls, 1)))})
		}
		other, otherCalls := 0.0, 0
		for i, row := range p.Rows {
			if i < profileRows {
				add(row.Label, row.Calls, row.Seconds)
			} else {
				other += row.Seconds
				otherCalls += row.Calls
			}
		}
		if n := len(p.Rows) - profileRows; n > 0 {
			add(fmt.Sprintf("other (%d labels)", n), otherCalls, other)
		}
		if err := renderTable(w, []string{"op/kernel", "calls", "time", "% busy", "per call"}, []bool{false, true, true, true, true}, rows); err != nil {
			return err
		}
	}
	return nil
}

// againstTransformer writes each architecture's generation throughput as
// a multiple of the Transformer's at the same batch size, where the file
// has both: the Mamba paper's Figure 8 contrast (with --matched, at the
// papers' matched sizes).
func againstTransformer(w io.Writer, f *File) {
	tf := map[int]Result{}
	for _, r := range f.Results {
		if r.Arch == "transformer" && r.TokensPerS > 0 {
			tf[r.Shape["B"]] = r
		}
	}
	header := false
	for _, r := range f.Results {
		t, ok := tf[r.Shape["B"]]
		if r.Arch == "transformer" || !ok {
			continue
		}
		if !header {
			fmt.Fprintln(w, "generation throughput against the transformer at the same batch:")
			header = true
		}
		fmt.Fprintf(w, "  B=%d: %s %.4g tokens/s (%d params, %d layers) = %.2f× transformer's %.4g (%d params, %d layers)\n",
			r.Shape["B"], r.Arch, r.TokensPerS, r.Params, r.Shape["n_layers"], r.TokensPerS/t.TokensPerS,
			t.TokensPerS, t.Params, t.Shape["n_layers"])
	}
}

// generateTable is the generate suite's table; on a device that counts
// them (a GPU) it adds the device operations (launches, or a graph's
// replayed operations) and host waits of one decoded token.
func generateTable(w io.Writer, f *File) error {
	header := []string{"arch", "params", "B", "prompt+new", "median total", "IQR/2", "prefill", "decode/token", "tokens/s", "state", "peak mem"}
	right := []bool{false, true, true, true, true, true, true, true, true, true, true}
	counted := slices.ContainsFunc(f.Results, func(r Result) bool { return r.StreamOps > 0 })
	if counted {
		header = append(header, "ops/token", "host waits/token")
		right = append(right, true, true)
	}
	var rows [][]string
	for _, r := range f.Results {
		perTok := 0.0
		if n := r.Shape["new"]; n > 0 {
			perTok = r.DecodeS / float64(n)
		}
		name := r.Arch
		if r.Graph {
			name += " (graph)"
		}
		row := []string{name, fmt.Sprint(r.Params), fmt.Sprint(r.Shape["B"]),
			fmt.Sprintf("%d+%d", r.Shape["prompt"], r.Shape["new"]), HumanSeconds(r.Median), spread(r),
			HumanSeconds(r.PrefillS), HumanSeconds(perTok), fmt.Sprintf("%.4g", r.TokensPerS),
			humanBytes(r.StateBytes), humanBytes(r.PeakBytes)}
		if counted {
			row = append(row, fmt.Sprint(r.StreamOps), fmt.Sprint(r.HostWaits))
		}
		rows = append(rows, row)
	}
	return renderTable(w, header, right, rows)
}
