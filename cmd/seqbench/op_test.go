package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
	"seqbench/safetensors"
)

// opGoldenDir holds the PyTorch float64 references of the fused ops.
const opGoldenDir = "../../testdata/testvectors"

func findOpSpec(t *testing.T, name string) opSpec {
	t.Helper()
	for _, s := range opSpecs() {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no op %q", name)
	return opSpec{}
}

// opRelErr is the largest |got−want| / max(|want|, floor·max|want|) and
// where: relative per element, with a floor so values near zero in a tensor
// of large ones are judged against the tensor's scale.
func opRelErr(got, want []float64, floor float64) (worst float64, at int) {
	scale := 0.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	floor = max(floor*scale, 1e-300)
	at = -1
	for i := range want {
		e := math.Abs(got[i]-want[i]) / max(math.Abs(want[i]), floor)
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		if at < 0 || e > worst {
			worst, at = e, i
		}
	}
	return worst, at
}

// requireOpClose checks got against want to relative error tol, with the
// floor of opRelErr at floor·max|want|.
func requireOpClose(t *testing.T, name string, got, want safetensors.Tensor, tol, floor float64) float64 {
	t.Helper()
	require.Equal(t, want.Shape, got.Shape, name)
	worst, at := opRelErr(got.Data, want.Data, floor)
	if worst > tol {
		t.Errorf("%s: max rel err %.3g > %.0e at [%d]: got %.17g, want %.17g", name, worst, tol, at, got.Data[at], want.Data[at])
	}
	return worst
}

// `seqbench op` reproduces every golden vector end to end: out and the
// gradient of every input, float64 to 1e-10 and float32 to 1e-4.
//
// In float32 the error floor is 1e-2·max|want| rather than 1e-3: rounding
// the inputs to float32 alone moves out[103] of 06_s4d_conv (0.0173, with
// max|out| = 4) by 1.6e-4 of itself, as a float64 run on float32-rounded
// inputs shows, while the float32 kernels agree with that run to 5e-6.
// Rounding errors scale with the tensor, not with each element.
func TestOpGoldenVectors(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(opGoldenDir, "*.safetensors"))
	if len(files) == 0 {
		t.Fatalf("no golden vectors in %s", opGoldenDir)
	}
	for _, path := range files {
		golden, meta, err := safetensors.ReadFile(path)
		require.NoError(t, err)
		spec := findOpSpec(t, meta["op"])
		for _, c := range []struct {
			dtype, st  string
			tol, floor float64
		}{{"float64", safetensors.F64, 1e-10, 1e-3}, {"float32", safetensors.F32, 1e-4, 1e-2}} {
			t.Run(filepath.Base(path)+"/"+c.dtype, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out.safetensors")
				args := append([]string{"op", spec.name, "--in", path, "--out", out, "--dtype", c.dtype, "--device", "cpu"},
					strings.Fields(meta["flags"])...)
				code, stdout, stderr := runCLI(t, args...)
				require.Equal(t, 0, code, stderr)
				require.Contains(t, stdout, spec.name)

				got, gotMeta, err := safetensors.ReadFile(out)
				require.NoError(t, err)
				require.Equal(t, spec.name, gotMeta["op"])
				require.Equal(t, "cpu-"+c.dtype, gotMeta["backend"])
				for _, f := range strings.Fields(meta["flags"]) {
					require.Contains(t, gotMeta["flags"], f)
				}
				for name, x := range got {
					require.Equal(t, c.st, x.DType, name)
				}
				worst := map[string]float64{"out": requireOpClose(t, "out", got["out"], golden["out"], c.tol, c.floor)}
				inputs := 0
				for _, in := range spec.inputs {
					if _, ok := golden[in.name]; !ok {
						continue
					}
					inputs++
					d := "d" + in.name
					require.Contains(t, got, d, "a gradient for every input read")
					require.Equal(t, golden[in.name].Shape, got[d].Shape, d)
					if want, ok := golden[d]; ok {
						worst[d] = requireOpClose(t, d, got[d], want, c.tol, c.floor)
					}
				}
				require.Len(t, got, 1+inputs, "out and one gradient per input")
				t.Logf("max rel err %v", worst)
			})
		}
	}
}

