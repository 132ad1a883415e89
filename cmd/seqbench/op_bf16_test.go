package main

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/bench"
	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/safetensors"
)

// rmsnormRef is RMSNorm (eps 1e-5) in float64 over rows of x, with its
// gradients for dout: what the bf16 run is checked against.
func rmsnormRef(x, w, dout []float64, d int) (out, dx, dw []float64) {
	out, dx, dw = make([]float64, len(x)), make([]float64, len(x)), make([]float64, d)
	for r := 0; r < len(x)/d; r++ {
		xs, gs := x[r*d:(r+1)*d], dout[r*d:(r+1)*d]
		ms := 0.0
		for _, v := range xs {
			ms += v * v / float64(d)
		}
		rstd := 1 / math.Sqrt(ms+1e-5)
		dot := 0.0
		for c, v := range xs {
			out[r*d+c] = v * rstd * w[c]
			dw[c] += gs[c] * v * rstd
			dot += gs[c] * w[c] * v
		}
		for c, v := range xs {
			dx[r*d+c] = rstd*gs[c]*w[c] - rstd*rstd*rstd*v*dot/float64(d)
		}
	}
	return out, dx, dw
}

// normErr is ‖got − want‖ / ‖want‖.
func normErr(got, want []float64) float64 {
	num, den := 0.0, 0.0
	for i := range want {
		num += (got[i] - want[i]) * (got[i] - want[i])
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

// `seqbench op --dtype bfloat16` on the CPU computes on cpu-bfloat16: the
// activations (x, dout) rounded to bfloat16 and the parameters (weight)
// to float32, each said on stderr; OUT holds out and dx as BF16 and
// dweight as F32, every BF16 value a bfloat16, within bfloat16's unit
// roundoff of float64 on the same rounded inputs. The same inputs stored
// as BF16 (activations) and F32 (weight) run in bfloat16 with no --dtype,
// with no note, to the same bits.
func TestOpBFloat16(t *testing.T) {
	t.Setenv("SEQBENCH_DEVICE", "cpu")
	dir := t.TempDir()
	const rows, d = 6, 40
	x, w, dout := opTensor("x", rows, d), opTensor("weight", d), opTensor("dout", rows, d)
	for i := range w.Data {
		w.Data[i] += 1 // weights about 1, as an initialised norm's
	}
	for i := range dout.Data {
		dout.Data[i] = math.Cos(float64(3 * i))
	}
	in := opFile(t, dir, x, w, dout)
	out := filepath.Join(dir, "out.safetensors")
	code, stdout, stderr := runCLI(t, "op", "rmsnorm", "--in", in, "--out", out, "--dtype", "bfloat16")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "rmsnorm on cpu-bfloat16")
	require.Contains(t, stderr, "note: --dtype bfloat16: the activations dout, x of IN are rounded to bfloat16; "+
		"the F64 parameters weight of IN are rounded to float32 (parameters are float32 under bf16)")
	got, meta, err := safetensors.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "cpu-bfloat16", meta["backend"])
	require.Len(t, got, 3)
	for name, st := range map[string]string{"out": safetensors.BF16, "dx": safetensors.BF16, "dweight": safetensors.F32} {
		require.Equal(t, st, got[name].DType, name)
	}

	// float64 on the values the run stored.
	r16 := func(v []float64) []float64 {
		o := make([]float64, len(v))
		for i := range v {
			o[i] = nn.RoundBF16From64(v[i])
		}
		return o
	}
	w32 := make([]float64, d)
	for i := range w32 {
		w32[i] = float64(float32(w.Data[i]))
	}
	wantOut, wantDx, wantDw := rmsnormRef(r16(x.Data), w32, r16(dout.Data), d)
	const u = 1.0 / 256
	for name, c := range map[string]struct {
		got, want []float64
		tol       float64
	}{
		"out": {got["out"].Data, wantOut, u},
		"dx":  {got["dx"].Data, wantDx, u},
		// float32 sums of products of bfloat16 values: float32's error.
		"dweight": {got["dweight"].Data, wantDw, 1e-5},
	} {
		e := normErr(c.got, c.want)
		require.Less(t, e, c.tol, name)
		if name != "dweight" {
			require.Greater(t, e, 1e-5, "%s: rounded to bfloat16, not float32", name)
			for i, v := range c.got {
				require.Equal(t, nn.RoundBF16From64(v), v, "%s[%d] is not a bfloat16 value", name, i)
			}
		}
	}

	// BF16 activations and an F32 weight: bfloat16 with no --dtype, and
	// nothing to say.
	x.DType, dout.DType, w.DType = safetensors.BF16, safetensors.BF16, safetensors.F32
	in16 := filepath.Join(dir, "bf16.safetensors")
	require.NoError(t, safetensors.WriteFile(in16, []safetensors.Tensor{x, w, dout}, "", nil))
	out16 := filepath.Join(dir, "out16.safetensors")
	code, _, stderr = runCLI(t, "op", "rmsnorm", "--in", in16, "--out", out16)
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stderr, "note:")
	got16, meta16, err := safetensors.ReadFile(out16)
	require.NoError(t, err)
	require.Equal(t, "cpu-bfloat16", meta16["backend"])
	for name, tns := range got {
		require.Equal(t, tns.DType, got16[name].DType, name)
		require.Equal(t, tns.Data, got16[name].Data, name)
	}

	// The same BF16 file with --dtype float32: widened exactly, said.
	code, _, stderr = runCLI(t, "op", "rmsnorm", "--in", in16, "--out", out16, "--dtype", "float32")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "note: --dtype float32: the BF16 tensors dout, x of IN are widened to float32 (exactly)")
	got32, _, err := safetensors.ReadFile(out16)
	require.NoError(t, err)
	require.Equal(t, safetensors.F32, got32["dx"].DType)
}

