package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"seqbench/mad"
)

// cmdMad is `seqbench mad score DIR`: the MAD score of the runs of a `kind:
// mad` experiment (run with `seqbench run` or `seqbench sweep run`) found
// under DIR, per task and overall, for every model of the experiment.
func cmdMad(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: seqbench mad score DIR [--metric best_accuracy|final_accuracy|selected_accuracy|selected_macro_accuracy] [--settings]"
	if err := subcommandHelp(args, usage, stderr); err != nil {
		return err
	}
	if len(args) == 0 || args[0] != "score" {
		return usageError{usage}
	}
	fs := flag.NewFlagSet("mad score", flag.ContinueOnError)
	metric := fs.String("metric", string(mad.BestAccuracy), "what a run is scored by: best_accuracy (best evaluation), final_accuracy (last evaluation), selected_accuracy or selected_macro_accuracy (at the evaluation train.select chose; MAD's protocol is selected_macro_accuracy with select: loss)")
	settings := fs.Bool("settings", false, "also list every setting's score, its best grid point and its runs")
	pos, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 1, "one results folder"); err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"mad score: missing the results folder (e.g. results/mad-cpu)"}
	}
	m, err := mad.ParseMetric(*metric)
	if err != nil {
		return usageError{"--metric: " + err.Error()}
	}
	rep, err := mad.Score(pos[0], m)
	switch {
	case errors.Is(err, mad.ErrNoRuns):
		return usageError{fmt.Sprintf("%s: %v", pos[0], err)}
	case errors.Is(err, os.ErrNotExist):
		return usageError{err.Error()}
	case err != nil:
		return err
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *settings {
		fmt.Fprintln(stdout)
		return rep.WriteSettings(stdout)
	}
	return nil
}