// opFile writes tensors (F64) to a file in dir.
func opFile(t *testing.T, dir string, tensors ...safetensors.Tensor) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("in%d.safetensors", len(tensors)))
	_ = os.Remove(path)
	require.NoError(t, safetensors.WriteFile(path, tensors, safetensors.F64, nil))
	return path
}

func opTensor(name string, shape ...int) safetensors.Tensor {
	data := make([]float64, safetensors.NumElems(shape))
	for i := range data {
		data[i] = math.Sin(float64(i+1)) / 2
	}
	return safetensors.Tensor{Name: name, Shape: shape, Data: data}
}

// Inputs that do not fit are usage errors naming the tensor, its shape and
// the expected shape (and where the expected sizes come from).
func TestOpShapeErrors(t *testing.T) {
	scan := func(extra ...safetensors.Tensor) []safetensors.Tensor {
		base := []safetensors.Tensor{opTensor("u", 1, 6, 7), opTensor("delta", 1, 6, 7), opTensor("A", 6, 3),
			opTensor("B", 1, 3, 7), opTensor("C", 1, 3, 7)}
		for _, e := range extra {
			for i := range base {
				if base[i].Name == e.Name {
					base[i] = e
					e.Name = ""
				}
			}
			if e.Name != "" {
				base = append(base, e)
			}
		}
		return base
	}
	attn := []safetensors.Tensor{opTensor("q", 1, 2, 5, 4), opTensor("k", 1, 2, 5, 4)}
	lstm := []safetensors.Tensor{opTensor("x", 2, 5, 3), opTensor("weight_hh_l0", 8, 2)}
	cases := []struct {
		name, op string
		tensors  []safetensors.Tensor
		want     string
	}{
		{"attention v length", "attention", append(attn, opTensor("v", 1, 2, 6, 4)),
			"v has shape [1 2 6 4]; expected (B, H, L, Dh) = [1 2 5 4] (L = 5 from q)"},
		{"missing input", "attention", attn, "attention needs the input v (B, H, L, Dh), which the file does not hold (it holds k, q)"},
		{"wrong rank", "selective_scan", scan(opTensor("u", 6, 7)), "u has shape [6 7]; expected (B, D, L)"},
		{"A channels", "selective_scan", scan(opTensor("A", 5, 3)), "A has shape [5 3]; expected (D, N) = [6 3] (D = 6 from u)"},
		{"optional input checked", "selective_scan", scan(opTensor("delta_bias", 7)), "delta_bias has shape [7]; expected (D) = [6] (D = 6 from u)"},
		{"groups do not divide", "selective_scan", scan(opTensor("B", 1, 4, 3, 7), opTensor("C", 1, 4, 3, 7)), "the 4 groups (G = 4, from B) must divide D = 6"},
		{"B and C layouts differ", "selective_scan", scan(opTensor("C", 1, 1, 3, 7)), "both must be (B, N, L) or both (B, G, N, L)"},
		{"dout", "selective_scan", scan(opTensor("dout", 1, 6, 8)), "dout has shape [1 6 8]; expected the shape of out (B, D, L) = [1 6 7]"},
		{"zero dim", "selective_scan", scan(opTensor("u", 1, 0, 7)), "every dimension must be at least 1"},
		{"not a multiple of the gates", "lstm", append(lstm, opTensor("weight_ih_l0", 9, 3)),
			"weight_ih_l0 has shape [9 3]; expected (4H, I), and 9 is not a multiple of 4"},
		{"hidden size", "lstm", append(lstm, opTensor("weight_ih_l0", 12, 3)),
			"weight_hh_l0 has shape [8 2]; expected (4H, H) = [12 3] (H = 3 from weight_ih_l0)"},
		{"rmsnorm weight", "rmsnorm", []safetensors.Tensor{opTensor("x", 2, 3, 16), opTensor("weight", 15)},
			"weight has shape [15]; expected (D) = [16] (D = 16 from x)"},
		{"rmsnorm dout", "rmsnorm", []safetensors.Tensor{opTensor("x", 2, 3, 16), opTensor("weight", 16), opTensor("dout", 3, 3, 16)},
			"dout has shape [3 3 16]; expected the shape of out (..., D) = [2 3 16]"},
		{"ssd groups", "ssd", []safetensors.Tensor{opTensor("x", 1, 4, 3, 2), opTensor("dt", 1, 4, 3), opTensor("A", 3),
			opTensor("B", 1, 4, 2, 5), opTensor("C", 1, 4, 2, 5)}, "the 2 groups (G = 2, from B) must divide H = 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := opFile(t, dir, c.tensors...)
			out := filepath.Join(dir, "out.safetensors")
			code, _, stderr := runCLI(t, "op", c.op, "--in", in, "--out", out, "--device", "cpu")
			require.Equal(t, 2, code, stderr)
			require.Contains(t, stderr, c.want)
			_, err := os.Stat(out)
			require.True(t, os.IsNotExist(err), "an output was written")
		})
	}
}

