package reports

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"seqbench/train"
)

// RunTable writes one row per run: arch, the settings that vary, params,
// FLOPs/token, task, final and best accuracy and loss, tokens/s, wall time
// and status (with the reason of a run that is not ok). Markdown output
// escapes '|' inside cells. With expDir, the experiment folder, the
// settings come from each run's config.yaml, as report.md's table has them
// (the models of a models list, a hybrid's layers and attention fraction);
// without it, or for a run without one, from the summaries' overrides.
func RunTable(w io.Writer, expDir string, runs []train.Summary, markdown bool) error {
	rs := make([]*Run, len(runs))
	for i, s := range runs {
		rs[i] = &Run{Name: s.Run, Summary: s, Status: s.Status, Reason: s.Reason}
		if expDir != "" && s.Run != "" {
			rs[i].Config = runConfig(filepath.Join(expDir, s.Run))
		}
	}
	t := runsTable(analyse(rs), rs)
	if markdown {
		return t.writeMarkdown(w)
	}
	return t.writeText(w)
}

// table is rendered to the terminal, Markdown and HTML from one place.
type table struct {
	header []string
	rows   [][]string
	right  []bool // right-align the column (numbers)
}

// maxReason is how much of a failure reason a table cell shows; report.md
// lists the full first line below the table.
const maxReason = 60

// runsTable is the per-run table of an experiment, in arch order, then by
// the varying settings.
func runsTable(d design, runs []*Run) table {
	keys := append(append(append([]string{}, d.seriesKeys...), d.facetKeys...), d.dependent...)
	if d.lrVaries {
		keys = append(keys, lrKey)
	}
	if d.seedVaries {
		keys = append(keys, seedKey)
	}
	cols := without(keys, "task.name") // the task column shows it
	t := table{header: []string{"arch"}}
	for _, k := range cols {
		t.header = append(t.header, d.names[k])
	}
	t.header = append(t.header, "params", "FLOPs/token", "task", "final acc", "best acc",
		"final loss", "best loss", "tokens/s", "wall", "status")
	t.right = make([]bool, len(t.header))
	for i := 1; i < len(t.header)-1; i++ {
		t.right[i] = t.header[i] != "task"
	}
	sorted := append([]*Run{}, runs...)
	sortRuns(sorted, keys)
	for _, r := range sorted {
		s := r.Summary
		row := []string{s.Arch}
		for _, k := range cols {
			v, ok := r.Setting(k)
			if !ok {
				v = "-"
			}
			row = append(row, v)
		}
		evaluated := !math.IsNaN(float64(s.FinalLoss)) && (r.OK() || s.Steps > 0)
		acc := func(v float64) string {
			if !evaluated {
				return "-"
			}
			return fmt.Sprintf("%.3f", v)
		}
		params, flops := "-", "-"
		if s.Params > 0 {
			params = humanCount(s.Params)
		}
		if s.FLOPsPerToken > 0 {
			flops = humanFloat(s.FLOPsPerToken)
		}
		tps, wall := "-", "-"
		if s.TokensPerSec > 0 {
			tps = humanFloat(math.Round(s.TokensPerSec))
		}
		if s.WallSeconds > 0 {
			wall = (time.Duration(s.WallSeconds*10) * time.Second / 10).String()
		}
		row = append(row, params, flops, orDash(s.Task), acc(s.FinalAccuracy), acc(s.BestAccuracy),
			fmtLoss(float64(s.FinalLoss)), fmtLoss(float64(s.BestLoss)), tps, wall, statusCell(r))
		t.rows = append(t.rows, row)
	}
	return t
}

func sortRuns(runs []*Run, keys []string) {
	slices.SortStableFunc(runs, func(a, b *Run) int { return compareRuns(a, b, keys) })
}

func statusCell(r *Run) string {
	st := orDash(r.Status)
	if r.Reason != "" {
		st += ": " + truncate(firstLine(r.Reason), maxReason)
	}
	return st
}

// seedTable aggregates the ok runs over seeds: mean ± standard deviation
// per configuration (the table a paper shows).
func seedTable(d design, runs []*Run) table {
	keys := append(append(append([]string{}, d.seriesKeys...), d.facetKeys...), d.dependent...)
	if d.lrVaries {
		keys = append(keys, lrKey)
	}
	cols := without(keys, "task.name")
	t := table{header: []string{"arch"}}
	for _, k := range cols {
		t.header = append(t.header, d.names[k])
	}
	t.header = append(t.header, "task", "seeds", "final acc", "best acc", "final loss", "tokens/s")
	t.right = make([]bool, len(t.header))
	for i := 1 + len(cols); i < len(t.header); i++ {
		t.right[i] = t.header[i] != "task"
	}
	for i := 1; i <= len(cols); i++ {
		t.right[i] = true
	}
	var ok []*Run
	for _, r := range runs {
		if r.OK() {
			ok = append(ok, r)
		}
	}
	// The spread gets two significant digits, the mean the table's usual.
	pm := func(f func(*Run) float64, rs []*Run, format func(float64) string) string {
		m, s := meanOf(rs, f), stdOf(rs, f)
		if math.IsNaN(m) {
			return "-"
		}
		if math.IsNaN(s) {
			return format(m)
		}
		return format(m) + " ± " + fmt.Sprintf("%.2g", s)
	}
	f3 := func(v float64) string { return fmt.Sprintf("%.3f", v) }
	for _, b := range groupBy(ok, keys, true) {
		r := b.runs[0]
		row := []string{r.Summary.Arch}
		for _, k := range cols {
			v, has := r.Setting(k)
			if !has {
				v = "-"
			}
			row = append(row, v)
		}
		row = append(row, orDash(r.Summary.Task), fmt.Sprint(len(b.runs)),
			pm(finalAcc, b.runs, f3), pm(func(r *Run) float64 { return r.Summary.BestAccuracy }, b.runs, f3),
			pm(finalLoss, b.runs, fmtLoss), humanFloat(math.Round(meanOf(b.runs, func(r *Run) float64 { return r.Summary.TokensPerSec }))))
		t.rows = append(t.rows, row)
	}
	return t
}

func (t table) options() []tablewriter.Option {
	align := make([]tw.Align, len(t.header))
	for i := range align {
		align[i] = tw.AlignLeft
		if i < len(t.right) && t.right[i] {
			align[i] = tw.AlignRight
		}
	}
	return []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off), // d_state stays d_state
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: align}),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
	}
}

func (t table) writeText(w io.Writer) error {
	tab := tablewriter.NewTable(w, t.options()...)
	tab.Header(t.header)
	for _, r := range t.rows {
		if err := tab.Append(r); err != nil {
			return err
		}
	}
	return tab.Render()
}

// writeMarkdown writes a GitHub Markdown table; '|' inside a cell is
// escaped so it does not split the cell.
func (t table) writeMarkdown(w io.Writer) error {
	tab := tablewriter.NewTable(w, append(t.options(), tablewriter.WithRenderer(renderer.NewMarkdown()))...)
	esc := func(cells []string) []string {
		out := make([]string, len(cells))
		for i, c := range cells {
			out[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		return out
	}
	tab.Header(esc(t.header))
	for _, r := range t.rows {
		if err := tab.Append(esc(r)); err != nil {
			return err
		}
	}
	return tab.Render()
}

// fmtLoss writes a loss to 4 significant digits, trailing zeros kept (a
// mean of 1.5997 is 1.600, not 1.6 beside a spread of 0.075).
func fmtLoss(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%#.4g", v)
}

// humanCount writes a count with a k/M/B suffix.
func humanCount(n int) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
