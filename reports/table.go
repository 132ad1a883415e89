// Package reports turns results into tables (terminal and Markdown) and
// plots.
package reports

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"seqbench/train"
)

// RunTable writes one row per run: arch, params, task (with the swept
// values), accuracy, loss, tokens/s, wall time, status. Markdown output
// escapes '|' inside cells.
func RunTable(w io.Writer, runs []train.Summary, markdown bool) error {
	opts := []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignment(tw.AlignRight),
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
	}
	if markdown {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	}
	t := tablewriter.NewTable(w, opts...)
	t.Header([]string{"arch", "params", "task", "best acc", "final acc", "eval loss", "tokens/s", "wall", "status"})
	for _, s := range runs {
		task := s.Task
		if len(s.Overrides) > 0 {
			task += " " + overrides(s.Overrides)
		}
		status := s.Status
		if s.Reason != "" {
			status += ": " + firstLine(s.Reason)
		}
		row := []string{s.Arch, humanCount(s.Params), task,
			fmt.Sprintf("%.3f", s.BestAccuracy), fmt.Sprintf("%.3f", s.FinalAccuracy),
			fmtLoss(float64(s.FinalLoss)), fmt.Sprintf("%.0f", s.TokensPerSec),
			(time.Duration(s.WallSeconds*10) * time.Second / 10).String(), status}
		if markdown {
			for i := range row {
				row[i] = strings.ReplaceAll(row[i], "|", `\|`)
			}
		}
		if err := t.Append(row); err != nil {
			return err
		}
	}
	return t.Render()
}

func overrides(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, strings.TrimPrefix(k, "task.")+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func fmtLoss(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.4f", v)
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
