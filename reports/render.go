package reports

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"seqbench/internal/atomicfile"
	"seqbench/train"
)

// Options tune Write.
type Options struct {
	// DPI of the PNG files; 0 means the default (110).
	DPI int
}

// Report is what Write produced.
type Report struct {
	Markdown string   // DIR/report.md
	HTML     string   // DIR/index.html
	Plots    []string // the PNG and SVG files, under DIR/plots/
	Warnings []string
}

// Render loads dir and writes its report into it: the call at the end of
// `seqbench run` and behind `seqbench report`.
func Render(dir string) (*Report, error) {
	res, err := Load(dir)
	if err != nil {
		return nil, err
	}
	return Write(res, dir, Options{})
}

// block is one element of the report, rendered to Markdown and to HTML
// from the same list so the two never say different things.
type block struct {
	heading string
	level   int
	text    string   // a paragraph
	items   []string // a bullet list
	table   *table
	fig     *figure
	png     string // paths relative to the report
	svg     string
}

// Write renders res into outDir: report.md, index.html and plots/*.png,
// plots/*.svg.
func Write(res *Results, outDir string, opt Options) (*Report, error) {
	if opt.DPI <= 0 {
		opt.DPI = pngDPI
	}
	plotDir := filepath.Join(outDir, "plots")
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return nil, err
	}
	blocks := document(res)
	rep := &Report{Markdown: filepath.Join(outDir, "report.md"), HTML: filepath.Join(outDir, "index.html"),
		Warnings: res.Warnings}
	for i := range blocks {
		b := &blocks[i]
		if b.fig == nil {
			continue
		}
		var png, svg string
		var err error
		if perr := safely(func() { png, svg, err = b.fig.save(plotDir, opt.DPI) }); perr != nil {
			// A plot that cannot be drawn is a bug to report, not a
			// reason to lose the rest of the report.
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("plot %s: %v", b.fig.name, perr))
			*b = block{text: fmt.Sprintf("(The plot %q could not be drawn: %v.)", b.fig.title, perr)}
			continue
		}
		if err != nil {
			return nil, err
		}
		rep.Plots = append(rep.Plots, png, svg)
		b.png, b.svg = "plots/"+filepath.Base(png), "plots/"+filepath.Base(svg)
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, blocks); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(rep.Markdown, md.Bytes()); err != nil {
		return nil, err
	}
	var page bytes.Buffer
	if err := writeHTML(&page, res, blocks); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(rep.HTML, page.Bytes()); err != nil {
		return nil, err
	}
	return rep, nil
}

// safely runs f, turning a panic into an error: the report draws with
// gonum/plot, whose checks panic, and a results folder must never crash it.
func safely(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	f()
	return nil
}

// reportTitle names the report after the folder it describes.
func reportTitle(res *Results) string {
	abs, err := filepath.Abs(res.Dir)
	if err != nil {
		abs = res.Dir
	}
	return "seqbench report: " + filepath.Base(abs)
}

// document lays the report out.
func document(res *Results) []block {
	var bs []block
	add := func(b block) { bs = append(bs, b) }
	add(block{heading: reportTitle(res), level: 1})
	nRuns, nEarlier := 0, 0
	for _, e := range res.Experiments {
		nRuns += len(e.Runs)
		nEarlier += len(e.Earlier)
	}
	intro := fmt.Sprintf("Results read from %s: %s in %s", res.Dir, plural(nRuns, "run"), plural(len(res.Experiments), "experiment"))
	if nEarlier > 0 {
		intro += fmt.Sprintf(" (and %s of earlier experiment files, listed apart)", plural(nEarlier, "run"))
	}
	if len(res.Bench) > 0 {
		intro += fmt.Sprintf(", and %s", plural(len(res.Bench), "kernel benchmark result"))
	}
	add(block{text: intro + ". Failed, diverged, interrupted and incomplete runs are listed in the tables and left out of the plots."})
	for _, e := range res.Experiments {
		bs = append(bs, experimentBlocks(e)...)
	}
	if len(res.Bench) > 0 {
		add(block{heading: "Kernel benchmarks", level: 2})
		t := benchTable(res.Bench)
		add(block{text: "Median time per call of each op, by implementation, pass and sequence length L."})
		add(block{table: &t})
		for _, f := range benchFigures(res.Bench) {
			add(block{heading: upperFirst(f.title), level: 3})
			add(block{fig: f})
		}
	}
	if len(res.Warnings) > 0 {
		add(block{heading: "Warnings", level: 2})
		add(block{text: "Problems met while reading the results (the affected lines or files were skipped):"})
		add(block{items: res.Warnings})
	}
	return bs
}

