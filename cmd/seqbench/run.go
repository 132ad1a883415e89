package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/term"

	"seqbench/configs"
	"seqbench/mad"
	"seqbench/reports"
	"seqbench/sweep"
	"seqbench/train"
)

var errInterrupted = errors.New("interrupted")

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	out := fs.String("out", "results", "results folder; runs go to OUT/<experiment>/<run>/")
	device := fs.String("device", defaultDevice(), "auto, cpu or cuda")
	dryRun := fs.Bool("dry-run", false, "check the config and list the planned runs without training")
	force := fs.Bool("force", false, "rerun from scratch runs whose summary says ok or that left a checkpoint")
	resume := fs.String("resume", "", "continue the interrupted run in this run folder from its checkpoint")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 1, "at most one CONFIG file"); err != nil {
		return err
	}
	var exp *sweep.Experiment
	switch {
	case *resume != "" && len(pos) > 0:
		return usageError{"--resume DIR takes no CONFIG: the run folder holds its config"}
	case *resume != "":
		spec, err := sweep.LoadRun(*resume)
		if err != nil {
			return err
		}
		exp = &sweep.Experiment{Name: spec.Experiment, Runs: []train.Spec{spec}}
		*out = filepath.Dir(filepath.Dir(filepath.Clean(*resume)))
	case len(pos) == 0:
		exp, err = sweep.Parse(configs.Quickstart())
	default:
		exp, err = sweep.Load(pos[0])
	}
	if err != nil {
		return err
	}
	dev, err := selectDevice(*device, stderr)
	if err != nil {
		return err
	}
	expDir := filepath.Join(*out, exp.Name)
	fmt.Fprintf(stdout, "experiment %s: %d runs -> %s (backend %s)\n", exp.Name, len(exp.Runs), expDir, dev.backend.Name())
	if *dryRun {
		for i, r := range exp.Runs {
			fmt.Fprintf(stdout, "  %2d  %-24s %s %s\n", i+1, r.Name, r.TaskName, sweep.Describe(r))
		}
		return nil
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interactive := false
	if f, ok := stderr.(*os.File); ok {
		interactive = term.IsTerminal(int(f.Fd()))
	}
	var results []train.Summary
	failed := 0
	for i, r := range exp.Runs {
		dir := filepath.Join(expDir, r.Name)
		if prev, err := train.ReadSummary(dir); err == nil && prev.Status == train.StatusOK && !*force {
			fmt.Fprintf(stderr, "[%d/%d] %s: already ok, skipped (--force reruns)\n", i+1, len(exp.Runs), r.Name)
			results = append(results, prev)
			continue
		}
		fmt.Fprintf(stderr, "[%d/%d] %s  %s %s\n", i+1, len(exp.Runs), r.Name, r.TaskName, sweep.Describe(r))
		// An interrupted run left a checkpoint: it continues from there.
		s := train.Run(ctx, r, dir, train.Options{Backend: dev.backend, Device: dev.name, Log: stderr,
			Interactive: interactive, Resume: !*force})
		if s.Status != train.StatusOK {
			fmt.Fprintf(stderr, "  %s: %s\n", s.Status, s.Reason)
		}
		if s.Status == train.StatusFailed {
			failed++
		}
		results = append(results, s)
		if ctx.Err() != nil {
			break
		}
	}
	if err := reports.RunTable(stdout, results, false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results in %s\n", expDir)
	if rep, err := reports.Render(expDir); err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
	} else {
		fmt.Fprintf(stdout, "report in %s and %s\n", rep.Markdown, rep.HTML)
	}
	if len(exp.Runs) > 0 && exp.Runs[0].Overrides["mad.task"] != "" { // a kind: mad experiment
		if rep, err := mad.Score(expDir, mad.BestAccuracy); err == nil {
			fmt.Fprintln(stdout, "\nMAD score:")
			rep.WriteTable(stdout)
		}
	}
	switch {
	case ctx.Err() != nil:
		return errInterrupted
	case failed > 0:
		return fmt.Errorf("%d of %d runs failed (see their summary.json)", failed, len(exp.Runs))
	}
	return nil
}
