package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"seqbench/bench"
	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/safetensors"
)

// `seqbench op NAME --bench` is the standalone harness of one kernel: the
// op at one shape on the chosen device, checked against the float64 CPU
// reference on the same inputs, then timed, without the test binary's
// suite. The inputs come from --in or, with --shape, are drawn at random.

// opBenchOptions are the flags of --bench.
type opBenchOptions struct {
	shape  string // "B=1,D=256,N=16,L=512"; "" with --in
	repeat int    // timed samples
	seed   uint64
}

// cmdOpBench is `seqbench op NAME --bench`: inputs from --in or --shape,
// the device and dtype chosen as for a plain op (float32 for random
// inputs unless --dtype), then benchOp.
func cmdOpBench(fs *flag.FlagSet, spec *opSpec, f *opFlags, o opBenchOptions, inPath, outPath, device, dtypeName string,
	stdout, stderr io.Writer) error {
	if err := checkOpFlags(fs, spec, f, dtypeName); err != nil {
		return err
	}
	switch {
	case outPath != "":
		return usageError{"--out does not apply to --bench (the harness writes nothing)"}
	case (inPath == "") == (o.shape == ""):
		return usageError{"--bench takes the inputs from --in IN.safetensors or draws them with --shape DIM=SIZE,... (one of the two)"}
	case o.repeat < 1 || o.repeat > 10000:
		return usageError{fmt.Sprintf("--repeat %d is not allowed (1 to 10000)", o.repeat)}
	}
	var inputs map[string]safetensors.Tensor
	var dout *safetensors.Tensor
	var from string
	var dt nn.DType
	if inPath != "" {
		file, _, err := safetensors.ReadFile(inPath)
		if err != nil {
			return usageError{"--in: " + err.Error()}
		}
		if inputs, dout, err = opInputs(spec, file, stderr); err != nil {
			return usageError{inPath + ": " + err.Error()}
		}
		var note string
		dt, note = opDType(spec, dtypeName, inputs, dout)
		if note != "" {
			fmt.Fprintln(stderr, "note: "+note)
		}
		from = "inputs of " + inPath
	} else {
		shape, err := parseOpShape(spec, o.shape)
		if err != nil {
			return usageError{err.Error()}
		}
		drawn, d := randomOpInputs(spec, shape, rand.New(rand.NewPCG(o.seed, 0)))
		drawn["dout"] = d
		// The op's own shape checks (groups dividing channels, ...).
		if inputs, dout, err = opInputs(spec, drawn, io.Discard); err != nil {
			return usageError{"--shape " + o.shape + ": " + err.Error()}
		}
		dt = nn.Float32
		switch dtypeName {
		case "float64":
			dt = nn.Float64
		case "bfloat16":
			dt = nn.BFloat16
		}
		from = fmt.Sprintf("random inputs, seed %d", o.seed)
	}
	dev, err := selectDeviceDType(device, dt, stderr)
	if err != nil {
		return err
	}
	// The reference computes on what the run stores (bfloat16- or
	// float32-rounded inputs), so the check sees the kernel's error alone.
	inputs, dout = opStored(spec, dt, inputs, dout)
	return benchOp(spec, dev.backend, inputs, dout, f, o, from, stdout)
}

// opDims lists the dimension names an op's inputs use, in order.
func opDims(spec *opSpec) []string {
	var dims []string
	for _, in := range spec.inputs {
		for _, p := range in.shapes[0] {
			if p == "..." {
				p = "B L" // --shape gives the leading dims as B and L
			}
			for _, d := range strings.Fields(p) {
				_, sym := splitOpDim(d)
				sym = strings.TrimSuffix(sym, "/2")
				if !slices.Contains(dims, sym) {
					dims = append(dims, sym)
				}
			}
		}
	}
	return dims
}

