package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"seqbench/cpukernels"
	"seqbench/gpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/internal/units"
	"seqbench/mad"
	"seqbench/nn"
	"seqbench/reports"
	"seqbench/sweep"
	"seqbench/train"
)

const sweepUsage = `usage:
  seqbench sweep plan CONFIG [--out DIR] [--cost] [--device D [--workers N] [--budget DURATION]]
  seqbench sweep run CONFIG [--executor local|slurm] [--out DIR] [--retries N] [--force] [--dry-run]
        local: [--workers N] [--threads N]
        slurm: [--partition P] [--time T] [--gpus-per-task N] [--cpus-per-task N] [--mem M] [--runs-per-task K]
               [--max-parallel N] [--sbatch OPTION]... [--binary PATH] [--poll DURATION] [--detach]
  seqbench sweep worker --index I CONFIG --out DIR [--tasks FILE]   (one Slurm array task)`

func cmdSweep(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{sweepUsage}
	}
	if err := subcommandHelp(args, sweepUsage, stderr); err != nil {
		return err
	}
	switch args[0] {
	case "plan":
		return cmdSweepPlan(args[1:], stdout, stderr)
	case "run":
		return cmdSweepRun(args[1:], stdout, stderr)
	case "worker":
		return cmdSweepWorker(args[1:], stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown sweep command %q\n%s", args[0], sweepUsage)}
}

// loadExperiment reads the one CONFIG argument.
func loadExperiment(pos []string) (*sweep.Experiment, error) {
	if len(pos) != 1 {
		return nil, usageError{"takes one CONFIG file\n" + sweepUsage}
	}
	return sweep.Load(pos[0])
}

// cmdSweepPlan prints the expanded runs with their ids and, where OUT
// holds results, their status; with --cost each run's steps, tokens and
// training FLOPs; with --device also its time and peak memory there,
// measured on a short copy of each distinct shape, and the total against
// --budget.
func cmdSweepPlan(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sweep plan", flag.ContinueOnError)
	out := fs.String("out", "results", "results folder whose status the plan shows")
	cost := fs.Bool("cost", false, "count each run's steps, tokens and training FLOPs (builds every model once, on the CPU)")
	devName := fs.String("device", "", "measure each run shape's step time and peak memory on this device (auto, cpu or cuda); implies --cost")
	workers := fs.Int("workers", 0, "with --device: the pool the total is predicted for (0: as sweep run chooses)")
	budget := fs.Duration("budget", 0, "with --device: say whether the runs left to train fit this wall-clock time, e.g. 8h")
	warmup := fs.Int("measure-warmup", 3, "with --device: steps trained before the timed ones")
	steps := fs.Int("measure-steps", 10, "with --device: timed steps of each measured shape")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	exp, err := loadExperiment(pos)
	if err != nil {
		return err
	}
	switch {
	case *devName == "" && (*budget != 0 || *workers != 0):
		return usageError{"--budget and --workers need --device (the times are measured there)"}
	case *workers < 0 || *budget < 0:
		return usageError{fmt.Sprintf("--workers %d and --budget %v must be >= 0", *workers, *budget)}
	case *warmup < 1 || *steps < 1:
		return usageError{fmt.Sprintf("--measure-warmup %d and --measure-steps %d must be >= 1", *warmup, *steps)}
	}
	if !*cost && *devName == "" {
		printPlan(stdout, *out, exp, "")
		return nil
	}
	opt := sweep.MeasureOptions{Warmup: *warmup, Steps: *steps}
	pend := sweep.Pending(*out, exp, false)
	chosen := *workers == 0
	var dev device
	if *devName != "" {
		if err := checkDeviceName(*devName); err != nil {
			return err
		}
		if dev, err = selectDevice(*devName, stderr); err != nil {
			return err
		}
		if c, ok := dev.backend.(io.Closer); ok {
			defer c.Close()
		}
		if err := train.CheckPrecisions(dev.backend, exp.Runs); err != nil {
			return usageError{err.Error()}
		}
		// Measured on worker 0's backend: on the CPU it has the pool's
		// share of the cores, as the runs will.
		w, backend := localBackends(dev, len(pend), *workers, 0)
		if opt.Backend, err = backend(0); err != nil {
			return err
		}
		*workers, opt.Device = w, dev.name
		opt.Progress = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	ctx, stop := interruptible(stderr, "interrupt: stopping the measurement")
	defer stop()
	est, err := sweep.Plan(ctx, exp, pend, cpukernels.New[float32](), opt)
	if err != nil {
		return err
	}
	if opt.Backend != nil {
		// What sweep run packs runs onto a GPU by; the prediction is for
		// the pool it will choose.
		if err := sweep.WritePlan(sweep.RunDir(*out, exp, train.Spec{}), opt.Device, opt.Backend.Name(), exp, est); err != nil {
			return err
		}
		if chosen && dev.name == "cuda" {
			*workers = max(1, packedWorkers(stderr, *out, exp, pend, dev))
		}
	}
	printCosts(stdout, *out, exp, pend, est, *workers, *budget, opt.Backend)
	return nil
}

// interruptible is a context cancelled by the first SIGINT, SIGTERM or
// SIGHUP (a closed terminal or a dropped SSH session), which prints what;
// a second signal kills the process (files are written
// atomically, so nothing is left half-written either way). stop releases
// the signals.
func interruptible(stderr io.Writer, what string) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			signal.Stop(sig)
			if what != "" {
				fmt.Fprintln(stderr, what)
			}
			cancel()
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sig)
			close(done)
			cancel()
		})
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func cmdSweepRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sweep run", flag.ContinueOnError)
	out := fs.String("out", "results", "results folder; runs go to OUT/<experiment>/<run>/")
	executor := fs.String("executor", "local", "local (a worker pool here) or slurm (a job array)")
	device := fs.String("device", defaultDevice(), "auto, cpu or cuda")
	workers := fs.Int("workers", 0, "local: runs trained at once (0: one per visible GPU; on CPU, one per run up to the cores)")
	threads := fs.Int("threads", 0, "local, CPU: kernel goroutines per worker (0: the cores shared among the workers)")
	retries := fs.Int("retries", 1, "times a failed run is tried again (not diverged ones)")
	force := fs.Bool("force", false, "rerun runs whose summary already says ok, and start interrupted ones over")
	var sc sweep.SlurmConfig
	fs.StringVar(&sc.Partition, "partition", "", "slurm: partition (overrides the config's slurm block)")
	fs.StringVar(&sc.Time, "time", "", "slurm: time limit per array task, e.g. 2:00:00")
	fs.IntVar(&sc.GPUs, "gpus-per-task", -1, "slurm: GPUs per array task")
	fs.IntVar(&sc.CPUs, "cpus-per-task", -1, "slurm: CPUs per array task")
	fs.StringVar(&sc.Mem, "mem", "", "slurm: memory per array task, e.g. 16G")
	fs.IntVar(&sc.RunsPerTask, "runs-per-task", -1, "slurm: runs per array task, for short runs")
	fs.IntVar(&sc.MaxParallel, "max-parallel", -1, "slurm: array tasks running at once (0: no cap)")
	var extra listFlag
	fs.Var(&extra, "sbatch", "slurm: one more sbatch option, e.g. --sbatch=--account=proj (repeatable)")
	binary := fs.String("binary", "", "slurm: the seqbench executable the tasks run (default: this one)")
	poll := fs.Duration("poll", 10*time.Second, "slurm: pause between looks at the queue")
	dryRun := fs.Bool("dry-run", false, "train nothing: list the runs (local), or write the script and print the sbatch command without submitting (slurm)")
	detach := fs.Bool("detach", false, "slurm: submit and return without following the job")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	exp, err := loadExperiment(pos)
	if err != nil {
		return err
	}
	if *retries < 0 {
		return usageError{fmt.Sprintf("--retries %d is not allowed (>= 0)", *retries)}
	}
	if err := executorFlags(fs, *executor); err != nil {
		return err
	}
	interactive := isTerminal(stderr)
	var res *sweep.Result
	switch *executor {
	case "local":
		if *workers < 0 || *threads < 0 {
			return usageError{"--workers and --threads must be >= 0 (0: chosen)"}
		}
		if err := checkDeviceName(*device); err != nil {
			return err
		}
		if *dryRun {
			printPlan(stdout, *out, exp, "; nothing trained (--dry-run)")
			return nil
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
		ctx, stop := interruptible(stderr, "interrupt: stopping; the running runs end as interrupted (Ctrl-C again quits at once)")
		defer stop()
		opt := sweep.LocalOptions{Out: *out, Device: dev.name, Retries: *retries, Force: *force,
			Progress: stderr, Interactive: interactive}
		pend := sweep.Pending(*out, exp, *force)
		w := *workers
		if w == 0 && dev.name == "cuda" {
			w = packedWorkers(stderr, *out, exp, pend, dev)
		}
		opt.Workers, opt.Backend = localBackends(dev, len(pend), w, *threads)
		fmt.Fprintf(stdout, "experiment %s: %d runs -> %s (%d workers, backend %s)\n", exp.Name, len(exp.Runs),
			filepath.Join(*out, exp.Name), opt.Workers, dev.backend.Name())
		if dev.name == "cuda" {
			fmt.Fprintf(stderr, "%d visible GPUs; worker w trains on GPU w mod %[1]d\n", max(visibleGPUs(), 1))
		}
		res, err = sweep.RunLocal(ctx, exp, opt)
		if err != nil {
			return err
		}
	case "slurm":
		merged, err := mergeSlurm(exp.Slurm, sc, extra)
		if err != nil {
			return err
		}
		if *binary == "" {
			if *binary, err = os.Executable(); err != nil {
				return err
			}
		}
		if !*dryRun {
			if err := sweep.CheckSlurmCommands(); err != nil {
				return err
			}
		}
		ctx, stop := interruptible(stderr, "")
		defer stop()
		var sub *sweep.Submission
		res, sub, err = sweep.RunSlurm(ctx, exp, sweep.SlurmOptions{Config: pos[0], Out: *out, Binary: *binary,
			Device: *device, Slurm: merged, Retries: *retries, Force: *force, Poll: *poll, DryRun: *dryRun,
			Detach: *detach, Progress: stderr, Interactive: interactive})
		if err != nil {
			return err
		}
		if *dryRun {
			if sub == nil {
				fmt.Fprintf(stdout, "experiment %s: every run is already ok; nothing to submit\n", exp.Name)
				return nil
			}
			script, _ := os.ReadFile(sub.Script)
			fmt.Fprintf(stdout, "experiment %s: %d runs in %d array tasks; not submitted (--dry-run)\n%s:\n%s\nsubmit with:\n  sbatch %s\n",
				exp.Name, countRuns(sub.Tasks), len(sub.Tasks), sub.Script, script, sweep.ShellQuote(sub.Args))
			return nil
		}
		if *detach {
			return nil
		}
	default:
		return usageError{fmt.Sprintf("--executor %q is not allowed (local or slurm)", *executor)}
	}
	return finishSweep(exp, res, stdout, stderr)
}

