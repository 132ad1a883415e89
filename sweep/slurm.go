package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"seqbench/internal/atomicfile"
	"seqbench/train"
)

// SlurmConfig is the `slurm` block of an experiment: what each array task
// asks Slurm for. Command-line flags override it.
type SlurmConfig struct {
	Partition   string `yaml:"partition"`
	Time        string `yaml:"time"`          // time limit per array task: "30", "1:00:00", "1-12"
	GPUs        int    `yaml:"gpus_per_task"` // GPUs per array task (--gres=gpu:N)
	CPUs        int    `yaml:"cpus_per_task"`
	Mem         string `yaml:"mem"` // memory per array task: "8G"
	RunsPerTask int    `yaml:"runs_per_task"`
	// MaxParallel caps the array tasks running at once (--array=...%N).
	MaxParallel int `yaml:"max_parallel"`
	// Extra are more sbatch options, one per entry ("--account=proj",
	// "--qos=short"), written as #SBATCH lines.
	Extra []string `yaml:"extra"`
}

var (
	partitionRE = regexp.MustCompile(`^[A-Za-z0-9_.,-]+$`)
	timeRE      = regexp.MustCompile(`^[0-9]+([:-][0-9]+)*$`)
	memRE       = regexp.MustCompile(`^[0-9]+[KMGT]?$`)
)

// Validate checks the values. They end up in #SBATCH lines, which sbatch
// reads and the shell ignores as comments; a line break would end the
// comment, so no value may hold control characters.
func (c *SlurmConfig) Validate() error {
	switch {
	case c.Partition != "" && !partitionRE.MatchString(c.Partition):
		return fmt.Errorf("field slurm.partition: %q is not allowed (letters, digits, '_', '.', '-'; ',' between several)", c.Partition)
	case c.Time != "" && !timeRE.MatchString(c.Time):
		return fmt.Errorf("field slurm.time: %q is not allowed (a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)", c.Time)
	case c.GPUs < 0:
		return fmt.Errorf("field slurm.gpus_per_task: %d is not allowed (>= 0)", c.GPUs)
	case c.CPUs < 0:
		return fmt.Errorf("field slurm.cpus_per_task: %d is not allowed (>= 0; 0 leaves it to Slurm)", c.CPUs)
	case c.Mem != "" && !memRE.MatchString(c.Mem):
		return fmt.Errorf("field slurm.mem: %q is not allowed (a number with an optional K, M, G or T suffix)", c.Mem)
	case c.RunsPerTask < 0:
		return fmt.Errorf("field slurm.runs_per_task: %d is not allowed (>= 0; 0 means 1)", c.RunsPerTask)
	case c.MaxParallel < 0:
		return fmt.Errorf("field slurm.max_parallel: %d is not allowed (>= 0; 0: no cap)", c.MaxParallel)
	}
	for _, e := range c.Extra {
		opt := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(e), "#SBATCH"))
		if !strings.HasPrefix(opt, "-") || strings.ContainsFunc(e, isControl) {
			return fmt.Errorf("field slurm.extra: %q is not allowed (one sbatch option per entry, such as --account=proj, without line breaks)", e)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// directives are the #SBATCH lines of the script.
func (c *SlurmConfig) directives(name string) []string {
	d := []string{"--job-name=seqbench-" + name}
	if c.Partition != "" {
		d = append(d, "--partition="+c.Partition)
	}
	if c.Time != "" {
		d = append(d, "--time="+c.Time)
	}
	if c.GPUs > 0 {
		d = append(d, fmt.Sprintf("--gres=gpu:%d", c.GPUs))
	}
	if c.CPUs > 0 {
		d = append(d, fmt.Sprintf("--cpus-per-task=%d", c.CPUs))
	}
	if c.Mem != "" {
		d = append(d, "--mem="+c.Mem)
	}
	for _, e := range c.Extra {
		d = append(d, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(e), "#SBATCH")))
	}
	return d
}