// errNoBF16 is what a backend without bfloat16 kernels answers.
var errNoBF16 = errors.New("bf16 is not implemented on this backend")

// fakeCUDA stands in a CUDA backend without a bfloat16 mode.
type fakeCUDA struct{ nn.Backend }

func (fakeCUDA) Name() string                   { return "cuda-float32" }
func (fakeCUDA) BF16() (nn.MixedBackend, error) { return nil, errNoBF16 }

func withFakeCUDA(t *testing.T) {
	t.Helper()
	prev := startCUDA
	startCUDA = func(dt nn.DType) (nn.Backend, error) { return fakeCUDA{cpukernels.ForDType(dt)}, nil }
	t.Cleanup(func() { startCUDA = prev })
}

// On a device without a bfloat16 mode, bfloat16 fails with the backend's
// reason, whether --device names cuda or auto finds it, and nothing runs in
// float32 instead.
func TestOpBFloat16WithoutKernelsFails(t *testing.T) {
	withFakeCUDA(t)
	dir := t.TempDir()
	in := opFile(t, dir, opTensor("x", 2, 4), opTensor("weight", 4))
	for _, dev := range []string{"cuda", "auto"} {
		for _, args := range [][]string{
			{"op", "rmsnorm", "--in", in, "--out", filepath.Join(dir, "o.safetensors"), "--dtype", "bfloat16", "--device", dev},
			{"op", "rmsnorm", "--bench", "--in", in, "--dtype", "bfloat16", "--device", dev, "--repeat", "1"},
		} {
			code, stdout, stderr := runCLI(t, args...)
			require.Equal(t, 2, code, args)
			require.Contains(t, stderr, "--device cuda: bf16 is not implemented on this backend", args)
			require.NotContains(t, stdout, "rmsnorm on")
		}
	}
	require.NoFileExists(t, filepath.Join(dir, "o.safetensors"))
}