// parseOpShape reads --shape "B=1,D=256,L=512": every dimension the op's
// inputs use, each ≥ 1, no other.
func parseOpShape(spec *opSpec, s string) (map[string]int, error) {
	dims := opDims(spec)
	want := fmt.Sprintf("%s takes %s", spec.name, strings.Join(dims, ", "))
	out := map[string]int{}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		n, err := strconv.Atoi(v)
		switch {
		case !ok || err != nil:
			return nil, fmt.Errorf("--shape %q: %q is not DIM=SIZE (%s)", s, kv, want)
		case !slices.Contains(dims, k):
			return nil, fmt.Errorf("--shape %q: %s is not a dimension of %s (%s)", s, k, spec.name, want)
		case n < 1 || n > 1<<30:
			return nil, fmt.Errorf("--shape %q: %s=%d is not allowed (1 to 2^30)", s, k, n)
		}
		out[k] = n
	}
	var missing []string
	for _, d := range dims {
		if _, ok := out[d]; !ok {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--shape %q: missing %s (%s)", s, strings.Join(missing, ", "), want)
	}
	if n := out["N"]; slices.Contains(dims, "N") && spec.name == "s4d_conv" && n%2 != 0 {
		return nil, fmt.Errorf("--shape %q: s4d_conv's N=%d must be even (the state is N/2 complex pairs)", s, n)
	}
	return out, nil
}

// randomOpInputs draws every required input of spec at shape, and dout,
// from rng: values of the scale the models use, with the decays (A, log_dt)
// in the ranges that keep a recurrence stable.
func randomOpInputs(spec *opSpec, shape map[string]int, rng *rand.Rand) (map[string]safetensors.Tensor, safetensors.Tensor) {
	dimsOf := func(pat []string) []int {
		var s []int
		for _, p := range pat {
			if p == "..." {
				s = append(s, shape["B"], shape["L"])
				continue
			}
			k, sym := splitOpDim(p)
			if base, ok := strings.CutSuffix(sym, "/2"); ok {
				s = append(s, k*shape[base]/2)
			} else {
				s = append(s, k*shape[sym])
			}
		}
		return s
	}
	draw := func(name string, dims []int) safetensors.Tensor {
		x := make([]float64, safetensors.NumElems(dims))
		for i := range x {
			switch name {
			case "A", "A_re":
				x[i] = -math.Exp(0.5 * rng.NormFloat64()) // decays
			case "log_dt":
				x[i] = math.Log(1e-3) + rng.Float64()*(math.Log(1e-1)-math.Log(1e-3))
			default:
				x[i] = 0.5 * rng.NormFloat64()
			}
		}
		return safetensors.Tensor{Name: name, DType: safetensors.F64, Shape: dims, Data: x}
	}
	env := newDimEnv()
	inputs := map[string]safetensors.Tensor{}
	for _, in := range spec.inputs {
		if in.optional {
			continue
		}
		inputs[in.name] = draw(in.name, dimsOf(in.shapes[0]))
		_ = env.match(in.name, inputs[in.name].Shape, in.shapes)
	}
	return inputs, draw("dout", env.shape(spec.out))
}

// opRelErrs compares got with want per tensor: max |got − want| / max |want|.
func opRelErrs(got, want map[string][]float64) map[string]float64 {
	errs := map[string]float64{}
	for name, w := range want {
		g := got[name]
		num, den := 0.0, 0.0
		for i := range w {
			d := math.Abs(g[i] - w[i])
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			num, den = max(num, d), max(den, math.Abs(w[i]))
		}
		errs[name] = num / max(den, math.SmallestNonzeroFloat64)
	}
	return errs
}

