package sweep_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	_ "seqbench/arch/attention"
	_ "seqbench/arch/mamba1"
	"seqbench/mad"
	"seqbench/sweep"
	"seqbench/train"
)

const madFull = `
name: mad-full
kind: mad
mad: {epochs: 200, eval_every_epochs: 1}
train: {batch_size: 128, warmup: 0}
models:
  - {arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}
`

// The full protocol: 66 settings (11 + 11 + 14 + 13 + 11 + 6) times the
// 3×2 grid, each run recording its task, setting and grid point, with
// MAD's epochs turned into steps.
func TestMADFullProtocol(t *testing.T) {
	require.Equal(t, 396, mad.NumRuns())
	exp, err := sweep.Parse([]byte(madFull))
	require.NoError(t, err)
	require.Len(t, exp.Runs, 396)
	require.Equal(t, sweep.KindMAD, exp.Kind)

	perTask := map[string]map[string]int{}
	ids := map[string]bool{}
	byKey := map[string]train.Spec{}
	for _, r := range exp.Runs {
		require.False(t, ids[r.ID], "duplicate id")
		ids[r.ID] = true
		task, setting := r.Overrides[mad.KeyTask], r.Overrides[mad.KeySetting]
		require.Equal(t, "transformer(d_model=16,n_layers=1,n_heads=2)", r.Overrides[mad.KeyModel])
		require.Equal(t, "mad_"+task, r.TaskName)
		if perTask[task] == nil {
			perTask[task] = map[string]int{}
		}
		perTask[task][setting]++
		byKey[task+" "+setting+" "+r.Overrides["train.lr"]+" "+r.Overrides["train.weight_decay"]] = r
		require.Equal(t, 10, r.Train.EvalBatches, "1280 test examples in batches of 128")
	}
	want := map[string]int{"in_context_recall": 11, "fuzzy_in_context_recall": 11, "noisy_in_context_recall": 14,
		"selective_copying": 13, "compression": 11, "memorization": 6}
	for task, n := range want {
		require.Len(t, perTask[task], n, task)
		for s, runs := range perTask[task] {
			require.Equal(t, 6, runs, "%s %s: the LR×WD grid", task, s)
		}
	}

	base := byKey["in_context_recall baseline 0.0001 0"]
	require.Equal(t, "mad.model=transformer(d_model=16,n_layers=1,n_heads=2) mad.setting=baseline mad.task=in_context_recall train.lr=0.0001 train.weight_decay=0",
		sweep.Describe(base))
	require.Equal(t, 200*100, base.Train.Steps, "12800 examples in batches of 128, 200 epochs")
	require.Equal(t, 100, base.Train.EvalEvery)
	require.InDelta(t, 1e-4, base.Train.LR, 0)

	small := byKey["in_context_recall num_train_examples=800 0.001 0.1"]
	require.Equal(t, "800", small.Overrides["task.num_train_examples"])
	require.Equal(t, 200*7, small.Train.Steps, "ceil(800/128) = 7 steps per epoch")
	require.InDelta(t, 0.1, small.Train.WeightDecay, 0)

	noisy := byKey["noisy_in_context_recall frac_noise=0.8 0.0005 0"]
	require.Contains(t, fmt.Sprintf("%+v", noisy.Task), "FracNoise:0.8")
	require.Contains(t, fmt.Sprintf("%+v", noisy.Task), "Vocab:32")

	mem := byKey["memorization vocab=8192 0.001 0"]
	require.Contains(t, fmt.Sprintf("%+v", mem.Task), "Vocab:8192")
	require.Equal(t, 200*2, mem.Train.Steps, "256 examples: 2 steps per epoch")
}

const madSmall = `
name: mad-small
kind: mad
mad:
  lrs: [1.0e-3, 3.0e-3]
  weight_decays: [0.0]
  tasks:
    in_context_recall:
      baseline: {seq_len: 32, num_train_examples: 64, num_test_examples: 16}
      changes: {vocab: [32, 64], seq_len: [64]}
    memorization:
      baseline: {vocab: 32, num_test_examples: 32}
      changes: {}
    compression: {baseline: {seq_len: 8, num_test_examples: 16}}
train: {steps: 20, batch_size: 16, eval_batches: 3}
models:
  - {arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}
  - {arch: mamba1, d_model: 16, n_layers: 1}
sweep:
  seed: [1, 2]
`

