package train_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/train"
)

// A batch that cannot fit in memory ends the run as failed, with the
// estimate and the machine's memory, before anything big is allocated
// (the allocation would kill the process, not just the run).
func TestImpossibleSizeFailsBeforeAllocating(t *testing.T) {
	specs := parse(t, `name: huge
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 5, batch_size: 1000000000}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := train.Run(context.Background(), specs[0], t.TempDir(), train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
	runtime.ReadMemStats(&after)
	require.Equal(t, train.StatusFailed, s.Status)
	// logits: 2 (and their gradient) · the 2²⁶/6 rows of a chunk (fewer
	// than B 1e9 · L 12) · vocab 6 · 4 bytes.
	require.Contains(t, s.Reason, "logits 512.0 MiB")
	require.Contains(t, s.Reason, "of physical memory (MemTotal in /proc/meminfo)")
	require.Positive(t, s.Params)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20))
}

// Under bf16 the estimate counts the activations and the logits at 2
// bytes an element (bfloat16) and the parameters, gradients and moments
// at 4 (float32 masters): the same impossible run as above says half the
// fp32 activations and logits, and the same parameters.
func TestMemoryEstimateBF16(t *testing.T) {
	reason := func(precision string) string {
		specs := parse(t, `name: huge
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 5, batch_size: 1000000000, precision: `+precision+`}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
		s := train.Run(context.Background(), specs[0], t.TempDir(), train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
		require.Equal(t, train.StatusFailed, s.Status)
		return s.Reason
	}
	fp32, bf16 := reason("fp32"), reason("bf16")
	// activations: B 1e9 · L 12 · d_model 8 · (1 layer + the embedding);
	// logits: 2 · a chunk's 2²⁶/6 rows · vocab 6.
	require.Contains(t, fp32, "activations 715.3 GiB, logits 512.0 MiB")
	require.Contains(t, bf16, "activations 357.6 GiB, logits 256.0 MiB")
	params := func(r string) string {
		i := strings.Index(r, "parameters and gradients")
		require.GreaterOrEqual(t, i, 0, r)
		return r[i : i+strings.Index(r[i:], ", activations")]
	}
	require.Equal(t, params(fp32), params(bf16))
}

// fakeDevice is a backend that says how much device memory is free.
type fakeDevice struct {
	nn.Backend
	free uint64
}

func (f fakeDevice) Name() string                             { return "fake-device" }
func (f fakeDevice) MemInfo() (free, total uint64, err error) { return f.free, 80 << 30, nil }

// On a device that reports its free memory, a run that needs more fails
// naming both; one that fits trains.
func TestDeviceMemoryCheck(t *testing.T) {
	specs := parse(t, `name: dev
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 2, batch_size: 4}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
	be := cpukernels.New[float32]()
	s := train.Run(context.Background(), specs[0], t.TempDir(), train.Options{Backend: fakeDevice{be, 1 << 10}, Device: "cuda"})
	require.Equal(t, train.StatusFailed, s.Status)
	require.Contains(t, s.Reason, "of device memory")
	require.Contains(t, s.Reason, "more than the 1.0 KiB free on the device")
	s = train.Run(context.Background(), specs[0], t.TempDir(), train.Options{Backend: fakeDevice{be, 1 << 30}, Device: "cuda"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
}