// Flags that only one executor reads: given to the other, they are an
// error rather than silently ignored.
var (
	slurmOnlyFlags = []string{"partition", "time", "gpus-per-task", "cpus-per-task", "mem", "runs-per-task",
		"max-parallel", "sbatch", "binary", "poll", "detach"}
	localOnlyFlags = []string{"workers", "threads"}
)

// executorFlags rejects the flags that were set but that executor does not
// read.
func executorFlags(fs *flag.FlagSet, executor string) error {
	other := map[string][]string{"local": slurmOnlyFlags, "slurm": localOnlyFlags}[executor]
	var bad []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(other, f.Name) {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return usageError{fmt.Sprintf("%s: not allowed with --executor %s (the other executor's flags)", strings.Join(bad, ", "), executor)}
	}
	return nil
}

// printPlan lists the runs of an experiment with their status under out
// (`sweep plan`, and what --dry-run prints instead of training); note ends
// the heading line.
func printPlan(stdout io.Writer, out string, exp *sweep.Experiment, note string) {
	planHeading(stdout, out, exp, sweep.Pending(out, exp, false), note)
	for i, r := range exp.Runs {
		fmt.Fprintf(stdout, "  %3d  %-24s %-11s %s  %s\n", i, r.Name, runStatus(out, exp, r), r.TaskName, sweep.Describe(r))
	}
}

