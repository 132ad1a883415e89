package train_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/arch"
	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/sweep"
	"seqbench/train"
)

// runOne parses an experiment with one run, trains it into a temporary
// folder and returns its summary and metrics lines.
func runOne(t *testing.T, be nn.Backend, yaml string) (train.Summary, []train.Metrics) {
	t.Helper()
	specs := parse(t, yaml)
	require.Len(t, specs, 1)
	dir := t.TempDir()
	s := train.Run(context.Background(), specs[0], dir, train.Options{Backend: be, Device: "cpu"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var ms []train.Metrics
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var m train.Metrics
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		ms = append(ms, m)
	}
	onDisk, err := train.ReadSummary(dir)
	require.NoError(t, err)
	// Through JSON: NaN (null) != NaN.
	want, _ := json.Marshal(s.Segments)
	got, _ := json.Marshal(onDisk.Segments)
	require.JSONEq(t, string(want), string(got), "summary.json differs from the returned summary")
	return s, ms
}

func segment(t *testing.T, s train.Summary, name string) train.SegmentSummary {
	t.Helper()
	for _, seg := range s.Segments {
		if seg.Name == name {
			return seg
		}
	}
	t.Fatalf("no segment %q in %+v", name, s.Segments)
	return train.SegmentSummary{}
}

// TestSegmentEvalPathsAgree: the same trained model evaluated in one
// parallel batch, in sub-batches, and in step mode (uneven chunks, several
// sequences carried together) gives the same loss and accuracy per
// segment, in float64 to rounding.
func TestSegmentEvalPathsAgree(t *testing.T) {
	const base = `name: paths
task: {name: induction_heads, vocab: 6, seq_len: 16, eval_lengths: [16, 40]}
models: [{arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}]
train: {steps: 30, batch_size: 4, eval_batches: 2, lr: 1.0e-2, warmup: 0, eval_every: 15%s}
`
	be := cpukernels.New[float64]()
	ref, refMetrics := runOne(t, be, fmt.Sprintf(base, ""))
	for _, seg := range ref.Segments {
		require.Equal(t, train.SegmentOK, seg.Status, seg.Reason)
		require.Equal(t, train.ModeParallel, seg.Mode)
		require.Equal(t, 4, seg.Batch)
		require.Equal(t, 8, seg.Sequences)
	}
	// The segment at the training length scores the task's own eval set.
	require.Equal(t, ref.FinalLoss, segment(t, ref, "L=16").FinalLoss)
	require.Equal(t, ref.FinalAccuracy, segment(t, ref, "L=16").FinalAccuracy)
	// Two evals (steps 15 and 30), each with both segments.
	evals := 0
	for _, m := range refMetrics {
		if m.EvalLoss != nil {
			evals++
			require.Len(t, m.Segments, 2)
			require.NotNil(t, m.Segments["L=40"].Accuracy)
		}
	}
	require.Equal(t, 2, evals)

	for _, c := range []struct {
		extra      string
		modes      [2]string // of L=16 and L=40
		batches    [2]int
		chunkedL16 bool
	}{
		// L=16 in parallel, one sequence a Forward; L=40 in step mode, 3
		// sequences (24/7) then 1 of each batch of 4, in chunks of 7
		// (40 = 5·7 + 5).
		{", eval_parallel_tokens: 24, eval_chunk: 7", [2]string{train.ModeParallel, train.ModeStep}, [2]int{1, 3}, false},
		// Both in step mode, 2 sequences in chunks of 5 (16 = 3·5 + 1).
		{", eval_parallel_tokens: 12, eval_chunk: 5", [2]string{train.ModeStep, train.ModeStep}, [2]int{2, 2}, true},
		// One chunk holds the whole sequence.
		{", eval_parallel_tokens: 15, eval_chunk: 64", [2]string{train.ModeStep, train.ModeStep}, [2]int{1, 1}, true},
	} {
		got, _ := runOne(t, be, fmt.Sprintf(base, c.extra))
		require.InDelta(t, float64(ref.FinalLoss), float64(got.FinalLoss), 1e-9*float64(ref.FinalLoss), "own eval set, %s", c.extra)
		require.Equal(t, ref.FinalAccuracy, got.FinalAccuracy)
		for i, name := range []string{"L=16", "L=40"} {
			r, g := segment(t, ref, name), segment(t, got, name)
			require.Equal(t, train.SegmentOK, g.Status, g.Reason)
			require.Equal(t, c.modes[i], g.Mode, "%s %s", name, c.extra)
			require.Equal(t, c.batches[i], g.Batch, "%s %s", name, c.extra)
			relErr := math.Abs(float64(g.FinalLoss-r.FinalLoss)) / float64(r.FinalLoss)
			t.Logf("%s%s: loss %.12f vs %.12f (rel err %.1e), accuracy %.3f", name, c.extra, float64(g.FinalLoss), float64(r.FinalLoss), relErr, g.FinalAccuracy)
			require.Less(t, relErr, 1e-9, "%s %s", name, c.extra)
			require.Equal(t, r.FinalAccuracy, g.FinalAccuracy, "%s %s", name, c.extra)
			require.Equal(t, r.BestAccuracy, g.BestAccuracy)
		}
	}
}

// TestSegmentOOM: a KV cache that would outgrow eval_memory_mb is reported
// as oom with the bytes it needs (after two chunks of 256, not at the end), the
// run stays ok, and the oom is not retried at the next eval.
func TestSegmentOOM(t *testing.T) {
	s, ms := runOne(t, cpukernels.New[float32](), `name: oom
task: {name: induction_heads, vocab: 6, seq_len: 16, eval_lengths: [16, 4096]}
models: [{arch: transformer, d_model: 32, n_layers: 2, n_heads: 2}]
train: {steps: 4, batch_size: 2, eval_batches: 1, eval_every: 2, eval_parallel_tokens: 64, eval_chunk: 256, eval_memory_mb: 1}
`)
	require.Equal(t, train.SegmentOK, segment(t, s, "L=16").Status)
	long := segment(t, s, "L=4096")
	require.Equal(t, train.SegmentOOM, long.Status)
	require.Equal(t, train.ModeStep, long.Mode)
	// K and V of 2 layers, 32 floats each a token: 512 bytes a token for
	// 4096 tokens of one sequence.
	require.Equal(t, int64(2*2*32*4*4096), long.NeedBytes)
	require.Contains(t, long.Reason, "2.0 MiB")
	require.True(t, math.IsNaN(float64(long.FinalLoss)))
	n := 0
	for _, m := range ms {
		if m.Segments != nil {
			n++
			require.Equal(t, train.SegmentOOM, m.Segments["L=4096"].Status)
			require.Nil(t, m.Segments["L=4096"].Accuracy)
			require.NotNil(t, m.Segments["L=16"].Accuracy)
		}
	}
	require.Equal(t, 2, n)
}

// TestSegmentWithoutStepMode: a model with no step mode cannot evaluate a
// sequence over the parallel limit: oom with the reason, not a crash.
func TestSegmentWithoutStepMode(t *testing.T) {
	s, _ := runOne(t, cpukernels.New[float32](), `name: nostep
task: {name: induction_heads, vocab: 6, seq_len: 16, eval_lengths: [32, 100]}
models: [{arch: test_poison}]
train: {steps: 2, batch_size: 2, eval_every: 2, eval_parallel_tokens: 64}
`)
	require.Equal(t, train.SegmentOK, segment(t, s, "L=32").Status)
	long := segment(t, s, "L=100")
	require.Equal(t, train.SegmentOOM, long.Status)
	require.Contains(t, long.Reason, "no step mode")
}

// TestSegmentBeyondLearnedPositions: lengths past learned positions are
// skipped with the reason; RoPE takes any length.
func TestSegmentBeyondLearnedPositions(t *testing.T) {
	s, _ := runOne(t, cpukernels.New[float32](), `name: learned
task: {name: induction_heads, vocab: 6, seq_len: 16, eval_lengths: [8, 32]}
models: [{arch: transformer, d_model: 16, n_layers: 1, n_heads: 2, pos: learned}]
train: {steps: 2, batch_size: 2, eval_every: 2}
`)
	require.Equal(t, train.SegmentOK, segment(t, s, "L=8").Status)
	long := segment(t, s, "L=32")
	require.Equal(t, train.SegmentSkipped, long.Status)
	require.Contains(t, long.Reason, "at most 16 tokens")
}

// constStepper is a bigram model with a step mode whose state has a fixed
// size, like an SSM's: a long segment runs in step mode in constant memory.
type constStepper struct {
	emb   *nn.Tensor
	steps int
}

type constState struct{}

func (constState) Free()        {}
func (constState) Bytes() int64 { return 1 << 19 }

func (m *constStepper) Forward(tp *nn.Tape, ids []int32, B, L int) *nn.Tensor {
	return tp.Embedding(m.emb, ids)
}
func (m *constStepper) Params() []nn.Param               { return []nn.Param{{Name: "emb.weight", T: m.emb}} }
func (m *constStepper) FLOPsPerToken(int) float64        { return 0 }
func (m *constStepper) NewState(int) arch.State          { return constState{} }
func (c *constStepperConfig) Validate() error            { return nil }
func (c *constStepperConfig) NumParams(vocab, _ int) int { return vocab * vocab }
func (m *constStepper) Step(tp *nn.Tape, _ arch.State, ids []int32, B, T int) *nn.Tensor {
	m.steps++
	return tp.Embedding(m.emb, ids)
}
func (c *constStepperConfig) Build(env arch.Env) (arch.Model, error) {
	m := &constStepper{emb: nn.NewParam(env.Backend, env.Vocab, env.Vocab)}
	nn.Normal(env.Backend, m.emb, 1, env.RNG)
	return m, nil
}

type constStepperConfig struct {
	Arch string `yaml:"arch"`
}

func init() {
	arch.Register(arch.Spec{Name: "test_const_stepper", Doc: "test only", New: func() arch.Config { return &constStepperConfig{} }})
}

func TestSegmentStepModeConstantState(t *testing.T) {
	s, _ := runOne(t, cpukernels.New[float32](), `name: const
task: {name: induction_heads, vocab: 6, seq_len: 16, eval_lengths: [65536]}
models: [{arch: test_const_stepper}]
train: {steps: 1, batch_size: 2, eval_batches: 1, eval_parallel_tokens: 4096, eval_memory_mb: 1}
`)
	long := segment(t, s, "L=65536")
	require.Equal(t, train.SegmentOK, long.Status, long.Reason)
	require.Equal(t, train.ModeStep, long.Mode)
	require.Equal(t, 2, long.Batch) // 4096 / 1024 allows 4; a batch has 2
}

func TestEvalConfigFields(t *testing.T) {
	for field, want := range map[string]string{
		"eval_parallel_tokens: 0": "field train.eval_parallel_tokens: 0 is not allowed",
		"eval_chunk: -1":          "field train.eval_chunk: -1 is not allowed",
		"eval_memory_mb: 0":       "field train.eval_memory_mb: 0 is not allowed",
	} {
		_, err := sweep.Parse([]byte("name: x\ntask: {name: induction_heads}\nmodels: [{arch: transformer}]\ntrain:\n  " + field + "\n"))
		require.ErrorContains(t, err, want)
		require.ErrorContains(t, err, "line 5")
	}
	tc := train.DefaultConfig()
	require.Equal(t, 1<<17, tc.EvalParallelTokens)
	require.Equal(t, 1024, tc.EvalChunk)
	require.Equal(t, 2048, tc.EvalMemoryMB)
}