// Commander runs a Slurm command (sbatch, squeue, scontrol, sacct,
// scancel) and returns its standard output; a failure's error holds its
// standard error.
type Commander func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecCommander runs the real commands, each with a one-minute limit.
func ExecCommander(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// SlurmOptions configure RunSlurm.
type SlurmOptions struct {
	Config string // the experiment file: copied into the submission folder, which the tasks read
	Out    string // results root, shared by the login and compute nodes
	Binary string // the seqbench executable the tasks run (same path on the compute nodes)
	Device string // --device of the workers
	Slurm  SlurmConfig
	// Retries is how many times a worker retries a failed run in its task.
	// A task Slurm kills (time limit, memory, node failure) is reported
	// failed with Slurm's state; rerunning the sweep submits it again.
	Retries int
	Force   bool
	// Poll is the pause between two looks at the queue (0: 10 s).
	Poll time.Duration
	// DryRun writes the submission folder and prints the sbatch command
	// without running it.
	DryRun bool
	// Detach submits and returns without following the job.
	Detach      bool
	Progress    io.Writer
	Interactive bool
	Exec        Commander // nil: ExecCommander
}

// Submission is one sbatch of a sweep: its folder
// (OUT/<experiment>/slurm/<stamp>/) holds the script, a copy of the
// experiment file, tasks.json and, once submitted, submit.json and the
// tasks' output files.
type Submission struct {
	Dir    string
	Script string
	Args   []string // sbatch's arguments, the script and its arguments included
	Tasks  [][]int  // run indices of each array task
	JobID  string
}

// submitRecord is submit.json.
type submitRecord struct {
	JobID       string    `json:"job_id"`
	SubmittedAt time.Time `json:"submitted_at"`
	Command     []string  `json:"command"`
	Runs        int       `json:"runs"`
	// Followed is set when `sweep run` saw the job end: a later sweep
	// need not ask whether it still runs.
	Followed bool `json:"followed"`
}

// scriptBody is the part of the sbatch script after its #SBATCH lines.
// Everything specific to the sweep reaches it as arguments (data), never
// as script text, so no name or path can inject shell.
const scriptBody = `set -eu
# Arguments: seqbench binary, experiment file, results root, tasks.json,
# device, retries, working directory, force.
cd -- "$7"
exec "$1" sweep worker --index="${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}" \
	--tasks="$4" --out="$3" --device="$5" --retries="$6" --force="$8" -- "$2"
`

// Script is the sbatch script of a sweep.
func Script(exp *Experiment, c SlurmConfig) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&b, "# seqbench sweep %s: array task $SLURM_ARRAY_TASK_ID trains the runs tasks.json lists for it.\n", exp.Name)
	for _, d := range c.directives(exp.Name) {
		b.WriteString("#SBATCH " + d + "\n")
	}
	b.WriteString(scriptBody)
	return b.String()
}