// planHeading is the plan's first line: the runs, those left to train
// (todo), the folder, then note.
func planHeading(stdout io.Writer, out string, exp *sweep.Experiment, todo []int, note string) {
	fmt.Fprintf(stdout, "experiment %s: %d runs (%d to train) -> %s%s\n", exp.Name, len(exp.Runs), len(todo),
		filepath.Join(out, exp.Name), note)
}

// runStatus is the status a run's summary under out records, or "-".
func runStatus(out string, exp *sweep.Experiment, r train.Spec) string {
	if s, err := train.ReadSummary(sweep.RunDir(out, exp, r)); err == nil {
		return s.Status
	}
	return "-"
}

// printCosts is printPlan with each run's steps, tokens and training
// FLOPs, and where measured (on be) its predicted time and peak memory,
// then the totals of the runs left to train (todo): their FLOPs and,
// measured, their device time, the wall-clock time on a pool of workers
// and whether it fits budget.
func printCosts(stdout io.Writer, out string, exp *sweep.Experiment, todo []int, est []sweep.Estimate, workers int, budget time.Duration, be nn.Backend) {
	planHeading(stdout, out, exp, todo, "")
	measured := be != nil
	head := fmt.Sprintf("  %3s  %-24s %-11s %9s %9s %9s", "#", "run", "status", "steps", "tokens", "FLOPs")
	if measured {
		head += fmt.Sprintf(" %10s %10s", "time", "peak mem")
	}
	fmt.Fprintln(stdout, head+"  settings")
	for i, r := range exp.Runs {
		e := est[i]
		line := fmt.Sprintf("  %3d  %-24s %-11s %9d %9s %9s", i, r.Name, runStatus(out, exp, r), e.Steps,
			siCount(float64(e.Tokens)), flopsText(e.FLOPs))
		if measured && e.Seconds > 0 {
			line += fmt.Sprintf(" %10s %10s", units.Duration(e.Seconds), units.Bytes(int64(e.PeakMemBytes)))
		} else if measured {
			line += fmt.Sprintf(" %10s %10s", "-", "-") // trained already
		}
		fmt.Fprintf(stdout, "%s  %s %s\n", line, r.TaskName, sweep.Describe(r))
	}
	var flops float64
	var seconds []float64
	uncounted := 0
	for _, i := range todo {
		flops += est[i].FLOPs
		seconds = append(seconds, est[i].Seconds)
		if est[i].FLOPs == 0 {
			uncounted++
		}
	}
	total := fmt.Sprintf("to train: %d runs, %s training FLOPs", len(todo), flopsText(flops))
	if uncounted > 0 {
		total += fmt.Sprintf(" (%d runs over %d parameters not counted)", uncounted, train.CostBuildLimit)
	}
	fmt.Fprintln(stdout, total)
	if !measured {
		return
	}
	var sum float64
	for _, s := range seconds {
		sum += s
	}
	wall := sweep.Makespan(seconds, workers)
	fmt.Fprintf(stdout, "on %s: %s of training, %s wall-clock with %s (times measured one run at a time)\n",
		be.Name(), units.Duration(sum), units.Duration(wall), plural(workers, "worker"))
	if budget > 0 {
		if wall <= budget.Seconds() {
			fmt.Fprintf(stdout, "fits the budget of %s (%s to spare)\n", budget, units.Duration(budget.Seconds()-wall))
		} else {
			fmt.Fprintf(stdout, "does not fit the budget of %s: over by %s\n", budget, units.Duration(wall-budget.Seconds()))
		}
	}
}