// benchOp runs the harness: the check, then the timings, printed to
// stdout. The check runs the float64 CPU backend on the same values.
func benchOp(spec *opSpec, be nn.Backend, inputs map[string]safetensors.Tensor, dout *safetensors.Tensor,
	f *opFlags, o opBenchOptions, from string, stdout io.Writer) error {
	var dims []string
	for _, name := range slices.Sorted(maps.Keys(inputs)) {
		dims = append(dims, fmt.Sprintf("%s %v", name, inputs[name].Shape))
	}
	fmt.Fprintf(stdout, "%s on %s (%s): %s\n", spec.name, be.Name(), from, strings.Join(dims, ", "))

	results := func(b nn.Backend) map[string][]float64 {
		m := map[string][]float64{}
		for name, t := range runOp(spec, b, inputs, dout, f) {
			m[name] = t.Data
		}
		return m
	}
	errs := opRelErrs(results(be), results(cpukernels.New[float64]()))
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(errs)) {
		parts = append(parts, fmt.Sprintf("%s %.2g", name, errs[name]))
	}
	fmt.Fprintf(stdout, "check against cpu-float64, max |err| / max |ref|: %s\n", strings.Join(parts, ", "))

	dev := bench.NewDevice(be, "", "")
	params := opLeaves(spec, be, inputs, true)
	defer freeOpLeaves(be, params)
	act := be.DType()
	if m, ok := be.(nn.MixedBackend); ok {
		act = m.ActDType()
	}
	pass := func(backward bool) func() {
		var w *nn.Tensor
		if backward {
			w = opLeaf(be, act, dout.Data, false, 1, len(dout.Data)) // in out's type: no cast per call
		}
		return func() {
			tp := nn.NewTape(be, backward)
			y := spec.build(tp, params, f)
			if backward {
				n := y.Len()
				tp.Backward(tp.Linear(tp.Reshape(y, 1, n), w, nil))
			}
			tp.Release()
		}
	}
	passes := []struct {
		name string
		run  func()
	}{{"fwd", pass(false)}}
	if dout != nil {
		passes = append(passes, struct {
			name string
			run  func()
		}{"fwd+bwd", pass(true)})
	}
	for _, p := range passes {
		samples, reps, err := timeOp(dev, p.run, o.repeat)
		if err != nil {
			return fmt.Errorf("timing %s: %w", p.name, err)
		}
		sort.Float64s(samples)
		fmt.Fprintf(stdout, "%-8s median %s, min %s, max %s (%d samples of %d calls)\n", p.name,
			opSeconds(samples[len(samples)/2]), opSeconds(samples[0]), opSeconds(samples[len(samples)-1]), len(samples), reps)
	}
	return nil
}

// timeOp takes repeat samples of the time of one call of f on dev (device
// events on a GPU, else the host clock around a synchronisation), after a
// first call (compiles kernels, grows the allocator) and a short warm-up;
// each sample averages enough calls to last about a millisecond.
func timeOp(dev *bench.Device, f func(), repeat int) (samples []float64, reps int, err error) {
	timeCalls := func(n int) (float64, error) {
		if dev.Timer != nil {
			ms, err := dev.Timer.Time(n, f)
			return ms / 1e3, err
		}
		sync := func() error {
			if dev.Sync != nil {
				return dev.Sync.Synchronize()
			}
			return nil
		}
		if err := sync(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		for range n {
			f()
		}
		if err := sync(); err != nil {
			return 0, err
		}
		return time.Since(t0).Seconds() / float64(n), nil
	}
	est := math.Inf(1)
	for range 4 {
		s, err := timeCalls(1)
		if err != nil {
			return nil, 0, err
		}
		est = min(est, max(s, 1e-7))
	}
	reps = max(1, min(int(math.Ceil(1e-3/est)), 10000))
	for range repeat {
		s, err := timeCalls(reps)
		if err != nil {
			return nil, 0, err
		}
		samples = append(samples, s)
	}
	return samples, reps, nil
}

// opSeconds prints a time with a unit that suits it.
func opSeconds(s float64) string {
	switch {
	case s < 1e-3:
		return fmt.Sprintf("%.1f µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.3g ms", s*1e3)
	}
	return fmt.Sprintf("%.3g s", s)
}