func experimentBlocks(e *Experiment) []block {
	var bs []block
	add := func(b block) { bs = append(bs, b) }
	ep := newExpPlots(e)
	d := ep.d
	add(block{heading: "Experiment " + e.Name, level: 2})
	add(block{text: experimentSentence(e, d)})
	add(block{heading: "Runs", level: 3})
	t := runsTable(d, e.Runs)
	add(block{text: "One row per run: parameters, forward FLOPs per token, final and best eval accuracy and loss, " +
		"training throughput, wall time and status."})
	add(block{table: &t})
	var problems []string
	for _, r := range sortedRuns(e.Runs, d) {
		if !r.OK() {
			problems = append(problems, fmt.Sprintf("%s (%s): %s — %s", r.Name, r.Summary.Arch, r.Status, orDash(firstLine(r.Reason))))
		}
	}
	if len(problems) > 0 {
		add(block{text: "Runs that did not finish normally (not in the plots):"})
		add(block{items: problems})
	}
	if len(e.Earlier) > 0 {
		add(block{heading: "Runs of earlier versions of the experiment file", level: 3})
		add(block{text: earlierNote(e)})
		add(block{items: earlierItems(e)})
	}
	if d.seedVaries && len(ep.ok) > 0 {
		st := seedTable(d, e.Runs)
		add(block{heading: "Mean over seeds", level: 3})
		add(block{text: "Finished runs that differ only by seed, as mean ± standard deviation over the seeds."})
		add(block{table: &st})
	}
	if t := ep.extrapolationTable(); t != nil {
		add(block{heading: "Accuracy by evaluation length", level: 3})
		add(block{text: "Final eval accuracy of the finished runs at each evaluation length (a different length than " +
			"trained on tests extrapolation); oom: the evaluation would not fit in memory, skipped: the model cannot run that length."})
		add(block{table: t})
	}
	bs = append(bs, ep.scalingBlocks()...)
	if len(ep.ok) == 0 {
		add(block{text: "No run of this experiment finished normally, so there is nothing to plot."})
		return bs
	}
	var figs []*figure
	if err := safely(func() { figs = ep.figures() }); err != nil {
		add(block{text: "The plots of this experiment could not be made: " + err.Error()})
	}
	for _, f := range figs {
		add(block{heading: upperFirst(strings.TrimPrefix(f.title, e.Name+": ")), level: 3})
		add(block{fig: f})
	}
	for _, n := range ep.notes {
		add(block{text: n})
	}
	return bs
}

func sortedRuns(runs []*Run, d design) []*Run {
	out := slices.Clone(runs)
	sortRuns(out, append(append([]string{}, d.seriesKeys...), d.facetKeys...))
	return out
}

// replacedByCurricula reports whether task setting k goes unused because
// both curricula of an MQAR task replace it (tasks/mqar.go).
func replacedByCurricula(cfg map[string]string, k string) bool {
	if k != "task.seq_len" && k != "task.num_kv_pairs" {
		return false
	}
	for _, c := range []string{"task.train_curriculum", "task.test_curriculum"} {
		if v, ok := cfg[c]; !ok || v == "[]" || v == "" || v == "null" {
			return false
		}
	}
	return true
}