// PrepareSlurm writes the submission folder of the runs in todo and
// returns the sbatch command that submits it.
func PrepareSlurm(exp *Experiment, todo []int, opt SlurmOptions) (*Submission, error) {
	out, err := filepath.Abs(opt.Out)
	if err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(opt.Binary)
	if err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	config, err := os.ReadFile(opt.Config)
	if err != nil {
		return nil, err
	}
	stamp := time.Now().UTC().Format("20060102T150405.000Z")
	sub := &Submission{Dir: filepath.Join(out, exp.Name, "slurm", stamp)}
	if err := os.MkdirAll(sub.Dir, 0o755); err != nil {
		return nil, err
	}
	per := max(opt.Slurm.RunsPerTask, 1)
	tf := taskFile{Experiment: exp.Name}
	for lo := 0; lo < len(todo); lo += per {
		chunk := todo[lo:min(lo+per, len(todo))]
		var trs []taskRun
		for _, i := range chunk {
			trs = append(trs, taskRun{i, exp.Runs[i].Name})
		}
		tf.Tasks = append(tf.Tasks, trs)
		sub.Tasks = append(sub.Tasks, chunk)
	}
	tasksJSON, err := json.MarshalIndent(tf, "", "  ")
	if err != nil {
		return nil, err
	}
	sub.Script = filepath.Join(sub.Dir, "job.sbatch")
	configCopy := filepath.Join(sub.Dir, "experiment.yaml")
	tasksPath := filepath.Join(sub.Dir, "tasks.json")
	for _, f := range []struct {
		path string
		data []byte
	}{{configCopy, config}, {tasksPath, tasksJSON}, {sub.Script, []byte(Script(exp, opt.Slurm))}} {
		if err := atomicfile.WriteFile(f.path, f.data); err != nil {
			return nil, err
		}
	}
	array := fmt.Sprintf("--array=0-%d", len(sub.Tasks)-1)
	if opt.Slurm.MaxParallel > 0 {
		array += fmt.Sprintf("%%%d", opt.Slurm.MaxParallel)
	}
	device := opt.Device
	if device == "" {
		device = "auto"
	}
	sub.Args = []string{"--parsable", array, "--chdir=" + sub.Dir, "--output=task-%A_%a.out",
		sub.Script, bin, configCopy, out, tasksPath, device, strconv.Itoa(opt.Retries), wd, strconv.FormatBool(opt.Force)}
	return sub, nil
}

