package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"

	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/cpukernels"
	"seqbench/gpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/internal/buildinfo"
	"seqbench/nn"
	"seqbench/tasks"
)

// device is the backend chosen for a command and the name asked for.
type device struct {
	name    string
	backend nn.Backend
}

func defaultDevice() string {
	if d := os.Getenv("SEQBENCH_DEVICE"); d != "" {
		return d
	}
	return "auto"
}

// selectDevice resolves --device: cpu, cuda, or auto (cuda when a driver
// loads and a GPU answers, else cpu, saying why). Asking for cuda where none
// works is an error; nothing falls back silently.
func selectDevice(name string, stderr io.Writer) (device, error) {
	return selectDeviceDType(name, nn.Float32, stderr)
}

// selectDeviceDType is selectDevice at a given precision (seqbench op
// --dtype float64 runs either backend in float64). bfloat16 is the
// device's bf16 mixed-precision backend (cpu-bfloat16 on the CPU); a
// device without one is an error, never a silent float32 run.
func selectDeviceDType(name string, dt nn.DType, stderr io.Writer) (device, error) {
	if dt == nn.BFloat16 {
		d, err := selectDeviceDType(name, nn.Float32, stderr)
		if err != nil {
			return device{}, err
		}
		be, err := bf16Backend(d.backend)
		if err != nil {
			if c, ok := d.backend.(interface{ Close() }); ok {
				c.Close()
			}
			return device{}, usageError{fmt.Sprintf("--device %s: %v (--device cpu computes bfloat16 on cpu-bfloat16)", d.name, err)}
		}
		return device{d.name, be}, nil
	}
	switch name {
	case "cpu":
		return device{"cpu", cpukernels.ForDType(dt)}, nil
	case "cuda":
		be, err := startCUDA(dt)
		if err != nil {
			return device{}, usageError{"--device cuda: " + err.Error()}
		}
		return device{"cuda", be}, nil
	case "auto":
		be, err := startCUDA(dt)
		if err == nil {
			return device{"cuda", be}, nil
		}
		if _, probeErr := cuda.ProbeDriver(); probeErr == nil {
			fmt.Fprintf(stderr, "note: a CUDA driver loads but the GPU backend could not start (%v); running on the CPU\n", err)
		}
		return device{"cpu", cpukernels.ForDType(dt)}, nil
	}
	return device{}, checkDeviceName(name)
}

// checkDeviceName rejects a --device that selectDevice would not know,
// without starting a backend (for --dry-run).
func checkDeviceName(name string) error {
	switch name {
	case "auto", "cpu", "cuda":
		return nil
	}
	return usageError{fmt.Sprintf("--device %q is not allowed (auto, cpu or cuda; or set SEQBENCH_DEVICE)", name)}
}

// bf16Backend is be's bf16 mixed-precision backend (its BF16 method:
// cpu-bfloat16 for the float32 CPU backend; the CUDA backend's says it has
// none yet).
func bf16Backend(be nn.Backend) (nn.Backend, error) {
	bf, ok := be.(interface {
		BF16() (nn.MixedBackend, error)
	})
	if !ok {
		return nil, fmt.Errorf("bf16 is not supported by the %s backend", be.Name())
	}
	return bf.BF16()
}

// startCUDA starts the CUDA backend for selectDeviceDType (a variable so
// that a test can stand in a fake GPU).
var startCUDA = newCUDA

// newCUDA starts the CUDA backend on device 0.
func newCUDA(dt nn.DType) (nn.Backend, error) {
	if _, err := cuda.ProbeDriver(); err != nil {
		return nil, fmt.Errorf("no CUDA driver (libcuda.so.1 did not load: %v)", err)
	}
	be, err := gpukernels.New(dt)
	if err != nil {
		return nil, err
	}
	full, ok := any(be).(nn.Backend)
	if !ok {
		be.Close()
		return nil, fmt.Errorf("this build's CUDA backend does not implement every op yet")
	}
	return full, nil
}

