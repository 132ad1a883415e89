package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"seqbench/nn"
	"seqbench/safetensors"
)

// `seqbench op` runs one fused op on tensors from a safetensors file
// (docs/DESIGN.md, "`seqbench op`"): the way to compare an op with PyTorch one to
// one. Exit status 2 for anything wrong with the command line or the input
// file (unknown op, flag or dtype, a missing input, a shape that does not
// fit, a malformed file); 1 when the op itself or writing OUT fails.

// opInput is an input tensor of an op with its allowed shapes, each a list
// of dimension names: "B", a multiple "4H", or a leading "..." (any number
// of dims, the same for every tensor that says "...").
type opInput struct {
	name     string
	shapes   [][]string
	optional bool
}

// opFlags are the op-specific flags (each op takes the ones it lists).
type opFlags struct {
	deltaSoftplus, dtSoftplus, causal bool
	chunk                             int
	activation                        string
	eps                               float64
}

// opSpec is one op: its inputs, flags, output shape and how to build it on
// a tape. build gets the inputs by name (absent optional ones are nil).
type opSpec struct {
	name, doc string
	inputs    []opInput
	flags     []string
	out       []string
	check     func(e *dimEnv, in map[string]safetensors.Tensor) error
	build     func(tp *nn.Tape, in map[string]*nn.Tensor, f *opFlags) *nn.Tensor
}

// activation reports whether the input is an activation: one with the
// batch dimension (B, or the leading "..."). Under bfloat16 activations
// are stored in bfloat16 and parameters (no batch dimension) in float32,
// the types the model path passes (docs/PRECISION.md).
func (in opInput) activation() bool {
	p := in.shapes[0]
	return slices.Contains(p, "B") || slices.Contains(p, "...")
}

func opReq(name, shapes string) opInput { return opInput{name, parseOpShapes(shapes), false} }
func opOpt(name, shapes string) opInput { return opInput{name, parseOpShapes(shapes), true} }

// parseOpShapes reads "B N L | B G N L".
func parseOpShapes(s string) [][]string {
	var out [][]string
	for alt := range strings.SplitSeq(s, "|") {
		out = append(out, strings.Fields(alt))
	}
	return out
}