// ShellQuote quotes args for a POSIX shell, to show a command to a person.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ',' || r == ':' || r == '%' ||
				(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// RunSlurm submits the runs of the sweep that are not ok yet as one Slurm
// job array and follows it until every task has ended, reading each run's
// summary.json from the shared results folder. A task that dies without
// writing one (time limit, memory, node failure, cancellation) gets a
// failed summary naming Slurm's state. Cancelling ctx cancels the job
// (scancel): the workers end their runs as interrupted, and a rerun
// submits what is left.
func RunSlurm(ctx context.Context, exp *Experiment, opt SlurmOptions) (*Result, *Submission, error) {
	if opt.Exec == nil {
		opt.Exec = ExecCommander
	}
	if opt.Poll <= 0 {
		opt.Poll = 10 * time.Second
	}
	dir := RunDir(opt.Out, exp, train.Spec{})
	sums, todo := pending(opt.Out, exp, opt.Force)
	skipped := len(sums)
	if len(todo) == 0 {
		return collect(dir, exp, sums, skipped, false), nil, nil
	}
	if !opt.DryRun {
		if err := checkNoActiveJob(dir, opt.Exec); err != nil {
			return nil, nil, err
		}
	}
	sub, err := PrepareSlurm(exp, todo, opt)
	if err != nil {
		return nil, nil, err
	}
	if opt.DryRun {
		return collect(dir, exp, sums, skipped, false), sub, nil
	}
	// A summary that is already there (failed, or interrupted) is stale;
	// the follower waits for a new one, told apart by its bytes (not by its
	// start time, which a run continued from its checkpoint keeps, nor by
	// file times, which other hosts' clocks set).
	before := map[int][]byte{}
	for _, i := range todo {
		if data, err := os.ReadFile(filepath.Join(RunDir(opt.Out, exp, exp.Runs[i]), "summary.json")); err == nil {
			before[i] = data
		}
	}
	submitted := time.Now().UTC()
	stdout, err := opt.Exec(context.Background(), "sbatch", sub.Args...)
	if err != nil {
		return nil, sub, fmt.Errorf("submitting %s: %w", sub.Script, err)
	}
	jobID, _, _ := strings.Cut(strings.TrimSpace(string(stdout)), ";")
	if _, err := strconv.Atoi(jobID); err != nil {
		return nil, sub, fmt.Errorf("sbatch printed %q, not a job id", strings.TrimSpace(string(stdout)))
	}
	sub.JobID = jobID
	rec := submitRecord{JobID: jobID, SubmittedAt: submitted, Command: append([]string{"sbatch"}, sub.Args...), Runs: len(todo)}
	if err := writeJSONFile(filepath.Join(sub.Dir, "submit.json"), rec); err != nil {
		return nil, sub, err
	}
	prog := newProgress(opt.Progress, opt.Interactive, len(exp.Runs), skipped, 0)
	defer prog.close()
	prog.printf("submitted job %s: %d array tasks for %d runs; task output in %s", jobID, len(sub.Tasks), len(todo), sub.Dir)
	if opt.Detach {
		prog.printf("not following it (--detach): `squeue -j %s` shows it, `seqbench report %s` the results", jobID, dir)
		return collect(dir, exp, sums, skipped, false), sub, nil
	}
	f := &follower{exp: exp, opt: opt, sub: sub, prog: prog, before: before, sums: sums}
	interrupted, err := f.follow(ctx)
	if err != nil {
		return collect(dir, exp, sums, skipped, interrupted), sub, err
	}
	f.finalize(interrupted)
	rec.Followed = true
	if err := writeJSONFile(filepath.Join(sub.Dir, "submit.json"), rec); err != nil {
		return nil, sub, err
	}
	return collect(dir, exp, sums, skipped, interrupted), sub, nil
}

// checkNoActiveJob refuses to submit while an earlier submission of the
// sweep that was not followed to its end is still queued or running: its
// runs would be trained twice.
func checkNoActiveJob(dir string, run Commander) error {
	recs, _ := filepath.Glob(filepath.Join(dir, "slurm", "*", "submit.json"))
	for _, path := range recs {
		var rec submitRecord
		data, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(data, &rec) != nil || rec.Followed || rec.JobID == "" {
			continue
		}
		states, err := queueStates(run, rec.JobID)
		if err != nil {
			return fmt.Errorf("checking whether job %s (%s) still runs: %w", rec.JobID, path, err)
		}
		if len(states) > 0 {
			return fmt.Errorf("job %s of this sweep (%s) is still queued or running: wait for it, or `scancel %s`, before submitting again",
				rec.JobID, filepath.Dir(path), rec.JobID)
		}
	}
	return nil
}

// follower watches one submitted job array.
type follower struct {
	exp    *Experiment
	opt    SlurmOptions
	sub    *Submission
	prog   *progress
	before map[int][]byte // summary.json of each run before submission
	sums   map[int]train.Summary
}

// maxQueueErrors is how many looks at the queue in a row may fail (the
// controller restarting, a timeout) before the follower gives up.
const maxQueueErrors = 30

// follow polls the queue and the summaries until no task of the job is
// left in the queue. Cancelling ctx cancels the job once and keeps
// following until its tasks are gone.
func (f *follower) follow(ctx context.Context) (interrupted bool, err error) {
	done := ctx.Done()
	failures := 0
	tick := time.NewTicker(f.opt.Poll)
	defer tick.Stop()
	for {
		f.collectFresh()
		states, err := queueStates(f.opt.Exec, f.sub.JobID)
		switch {
		case err != nil:
			failures++
			if failures >= maxQueueErrors {
				return interrupted, fmt.Errorf("job %s: squeue failed %d times in a row, last: %w (the job may still run; `seqbench report %s` shows what finished)",
					f.sub.JobID, failures, err, filepath.Dir(filepath.Dir(f.sub.Dir)))
			}
		case len(states) == 0:
			f.collectFresh()
			return interrupted, nil
		default:
			failures = 0
			f.showStates(states)
		}
		select {
		case <-done:
			done = nil // cancel once, then follow the cancellation through
			interrupted = true
			f.prog.printf("interrupted: cancelling job %s (scancel); running runs end as interrupted", f.sub.JobID)
			if _, err := f.opt.Exec(context.Background(), "scancel", f.sub.JobID); err != nil {
				f.prog.printf("scancel %s: %v", f.sub.JobID, err)
			}
		case <-tick.C:
		}
	}
}

// collectFresh records the runs whose summary appeared since submission.
func (f *follower) collectFresh() {
	for _, task := range f.sub.Tasks {
		for _, i := range task {
			if _, ok := f.sums[i]; ok {
				continue
			}
			spec := f.exp.Runs[i]
			dir := RunDir(f.opt.Out, f.exp, spec)
			data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
			if err != nil {
				continue
			}
			if prev, had := f.before[i]; had && bytes.Equal(data, prev) {
				continue
			}
			s, err := train.ReadSummary(dir)
			if err != nil {
				continue
			}
			f.sums[i] = s
			f.prog.finish(spec, s)
		}
	}
}

// showStates updates the progress from the queue: the runs of a running
// task count as running until their summaries appear.
func (f *follower) showStates(states map[int]string) {
	counts := map[string]int{}
	for task, st := range states {
		counts[strings.ToLower(st)]++
		if st == "RUNNING" && task >= 0 && task < len(f.sub.Tasks) {
			for _, i := range f.sub.Tasks[task] {
				if _, ok := f.sums[i]; !ok {
					f.prog.start(f.exp.Runs[i])
				}
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	f.prog.setExtra(fmt.Sprintf("job %s tasks: %s", f.sub.JobID, strings.Join(parts, " ")))
}

// finalize gives every run of the job without a fresh summary one that
// says how its task ended. A run whose task never began (cancelled while
// pending) has no folder and stays not started.
func (f *follower) finalize(interrupted bool) {
	var final map[int]taskEnd
	for t, task := range f.sub.Tasks {
		for _, i := range task {
			if _, ok := f.sums[i]; ok {
				continue
			}
			spec := f.exp.Runs[i]
			dir := RunDir(f.opt.Out, f.exp, spec)
			if s, ok := okSummary(dir); ok {
				f.sums[i] = s // finished by someone else meanwhile
				continue
			}
			if final == nil {
				final = finalStates(f.opt.Exec, f.sub.JobID)
			}
			end, known := final[t]
			if !known {
				end = taskEnd{State: "UNKNOWN (gone from squeue, scontrol and sacct)"}
			}
			if _, err := os.Stat(dir); err != nil && (interrupted || end.State == "CANCELLED") {
				continue
			}
			reason := fmt.Sprintf("Slurm array task %d of job %s ended %s", t, f.sub.JobID, end.State)
			if end.ExitCode != "" {
				reason += " (exit code " + end.ExitCode + ")"
			}
			if end.Reason != "" && end.Reason != "None" {
				reason += ", reason " + end.Reason
			}
			reason += fmt.Sprintf(" without writing summary.json; its output: %s", filepath.Join(f.sub.Dir, fmt.Sprintf("task-%s_%d.out", f.sub.JobID, t)))
			status := train.StatusFailed
			if interrupted {
				// Cancelled by this process: a rerun continues the run
				// from its checkpoint, if it saved one, or starts it over.
				status, reason = train.StatusInterrupted, "interrupted: "+reason
			}
			s := train.Summary{Experiment: f.exp.Name, Run: spec.Name, ID: spec.ID, Arch: spec.Arch, Task: spec.TaskName,
				Overrides: spec.Overrides, Device: f.opt.Device, Status: status, Reason: reason, StartedAt: time.Now().UTC(),
				FinalLoss: train.Num(math.NaN()), BestLoss: train.Num(math.NaN()), TrainLoss: train.Num(math.NaN())}
			if err := writeSummary(dir, s); err != nil {
				f.prog.printf("%s: writing its summary: %v", spec.Name, err)
			}
			f.sums[i] = s
			f.prog.finish(spec, s)
		}
	}
}

// taskEnd is how an array task ended, as Slurm says.
type taskEnd struct{ State, ExitCode, Reason string }

// queueStates lists the job's array tasks still in the queue, by task
// index: PENDING, RUNNING, COMPLETING, ... (squeue --array lists each
// task on its own line).
func queueStates(run Commander, jobID string) (map[int]string, error) {
	out, err := run(context.Background(), "squeue", "--noheader", "--array", "--jobs="+jobID, "--format=%K|%T")
	if err != nil {
		// A job the controller has already forgotten is not an error.
		if strings.Contains(err.Error(), "Invalid job id") {
			return map[int]string{}, nil
		}
		return nil, err
	}
	return parseQueue(out), nil
}

func parseQueue(out []byte) map[int]string {
	states := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		task, state, ok := strings.Cut(strings.TrimSpace(line), "|")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(task); err == nil {
			states[n] = state
			continue
		}
		// A range of pending tasks ("3-9%2", "4,6"), should squeue not
		// expand it: every task in it.
		for _, part := range strings.Split(strings.Split(task, "%")[0], ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			a, errA := strconv.Atoi(lo)
			b, errB := strconv.Atoi(hi)
			if !isRange {
				b, errB = a, errA
			}
			if errA == nil && errB == nil {
				for k := a; k <= b; k++ {
					states[k] = state
				}
			}
		}
	}
	return states
}

// finalStates asks how the job's tasks ended: scontrol while the
// controller remembers the job (MinJobAge, 5 minutes by default), else
// sacct where accounting is on.
func finalStates(run Commander, jobID string) map[int]taskEnd {
	if out, err := run(context.Background(), "scontrol", "--oneliner", "show", "job", jobID); err == nil {
		if ends := parseScontrol(out); len(ends) > 0 {
			return ends
		}
	}
	if out, err := run(context.Background(), "sacct", "--noheader", "--parsable2", "--allocations",
		"--jobs="+jobID, "--format=JobID,State,ExitCode"); err == nil {
		return parseSacct(out)
	}
	return map[int]taskEnd{}
}

var fieldRE = regexp.MustCompile(`(\w+)=(\S*)`)

func parseScontrol(out []byte) map[int]taskEnd {
	ends := map[int]taskEnd{}
	for _, line := range strings.Split(string(out), "\n") {
		kv := map[string]string{}
		for _, m := range fieldRE.FindAllStringSubmatch(line, -1) {
			if _, seen := kv[m[1]]; !seen {
				kv[m[1]] = m[2]
			}
		}
		task, err := strconv.Atoi(kv["ArrayTaskId"])
		if err != nil {
			continue
		}
		ends[task] = taskEnd{State: kv["JobState"], ExitCode: kv["ExitCode"], Reason: kv["Reason"]}
	}
	return ends
}

func parseSacct(out []byte) map[int]taskEnd {
	ends := map[int]taskEnd{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 3 {
			continue
		}
		_, task, ok := strings.Cut(f[0], "_")
		n, err := strconv.Atoi(task)
		if !ok || err != nil {
			continue
		}
		// "CANCELLED by 0" -> CANCELLED
		state, _, _ := strings.Cut(f[1], " ")
		ends[n] = taskEnd{State: state, ExitCode: f[2]}
	}
	return ends
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'))
}

// errNoSlurm says the Slurm commands are missing.
var errNoSlurm = errors.New("sbatch not found: the slurm executor needs Slurm's client commands (sbatch, squeue, scontrol) on PATH")

// CheckSlurmCommands reports whether sbatch, squeue and scontrol are on PATH.
func CheckSlurmCommands() error {
	for _, c := range []string{"sbatch", "squeue", "scontrol", "scancel"} {
		if _, err := exec.LookPath(c); err != nil {
			if c == "sbatch" {
				return errNoSlurm
			}
			return fmt.Errorf("%s not found: the slurm executor needs it on PATH", c)
		}
	}
	return nil
}
