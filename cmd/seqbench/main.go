// Command seqbench trains and compares sequence architectures on shared
// tasks and kernels. `seqbench help` lists the subcommands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	_ "seqbench/arch/attention" // registers transformer
	_ "seqbench/arch/mamba1"    // registers mamba1
	_ "seqbench/arch/mamba2"    // registers mamba2
	_ "seqbench/arch/rnn"       // registers lstm, gru
	_ "seqbench/arch/ssm"       // registers s4d
	"seqbench/sweep"
)

// usageError is bad command-line input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type command struct {
	name, args, summary string
	run                 func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "[CONFIG] [--out DIR] [--device auto|cpu|cuda] [--dry-run] [--force] [--resume RUNDIR]",
			"train every run of an experiment (no CONFIG: the built-in quickstart) and print a table", cmdRun},
		{"sweep", "plan|run|worker CONFIG [--executor local|slurm] [--workers N] [--out DIR] [--retries N] ...",
			"list a sweep's runs (plan), train them on a local worker pool or a Slurm job array (run)", cmdSweep},
		{"report", "[DIR] [--dpi N]", "tables and plots of a results folder: DIR/report.md, DIR/index.html, DIR/plots/", cmdReport},
		{"mad", "score DIR [--metric best_accuracy|final_accuracy] [--settings]", "the MAD score (per task and overall) of a `kind: mad` experiment's results", cmdMad},
		{"tasks", "[NAME] [--show N] [--seed S]", "list the tasks, or show decoded examples of one", cmdTasks},
		{"archs", "[--d-model D] [--n-layers N] [--vocab V] [--seq-len L]",
			"list the architectures with parameters and FLOPs/token at a size", cmdArchs},
		{"data", "prepare --text PATH... --out FILE.bin [--val-fraction F]",
			"make a byte-level token corpus (train/val split) from text files or folders", cmdData},
		{"op", "NAME --in IN.safetensors --out OUT.safetensors [--dtype float32|float64] [flags] | --list",
			"run one fused op (and its backward, given dout) on tensors from a file", cmdOp},
		{"bench", "[--suite kernels|train|generate|memory] [--device D] [--ops OPS] [--lengths LS] [--batch BS] [--repeat N] [--out FILE]", "time the kernels (or train steps, generation, memory); write FILE (JSON) and the same name in .txt (benchstat)", cmdBench},
		{"regress", "BASELINE CURRENT [--threshold 5%] [--alpha 0.05] [--allow-device-change]", "compare two bench files; exit 1 on a significant slowdown past the threshold, 2 on unusable input", cmdRegress},
		{"devices", "", "show the CPU backend and the GPU (name, memory, SMs, driver and library versions)", cmdDevices},
		{"version", "", "print the version and build", cmdVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs a subcommand and maps its error to an exit status: 2 for
// usage and config errors, 130 for an interrupt, 1 otherwise.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ue usageError
		var ce *sweep.ConfigError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue), errors.As(err, &ce):
			fmt.Fprintln(stderr, "seqbench "+c.name+": "+err.Error())
			return 2
		case errors.Is(err, errInterrupted):
			fmt.Fprintln(stderr, "seqbench "+c.name+": interrupted")
			return 130
		default:
			fmt.Fprintln(stderr, "seqbench "+c.name+": "+err.Error())
			return 1
		}
	}
	fmt.Fprintf(stderr, "seqbench: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "seqbench: train and compare sequence architectures (LSTM, GRU, Transformer, S4D, Mamba-1, Mamba-2)")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  seqbench %-8s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nEnvironment: SEQBENCH_DEVICE=auto|cpu|cuda sets the default of --device.")
}

// parseFlags parses flags that may come before or after positional
// arguments (`run CONFIG --out DIR`), returning the positionals.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// maxArgs checks the count of positional arguments.
func maxArgs(pos []string, n int, what string) error {
	if len(pos) > n {
		return usageError{fmt.Sprintf("unexpected arguments %s (takes %s)", strings.Join(pos[n:], " "), what)}
	}
	return nil
}