// siCount writes n with an SI suffix (k, M, G, T) to 3 significant digits.
func siCount(n float64) string {
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if n >= u.div {
			return fmt.Sprintf("%.3g%s", n/u.div, u.suffix)
		}
	}
	return fmt.Sprintf("%.0f", n)
}

// flopsText writes FLOPs as 1.23e+15, or "-" where they were not counted.
func flopsText(f float64) string {
	if f == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3g", f)
}

func countRuns(tasks [][]int) int {
	n := 0
	for _, t := range tasks {
		n += len(t)
	}
	return n
}

// mergeSlurm lays the flags that were given over the config's slurm block.
func mergeSlurm(c, flags sweep.SlurmConfig, extra []string) (sweep.SlurmConfig, error) {
	if flags.Partition != "" {
		c.Partition = flags.Partition
	}
	if flags.Time != "" {
		c.Time = flags.Time
	}
	if flags.Mem != "" {
		c.Mem = flags.Mem
	}
	for _, f := range []struct{ dst, src *int }{{&c.GPUs, &flags.GPUs}, {&c.CPUs, &flags.CPUs},
		{&c.RunsPerTask, &flags.RunsPerTask}, {&c.MaxParallel, &flags.MaxParallel}} {
		if *f.src >= 0 {
			*f.dst = *f.src
		}
	}
	c.Extra = append(c.Extra, extra...)
	if err := c.Validate(); err != nil {
		return c, usageError{err.Error()}
	}
	return c, nil
}

