package train_test

import (
	"context"
	"runtime"
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
	// logits: 2 (and their gradient) · B 1e9 · L 12 · vocab 6 · 4 bytes.
	require.Contains(t, s.Reason, "logits 536.4 GiB")
	require.Contains(t, s.Reason, "of physical memory (MemTotal in /proc/meminfo)")
	require.Positive(t, s.Params)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20))
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