func opSpecs() []opSpec {
	return []opSpec{
		{
			name: "selective_scan", doc: "Mamba-1 selective scan (mamba_ssm selective_scan_fn): delta_bias added before the softplus, out = y·SiLU(z) when z is given",
			inputs: []opInput{opReq("u", "B D L"), opReq("delta", "B D L"), opReq("A", "D N"),
				opReq("B", "B N L | B G N L"), opReq("C", "B N L | B G N L"),
				opOpt("D", "D"), opOpt("z", "B D L"), opOpt("delta_bias", "D")},
			flags: []string{"delta-softplus"},
			out:   []string{"B", "D", "L"},
			check: func(e *dimEnv, in map[string]safetensors.Tensor) error {
				if b, c := in["B"].Shape, in["C"].Shape; len(b) != len(c) {
					return fmt.Errorf("inputs B %v and C %v: both must be (B, N, L) or both (B, G, N, L)", b, c)
				}
				return e.divides("G", "D")
			},
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, f *opFlags) *nn.Tensor {
				return tp.SelectiveScan(nn.ScanInputs{U: in["u"], Delta: in["delta"], A: in["A"], Bm: in["B"], Cm: in["C"],
					D: in["D"], Z: in["z"], DeltaBias: in["delta_bias"], DeltaSoftplus: f.deltaSoftplus})
			},
		},
		{
			name: "ssd", doc: "Mamba-2 state space dual, chunked (mamba_chunk_scan_combined without z): dt_bias added before the softplus",
			inputs: []opInput{opReq("x", "B L H P"), opReq("dt", "B L H"), opReq("A", "H"),
				opReq("B", "B L G N"), opReq("C", "B L G N"), opOpt("D", "H"), opOpt("dt_bias", "H")},
			flags: []string{"chunk-size", "dt-softplus"},
			out:   []string{"B", "L", "H", "P"},
			check: func(e *dimEnv, _ map[string]safetensors.Tensor) error { return e.divides("G", "H") },
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, f *opFlags) *nn.Tensor {
				return tp.SSD(nn.SSDInputs{X: in["x"], Dt: in["dt"], A: in["A"], Bm: in["B"], Cm: in["C"],
					D: in["D"], DtBias: in["dt_bias"], DtSoftplus: f.dtSoftplus, Chunk: f.chunk})
			},
		},
		{
			name: "attention", doc: "scaled dot-product attention, scale 1/sqrt(Dh) (torch scaled_dot_product_attention)",
			inputs: []opInput{opReq("q", "B H L Dh"), opReq("k", "B H L Dh"), opReq("v", "B H L Dh")},
			flags:  []string{"causal"},
			out:    []string{"B", "H", "L", "Dh"},
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, f *opFlags) *nn.Tensor {
				q := in["q"]
				return tp.Attention(q, in["k"], in["v"], 1/math.Sqrt(float64(q.Dim(3))), f.causal)
			},
		},
		{
			name: "lstm", doc: "one torch.nn.LSTM layer (batch_first, zero initial state; gates i, f, g, o); out is every h_t",
			inputs: []opInput{opReq("x", "B L I"), opReq("weight_ih_l0", "4H I"), opReq("weight_hh_l0", "4H H"),
				opOpt("bias_ih_l0", "4H"), opOpt("bias_hh_l0", "4H")},
			out: []string{"B", "L", "H"},
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, _ *opFlags) *nn.Tensor {
				return tp.LSTM(nn.RNNInputs{X: in["x"], Wih: in["weight_ih_l0"], Whh: in["weight_hh_l0"],
					Bih: in["bias_ih_l0"], Bhh: in["bias_hh_l0"]})
			},
		},
		{
			name: "gru", doc: "one torch.nn.GRU layer (batch_first, zero initial state; gates r, z, n); out is every h_t",
			inputs: []opInput{opReq("x", "B L I"), opReq("weight_ih_l0", "3H I"), opReq("weight_hh_l0", "3H H"),
				opOpt("bias_ih_l0", "3H"), opOpt("bias_hh_l0", "3H")},
			out: []string{"B", "L", "H"},
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, _ *opFlags) *nn.Tensor {
				return tp.GRU(nn.RNNInputs{X: in["x"], Wih: in["weight_ih_l0"], Whh: in["weight_hh_l0"],
					Bih: in["bias_ih_l0"], Bhh: in["bias_hh_l0"]})
			},
		},
		{
			name: "s4d_conv", doc: "S4D: causal_conv(u, K) + D·u with K_k = 2·Re Σ_n C_n (exp(dt·A_n) − 1)/A_n · exp(dt·A_n·k), dt = exp(log_dt)",
			inputs: []opInput{opReq("u", "B H L"), opReq("log_dt", "H"), opReq("A_re", "H N/2"), opReq("A_im", "H N/2"),
				opReq("C_re", "H N/2"), opReq("C_im", "H N/2"), opOpt("D", "H")},
			out: []string{"B", "H", "L"},
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, _ *opFlags) *nn.Tensor {
				u := in["u"]
				K := tp.S4DKernel(in["log_dt"], in["A_re"], in["A_im"], in["C_re"], in["C_im"], u.Dim(2))
				return tp.FFTConv(u, K, in["D"])
			},
		},
		{
			name: "conv1d", doc: "causal depthwise conv: out[b,c,t] = act(bias[c] + Σ_k weight[c,k]·x[b,c,t−W+1+k])",
			inputs: []opInput{opReq("x", "B C L"), opReq("weight", "C W"), opOpt("bias", "C")},
			flags:  []string{"activation"},
			out:    []string{"B", "C", "L"},
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, f *opFlags) *nn.Tensor {
				act := nn.Identity
				if f.activation == "silu" {
					act = nn.SiLU
				}
				return tp.Conv1D(in["x"], in["weight"], in["bias"], act, nil)
			},
		},
		{
			name: "rmsnorm", doc: "RMSNorm over the last dim: x / sqrt(mean(x²) + eps) · weight",
			inputs: []opInput{opReq("x", "... D"), opReq("weight", "D")},
			flags:  []string{"eps"},
			out:    []string{"...", "D"},
			build: func(tp *nn.Tape, in map[string]*nn.Tensor, f *opFlags) *nn.Tensor {
				return tp.RMSNorm(in["x"], in["weight"], f.eps)
			},
		},
	}
}

