package train_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	_ "seqbench/arch/mamba1"
	_ "seqbench/arch/mamba2"
	_ "seqbench/arch/rnn"
	_ "seqbench/arch/ssm"
	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/sweep"
	"seqbench/train"
)

// precisionExp is TestRunWritesMetricsAndLearns's copying run (150 steps)
// with extra train fields, or a short one of steps steps.
func precisionExp(extra string) string { return precisionExpSteps(150, extra) }

func precisionExpSteps(steps int, extra string) string {
	return `name: prec
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: ` + fmt.Sprint(steps) + `, batch_size: 16, lr: 1.0e-2, warmup: 2, eval_every: ` + fmt.Sprint(min(steps, 50)) + `, log_every: 10` + extra + `}
models: [{arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}]
`
}

func runPrecision(t *testing.T, src string, be nn.Backend) train.Summary {
	t.Helper()
	specs := parse(t, src)
	return train.Run(context.Background(), specs[0], t.TempDir(), train.Options{Backend: be, Device: "cpu"})
}

// A bf16 run of the copying task on the CPU (cpu-bfloat16) reaches the
// accuracy the fp32 runs reach at the same step, within the spread of
// seeds, and is a run of its own (its numbers differ from fp32's).
func TestPrecisionBF16LearnsCopying(t *testing.T) {
	const seeds = 3
	var acc32, acc16 []float64
	for seed := 1; seed <= seeds; seed++ {
		s32 := runPrecision(t, precisionExp(fmt.Sprintf(", seed: %d", seed)), cpukernels.New[float32]())
		s16 := runPrecision(t, precisionExp(fmt.Sprintf(", seed: %d, precision: bf16", seed)), cpukernels.New[float32]())
		require.Equal(t, train.StatusOK, s32.Status, s32.Reason)
		require.Equal(t, train.StatusOK, s16.Status, s16.Reason)
		require.Equal(t, "fp32", s32.Precision)
		require.Equal(t, "cpu-float32", s32.Backend)
		require.Equal(t, "bf16", s16.Precision)
		require.Equal(t, "cpu-bfloat16", s16.Backend)
		require.Equal(t, s32.Steps, s16.Steps)
		require.NotEqual(t, s32.FinalLoss, s16.FinalLoss, "the bf16 run computed in fp32")
		acc32, acc16 = append(acc32, s32.FinalAccuracy), append(acc16, s16.FinalAccuracy)
	}
	mean := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	spread := 0.0
	for _, a := range acc32 {
		spread = math.Max(spread, math.Abs(a-mean(acc32)))
	}
	// Seed noise: the fp32 runs' spread, and at least one eval token in
	// 64 (the eval set holds 4 batches × 16 sequences × 2 tokens).
	noise := math.Max(2*spread, 2.0/128)
	require.GreaterOrEqual(t, mean(acc16), mean(acc32)-noise, "bf16 %v vs fp32 %v", acc16, acc32)
	require.Greater(t, mean(acc32), 0.9, "the fp32 runs did not learn the task: %v", acc32)
}

// Every architecture trains in bf16 on the CPU end to end, its loss close
// to fp32's after the same steps.
func TestPrecisionBF16EveryArch(t *testing.T) {
	for _, m := range []string{
		"{arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}",
		"{arch: mamba1, d_model: 16, n_layers: 1, d_state: 4}",
		"{arch: mamba2, d_model: 16, n_layers: 1, d_state: 8, headdim: 8}",
		"{arch: lstm, d_model: 16, n_layers: 1}", "{arch: gru, d_model: 16, n_layers: 1}",
		"{arch: s4d, d_model: 16, n_layers: 1, d_state: 4}",
	} {
		src := func(p string) string {
			return `name: prec
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 30, batch_size: 8, lr: 1.0e-2, warmup: 5, eval_every: 30, log_every: 10, precision: ` + p + `}
models: [` + m + `]
`
		}
		s32 := runPrecision(t, src("fp32"), cpukernels.New[float32]())
		s16 := runPrecision(t, src("bf16"), cpukernels.New[float32]())
		require.Equal(t, train.StatusOK, s16.Status, "%s: %s", m, s16.Reason)
		require.Equal(t, "cpu-bfloat16", s16.Backend)
		l32, l16 := float64(s32.FinalLoss), float64(s16.FinalLoss)
		require.NotEqual(t, l32, l16, "%s: bf16 equals fp32", m)
		require.InDelta(t, l32, l16, 0.05*l32, "%s: bf16 loss %v far from fp32 %v", m, l16, l32)
	}
}