func cmdDevices(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cpu: %d cores (GOMAXPROCS %d), %s/%s, backends cpu-float32, cpu-float64 and cpu-bfloat16 (precision bf16), GEMM: %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, cpukernels.GemmPath)
	if _, err := cuda.ProbeDriver(); err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(stdout, "cuda: no driver library (%s; also looked in /usr/local/cuda/lib64, /usr/local/nvidia/lib64 and $%s)\n",
			first, cuda.LibDirEnv)
		return nil
	}
	be, err := gpukernels.New(nn.Float32)
	if err != nil {
		fmt.Fprintf(stdout, "cuda: the driver loads but the backend does not start: %v\n", err)
		return nil
	}
	defer be.Close()
	d := be.Device()
	fmt.Fprintf(stdout, "cuda:0 %s, %.1f GiB, %d SMs, compute capability %d.%d, L2 %d MiB\n",
		d.Name, float64(d.TotalMem)/(1<<30), d.SMs, d.CCMajor, d.CCMinor, d.L2Bytes>>20)
	fmt.Fprintf(stdout, "       %s\n", be.Versions())
	return nil
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	pos, err := parseFlags(flag.NewFlagSet("version", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	rev := buildinfo.Revision()
	if r, ok := strings.CutSuffix(rev, "+modified"); ok {
		rev = r + " (modified)"
	}
	fmt.Fprintf(stdout, "seqbench %s, %s, revision %s\n", version, runtime.Version(), rev)
	return nil
}

const version = "0.1.0"

// maxShow bounds `tasks --show`: the examples are one batch in memory,
// and more than this is no longer something to read.
const maxShow = 1000

func cmdTasks(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tasks", flag.ContinueOnError)
	show := fs.Int("show", 0, "print N decoded examples of the named task")
	seed := fs.Uint64("seed", 1, "seed of the examples")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 1, "at most one task NAME"); err != nil {
		return err
	}
	if *show < 0 || *show > maxShow {
		return usageError{fmt.Sprintf("--show %d is not allowed (0 to %d examples)", *show, maxShow)}
	}
	if len(pos) == 0 {
		for _, n := range tasks.Names() {
			s, _ := tasks.Lookup(n)
			fmt.Fprintf(stdout, "%-16s %s\n", n, s.Doc)
		}
		return nil
	}
	spec, err := tasks.Lookup(pos[0])
	if err != nil {
		return usageError{err.Error()}
	}
	cfg := spec.New()
	if err := cfg.Validate(); err != nil {
		return err
	}
	task, err := cfg.Build()
	if err != nil {
		return err
	}
	settings, _ := yaml.Dump(cfg)
	fmt.Fprintf(stdout, "%s: %s\ndefaults:\n%s", spec.Name, spec.Doc, indent(string(settings)))
	if *show > 0 {
		b := task.Batch(tasks.Train, *seed, 0, *show)
		for i := range *show {
			fmt.Fprintf(stdout, "\nexample %d:\n%s\n", i+1, task.Decode(b, i))
		}
	}
	return nil
}

// archsBuildLimit is the largest model `archs` builds to count its FLOPs
// (a model computes them from its built layers): 2^26 parameters, 256 MiB
// in float32. Larger ones show their parameter count (from the config,
// nothing allocated) and no FLOPs.
const archsBuildLimit = 1 << 26