func opNames() []string {
	var names []string
	for _, s := range opSpecs() {
		names = append(names, s.name)
	}
	return names
}

func cmdOp(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("op", flag.ContinueOnError)
	list := fs.Bool("list", false, "describe every op (or the named one): inputs, shapes, flags")
	inPath := fs.String("in", "", "input safetensors file (BF16, F32 or F64 tensors named as `seqbench op --list` shows)")
	outPath := fs.String("out", "", "output safetensors file: out, and d<name> of every input read when IN holds dout")
	device := fs.String("device", defaultDevice(), "auto, cpu or cuda")
	dtypeName := fs.String("dtype", "", "float32, float64 or bfloat16: the precision of the run and of OUT "+
		"(default: IN's; float64 if it mixes F32 and F64; bfloat16 if every activation is BF16 and nothing F64)")
	var f opFlags
	fs.BoolVar(&f.deltaSoftplus, "delta-softplus", false, "selective_scan: softplus(delta + delta_bias)")
	fs.BoolVar(&f.dtSoftplus, "dt-softplus", false, "ssd: softplus(dt + dt_bias)")
	fs.IntVar(&f.chunk, "chunk-size", 256, "ssd: chunk length of the chunked algorithm")
	fs.BoolVar(&f.causal, "causal", true, "attention: mask keys after the query")
	fs.StringVar(&f.activation, "activation", "none", "conv1d: none or silu")
	fs.Float64Var(&f.eps, "eps", 1e-5, "rmsnorm: added to mean(x²)")
	benchMode := fs.Bool("bench", false, "the kernel harness: check the op on --device against the float64 CPU reference, then time it (no --out)")
	var bo opBenchOptions
	fs.StringVar(&bo.shape, "shape", "", "--bench: random inputs of these dimensions, e.g. B=1,D=1536,N=16,L=2048 (instead of --in)")
	fs.IntVar(&bo.repeat, "repeat", 10, "--bench: timed samples (the median is reported)")
	fs.Uint64Var(&bo.seed, "seed", 1, "--bench: seed of the random inputs of --shape")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if err := maxArgs(pos, 1, "one op NAME"); err != nil {
		return err
	}
	known := "known ops: " + strings.Join(opNames(), ", ")
	var spec *opSpec
	if len(pos) == 1 {
		for _, s := range opSpecs() {
			if s.name == pos[0] {
				spec = &s
			}
		}
		if spec == nil {
			return usageError{fmt.Sprintf("unknown op %q (%s)", pos[0], known)}
		}
	}
	if *list {
		listOps(stdout, spec)
		return nil
	}
	switch {
	case spec == nil:
		return usageError{"missing the op NAME (" + known + "; `seqbench op --list` describes them)"}
	case *benchMode:
		return cmdOpBench(fs, spec, &f, bo, *inPath, *outPath, *device, *dtypeName, stdout, stderr)
	case *inPath == "":
		return usageError{"missing --in IN.safetensors"}
	case *outPath == "":
		return usageError{"missing --out OUT.safetensors"}
	}
	if err := checkOpFlags(fs, spec, &f, *dtypeName); err != nil {
		return err
	}
	if sameOpFile(*inPath, *outPath) {
		return usageError{fmt.Sprintf("--out %s is the input file --in %s: write the results to another file", *outPath, *inPath)}
	}

	file, _, err := safetensors.ReadFile(*inPath)
	if err != nil {
		return usageError{"--in: " + err.Error()}
	}
	inputs, dout, err := opInputs(spec, file, stderr)
	if err != nil {
		return usageError{*inPath + ": " + err.Error()}
	}
	dt, note := opDType(spec, *dtypeName, inputs, dout)
	if note != "" {
		fmt.Fprintln(stderr, "note: "+note)
	}
	dev, err := selectDeviceDType(*device, dt, stderr)
	if err != nil {
		return err
	}
	be := dev.backend
	results := runOp(spec, be, inputs, dout, &f)
	// out first, then the gradients by name; each in the type it was
	// computed in (under bfloat16: BF16 for out and the activations'
	// gradients, F32 for the parameters').
	tensors := []safetensors.Tensor{results["out"]}
	for _, name := range slices.Sorted(maps.Keys(results)) {
		if name != "out" {
			tensors = append(tensors, results[name])
		}
	}
	outShape := results["out"].Shape
	meta := map[string]string{"op": spec.name, "flags": opFlagString(fs, spec), "backend": be.Name()}
	if err := safetensors.WriteFile(*outPath, tensors, "", meta); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	what := "no dout in IN, so no gradients"
	if dout != nil {
		var names []string
		for _, t := range tensors[1:] {
			names = append(names, t.Name)
		}
		what = "gradients " + strings.Join(names, ", ")
	}
	fmt.Fprintf(stdout, "%s on %s: out %v, %s -> %s\n", spec.name, be.Name(), outShape, what, *outPath)
	return nil
}

