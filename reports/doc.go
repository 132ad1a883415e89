// Package reports turns a results folder into what a researcher puts in a
// paper: tables (terminal, Markdown, HTML), plots (PNG and SVG with the
// font embedded) and a report.md plus a self-contained index.html that
// hold them.
//
// Grouping: the runs of an experiment that differ only by train.seed are
// aggregated (mean, with the min–max range as a band or whiskers);
// train.lr is a tuning knob, so plots keep the learning rate with the best
// final accuracy at each point (Zoology's "best over learning rates"),
// while tables list every run. Other varying task.* and train.* settings
// split plots into panels or figures; varying model.* settings within an
// arch become separate lines in the arch's colour. Failed, diverged, interrupted and
// incomplete runs are listed in the tables with their reason and left out
// of every plot.
//
// Entry points: Render(dir) loads a results folder and writes DIR/report.md,
// DIR/index.html (one self-contained page: inline SVG, the font embedded,
// no script, no network) and DIR/plots/*.png, *.svg; Load, WriteText and
// Write do the same in steps; RunTable is the table `seqbench run` prints.
// Kernel benchmarks are read from *.bench.json files (bench.File; see BenchResult).
package reports
