package train_test

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/arch"
	_ "seqbench/arch/attention"
	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/sweep"
	"seqbench/train"
)

// poisonModel is a bigram model whose weights turn NaN at a chosen step, to
// exercise the divergence guard.
type poisonModel struct {
	be       nn.Backend
	emb      *nn.Tensor
	calls    int
	poisonAt int
	vocab    int
}

func (m *poisonModel) Forward(tp *nn.Tape, ids []int32, B, L int) *nn.Tensor {
	m.calls++
	if m.calls == m.poisonAt {
		m.be.Fill(m.emb.Data, math.NaN())
	}
	return tp.Embedding(m.emb, ids)
}
func (m *poisonModel) Params() []nn.Param          { return []nn.Param{{Name: "emb.weight", T: m.emb}} }
func (m *poisonModel) FLOPsPerToken(int) float64   { return 0 }
func (c *poisonConfig) Validate() error            { return nil }
func (c *poisonConfig) NumParams(vocab, _ int) int { return vocab * vocab }
func (c *poisonConfig) Build(env arch.Env) (arch.Model, error) {
	return &poisonModel{be: env.Backend, emb: nn.NewParam(env.Backend, env.Vocab, env.Vocab), poisonAt: c.PoisonAt, vocab: env.Vocab}, nil
}

type poisonConfig struct {
	Arch     string `yaml:"arch"`
	PoisonAt int    `yaml:"poison_at"`
}

func init() {
	arch.Register(arch.Spec{Name: "test_poison", Doc: "test only", New: func() arch.Config { return &poisonConfig{} }})
}

func parse(t *testing.T, yaml string) []train.Spec {
	exp, err := sweep.Parse([]byte(yaml))
	require.NoError(t, err)
	return exp.Runs
}

func TestDivergedRunIsRecorded(t *testing.T) {
	specs := parse(t, `name: nan
task: {name: selective_copy, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 20, batch_size: 2, eval_every: 5}
models: [{arch: test_poison, poison_at: 4}]
`)
	dir := t.TempDir()
	s := train.Run(context.Background(), specs[0], dir, train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
	require.Equal(t, train.StatusDiverged, s.Status)
	require.Contains(t, s.Reason, "loss is NaN at step 4")
	got, err := train.ReadSummary(dir)
	require.NoError(t, err)
	require.Equal(t, train.StatusDiverged, got.Status)
}

func TestRunWritesMetricsAndLearns(t *testing.T) {
	specs := parse(t, `name: learn
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 150, batch_size: 16, lr: 1.0e-2, warmup: 10, eval_every: 50, log_every: 10}
models: [{arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}]
`)
	dir := t.TempDir()
	s := train.Run(context.Background(), specs[0], dir, train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	require.Equal(t, 150, s.Steps)
	require.Greater(t, s.Params, 0)
	require.Greater(t, s.TokensPerSec, 0.0)
	// Throughput counts training time only: evaluation has its own clock,
	// and both fit in the wall time.
	require.Greater(t, s.TrainSeconds, 0.0)
	require.Greater(t, s.EvalSeconds, 0.0)
	require.LessOrEqual(t, s.TrainSeconds+s.EvalSeconds, s.WallSeconds)
	require.InDelta(t, float64(s.Tokens)/s.TrainSeconds, s.TokensPerSec, 1e-9*s.TokensPerSec)

	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var first, last train.Metrics
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var m train.Metrics
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		if n == 0 {
			first = m
		}
		last = m
	}
	require.Greater(t, n, 10)
	require.Equal(t, 150, last.Step)
	require.Equal(t, s.TrainSeconds, last.TrainSeconds)
	require.NotNil(t, last.EvalLoss)
	// Copying 2 tokens from a 4-letter alphabet: chance loss is ln 4 = 1.39.
	require.Less(t, float64(*last.EvalLoss), 0.7*float64(first.Loss), "loss did not fall")
}

// A run stopped by its context is interrupted, not failed.
func TestInterruptedRunIsInterrupted(t *testing.T) {
	specs := parse(t, `name: int
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 50, batch_size: 2}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := train.Run(ctx, specs[0], t.TempDir(), train.Options{Backend: cpukernels.New[float32](), Device: "cpu"})
	require.Equal(t, train.StatusInterrupted, s.Status)
	require.Contains(t, s.Reason, "interrupted after step 0")
}
