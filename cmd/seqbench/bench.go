package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"seqbench/bench"
	"seqbench/nn"
)

// cmdBench runs a benchmark suite on a device and writes the JSON record,
// the Go benchmark-format lines beside it and a table on the terminal.
// SIGINT or SIGTERM stops it after the benchmark in progress: the files
// hold what was measured (marked interrupted) and the exit status is 130.
func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	def := bench.DefaultOptions()
	suite := fs.String("suite", def.Suite, "kernels | train | generate | memory")
	dev := fs.String("device", defaultDevice(), "auto | cpu | cuda")
	dtype := fs.String("dtype", bench.PrecisionFP32, "fp32 | tf32 | bf16: the precision the suite computes in (docs/PRECISION.md); "+
		"part of each benchmark's name (/dtype=bf16; none for fp32) and of the file")
	ops := fs.String("ops", "", "kernels: comma-separated ops (default all: "+strings.Join(bench.KernelOps(), ",")+")")
	archs := fs.String("archs", "", "train, generate, memory: comma-separated architectures (default all registered)")
	lengths := fs.String("lengths", "", "comma-separated sequence lengths (default: the suite's grid for the device)")
	batch := fs.String("batch", "", "comma-separated batch sizes (default: the suite's grid for the device)")
	repeat := fs.Int("repeat", def.Repeat, "timed samples per benchmark (regress needs ≥ 4 per side; 10 is better)")
	warmup := fs.Duration("warmup", 0, "untimed running after the first call, before the samples (default 20ms CPU, 100ms GPU; at least 1 call)")
	minSample := fs.Duration("min-sample", 0, "a sample repeats the call until it lasts this long (default 2ms CPU, 5ms GPU)")
	ceilings := fs.Bool("ceilings", true, "measure the copy bandwidth and GEMM rate of the device (fractions of them in the table)")
	dModel := fs.Int("d-model", 0, "model suites: d_model (default 64 CPU, 768 GPU)")
	nLayers := fs.Int("n-layers", 0, "model suites: n_layers (default 2 CPU, 12 GPU)")
	vocab := fs.Int("vocab", 0, "model suites: vocabulary size (default 256 CPU, 50280 GPU)")
	prompt := fs.Int("prompt", 0, "generate: prompt length (default 128 CPU, 2048 GPU)")
	newTokens := fs.Int("new-tokens", 0, "generate: tokens generated one at a time (default 16 CPU, 128 GPU)")
	seed := fs.Uint64("seed", def.Seed, "seed of the random inputs")
	out := fs.String("out", "", "the JSON file (default SUITE.bench.json); the benchmark-format lines go beside it as .txt")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	profile := fs.Bool("profile", false, "train, memory: time one more step, generate: one more decoded token, operation by operation (a GPU), and print where its time went")
	matched := fs.Bool("matched", false, "model suites: the transformer gets half of --n-layers, the papers' size match (24 Mamba layers against 12)")
	fp32State := fs.Bool("fp32-state", false, "generate: keep Mamba's decode states in float32 under bf16 (by default they are bfloat16 there, as mamba_ssm keeps them)")
	graph := fs.Bool("graph", true, "generate and train: decode a token, or train a step, by replaying one captured graph (CUDA) where the backend and the arch allow; --graph=false runs each with its own launches")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	o := def
	o.Suite, o.Repeat, o.Warmup, o.MinSample, o.Ceilings, o.Seed = *suite, *repeat, *warmup, *minSample, *ceilings, *seed
	o.Precision, o.Profile, o.Eager = *dtype, *profile, !*graph
	o.Ops, o.Archs = splitList(*ops), splitList(*archs)
	if o.Lengths, err = intList("--lengths", *lengths); err != nil {
		return err
	}
	if o.Batches, err = intList("--batch", *batch); err != nil {
		return err
	}
	if *repeat < 1 {
		return usageError{fmt.Sprintf("--repeat %d is not allowed (≥ 1)", *repeat)}
	}
	o.Model = bench.ModelOptions{DModel: *dModel, NLayers: *nLayers, Vocab: *vocab, Prompt: *prompt, NewTokens: *newTokens, Matched: *matched,
		Fp32State: *fp32State}
	if !*quiet {
		o.Progress = stderr
	}
	if err := o.Check(); err != nil {
		return usageError{err.Error()}
	}
	path := *out
	if path == "" {
		path = o.Suite + ".bench.json"
	}
	d, err := selectDevice(*dev, stderr)
	if err != nil {
		return err
	}
	if d.backend, err = precisionDevice(d, o.Precision, stderr); err != nil {
		return err
	}
	name := ""
	if d.name == "cpu" {
		name = bench.CPUName()
	}
	ctx, stop := interruptible(stderr, "interrupt: stopping after the benchmark in progress (Ctrl-C again quits at once)")
	defer stop()
	f, err := bench.RunContext(ctx, bench.NewDevice(d.backend, name, ""), o)
	if err != nil {
		return err
	}
	textPath, err := bench.WriteFiles(f, path)
	if err != nil {
		return err
	}
	if err := bench.WriteTable(stdout, f); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (full record) and %s (benchstat format)\n", path, textPath)
	if f.Interrupted {
		fmt.Fprintf(stderr, "interrupted: wrote %d benchmarks to %s (the rest did not run)\n", len(f.Results), path)
		return errInterrupted
	}
	return nil
}

// precisionDevice is the backend that computes precision p on d: its bf16
// backend (cpu-bfloat16 on the CPU; the CUDA backend has none yet, an
// error), or d's own with TF32 on for tf32 where it has a TF32 mode (on
// the CPU, which has none, tf32 runs as fp32, said on stderr).
func precisionDevice(d device, p string, stderr io.Writer) (nn.Backend, error) {
	switch p {
	case bench.PrecisionBF16:
		be, err := bf16Backend(d.backend)
		if err != nil {
			return nil, usageError{fmt.Sprintf("--dtype bf16 on --device %s: %v (--device cpu runs it on cpu-bfloat16)", d.name, err)}
		}
		return be, nil
	case bench.PrecisionTF32:
		t, ok := d.backend.(interface{ SetTF32(on bool) error })
		if !ok {
			fmt.Fprintf(stderr, "note: %s has no TF32 mode: --dtype tf32 computes as fp32 there (the file still says tf32)\n", d.backend.Name())
			return d.backend, nil
		}
		if err := t.SetTF32(true); err != nil {
			return nil, fmt.Errorf("--dtype tf32: %w", err)
		}
	}
	return d.backend, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func intList(flagName, s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 {
			return nil, usageError{fmt.Sprintf("%s: %q is not allowed (comma-separated integers ≥ 1)", flagName, p)}
		}
		out = append(out, v)
	}
	return out, nil
}
