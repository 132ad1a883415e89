package reports

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"seqbench/bench"
)

// BenchResult is one result of a *.bench.json file (a bench.File, the
// layout `seqbench bench` writes) with the device of its file. The report
// draws its op, impl, variant (a line per shape), seq_len, pass, median
// time and fraction of the device ceiling.
type BenchResult struct {
	bench.Result
	Device string
}

// loadBench reads every *.bench.json below dir. Malformed files and
// entries are skipped with a warning.
func (res *Results) loadBench(dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			res.warnf("%s: %v", path, err)
			if d != nil && d.IsDir() && path != dir {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".bench.json") {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(paths)
	seen := map[string]int{} // (op, impl, device, pass, L) -> index: a later file wins
	var from []string        // the file of each result
	for _, p := range paths {
		rs, err := readBenchFile(p)
		if err != nil {
			res.warnf("%s: %v", p, err)
			continue
		}
		bad := 0
		replaced := map[string]int{} // earlier file -> results of it that p replaces
		for _, r := range rs {
			if err := r.check(); err != nil {
				bad++
				continue
			}
			key := fmt.Sprint(r.Op, "\x00", r.Impl, "\x00", r.Variant, "\x00", r.Device, "\x00", r.Pass, "\x00", r.L)
			if i, ok := seen[key]; ok {
				if from[i] != p {
					replaced[from[i]]++
				}
				res.Bench[i], from[i] = r, p
				continue
			}
			seen[key] = len(res.Bench)
			res.Bench, from = append(res.Bench, r), append(from, p)
		}
		for _, q := range sortedKeys(replaced) {
			res.warnf("%s: %d results replace those of %s (same op, impl, device, pass and L): only the later file's are drawn",
				p, replaced[q], q)
		}
		if bad > 0 {
			res.warnf("%s: %d of %d results are not drawn: they lack an op, impl, seq_len > 0, pass fwd|fwdbwd or a median_s > 0",
				p, bad, len(rs))
		}
	}
	return nil
}

func readBenchFile(path string) ([]BenchResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseBenchFile(data)
}

// parseBenchFile decodes a bench file (bench.File), each result with the
// file's device.
func parseBenchFile(data []byte) ([]BenchResult, error) {
	var f bench.File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	rs := make([]BenchResult, len(f.Results))
	for i, r := range f.Results {
		rs[i] = BenchResult{Result: r, Device: f.Device}
	}
	return rs, nil
}

func (r BenchResult) check() error {
	switch {
	case r.Op == "" || r.Impl == "":
		return fmt.Errorf("no op or impl")
	case r.L <= 0:
		return fmt.Errorf("seq_len %d", r.L)
	case r.Pass != bench.PassForward && r.Pass != bench.PassForwardBackward:
		return fmt.Errorf("pass %q", r.Pass)
	case !valid(r.Median, log10):
		return fmt.Errorf("median_s %v", r.Median)
	}
	return nil
}

// implColors are matplotlib's tab10 in order: implementations are few and
// told apart best by the most distinct colours.
var implColors = []color.RGBA{rgb(0x1f77b4), rgb(0xff7f0e), rgb(0x2ca02c), rgb(0xd62728), rgb(0x9467bd),
	rgb(0x8c564b), rgb(0xe377c2), rgb(0x7f7f7f), rgb(0xbcbd22), rgb(0x17becf)}

// series name of a result: the impl, with the device where several appear.
func benchLabel(r BenchResult, manyDevices bool) string {
	impl := strings.TrimSpace(r.Impl + " " + r.Variant)
	if manyDevices && r.Device != "" {
		return impl + " (" + r.Device + ")"
	}
	return impl
}

// benchImpl is the implementation part of a label (the colour's key).
func benchImpl(r BenchResult, manyDevices bool) string {
	if manyDevices && r.Device != "" {
		return r.Impl + " (" + r.Device + ")"
	}
	return r.Impl
}

func benchDevices(rs []BenchResult) []string {
	set := map[string]bool{}
	for _, r := range rs {
		set[r.Device] = true
	}
	return sortedKeys(set)
}

func benchOps(rs []BenchResult) []string {
	set := map[string]bool{}
	for _, r := range rs {
		set[r.Op] = true
	}
	return sortedKeys(set)
}

// benchFigures draws, per op, time against L (log–log) for the forward and
// the forward+backward pass, one line per implementation, and below it the
// fraction of the device ceiling where one was measured.
func benchFigures(rs []BenchResult) []*figure {
	if len(rs) == 0 {
		return nil
	}
	many := len(benchDevices(rs)) > 1
	// One colour per implementation (and device) across all bench figures;
	// the variants (shapes) of one are told apart by dash and glyph.
	impls := map[string]bool{}
	for _, r := range rs {
		impls[benchImpl(r, many)] = true
	}
	colorOf := map[string]color.RGBA{}
	for i, l := range sortedKeys(impls) {
		colorOf[l] = implColors[i%len(implColors)]
	}
	var figs []*figure
	for _, op := range benchOps(rs) {
		var mine []BenchResult
		hasFrac := false
		variants := map[string]bool{}
		for _, r := range rs {
			if r.Op == op {
				mine = append(mine, r)
				hasFrac = hasFrac || r.FracCeiling > 0
				variants[r.Variant] = true
			}
		}
		variantOf := map[string]int{}
		for i, v := range sortedKeys(variants) {
			variantOf[v] = i
		}
		f := &figure{name: "bench-" + slug(op), title: "kernel benchmark: " + op}
		passes := []string{bench.PassForward, bench.PassForwardBackward}
		passTitle := map[string]string{bench.PassForward: "forward", bench.PassForwardBackward: "forward + backward"}
		f.panels = [][]*panel{make([]*panel, 2)}
		if hasFrac {
			f.panels = append(f.panels, make([]*panel, 2))
		}
		for j, pass := range passes {
			tp := newPanel(passTitle[pass], "sequence length L", "median time per call", log2, log10)
			tp.yFormat = shortSeconds
			f.panels[0][j] = tp
			var fp *panel
			if hasFrac {
				fp = newPanel(passTitle[pass], "sequence length L", "fraction of device ceiling", log2, linear)
				fp.fixY(0, 1)
				f.panels[1][j] = fp
			}
			byLabel := map[string][]BenchResult{}
			for _, r := range mine {
				if r.Pass == pass {
					byLabel[benchLabel(r, many)] = append(byLabel[benchLabel(r, many)], r)
				}
			}
			for _, lab := range sortedKeys(byLabel) {
				pts := byLabel[lab]
				slices.SortFunc(pts, func(a, b BenchResult) int { return a.L - b.L })
				var xs, ts, fr []float64
				for _, r := range pts {
					xs, ts = append(xs, float64(r.L)), append(ts, r.Median)
					fv := r.FracCeiling
					if fv <= 0 {
						fv = math.NaN() // not measured: no point
					}
					fr = append(fr, fv)
				}
				st := style{color: colorOf[benchImpl(pts[0], many)], variant: variantOf[pts[0].Variant]}
				gs := st.glyph()
				th := tp.line(xs, ts, st.line(1.6), &gs)
				f.addLegend(lab, th)
				if fp != nil {
					fp.line(xs, fr, st.line(1.6), &gs)
				}
			}
		}
		f.caption = fmt.Sprintf("Kernel benchmark of %s: median time per call against sequence length (log–log), "+
			"forward (left) and forward + backward (right), one line per implementation", op)
		if hasFrac {
			f.caption += "; below, the achieved fraction of the device's measured ceiling (bandwidth or FLOP/s, whichever bounds the op)"
		}
		f.caption += "."
		figs = append(figs, f)
	}
	return figs
}

// benchTable lays the bench results out as one row per (op, impl and
// variant, device, pass) and one column per sequence length, cells the
// median time.
func benchTable(rs []BenchResult) table {
	var ls []int
	for _, r := range rs {
		if !slices.Contains(ls, r.L) {
			ls = append(ls, r.L)
		}
	}
	slices.Sort(ls)
	t := table{header: []string{"op", "impl", "device", "pass"}}
	for _, l := range ls {
		t.header = append(t.header, fmt.Sprintf("L=%d", l))
	}
	t.right = make([]bool, len(t.header))
	for i := 4; i < len(t.right); i++ {
		t.right[i] = true
	}
	type rowKey struct{ op, impl, device, pass string }
	var keys []rowKey
	cells := map[rowKey]map[int]BenchResult{}
	for _, r := range rs {
		k := rowKey{r.Op, benchLabel(r, false), r.Device, r.Pass}
		if cells[k] == nil {
			cells[k] = map[int]BenchResult{}
			keys = append(keys, k)
		}
		cells[k][r.L] = r
	}
	slices.SortFunc(keys, func(a, b rowKey) int {
		return strings.Compare(a.op+"\x00"+a.pass+"\x00"+a.impl+"\x00"+a.device, b.op+"\x00"+b.pass+"\x00"+b.impl+"\x00"+b.device)
	})
	for _, k := range keys {
		row := []string{k.op, k.impl, k.device, k.pass}
		for _, l := range ls {
			if r, ok := cells[k][l]; ok {
				row = append(row, bench.HumanSeconds(r.Median))
			} else {
				row = append(row, "-")
			}
		}
		t.rows = append(t.rows, row)
	}
	return t
}