// The kernel harness in bfloat16 on the CPU: cpu-bfloat16 checked against
// float64 on the same bfloat16-rounded inputs, so out's error is the
// bfloat16 rounding of the output (at most u = 2⁻⁸ of the largest value,
// and visible), then timed.
func TestOpBenchBFloat16(t *testing.T) {
	code, stdout, stderr := runCLI(t, "op", "selective_scan", "--bench", "--shape", "B=2,D=8,N=4,L=33", "--device", "cpu",
		"--repeat", "2", "--delta-softplus", "--dtype", "bfloat16")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "selective_scan on cpu-bfloat16 (random inputs, seed 1)")
	e := relErrIn(t, stdout, "out")
	require.Greater(t, e, 1e-5, "out is rounded to bfloat16")
	require.LessOrEqual(t, e, 1.0/256*(1+1e-6))
	for _, name := range []string{"du", "ddelta", "dA", "dB", "dC"} {
		require.Less(t, relErrIn(t, stdout, name), 2e-2, name)
	}
	require.Regexp(t, `(?m)^fwd\+bwd +median [0-9.]+ [µm]?s`, stdout)
}

// `seqbench bench --dtype bf16` on the CPU times on cpu-bfloat16, names
// and records the precision; regress compares it with itself and refuses
// it against an fp32 file. --dtype tf32 on the CPU (no TF32 unit) runs
// as fp32, says so and records tf32. On CUDA, bf16 fails with the
// backend's reason; an unknown --dtype is a usage error.
func TestBenchDType(t *testing.T) {
	dir := t.TempDir()
	run := func(dtype string) (string, string) {
		out := filepath.Join(dir, dtype+".bench.json")
		code, _, stderr := runCLI(t, "bench", "--device", "cpu", "--ops", "rmsnorm", "--lengths", "8",
			"--repeat", "4", "--warmup", "1ms", "--min-sample", "50us", "--ceilings=false", "--quiet", "--out", out, "--dtype", dtype)
		require.Equal(t, 0, code, stderr)
		return out, stderr
	}
	bf, _ := run("bf16")
	f, err := bench.ReadFile(bf)
	require.NoError(t, err)
	require.Equal(t, "bf16", f.Precision)
	require.Equal(t, "cpu-bfloat16", f.Backend)
	require.Equal(t, "RMSNorm/pass=fwd/dtype=bf16/B=1/D=512/L=8", f.Results[0].Name)
	tf, stderr := run("tf32")
	require.Contains(t, stderr, "note: cpu-float32 has no TF32 mode: --dtype tf32 computes as fp32 there")
	f, err = bench.ReadFile(tf)
	require.NoError(t, err)
	require.Equal(t, "tf32", f.Precision)
	require.Equal(t, "cpu-float32", f.Backend)
	require.Equal(t, "RMSNorm/pass=fwd/dtype=tf32/B=1/D=512/L=8", f.Results[0].Name)
	require.Equal(t, "cpu-float32-tf32", f.Results[0].Impl, "a report tells tf32 from fp32")
	fp, _ := run("fp32")

	code, stdout, stderr := runCLI(t, "regress", bf, bf)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "precision bf16")
	for _, pair := range [][2]string{{fp, bf}, {fp, tf}} {
		code, _, stderr = runCLI(t, "regress", pair[0], pair[1], "--allow-device-change")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "the files time different precisions: baseline fp32")
	}

	code, _, stderr = runCLI(t, "bench", "--dtype", "fp16", "--device", "cpu")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `--dtype "fp16" is not allowed (one of fp32, tf32, bf16)`)

	withFakeCUDA(t)
	code, _, stderr = runCLI(t, "bench", "--dtype", "bf16", "--device", "cuda", "--ops", "rmsnorm", "--out", filepath.Join(dir, "gpu.bench.json"))
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--dtype bf16 on --device cuda: bf16 is not implemented on this backend")
	require.NoFileExists(t, filepath.Join(dir, "gpu.bench.json"))
}