// train.precision is validated; fp32 is the default and, written out or
// not, one run with one id and no precision in its config.yaml (so ids
// from before the field hold); tf32 on the CPU is fp32, bit for bit.
func TestPrecisionField(t *testing.T) {
	_, err := sweep.Parse([]byte(precisionExp(", precision: fp16")))
	require.ErrorContains(t, err, `field train.precision: "fp16" is not allowed (one of "fp32" (the default), "tf32", "bf16")`)

	def, fp32 := parse(t, precisionExp(""))[0], parse(t, precisionExp(", precision: fp32"))[0]
	require.Equal(t, def.ID, fp32.ID)
	bf16 := parse(t, precisionExp(", precision: bf16"))[0]
	require.NotEqual(t, def.ID, bf16.ID)
	y, err := fp32.ResolvedYAML()
	require.NoError(t, err)
	require.NotContains(t, string(y), "precision")
	y, err = bf16.ResolvedYAML()
	require.NoError(t, err)
	require.Contains(t, string(y), "precision: bf16")

	s32 := runPrecision(t, precisionExpSteps(20, ""), cpukernels.New[float32]())
	tf := runPrecision(t, precisionExpSteps(20, ", precision: tf32"), cpukernels.New[float32]())
	require.Equal(t, train.StatusOK, tf.Status, tf.Reason)
	require.Equal(t, "tf32", tf.Precision)
	require.Equal(t, s32.FinalLoss, tf.FinalLoss)
	require.Equal(t, s32.TrainLoss, tf.TrainLoss)
}

// summary.json records the precision of every run, fp32 included.
func TestPrecisionInSummaryJSON(t *testing.T) {
	specs := parse(t, precisionExpSteps(5, ""))
	dir := t.TempDir()
	s := train.Run(context.Background(), specs[0], dir, train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	raw, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	require.NoError(t, err)
	require.Contains(t, string(raw), `"precision": "fp32"`)
}

// errNoBF16 is what a backend without bfloat16 kernels answers.
var errNoBF16 = errors.New("bf16 is not implemented on this backend")

// noBF16 is a backend whose bf16 kernels do not exist (the CUDA backend
// today) and that has a TF32 switch, recorded.
type noBF16 struct {
	*cpukernels.Backend[float32]
	tf32 []bool
}

func (b *noBF16) BF16() (nn.MixedBackend, error) { return nil, errNoBF16 }
func (b *noBF16) SetTF32(on bool) error          { b.tf32 = append(b.tf32, on); return nil }

// bf16 where the backend has no bfloat16 kernels fails the run, saying so,
// instead of running in fp32; tf32 and fp32 set the backend's TF32 mode.
func TestPrecisionNeedsTheBackend(t *testing.T) {
	be := &noBF16{Backend: cpukernels.New[float32]()}
	s := runPrecision(t, precisionExpSteps(3, ", precision: bf16"), be)
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "field train.precision: bf16 is not implemented on this backend")
	s = runPrecision(t, precisionExpSteps(3, ", precision: bf16"), cpukernels.New[float64]())
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "bf16 needs the float32 CPU backend")

	require.Equal(t, train.StatusOK, runPrecision(t, precisionExpSteps(3, ", precision: tf32"), be).Status)
	require.Equal(t, train.StatusOK, runPrecision(t, precisionExpSteps(3, ""), be).Status)
	require.Equal(t, []bool{true, false}, be.tf32)
}

// CheckPrecisions rejects, before training, a bf16 run that the backend
// cannot run, naming the run; fp32 and tf32 runs and a CPU backend pass.
func TestCheckPrecisions(t *testing.T) {
	bf := parse(t, precisionExpSteps(3, ", precision: bf16"))
	fp := parse(t, precisionExpSteps(3, ", precision: tf32"))
	require.NoError(t, train.CheckPrecisions(cpukernels.New[float32](), append(bf, fp...)))
	be := &noBF16{Backend: cpukernels.New[float32]()}
	require.NoError(t, train.CheckPrecisions(be, fp))
	err := train.CheckPrecisions(be, append(fp, bf...))
	require.ErrorContains(t, err, "run "+bf[0].Name+": field train.precision: bf16 is not implemented on this backend")
	require.Empty(t, be.tf32, "a check must not switch the backend's TF32 mode")
}

// A bf16 run checkpoints its float32 masters and moments: interrupted and
// resumed, it gives exactly the metrics of a bf16 run never interrupted
// (the bfloat16 copies are cast again from the restored masters).
func TestBF16InterruptAndResume(t *testing.T) {
	r := interruptAndResume(t, parse(t, precisionExpSteps(30, ", precision: bf16"))[0], 10)
	want, got := r.want, r.got
	require.Equal(t, "cpu-bfloat16", got.Backend)
	require.Equal(t, want.FinalLoss, got.FinalLoss)
	require.Equal(t, metricsOf(t, r.whole), metricsOf(t, r.dir))
}