func TestOpUsageErrors(t *testing.T) {
	t.Setenv("SEQBENCH_DEVICE", "cpu")
	dir := t.TempDir()
	in := opFile(t, dir, opTensor("q", 1, 1, 2, 2), opTensor("k", 1, 1, 2, 2), opTensor("v", 1, 1, 2, 2))
	out := filepath.Join(dir, "out.safetensors")
	bad := filepath.Join(dir, "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, []byte("not a safetensors file"), 0o644))
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown op", []string{"op", "mamba3", "--in", in, "--out", out}, `unknown op "mamba3" (known ops: selective_scan, ssd, attention, lstm, gru, s4d_conv, conv1d, rmsnorm)`},
		{"no op", []string{"op", "--in", in, "--out", out}, "missing the op NAME"},
		{"two ops", []string{"op", "attention", "rmsnorm", "--in", in, "--out", out}, "unexpected arguments rmsnorm"},
		{"no --in", []string{"op", "attention", "--out", out}, "missing --in"},
		{"no --out", []string{"op", "attention", "--in", in}, "missing --out"},
		{"bad device", []string{"op", "attention", "--in", in, "--out", out, "--device", "tpu"}, `--device "tpu"`},
		{"bad dtype", []string{"op", "attention", "--in", in, "--out", out, "--dtype", "float16"}, `--dtype "float16" is not allowed (float32, float64 or bfloat16)`},
		{"flag of another op", []string{"op", "attention", "--in", in, "--out", out, "--chunk-size", "8"}, "--chunk-size does not apply to attention (its flags: --causal)"},
		{"flag of an op without flags", []string{"op", "lstm", "--in", in, "--out", out, "--causal"}, "--causal does not apply to lstm (no flags of its own)"},
		{"bad activation", []string{"op", "conv1d", "--in", in, "--out", out, "--activation", "gelu"}, `--activation "gelu" is not allowed (none or silu)`},
		{"bad chunk", []string{"op", "ssd", "--in", in, "--out", out, "--chunk-size", "0"}, "--chunk-size 0: must be at least 1"},
		{"bad eps", []string{"op", "rmsnorm", "--in", in, "--out", out, "--eps", "-1"}, "--eps -1: must be a finite number"},
		{"missing file", []string{"op", "attention", "--in", filepath.Join(dir, "nope.safetensors"), "--out", out}, "nope.safetensors"},
		{"malformed file", []string{"op", "attention", "--in", bad, "--out", out}, "safetensors: header length"},
		{"unknown flag", []string{"op", "attention", "--in", in, "--out", out, "--chunk", "8"}, "flag provided but not defined: -chunk"},
	}
	if _, err := cuda.ProbeDriver(); err != nil { // on a GPU host cuda works
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"cuda", []string{"op", "attention", "--in", in, "--out", out, "--device", "cuda"}, "no CUDA driver"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			require.Equal(t, 2, code, stderr)
			require.Contains(t, stderr, c.want)
			_, err := os.Stat(out)
			require.True(t, os.IsNotExist(err), "an output was written")
		})
	}
	// A folder that cannot be written is a runtime error.
	code, _, stderr := runCLI(t, "op", "attention", "--in", in, "--out", filepath.Join(dir, "no", "such", "out.safetensors"))
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "--out")
}