// experimentSentence says what the experiment trained and how it went.
func experimentSentence(e *Experiment, d design) string {
	var archs, tasksSeen []string
	for _, r := range sortedRuns(e.Runs, d) {
		if r.Summary.Arch != "?" && !slices.Contains(archs, r.Summary.Arch) {
			archs = append(archs, r.Summary.Arch)
		}
		if r.Summary.Task != "" && !slices.Contains(tasksSeen, r.Summary.Task) {
			tasksSeen = append(tasksSeen, r.Summary.Task)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s on %s", plural(len(e.Runs), "run"), strings.Join(archs, ", "), strings.Join(tasksSeen, " and "))
	// The fixed task setting, from the first run with a config.
	varying := map[string]bool{}
	for _, k := range append(append([]string{}, d.facetKeys...), d.dependent...) {
		varying[k] = true
	}
	for _, r := range e.Runs {
		if r.Config == nil {
			continue
		}
		var fixed []string
		for _, k := range sortedKeys(r.Config) {
			if strings.HasPrefix(k, "task.") && k != "task.name" && !varying[k] && !replacedByCurricula(r.Config, k) {
				fixed = append(fixed, leaf(k)+"="+r.Config[k])
			}
		}
		if len(fixed) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(fixed, ", "))
		}
		break
	}
	if len(d.facetKeys)+len(d.seriesKeys) > 0 || d.lrVaries || d.seedVaries {
		var v []string
		for _, k := range append(append(append([]string{}, d.seriesKeys...), d.facetKeys...), d.dependent...) {
			v = append(v, d.names[k])
		}
		if d.lrVaries {
			v = append(v, "lr")
		}
		if d.seedVaries {
			v = append(v, "seed")
		}
		fmt.Fprintf(&b, ", varying %s", strings.Join(v, ", "))
	}
	statuses, n := e.counts()
	var parts []string
	for _, s := range statuses {
		parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
	}
	fmt.Fprintf(&b, ": %s.", strings.Join(parts, ", "))
	// Provenance, where the summaries agree on it.
	revs, devs := map[string]bool{}, map[string]bool{}
	for _, r := range e.Runs {
		if r.Summary.GitRevision != "" {
			revs[r.Summary.GitRevision] = true
		}
		if r.Summary.Backend != "" {
			devs[r.Summary.Backend] = true
		}
	}
	if len(revs) > 0 || len(devs) > 0 {
		fmt.Fprintf(&b, " Backend %s; git revision %s.", orDash(strings.Join(sortedKeys(devs), ", ")),
			orDash(strings.Join(sortedKeys(revs), ", ")))
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func writeMarkdown(w io.Writer, bs []block) error {
	for _, b := range bs {
		switch {
		case b.heading != "":
			fmt.Fprintf(w, "%s %s\n\n", strings.Repeat("#", b.level), b.heading)
		case b.text != "":
			fmt.Fprintf(w, "%s\n\n", b.text)
		case b.items != nil:
			for _, it := range b.items {
				fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(it, "\n", " "))
			}
			fmt.Fprintln(w)
		case b.table != nil:
			if err := b.table.writeMarkdown(w); err != nil {
				return err
			}
			fmt.Fprintln(w)
		case b.fig != nil:
			fmt.Fprintf(w, "%s\n\n![%s](%s)\n\n[SVG](%s)\n\n", b.fig.caption, b.fig.title, b.png, b.svg)
		}
	}
	return nil
}

// WriteText writes the tables of every experiment (and the bench) for the
// terminal, with the runs that did not finish and the warnings.
func WriteText(w io.Writer, res *Results) error {
	for _, e := range res.Experiments {
		d := analyse(e.Runs)
		fmt.Fprintf(w, "experiment %s (%s)\n", e.Name, e.Dir)
		if err := runsTable(d, e.Runs).writeText(w); err != nil {
			return err
		}
		if d.seedVaries && len(e.okRuns()) > 0 {
			fmt.Fprintln(w, "mean ± std over seeds:")
			if err := seedTable(d, e.Runs).writeText(w); err != nil {
				return err
			}
		}
		for _, r := range sortedRuns(e.Runs, d) {
			if r.Status != train.StatusOK {
				fmt.Fprintf(w, "  %s: %s: %s\n", r.Name, r.Status, orDash(firstLine(r.Reason)))
			}
		}
		if len(e.Earlier) > 0 {
			fmt.Fprintln(w, earlierNote(e))
			for _, it := range earlierItems(e) {
				fmt.Fprintf(w, "  %s\n", it)
			}
		}
		fmt.Fprintln(w)
	}
	if len(res.Bench) > 0 {
		fmt.Fprintln(w, "kernel benchmarks")
		if err := benchTable(res.Bench).writeText(w); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return nil
}
