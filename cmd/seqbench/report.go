package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"seqbench/reports"
)

// maxDPI bounds --dpi: a plot at 1200 dpi is already a print-quality
// image of some 10k × 6k pixels.
const maxDPI = 1200

// cmdReport renders a results folder: the tables on the terminal, and
// DIR/report.md, DIR/index.html and DIR/plots/ (PNG and SVG). Runs of
// earlier versions of an experiment file are listed apart unless --all.
func cmdReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	dpi := fs.Int("dpi", 0, "resolution of the PNG plots (0: 110)")
	all := fs.Bool("all", false, "include the runs of earlier versions of each experiment file in its tables and plots")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 1, "one results folder"); err != nil {
		return err
	}
	if *dpi < 0 || *dpi > maxDPI {
		return usageError{fmt.Sprintf("--dpi %d is not allowed (0 for the default, or up to %d)", *dpi, maxDPI)}
	}
	dir := "results"
	if len(pos) == 1 {
		dir = pos[0]
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usageError{fmt.Sprintf("%s is not a folder (give a results folder, e.g. results or results/EXPERIMENT)", dir)}
	}
	res, err := reports.Load(dir)
	if err != nil {
		return err
	}
	if *all {
		res.IncludeEarlier()
	}
	if err := reports.WriteText(stdout, res); err != nil {
		return err
	}
	rep, err := reports.Write(res, dir, reports.Options{DPI: *dpi})
	if err != nil {
		return err
	}
	plots := "1 plot"
	if n := len(rep.Plots) / 2; n != 1 {
		plots = fmt.Sprintf("%d plots", n)
	}
	fmt.Fprintf(stdout, "report: %s, %s (%s, PNG and SVG, in %s)\n", rep.Markdown, rep.HTML, plots, filepath.Join(dir, "plots"))
	return nil
}