// localBackends decides the worker pool and makes each worker's backend.
// On CUDA: one worker per visible GPU (CUDA_VISIBLE_DEVICES applies), up to
// the runs, worker w bound to GPU w (more workers than GPUs share them
// round-robin). On the CPU: workers × threads within the cores.
func localBackends(dev device, runs, workers, threads int) (int, func(int) (nn.Backend, error)) {
	dt := dev.backend.DType()
	if dev.name == "cuda" {
		gpus := max(visibleGPUs(), 1)
		w := workers
		if w < 1 {
			w = max(1, min(gpus, runs))
		}
		return w, func(i int) (nn.Backend, error) {
			if i == 0 {
				return dev.backend, nil // selectDevice opened GPU 0
			}
			return newCUDAOn(dt, i%gpus)
		}
	}
	w, t := sweep.CPUWorkers(runtime.GOMAXPROCS(0), runs, workers, threads)
	return w, func(int) (nn.Backend, error) {
		if dt == nn.Float64 {
			return cpukernels.NewWithWorkers[float64](t), nil
		}
		return cpukernels.NewWithWorkers[float32](t), nil
	}
}

// maxRunsPerGPU bounds how many runs share one GPU when packed.
const maxRunsPerGPU = 8

// packedWorkers is the CUDA pool for the runs pend lists: as many runs a
// GPU as plan.json's measured peaks let fit (sweep.RunsPerDevice), times
// the visible GPUs. It says on stderr how it chose.
func packedWorkers(stderr io.Writer, out string, exp *sweep.Experiment, pend []int, dev device) int {
	gpu, ok := dev.backend.(interface{ Device() cuda.Device })
	if !ok || len(pend) == 0 {
		return 0
	}
	plan, _ := sweep.ReadPlan(sweep.RunDir(out, exp, train.Spec{})) // none: one run a GPU
	runs := make([]train.Spec, len(pend))
	for i, k := range pend {
		runs[i] = exp.Runs[k]
	}
	perGPU, why := sweep.RunsPerDevice(plan, "cuda", runs, gpu.Device().TotalMem, maxRunsPerGPU)
	fmt.Fprintln(stderr, why)
	return min(len(pend), perGPU*max(visibleGPUs(), 1))
}

// visibleGPUs counts the CUDA devices this process sees (0 without a driver).
func visibleGPUs() int {
	drv, err := cuda.LoadDriver()
	if err != nil {
		return 0
	}
	n, err := drv.DeviceCount()
	if err != nil {
		return 0
	}
	return n
}

// newCUDAOn starts the CUDA backend on GPU ordinal.
func newCUDAOn(dt nn.DType, ordinal int) (nn.Backend, error) {
	be, err := gpukernels.NewWithOptions(dt, gpukernels.Options{Device: ordinal})
	if err != nil {
		return nil, fmt.Errorf("GPU %d: %w", ordinal, err)
	}
	return be, nil
}

