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

	_ "seqbench/arch/attention"
	_ "seqbench/arch/ssm"
	"seqbench/cpukernels"
	"seqbench/sweep"
	"seqbench/train"
)

// runSpec parses a one-run experiment and trains it on the CPU in float64,
// returning its summary.
func runSpec(t *testing.T, src string) train.Summary {
	t.Helper()
	s, _ := runSpecMetrics(t, src)
	return s
}

// runSpecMetrics is runSpec that also returns the metrics.jsonl lines with
// an evaluation.
func runSpecMetrics(t *testing.T, src string) (train.Summary, []train.Metrics) {
	t.Helper()
	exp, err := sweep.Parse([]byte(src))
	require.NoError(t, err)
	require.Len(t, exp.Runs, 1)
	dir := t.TempDir()
	s := train.Run(context.Background(), exp.Runs[0], dir, train.Options{Backend: cpukernels.New[float64](), Device: "cpu"})
	require.Equal(t, train.StatusOK, s.Status, s.Reason)
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var evals []train.Metrics
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var m train.Metrics
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		if m.EvalLoss != nil {
			evals = append(evals, m)
		}
	}
	return s, evals
}

// weight_decay_on: all also decays the embedding and norms, so the run
// differs from the default (matrices), which an explicit "matrices" equals.
func TestWeightDecayOn(t *testing.T) {
	exp := func(on string) string {
		return `name: wd
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 12, batch_size: 4, lr: 1.0e-2, weight_decay: 0.5, warmup: 2, eval_every: 12, log_every: 4` + on + `}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`
	}
	def := runSpec(t, exp(""))
	require.Equal(t, def.FinalLoss, runSpec(t, exp(", weight_decay_on: matrices")).FinalLoss)
	require.NotEqual(t, def.FinalLoss, runSpec(t, exp(", weight_decay_on: all")).FinalLoss)
	_, err := sweep.Parse([]byte(exp(", weight_decay_on: some")))
	require.ErrorContains(t, err, `field train.weight_decay_on: "some" is not allowed`)
}

// s4d's kernel_lr reaches the optimizer: a run with it differs from one
// without, at an lr above the cap.
func TestS4DKernelLR(t *testing.T) {
	exp := func(extra string) string {
		return `name: s4
task: {name: copying, seq_len: 12, num_tokens: 2, vocab: 4}
train: {steps: 12, batch_size: 4, lr: 1.0e-2, warmup: 2, eval_every: 12, log_every: 4}
models: [{arch: s4d, d_model: 8, n_layers: 1, d_state: 4` + extra + `}]
`
	}
	require.NotEqual(t, runSpec(t, exp("")).FinalLoss, runSpec(t, exp(", kernel_lr: 0.001")).FinalLoss)
}

// The selected evaluation is one step's, segments included: with select
// accuracy the step of the highest mean accuracy over the eval set and the
// segments (the earliest of equals), with select loss that of the lowest
// mean loss; its numbers are that metrics line's.
func TestSelection(t *testing.T) {
	for _, by := range []string{"", "accuracy", "loss"} {
		sel := ""
		if by != "" {
			sel = ", select: " + by
		}
		s, evals := runSpecMetrics(t, `name: sel
task: {name: induction_heads, vocab: 4, seq_len: 12, eval_lengths: [8, 24]}
train: {steps: 40, batch_size: 8, lr: 1.0e-2, warmup: 2, eval_every: 5, eval_batches: 2, log_every: 5`+sel+`}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
		require.NotNil(t, s.Selected)
		require.Len(t, evals, 8)
		score := func(m train.Metrics) float64 {
			sum := float64(*m.EvalLoss)
			if by != "loss" {
				sum = *m.EvalAccuracy
			}
			for _, sg := range m.Segments {
				if by != "loss" {
					sum += *sg.Accuracy
				} else {
					sum += float64(*sg.Loss)
				}
			}
			return sum / float64(1+len(m.Segments))
		}
		best := evals[0]
		for _, m := range evals[1:] {
			if (by != "loss" && score(m) > score(best)) || (by == "loss" && score(m) < score(best)) {
				best = m
			}
		}
		want := "accuracy"
		if by == "loss" {
			want = "loss"
		}
		require.Equal(t, want, s.Selected.By)
		require.Equal(t, best.Step, s.Selected.Step, "select %q", by)
		require.Equal(t, *best.EvalLoss, s.Selected.Loss)
		require.Equal(t, *best.EvalAccuracy, s.Selected.Accuracy)
		require.Equal(t, *best.EvalMacroAccuracy, s.Selected.MacroAccuracy)
		require.Equal(t, *best.EvalExampleAccuracy, s.Selected.ExampleAccuracy)
		require.Equal(t, best.Segments, s.Selected.Segments)
		require.False(t, math.IsNaN(float64(s.Selected.Loss)))
	}
	_, err := sweep.Parse([]byte("name: x\ntask: {name: copying}\nmodels: [{arch: transformer}]\ntrain: {select: best}\n"))
	require.ErrorContains(t, err, `field train.select: "best" is not allowed`)
}

// epochs over a fixed training set set the steps: ceil(epochs·N/B); an
// eval set of eval_examples sequences is that many (the last batch
// partial); epochs on a streamed task is an error naming the field.
func TestEpochsAndEvalExamples(t *testing.T) {
	s := runSpec(t, `name: zoo
task: {name: mqar, vocab: 32, seq_len: 16, num_kv_pairs: 2, num_examples: 22, num_test_examples: 10,
       test_curriculum: [{seq_len: 16, num_kv_pairs: 2}]}
train: {epochs: 3, batch_size: 4, eval_examples: 10, eval_every: 4, warmup: 0, grad_clip: 0, min_lr_ratio: 0}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`)
	require.Equal(t, 17, s.Steps) // ceil(3·22/4)
	require.Len(t, s.Segments, 1)
	require.Equal(t, 10, s.Segments[0].Sequences)

	exp, err := sweep.Parse([]byte(`name: stream
task: {name: mqar, vocab: 32, seq_len: 16, num_kv_pairs: 2}
train: {epochs: 3, batch_size: 4}
models: [{arch: transformer, d_model: 8, n_layers: 1, n_heads: 2}]
`))
	require.NoError(t, err)
	bad := train.Run(context.Background(), exp.Runs[0], t.TempDir(), train.Options{Backend: cpukernels.New[float64](), Device: "cpu"})
	require.Equal(t, train.StatusFailed, bad.Status)
	require.Contains(t, bad.Reason, "field train.epochs: 3 needs a task with a fixed training set")
}