func TestOpList(t *testing.T) {
	code, stdout, _ := runCLI(t, "op", "--list")
	require.Equal(t, 0, code)
	for _, name := range opNames() {
		require.Contains(t, stdout, "\n"+name+"\n")
	}
	for _, s := range []string{"B (B, N, L) or (B, G, N, L)", "optional:  D (D), z (B, D, L), delta_bias (D)",
		"weight_ih_l0 (4H, I)", "--chunk-size N", "--activation none|silu", "x (..., D)", "A_re (H, N/2)"} {
		require.Contains(t, stdout, s)
	}
	code, stdout, _ = runCLI(t, "op", "gru", "--list")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "weight_ih_l0 (3H, I)")
	require.NotContains(t, stdout, "attention")
}

// A forward-only run from F32 inputs: out alone, F32, against the
// definition; unused tensors are noted; the metadata gives back the flags.
func TestOpForwardOnly(t *testing.T) {
	t.Setenv("SEQBENCH_DEVICE", "cpu")
	dir := t.TempDir()
	x, w := opTensor("x", 3, 5), opTensor("weight", 5)
	in := filepath.Join(dir, "in.safetensors")
	require.NoError(t, safetensors.WriteFile(in, []safetensors.Tensor{x, w, opTensor("wieght", 5)}, safetensors.F32, nil))
	out := filepath.Join(dir, "out.safetensors")
	code, stdout, stderr := runCLI(t, "op", "rmsnorm", "--in", in, "--out", out, "--eps", "0.5")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "no dout")
	require.Contains(t, stderr, "rmsnorm does not use the tensors wieght")

	got, meta, err := safetensors.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"op": "rmsnorm", "flags": "--eps 0.5", "backend": "cpu-float32"}, meta)
	require.Len(t, got, 1)
	require.Equal(t, safetensors.F32, got["out"].DType)
	want := safetensors.Tensor{Shape: []int{3, 5}, Data: make([]float64, 15)}
	for r := range 3 {
		xs := x.Data[5*r : 5*r+5]
		ms := 0.0
		for _, v := range xs {
			v = float64(float32(v))
			ms += v * v / 5
		}
		for c, v := range xs {
			want.Data[5*r+c] = float64(float32(v)) / math.Sqrt(ms+0.5) * float64(float32(w.Data[c]))
		}
	}
	requireOpClose(t, "out", got["out"], want, 1e-6, 1e-3)

	// The flags written are the ones `seqbench op` takes back.
	code, _, stderr = runCLI(t, append([]string{"op", "rmsnorm", "--in", in, "--out", out}, strings.Fields(meta["flags"])...)...)
	require.Equal(t, 0, code, stderr)
}

