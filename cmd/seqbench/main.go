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
	_ "seqbench/arch/hybrid"    // registers hybrid
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
		{"run", "[CONFIG] [--out DIR] [--device auto|cpu|cuda] [--dry-run] [--force] [--retries N] [--resume RUNDIR]",
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
	help := false
	switch {
	case len(args) == 0 || isHelp(args[0]) || args[0] == "help" && len(args) == 1:
		usage(stdout)
		return 0
	case args[0] == "help":
		// `help CMD [SUB]` is `CMD [SUB] -h`, on stdout.
		args = append(args[1:], "-h")
		help = true
	case args[0] == "--version" || args[0] == "-v" || args[0] == "-version":
		args = []string{"version"}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		cmdErr := stderr
		if help {
			cmdErr = stdout
		}
		err := c.run(args[1:], stdout, cmdErr)
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
	fmt.Fprintf(stderr, "seqbench: unknown command %q (`seqbench help` lists the commands)\n", args[0])
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

// isHelp says whether an argument asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help"
}

// parseFlags parses flags that may come before or after positional
// arguments (`run CONFIG --out DIR`), returning the positionals. -h prints
// the command's help to stderr (flag.ErrHelp: exit status 0); a bad flag
// is a usageError, reported once by dispatch.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				commandHelp(stderr, fs)
				return nil, err
			}
			return nil, usageError{fmt.Sprintf("%v (`seqbench %s -h` lists the flags)", err, fs.Name())}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// commandHelp prints a command's usage line, summary and flags.
func commandHelp(w io.Writer, fs *flag.FlagSet) {
	name, sub, _ := strings.Cut(fs.Name(), " ")
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		if name == "sweep" {
			fmt.Fprintf(w, "%s\n\n", sweepUsage)
		} else {
			fmt.Fprintln(w, strings.TrimSpace("usage: seqbench "+c.name+" "+c.args))
		}
		fmt.Fprintf(w, "  %s\n", c.summary)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nflags of seqbench %s:\n", strings.TrimSpace(name+" "+sub))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// subcommandHelp answers -h given in place of a subcommand (`sweep -h`):
// the usage on stderr and flag.ErrHelp.
func subcommandHelp(args []string, usage string, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	return nil
}

// maxArgs checks the count of positional arguments.
func maxArgs(pos []string, n int, what string) error {
	if len(pos) > n {
		return usageError{fmt.Sprintf("unexpected arguments %s (takes %s)", strings.Join(pos[n:], " "), what)}
	}
	return nil
}