func cmdArchs(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("archs", flag.ContinueOnError)
	d := fs.Int("d-model", 64, "model width")
	n := fs.Int("n-layers", 2, "number of blocks")
	vocab := fs.Int("vocab", 16, "vocabulary size")
	seqLen := fs.Int("seq-len", 256, "sequence length L for FLOPs/token (and learned positions)")
	only := fs.String("arch", "", "list only this architecture")
	set := fs.String("set", "", "other model fields, key=value[,key=value...] (e.g. d_state=128,headdim=64; block.field for a sub-block, e.g. attention.n_heads=8)")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	// The bounds keep every parameter count within an int64.
	for _, f := range []struct {
		name     string
		v, limit int
	}{{"--d-model", *d, 1 << 17}, {"--n-layers", *n, 1 << 20}, {"--vocab", *vocab, 1 << 31}, {"--seq-len", *seqLen, 1 << 31}} {
		if f.v < 1 || f.v > f.limit {
			return usageError{fmt.Sprintf("%s %d is not allowed (must be in [1, %d])", f.name, f.v, f.limit)}
		}
	}
	fields, err := parseSet(*set)
	if err != nil {
		return err
	}
	names := arch.Names()
	if *only != "" {
		if _, err := arch.Lookup(*only); err != nil {
			return usageError{"--arch: " + err.Error()}
		}
		names = []string{*only}
	}
	other := "other fields at their defaults"
	if *set != "" {
		other = *set + "; " + other
	}
	fmt.Fprintf(stdout, "%-12s %16s %16s   (d_model %d, n_layers %d, vocab %d, L %d; %s)\n",
		"arch", "params", "fwd FLOPs/token", *d, *n, *vocab, *seqLen, other)
	var bad []string
	unbuilt := false
	for _, name := range names {
		var node yaml.Node
		block := fmt.Sprintf("{arch: %s, d_model: %d, n_layers: %d", name, *d, *n)
		for _, f := range fields {
			block += ", " + f
		}
		if err := yaml.Load([]byte(block+"}"), &node); err != nil {
			return usageError{fmt.Sprintf("--set %q: %v", *set, err)}
		}
		cfg, err := arch.Decode(node.Content[0])
		if err != nil {
			fmt.Fprintf(stdout, "%-12s %s\n", name, err)
			bad = append(bad, name)
			continue
		}
		params := cfg.NumParams(*vocab, *seqLen)
		if params > archsBuildLimit {
			fmt.Fprintf(stdout, "%-12s %16d %16s\n", name, params, "-")
			unbuilt = true
			continue
		}
		model, err := cfg.Build(arch.Env{Backend: cpukernels.New[float32](), Vocab: *vocab, MaxLen: *seqLen, RNG: newRNG(1)})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-12s %16d %16.4g\n", name, params, model.FLOPsPerToken(*seqLen))
	}
	if unbuilt {
		fmt.Fprintf(stdout, "-: FLOPs/token of a model over %d parameters is not computed (it is counted on the built model)\n", archsBuildLimit)
	}
	// A --set field that some archs lack is their row's note when all archs
	// are listed; otherwise an arch the flags do not fit is a usage error.
	if len(bad) > 0 && (*set == "" || *only != "" || len(bad) == len(names)) {
		return usageError{fmt.Sprintf("%s: not allowed at this size (see the rows above)", strings.Join(bad, ", "))}
	}
	return nil
}

// parseSet splits archs' --set into "key: value" entries of a YAML flow
// mapping. Keys are field names; d_model and n_layers have their own flags.
// A dotted key block.field (hybrid's attention.n_heads, every.k) is a field
// of a sub-block: the entries of one block join into "block: {...}".
func parseSet(set string) ([]string, error) {
	if set == "" {
		return nil, nil
	}
	var out []string
	blocks := map[string]int{} // block name -> its entry in out
	for _, kv := range strings.Split(set, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		block, field, dotted := strings.Cut(k, ".")
		switch {
		case !ok || k == "" || v == "":
			return nil, usageError{fmt.Sprintf("--set %q: %q is not key=value", set, kv)}
		case !fieldName(block) || (dotted && !fieldName(field)):
			return nil, usageError{fmt.Sprintf("--set %q: %q is not a field name (lower case, digits, _; block.field for a sub-block)", set, k)}
		case k == "arch" || k == "d_model" || k == "n_layers":
			return nil, usageError{fmt.Sprintf("--set %q: %s has its own flag (--arch, --d-model, --n-layers)", set, k)}
		case strings.ContainsAny(v, "{}[]:#"):
			return nil, usageError{fmt.Sprintf("--set %q: value %q of %s must be a plain number, word or boolean", set, v, k)}
		}
		if !dotted {
			out = append(out, k+": "+v)
			continue
		}
		i, seen := blocks[block]
		if !seen {
			i = len(out)
			blocks[block] = i
			out = append(out, block+": {")
		} else {
			out[i] += ", "
		}
		out[i] += field + ": " + v
	}
	for _, i := range blocks {
		out[i] += "}"
	}
	return out, nil
}

// fieldName reports whether s is a field name: lower case, digits, _.
func fieldName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