// sameOpFile reports whether out names the file in: the same path, however
// spelled, or (where out exists) the same file through a link.
func sameOpFile(in, out string) bool {
	a, errA := filepath.Abs(in)
	b, errB := filepath.Abs(out)
	if errA == nil && errB == nil && a == b {
		return true
	}
	si, errA := os.Stat(in)
	so, errB := os.Stat(out)
	return errA == nil && errB == nil && os.SameFile(si, so)
}

// opDType is the precision to run in: the one --dtype names, else the
// inputs': bfloat16 when every activation (and dout) is BF16 and no
// tensor F64, else float64 when any tensor is F64 (so that nothing is
// rounded), else float32. note says which tensors a conversion changes or
// widens, or that the inputs mix F32 and F64; it is empty when every
// tensor is computed in its own dtype. Under bfloat16 the parameters (the
// inputs without a batch dimension) are float32, so a BF16 or F32
// parameter is computed in its own values.
func opDType(spec *opSpec, name string, inputs map[string]safetensors.Tensor, dout *safetensors.Tensor) (nn.DType, string) {
	isAct := map[string]bool{"dout": true}
	for _, in := range spec.inputs {
		isAct[in.name] = in.activation()
	}
	byDType := map[string][]string{}
	actsBF16 := true
	add := func(n, dtype string) {
		byDType[dtype] = append(byDType[dtype], n)
		if isAct[n] && dtype != safetensors.BF16 {
			actsBF16 = false
		}
	}
	for _, n := range slices.Sorted(maps.Keys(inputs)) {
		add(n, inputs[n].DType)
	}
	if dout != nil {
		add("dout", dout.DType)
	}
	for _, names := range byDType {
		slices.Sort(names)
	}
	bf, f32, f64 := byDType[safetensors.BF16], byDType[safetensors.F32], byDType[safetensors.F64]
	list := func(names []string) string { return strings.Join(names, ", ") }
	notes := func(flag string, parts ...string) string {
		var kept []string
		for _, p := range parts {
			if p != "" {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			return ""
		}
		return flag + strings.Join(kept, "; ")
	}
	when := func(names []string, f string) string {
		if len(names) == 0 {
			return ""
		}
		return fmt.Sprintf(f, list(names))
	}
	switch {
	case name == "bfloat16" || (name == "" && len(bf) > 0 && len(f64) == 0 && actsBF16):
		var acts, params64 []string
		for _, n := range slices.Concat(f32, f64) {
			if isAct[n] {
				acts = append(acts, n)
			}
		}
		for _, n := range f64 {
			if !isAct[n] {
				params64 = append(params64, n)
			}
		}
		slices.Sort(acts)
		return nn.BFloat16, notes("--dtype bfloat16: ",
			when(acts, "the activations %s of IN are rounded to bfloat16"),
			when(params64, "the F64 parameters %s of IN are rounded to float32 (parameters are float32 under bf16)"))
	case name == "float32":
		return nn.Float32, notes("--dtype float32: ",
			when(f64, "the F64 tensors %s of IN are rounded to float32"),
			when(bf, "the BF16 tensors %s of IN are widened to float32 (exactly)"))
	case name == "float64":
		return nn.Float64, notes("--dtype float64: ",
			when(f32, "the F32 tensors %s of IN are widened to float64 (exactly)"),
			when(bf, "the BF16 tensors %s of IN are widened to float64 (exactly)"))
	case len(f64) == 0:
		return nn.Float32, when(bf, "the BF16 tensors %s of IN are widened to float32 (exactly; --dtype bfloat16 computes in bfloat16)")
	case len(f32) == 0 && len(bf) == 0:
		return nn.Float64, ""
	}
	kind := map[bool]string{true: "F32", false: "BF16"}[len(f32) > 0]
	if len(f32) > 0 && len(bf) > 0 {
		kind = "F32 and BF16"
	}
	narrow := slices.Sorted(slices.Values(slices.Concat(bf, f32)))
	return nn.Float64, fmt.Sprintf("IN mixes %s tensors (%s) and F64 ones (%s): computing in float64 (--dtype float32 rounds them all)",
		kind, list(narrow), list(f64))
}

// checkOpFlags rejects op flags the op does not take, flags of --bench
// without it, and bad flag values.
func checkOpFlags(fs *flag.FlagSet, spec *opSpec, f *opFlags, dtypeName string) error {
	common := []string{"list", "in", "out", "device", "dtype", "bench"}
	benchOnly := []string{"shape", "repeat", "seed"}
	bench := fs.Lookup("bench").Value.String() == "true"
	var err error
	fs.Visit(func(fl *flag.Flag) {
		switch {
		case err != nil:
		case slices.Contains(benchOnly, fl.Name):
			if !bench {
				err = usageError{fmt.Sprintf("--%s applies to --bench only", fl.Name)}
			}
		case !slices.Contains(common, fl.Name) && !slices.Contains(spec.flags, fl.Name):
			takes := "no flags of its own"
			if len(spec.flags) > 0 {
				takes = "its flags: --" + strings.Join(spec.flags, ", --")
			}
			err = usageError{fmt.Sprintf("--%s does not apply to %s (%s)", fl.Name, spec.name, takes)}
		}
	})
	switch {
	case err != nil:
		return err
	case dtypeName != "" && dtypeName != "float32" && dtypeName != "float64" && dtypeName != "bfloat16":
		return usageError{fmt.Sprintf("--dtype %q is not allowed (float32, float64 or bfloat16)", dtypeName)}
	case f.chunk < 1:
		return usageError{fmt.Sprintf("--chunk-size %d: must be at least 1", f.chunk)}
	case f.activation != "none" && f.activation != "silu":
		return usageError{fmt.Sprintf("--activation %q is not allowed (none or silu)", f.activation)}
	case !(f.eps >= 0) || math.IsInf(f.eps, 0):
		return usageError{fmt.Sprintf("--eps %v: must be a finite number ≥ 0", f.eps)}
	}
	return nil
}

// opFlagString is the op's flags with their effective values, in a form
// that `seqbench op` takes back (the __metadata__.flags of the golden
// vectors).
func opFlagString(fs *flag.FlagSet, spec *opSpec) string {
	var parts []string
	for _, name := range spec.flags {
		v := fs.Lookup(name).Value.String()
		switch v {
		case "true":
			parts = append(parts, "--"+name)
		case "false":
			parts = append(parts, "--"+name+"=false")
		default:
			parts = append(parts, "--"+name+" "+v)
		}
	}
	return strings.Join(parts, " ")
}

// opInputs picks the op's inputs from the file's tensors and checks every
// shape against the others; dout, when present, must have out's shape.
// Other tensors are ignored (a golden file also holds out and the expected
// d<name>); a note names any that is none of those, since a misspelled
// optional input would otherwise just be absent.
func opInputs(spec *opSpec, file map[string]safetensors.Tensor, stderr io.Writer) (map[string]safetensors.Tensor, *safetensors.Tensor, error) {
	env := newDimEnv()
	inputs := map[string]safetensors.Tensor{}
	expected := map[string]bool{"out": true, "dout": true}
	for _, in := range spec.inputs {
		expected[in.name], expected["d"+in.name] = true, true
		t, ok := file[in.name]
		if !ok {
			if in.optional {
				continue
			}
			return nil, nil, fmt.Errorf("%s needs the input %s %s, which the file does not hold (it holds %s)",
				spec.name, in.name, opShapesString(in.shapes), strings.Join(slices.Sorted(maps.Keys(file)), ", "))
		}
		if err := env.match(in.name, t.Shape, in.shapes); err != nil {
			return nil, nil, err
		}
		inputs[in.name] = t
	}
	if spec.check != nil {
		if err := spec.check(env, inputs); err != nil {
			return nil, nil, err
		}
	}
	var unused []string
	for name := range file {
		if !expected[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		fmt.Fprintf(stderr, "note: %s does not use the tensors %s\n", spec.name, strings.Join(unused, ", "))
	}
	d, ok := file["dout"]
	if !ok {
		return inputs, nil, nil
	}
	if want := env.shape(spec.out); !slices.Equal(d.Shape, want) {
		return nil, nil, fmt.Errorf("dout has shape %v; expected the shape of out %s = %v", d.Shape, opShapeString(spec.out), want)
	}
	return inputs, &d, nil
}

// runOp builds the op on a tape over inputs and, given dout,
// backpropagates it. It returns out and d<name> of every input, each with
// the safetensors dtype of the buffer it was computed in.
func runOp(spec *opSpec, be nn.Backend, inputs map[string]safetensors.Tensor, dout *safetensors.Tensor, f *opFlags) map[string]safetensors.Tensor {
	tp := nn.NewTape(be, dout != nil)
	defer tp.Release()
	ts := opLeaves(spec, be, inputs, dout != nil)
	defer freeOpLeaves(be, ts)
	y := spec.build(tp, ts, f)
	res := map[string]safetensors.Tensor{"out": opResult(be, "out", y.Data, y.Shape)}
	if dout == nil {
		return res
	}
	// loss = Σ out·dout has d(loss)/d(out) = dout: a Linear of out as one
	// (1, n) row with dout as a constant (1, n) weight. Tape.Backward wants
	// a scalar, and this seeds out's gradient with exactly dout (dout is
	// stored in out's type: a product with the seed 1 is exact).
	n := y.Len()
	w := opLeaf(be, nn.DTypeOf(be, y.Data), dout.Data, false, 1, n)
	defer be.Free(w.Data)
	tp.Backward(tp.Linear(tp.Reshape(y, 1, n), w, nil))
	for name, x := range ts {
		res["d"+name] = opResult(be, "d"+name, x.Grad(), x.Shape)
	}
	return res
}

// opLeaves allocates the op's inputs on be (with gradients when grad):
// activations in the type the backend's tapes store activations in,
// parameters in its DType.
func opLeaves(spec *opSpec, be nn.Backend, inputs map[string]safetensors.Tensor, grad bool) map[string]*nn.Tensor {
	act := be.DType()
	if m, ok := be.(nn.MixedBackend); ok {
		act = m.ActDType()
	}
	ts := map[string]*nn.Tensor{}
	for _, in := range spec.inputs {
		t, ok := inputs[in.name]
		if !ok {
			continue
		}
		dt := be.DType()
		if in.activation() {
			dt = act
		}
		ts[in.name] = opLeaf(be, dt, t.Data, grad, t.Shape...)
	}
	return ts
}

// opLeaf is a tensor of type dt on be holding values (rounded once to dt).
func opLeaf(be nn.Backend, dt nn.DType, values []float64, grad bool, shape ...int) *nn.Tensor {
	var x *nn.Tensor
	switch {
	case grad:
		x = nn.NewParamAs(be, dt, shape...)
	case dt == be.DType():
		x = &nn.Tensor{Shape: shape, Data: be.Alloc(nn.NumElems(shape))}
	default:
		x = &nn.Tensor{Shape: shape, Data: be.(nn.MixedBackend).AllocAs(nn.NumElems(shape), dt)}
	}
	be.Write(x.Data, values)
	return x
}

func freeOpLeaves(be nn.Backend, ts map[string]*nn.Tensor) {
	for _, x := range ts {
		be.Free(x.Data)
		if g := x.Grad(); g != nil {
			be.Free(g)
		}
	}
}

// opResult reads buf into a tensor named name with buf's safetensors
// dtype.
func opResult(be nn.Backend, name string, buf nn.Buffer, shape []int) safetensors.Tensor {
	return safetensors.Tensor{Name: name, DType: safetensorsDType(nn.DTypeOf(be, buf)), Shape: slices.Clone(shape), Data: be.Read(buf)}
}

func safetensorsDType(dt nn.DType) string {
	switch dt {
	case nn.Float64:
		return safetensors.F64
	case nn.BFloat16:
		return safetensors.BF16
	}
	return safetensors.F32
}

// opStored is what a run in dt stores of inputs and dout: each value
// rounded as Write rounds it into its buffer (activations and dout to
// bfloat16 and parameters to float32 under bfloat16, everything to
// float32 in float32). The harness checks against float64 on these.
func opStored(spec *opSpec, dt nn.DType, inputs map[string]safetensors.Tensor, dout *safetensors.Tensor) (
	map[string]safetensors.Tensor, *safetensors.Tensor) {
	if dt == nn.Float64 {
		return inputs, dout
	}
	round := func(t safetensors.Tensor, act bool) safetensors.Tensor {
		r := t
		r.Data = make([]float64, len(t.Data))
		for i, v := range t.Data {
			if act && dt == nn.BFloat16 {
				r.Data[i] = nn.RoundBF16From64(v)
			} else {
				r.Data[i] = float64(float32(v))
			}
		}
		return r
	}
	out := map[string]safetensors.Tensor{}
	for _, in := range spec.inputs {
		if t, ok := inputs[in.name]; ok {
			out[in.name] = round(t, in.activation())
		}
	}
	if dout == nil {
		return out, nil
	}
	d := round(*dout, true)
	return out, &d
}

// dimEnv binds the named dimensions of an op's inputs as they are checked,
// remembering which tensor set each, so a mismatch can say what was
// expected and why.
type dimEnv struct {
	val      map[string]int
	from     map[string]string
	lead     []int // the dims that "..." stands for
	leadFrom string
}

func newDimEnv() *dimEnv { return &dimEnv{val: map[string]int{}, from: map[string]string{}} }

// splitOpDim reads "4H" as (4, "H") and "H" as (1, "H").
func splitOpDim(p string) (int, string) {
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	if i == 0 {
		return 1, p
	}
	k, _ := strconv.Atoi(p[:i])
	return k, p[i:]
}

func fitsOpRank(pat []string, rank int) bool {
	if len(pat) > 0 && pat[0] == "..." {
		return rank >= len(pat)-1
	}
	return rank == len(pat)
}

// match checks a tensor's shape against the first of its patterns of the
// same rank, binding dimensions not seen before.
func (e *dimEnv) match(name string, shape []int, pats [][]string) error {
	var pat []string
	for _, p := range pats {
		if fitsOpRank(p, len(shape)) {
			pat = p
			break
		}
	}
	if pat == nil {
		return fmt.Errorf("%s has shape %v; expected %s", name, shape, opShapesString(pats))
	}
	for _, d := range shape {
		if d < 1 {
			return fmt.Errorf("%s has shape %v; every dimension must be at least 1", name, shape)
		}
	}
	var want []int
	dims, rest := shape, pat
	if len(pat) > 0 && pat[0] == "..." {
		n := len(shape) - (len(pat) - 1)
		if e.leadFrom == "" {
			e.lead, e.leadFrom = slices.Clone(shape[:n]), name
		}
		want = append(want, e.lead...)
		dims, rest = shape[n:], pat[1:]
	}
	for i, p := range rest {
		k, sym := splitOpDim(p)
		if _, ok := e.val[sym]; !ok {
			if dims[i]%k != 0 {
				return fmt.Errorf("%s has shape %v; expected %s, and %d is not a multiple of %d",
					name, shape, opShapeString(pat), dims[i], k)
			}
			e.val[sym], e.from[sym] = dims[i]/k, name
		}
		want = append(want, k*e.val[sym])
	}
	if slices.Equal(want, shape) {
		return nil
	}
	// Say where the expected sizes come from.
	var why []string
	if len(pat) > 0 && pat[0] == "..." && !slices.Equal(e.lead, shape[:len(shape)-len(rest)]) {
		why = append(why, fmt.Sprintf("... = %v from %s", e.lead, e.leadFrom))
	}
	for i, p := range rest {
		if _, sym := splitOpDim(p); dims[i] != want[len(want)-len(rest)+i] && e.from[sym] != name {
			why = append(why, fmt.Sprintf("%s = %d from %s", sym, e.val[sym], e.from[sym]))
		}
	}
	because := ""
	if len(why) > 0 {
		because = " (" + strings.Join(slices.Compact(why), ", ") + ")"
	}
	return fmt.Errorf("%s has shape %v; expected %s = %v%s", name, shape, opShapeString(pat), want, because)
}

// divides checks that dimension g (if bound) divides dimension of.
func (e *dimEnv) divides(g, of string) error {
	gv, ok := e.val[g]
	if ok && e.val[of]%gv != 0 {
		return fmt.Errorf("the %d groups (%s = %d, from %s) must divide %s = %d (from %s)",
			gv, g, gv, e.from[g], of, e.val[of], e.from[of])
	}
	return nil
}

// shape evaluates a pattern whose dimensions are all bound.
func (e *dimEnv) shape(pat []string) []int {
	var s []int
	for _, p := range pat {
		if p == "..." {
			s = append(s, e.lead...)
			continue
		}
		k, sym := splitOpDim(p)
		s = append(s, k*e.val[sym])
	}
	return s
}

func opShapeString(pat []string) string { return "(" + strings.Join(pat, ", ") + ")" }

func opShapesString(pats [][]string) string {
	var s []string
	for _, p := range pats {
		s = append(s, opShapeString(p))
	}
	return strings.Join(s, " or ")
}

// listOps prints the ops (or one) with their inputs, flags and output.
func listOps(w io.Writer, only *opSpec) {
	fmt.Fprintln(w, "seqbench op NAME --in IN.safetensors --out OUT.safetensors [--dtype float32|float64|bfloat16] [--device auto|cpu|cuda] [op flags]")
	fmt.Fprintln(w, "IN holds the inputs (BF16, F32 or F64); with dout (the shape of out) OUT also holds d<name> for every input read.")
	fmt.Fprintln(w, "bfloat16 (the CPU's cpu-bfloat16; not on CUDA yet): the activations (inputs with the batch dim), dout, out and")
	fmt.Fprintln(w, "  their gradients are BF16, the parameters and theirs F32, as in bf16 training (docs/PRECISION.md).")
	fmt.Fprintln(w, "seqbench op NAME --bench (--in IN.safetensors | --shape DIM=SIZE,...) [--repeat N] [--device ...] [op flags]:")
	fmt.Fprintln(w, "  the kernel harness: the op checked against the float64 CPU reference, then its median time, fwd and fwd+bwd.")
	for _, s := range opSpecs() {
		if only != nil && s.name != only.name {
			continue
		}
		var reqs, opts []string
		for _, in := range s.inputs {
			d := in.name + " " + opShapesString(in.shapes)
			if in.optional {
				opts = append(opts, d)
			} else {
				reqs = append(reqs, d)
			}
		}
		fmt.Fprintf(w, "\n%s\n  %s\n  inputs:    %s\n", s.name, s.doc, strings.Join(reqs, ", "))
		if len(opts) > 0 {
			fmt.Fprintf(w, "  optional:  %s\n", strings.Join(opts, ", "))
		}
		if len(s.flags) > 0 {
			fmt.Fprintf(w, "  flags:     %s\n", strings.Join(opFlagHelp(s.flags), ", "))
		}
		fmt.Fprintf(w, "  output:    out %s\n", opShapeString(s.out))
	}
}

func opFlagHelp(flags []string) []string {
	help := map[string]string{
		"delta-softplus": "--delta-softplus",
		"dt-softplus":    "--dt-softplus",
		"chunk-size":     "--chunk-size N (default 256)",
		"causal":         "--causal (default true; --causal=false for none)",
		"activation":     "--activation none|silu (default none)",
		"eps":            "--eps E (default 1e-5)",
	}
	var out []string
	for _, f := range flags {
		out = append(out, help[f])
	}
	return out
}