// finishSweep prints the run table, renders the report (and the MAD score
// of a `kind: mad` experiment) and turns the outcome into the exit status.
func finishSweep(exp *sweep.Experiment, res *sweep.Result, stdout, stderr io.Writer) error {
	if len(res.Summaries) > 0 {
		if err := reports.RunTable(stdout, res.Dir, res.Summaries, false); err != nil {
			return err
		}
		fmt.Fprint(stdout, reports.SelectionHeadline(res.Summaries))
		if rep, err := reports.Render(res.Dir); err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
		} else {
			fmt.Fprintf(stdout, "report in %s and %s\n", rep.Markdown, rep.HTML)
		}
		if exp.Kind == sweep.KindMAD {
			if rep, err := mad.Score(res.Dir, mad.BestAccuracy); err == nil {
				fmt.Fprintln(stdout, "\nMAD score:")
				rep.WriteTable(stdout)
			}
		}
	}
	locked := ""
	if res.Locked > 0 {
		locked = fmt.Sprintf(", %d locked by another process (skipped)", res.Locked)
	}
	fmt.Fprintf(stdout, "results in %s: %d runs: %d trained now, %d ok before (skipped), %d failed, %d interrupted (resumable), %d not started%s\n",
		res.Dir, len(exp.Runs), res.Trained, res.Skipped, res.Failed, res.Resumable, res.NotStarted, locked)
	switch {
	case res.Interrupted:
		fmt.Fprintln(stderr, "rerun the same command to resume: finished runs are skipped, interrupted ones continue")
		return errInterrupted
	case res.Locked > 0 && res.Failed == 0:
		return fmt.Errorf("%d of %d runs are being trained by another seqbench process and were skipped; rerun when it has finished",
			res.Locked, len(exp.Runs))
	case res.Failed > 0 || res.NotStarted > 0 || res.Resumable > 0:
		return fmt.Errorf("%d of %d runs failed, %d were interrupted and %d did not start (see their summary.json and train.log)",
			res.Failed, len(exp.Runs), res.Resumable, res.NotStarted)
	}
	return nil
}

// cmdSweepWorker trains the runs of one Slurm array task (or run --index
// of the experiment, without --tasks).
func cmdSweepWorker(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sweep worker", flag.ContinueOnError)
	index := fs.Int("index", -1, "array task index ($SLURM_ARRAY_TASK_ID), or run index without --tasks")
	tasks := fs.String("tasks", "", "tasks.json of a submission: the runs of each array task")
	out := fs.String("out", "results", "results folder")
	device := fs.String("device", defaultDevice(), "auto, cpu or cuda")
	retries := fs.Int("retries", 1, "times a failed run is tried again")
	force := fs.Bool("force", false, "rerun runs whose summary already says ok")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	exp, err := loadExperiment(pos)
	if err != nil {
		return err
	}
	if *index < 0 {
		return usageError{"--index I is required (>= 0)"}
	}
	runs, err := sweep.WorkerRuns(exp, *tasks, *index)
	if err != nil {
		return err
	}
	dev, err := selectDevice(*device, stderr)
	if err != nil {
		return err
	}
	be := dev.backend
	if n, err := strconv.Atoi(os.Getenv("SLURM_CPUS_PER_TASK")); err == nil && dev.name == "cpu" {
		// Without CPU binding (task/none) GOMAXPROCS sees every core of the
		// node; keep to the CPUs Slurm gave the task.
		_, newBackend := localBackends(dev, 1, 1, n)
		be, _ = newBackend(0)
	}
	ctx, stop := interruptible(stderr, "interrupt: the running run ends as interrupted")
	defer stop()
	sums := sweep.RunWorker(ctx, exp, runs, sweep.WorkerOptions{Out: *out, Backend: be, Device: dev.name,
		Retries: *retries, Force: *force, Log: stderr})
	failed := 0
	for _, s := range sums {
		if sweep.Failure(s.Status) {
			failed++
		}
	}
	switch {
	case ctx.Err() != nil:
		return errInterrupted
	case failed > 0:
		return fmt.Errorf("%d of %d runs failed", failed, len(runs))
	case len(sums) < len(runs):
		return fmt.Errorf("%d of %d runs are being trained by another process and were skipped", len(runs)-len(sums), len(runs))
	}
	return nil
}

// plural is "1 worker" or "n workers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