// With no --dtype the op runs in its inputs' dtype (F64 in, float64 run,
// F64 out: nothing rounded); --dtype converts, and says so on stderr; mixed
// inputs run in float64, also said.
func TestOpDTypeFollowsInputs(t *testing.T) {
	t.Setenv("SEQBENCH_DEVICE", "cpu")
	dir := t.TempDir()
	x, w := opTensor("x", 3, 5), opTensor("weight", 5)
	want := safetensors.Tensor{Shape: []int{3, 5}, Data: make([]float64, 15)}
	for r := range 3 {
		ms := 0.0
		for _, v := range x.Data[5*r : 5*r+5] {
			ms += v * v / 5
		}
		for c, v := range x.Data[5*r : 5*r+5] {
			want.Data[5*r+c] = v / math.Sqrt(ms+1e-5) * w.Data[c]
		}
	}
	f64 := filepath.Join(dir, "f64.safetensors")
	require.NoError(t, safetensors.WriteFile(f64, []safetensors.Tensor{x, w}, safetensors.F64, nil))
	f32 := filepath.Join(dir, "f32.safetensors")
	require.NoError(t, safetensors.WriteFile(f32, []safetensors.Tensor{x, w}, safetensors.F32, nil))
	mixed := filepath.Join(dir, "mixed.safetensors")
	w32 := w
	w32.DType = safetensors.F32
	x.DType = safetensors.F64
	require.NoError(t, safetensors.WriteFile(mixed, []safetensors.Tensor{x, w32}, "", nil))

	for _, c := range []struct {
		name, in    string
		flags       []string
		backend, st string
		note        string
	}{
		{"F64 in", f64, nil, "cpu-float64", safetensors.F64, ""},
		{"F32 in", f32, nil, "cpu-float32", safetensors.F32, ""},
		{"F64 in, --dtype float32", f64, []string{"--dtype", "float32"}, "cpu-float32", safetensors.F32,
			"note: --dtype float32: the F64 tensors weight, x of IN are rounded to float32"},
		{"F32 in, --dtype float64", f32, []string{"--dtype", "float64"}, "cpu-float64", safetensors.F64,
			"note: --dtype float64: the F32 tensors weight, x of IN are widened to float64"},
		{"mixed", mixed, nil, "cpu-float64", safetensors.F64, "note: IN mixes F32 tensors (weight) and F64 ones (x): computing in float64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.safetensors")
			code, _, stderr := runCLI(t, append([]string{"op", "rmsnorm", "--in", c.in, "--out", out}, c.flags...)...)
			require.Equal(t, 0, code, stderr)
			if c.note == "" {
				require.NotContains(t, stderr, "note:")
			} else {
				require.Contains(t, stderr, c.note)
			}
			got, meta, err := safetensors.ReadFile(out)
			require.NoError(t, err)
			require.Equal(t, c.backend, meta["backend"])
			require.Equal(t, c.st, got["out"].DType)
			if c.name == "F64 in" {
				requireOpClose(t, "out", got["out"], want, 1e-14, 1e-3)
			}
		})
	}
}

// --out naming the input file, however spelled or linked, is refused and
// the input is left as it was.
func TestOpRefusesOutIsIn(t *testing.T) {
	t.Setenv("SEQBENCH_DEVICE", "cpu")
	dir := t.TempDir()
	in := opFile(t, dir, opTensor("x", 2, 4), opTensor("weight", 4))
	before, err := os.ReadFile(in)
	require.NoError(t, err)
	link := filepath.Join(dir, "link.safetensors")
	require.NoError(t, os.Symlink(in, link))
	hard := filepath.Join(dir, "hard.safetensors")
	require.NoError(t, os.Link(in, hard))
	t.Chdir(dir)
	for _, out := range []string{in, dir + "/./sub/../" + filepath.Base(in), filepath.Base(in), link, hard} {
		code, _, stderr := runCLI(t, "op", "rmsnorm", "--in", in, "--out", out)
		require.Equal(t, 2, code, out)
		require.Contains(t, stderr, "is the input file --in")
		after, err := os.ReadFile(in)
		require.NoError(t, err)
		require.Equal(t, before, after)
	}
}

// relErrIn reads "name err" out of the harness's check line.
func relErrIn(t *testing.T, stdout, name string) float64 {
	t.Helper()
	_, line, ok := strings.Cut(stdout, "check against cpu-float64, max |err| / max |ref|: ")
	require.True(t, ok, stdout)
	line, _, _ = strings.Cut(line, "\n")
	for part := range strings.SplitSeq(line, ", ") {
		if n, v, ok := strings.Cut(part, " "); ok && n == name {
			e, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, part)
			return e
		}
	}
	t.Fatalf("no %s in %q", name, line)
	return 0
}