func TestMADReducedSuite(t *testing.T) {
	exp, err := sweep.Parse([]byte(madSmall))
	require.NoError(t, err)
	// Settings: recall 1+3, memorization 1, compression 1+10 (MAD's
	// changes); 2 models × 2 seeds × 2 learning rates.
	require.Len(t, exp.Runs, (4+1+11)*2*2*2)
	seen := map[string]bool{}
	for _, r := range exp.Runs {
		key := r.Overrides[mad.KeyModel] + r.Overrides["train.seed"] + r.Overrides[mad.KeyTask] + r.Overrides[mad.KeySetting] + r.Overrides["train.lr"]
		require.False(t, seen[key], key)
		seen[key] = true
		require.Equal(t, 20, r.Train.Steps, "no epochs: train.steps")
		switch r.Overrides[mad.KeyTask] {
		case "in_context_recall":
			require.Equal(t, 1, r.Train.EvalBatches, "16 test examples in batches of 16")
			s := fmt.Sprintf("%+v", r.Task)
			require.Contains(t, s, "NumTrainExamples:64")
			if r.Overrides[mad.KeySetting] == "seq_len=64" {
				require.Contains(t, s, "SeqLen:64")
				require.Equal(t, "64", r.Overrides["task.seq_len"])
			} else {
				require.Contains(t, s, "SeqLen:32")
			}
		case "memorization":
			require.Equal(t, "baseline", r.Overrides[mad.KeySetting])
			require.Equal(t, 2, r.Train.EvalBatches)
		}
	}
	require.True(t, seen["mamba1(d_model=16,n_layers=1)2compressionvocab=1280.003"])
}

func TestMADErrors(t *testing.T) {
	head := "name: e\nkind: mad\nmodels:\n  - {arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}\n"
	cases := []struct{ yaml, want string }{
		{head + "task: {name: selective_copy}\n", "field task: not allowed in a `kind: mad`"},
		{head + "sweep: {task.seq_len: [8]}\n", "sweep.task.seq_len: not allowed"},
		{head + "sweep: {train.lr: [0.1]}\n", "mad.lrs"},
		{head + "mad: {epochs: 2}\nsweep: {train.steps: [5]}\n", "mad.epochs sets them"},
		{head + "mad: {tasks: {recall: {}}}\n", `unknown MAD task "recall"`},
		{head + "mad: {tasks: {memorization: {baseline: {name: x}}}}\n", "baseline.name: not allowed"},
		{head + "mad: {tasks: {memorization: {baseline: {vocab: 64}, changes: {vocab: [64]}}}}\n", "setting vocab=64: the same run as memorization baseline"},
		{head + "mad: {tasks: {memorization: {changes: {vocab: []}}}}\n", "non-empty list"},
		{head + "mad: {tasks: {memorization: {changes: {vocab: [64, 64]}}}}\n", "64 listed twice"},
		{head + "mad: {tasks: {memorization: {changes: {vocb: [64]}}}}\n", "unknown field vocb"},
		{head + "mad: {tasks: {memorization: {changes: {vocab: [1]}}}}\n", "setting vocab=1: line"},
		{head + "mad: {tasks: {memorization: {chnages: {}}}}\n", "unknown field chnages"},
		{head + "mad: {lr: [0.1]}\n", "unknown field lr"},
		{head + "mad: {lrs: []}\n", "mad.lrs: an empty list"},
		{head + "mad: {lrs: [0.1, -1]}\n", "mad.lrs: -1 (entry 1)"},
		{head + "mad: {weight_decays: [0.1, 0.1]}\n", "listed twice"},
		{head + "mad: {eval_every_epochs: 2}\n", "mad.eval_every_epochs"},
		{head + "mad: {epochs: -1}\n", "mad.epochs: -1"},
		{head + "train: {batch_size: 100}\n", "num_test_examples 1280 is not a multiple of train.batch_size 100"},
		{strings.Replace(head, "kind: mad", "kind: madd", 1), `field kind: "madd" is not allowed`},
		{strings.Replace(head, "kind: mad\n", "task: {name: selective_copy}\n", 1) + "mad: {epochs: 1}\n", "field mad: not allowed in a plain experiment"},
		{"name: e\nkind: mad\n", "field models: missing"},
	}
	for _, c := range cases {
		_, err := sweep.Parse([]byte(c.yaml))
		require.Error(t, err, c.yaml)
		require.Contains(t, err.Error(), c.want, c.yaml)
		var ce *sweep.ConfigError
		require.ErrorAs(t, err, &ce, c.yaml)
	}
}
