package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"seqbench/configs"
	"seqbench/nn"
	"seqbench/sweep"
	"seqbench/train"
)

var errInterrupted = errors.New("interrupted")

// cmdRun trains every run of an experiment, one after the other: the local
// executor of `sweep run` with one worker.
func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	out := fs.String("out", "results", "results folder; runs go to OUT/<experiment>/<run>/")
	device := fs.String("device", defaultDevice(), "auto, cpu or cuda")
	dryRun := fs.Bool("dry-run", false, "check the config and list the planned runs without training")
	force := fs.Bool("force", false, "rerun from scratch runs whose summary says ok or that left a checkpoint")
	resume := fs.String("resume", "", "continue the interrupted run in this run folder from its checkpoint")
	retries := fs.Int("retries", 1, "times a failed run is tried again (not diverged ones)")
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
	if err := checkDeviceName(*device); err != nil {
		return err
	}
	if *dryRun {
		printPlan(stdout, *out, exp, "; nothing trained (--dry-run)")
		return nil
	}
	if *retries < 0 {
		return usageError{fmt.Sprintf("--retries %d is not allowed (>= 0)", *retries)}
	}
	dev, err := selectDevice(*device, stderr)
	if err != nil {
		return err
	}
	if err := train.CheckPrecisions(dev.backend, exp.Runs); err != nil {
		return usageError{err.Error()}
	}
	if err := train.CheckRanks(dev.backend, exp.Runs); err != nil {
		return usageError{err.Error()}
	}
	fmt.Fprintf(stdout, "experiment %s: %d runs -> %s (backend %s)\n", exp.Name, len(exp.Runs), filepath.Join(*out, exp.Name), dev.backend.Name())
	// The local executor with one worker on the whole machine, showing each
	// run's own progress.
	ctx, stop := interruptible(stderr, "interrupt: stopping; the run in progress ends as interrupted (Ctrl-C again quits at once)")
	defer stop()
	res, err := sweep.RunLocal(ctx, exp, sweep.LocalOptions{Out: *out, Workers: 1,
		Backend: func(int) (nn.Backend, error) { return dev.backend, nil },
		Device:  dev.name, Retries: *retries, Force: *force, Progress: stderr, Interactive: isTerminal(stderr), Verbose: true})
	if err != nil {
		return err
	}
	return finishSweep(exp, res, stdout, stderr)
}