// The kernel harness: random inputs of --shape (or --in), the op on the
// device checked against the float64 CPU reference (out and every
// gradient), then the median time of the forward and of forward+backward.
func TestOpBench(t *testing.T) {
	code, stdout, stderr := runCLI(t, "op", "selective_scan", "--bench", "--shape", "B=2,D=8,N=4,L=33", "--device", "cpu",
		"--repeat", "3", "--delta-softplus")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "selective_scan on cpu-float32 (random inputs, seed 1): A [8 4], B [2 4 33], C [2 4 33], delta [2 8 33], u [2 8 33]")
	for _, name := range []string{"out", "du", "ddelta", "dA", "dB", "dC"} {
		e := relErrIn(t, stdout, name)
		require.Greater(t, e, 0.0, "%s: float32 against float64 differs a little", name)
		require.Less(t, e, 1e-5, name)
	}
	require.Regexp(t, `(?m)^fwd +median [0-9.]+ [µm]?s, min .* \(3 samples of [0-9]+ calls\)$`, stdout)
	require.Regexp(t, `(?m)^fwd\+bwd +median [0-9.]+ [µm]?s`, stdout)

	// From a file: its dtype (F64 here), and no timing of a backward
	// without dout.
	dir := t.TempDir()
	in := opFile(t, dir, opTensor("x", 3, 8), opTensor("weight", 8))
	code, stdout, stderr = runCLI(t, "op", "rmsnorm", "--bench", "--in", in, "--device", "cpu", "--repeat", "2")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "rmsnorm on cpu-float64 (inputs of "+in+")")
	require.Equal(t, 0.0, relErrIn(t, stdout, "out"))
	require.NotContains(t, stdout, "fwd+bwd")
}

// skewedRMSNorm is a backend whose RMSNorm is off by 1e-3 of its output:
// the harness's check must show it.
type skewedRMSNorm struct{ nn.Backend }

func (b skewedRMSNorm) RMSNorm(out, rstd, x, w nn.Buffer, rows, d int, eps float64) {
	b.Backend.RMSNorm(out, rstd, x, w, rows, d, eps)
	v := b.Read(out)
	for i := range v {
		v[i] *= 1 + 1e-3
	}
	b.Write(out, v)
}

func TestOpBenchCheckSeesAWrongKernel(t *testing.T) {
	spec := findOpSpec(t, "rmsnorm")
	in := map[string]safetensors.Tensor{"x": opTensor("x", 3, 8), "weight": opTensor("weight", 8)}
	var out strings.Builder
	require.NoError(t, benchOp(&spec, skewedRMSNorm{cpukernels.New[float64]()}, in, nil, &opFlags{eps: 1e-5},
		opBenchOptions{repeat: 1}, "test", &out))
	require.InDelta(t, 1e-3, relErrIn(t, out.String(), "out"), 1e-9)
}

func TestOpBenchUsageErrors(t *testing.T) {
	t.Setenv("SEQBENCH_DEVICE", "cpu")
	dir := t.TempDir()
	in := opFile(t, dir, opTensor("x", 3, 8), opTensor("weight", 8))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rmsnorm", "--bench", "--in", in, "--out", filepath.Join(dir, "o.safetensors")}, "--out does not apply to --bench"},
		{[]string{"rmsnorm", "--bench"}, "one of the two"},
		{[]string{"rmsnorm", "--bench", "--in", in, "--shape", "B=1,L=2,D=4"}, "one of the two"},
		{[]string{"rmsnorm", "--bench", "--shape", "B=1,L=2"}, `--shape "B=1,L=2": missing D (rmsnorm takes B, L, D)`},
		{[]string{"rmsnorm", "--bench", "--shape", "B=1,L=2,D=4,H=3"}, "H is not a dimension of rmsnorm"},
		{[]string{"rmsnorm", "--bench", "--shape", "B=1,L=2,D=0"}, "D=0 is not allowed"},
		{[]string{"rmsnorm", "--bench", "--shape", "B=1;L=2"}, "is not DIM=SIZE"},
		{[]string{"s4d_conv", "--bench", "--shape", "B=1,H=2,N=3,L=8"}, "N=3 must be even"},
		{[]string{"ssd", "--bench", "--shape", "B=1,L=8,H=3,P=2,G=2,N=4"}, "the 2 groups (G = 2, from B) must divide H = 3"},
		{[]string{"rmsnorm", "--bench", "--in", in, "--repeat", "0"}, "--repeat 0 is not allowed"},
		{[]string{"rmsnorm", "--in", in, "--out", filepath.Join(dir, "o.safetensors"), "--shape", "B=1"}, "--shape applies to --bench only"},
	} {
		code, _, stderr := runCLI(t, append([]string{"op"}, c.args...)...)
		require.Equal(t, 2, code, c.args)
		require.Contains(t, stderr, c.want, c.args)
	}
}
