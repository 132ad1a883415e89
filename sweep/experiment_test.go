package sweep_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	_ "seqbench/arch/attention"
	"seqbench/sweep"
)

const base = `
name: exp
task: {name: selective_copy, seq_len: 32, num_tokens: 4, vocab: 8}
train: {steps: 10, batch_size: 4, lr: 1.0e-3}
models:
  - {arch: transformer, d_model: 16, n_layers: 1, n_heads: 2}
`

func TestParseExpandsGrid(t *testing.T) {
	exp, err := sweep.Parse([]byte(base + `
sweep:
  task.seq_len: [32, 64]
  seed: [1, 2, 3]
`))
	require.NoError(t, err)
	require.Len(t, exp.Runs, 6)
	require.Equal(t, sweep.KindPlain, exp.Kind)
	ids := map[string]bool{}
	for _, r := range exp.Runs {
		require.False(t, ids[r.ID], "duplicate id %s", r.ID)
		ids[r.ID] = true
		require.Equal(t, "transformer", r.Arch)
		require.Equal(t, "selective_copy", r.TaskName)
	}
	require.Equal(t, "task.seq_len=64 train.seed=1", sweep.Describe(exp.Runs[3]))
	require.Equal(t, uint64(3), exp.Runs[5].Train.Seed)

	// Adding a grid value keeps the ids of the runs that existed before.
	more, err := sweep.Parse([]byte(base + `
sweep:
  task.seq_len: [32, 64, 128]
  seed: [1, 2, 3]
`))
	require.NoError(t, err)
	for _, r := range exp.Runs {
		found := false
		for _, m := range more.Runs {
			found = found || m.ID == r.ID
		}
		require.True(t, found, "run %s lost its id", r.Name)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the message
	}{
		{"misspelled field", strings.Replace(base, "lr:", "lr_rate:", 1), []string{"lr_rate", "line"}},
		{"unknown arch", strings.Replace(base, "arch: transformer", "arch: transfomer", 1), []string{"transfomer", "transformer"}},
		{"unknown task", strings.Replace(base, "name: selective_copy", "name: sel_copy", 1), []string{"sel_copy", "selective_copy"}},
		{"heads do not divide", strings.Replace(base, "n_heads: 2", "n_heads: 3", 1), []string{"n_heads", "3", "d_model"}},
		{"lr not positive", strings.Replace(base, "lr: 1.0e-3", "lr: 0", 1), []string{"train.lr", "> 0"}},
		{"seq_len too short", strings.Replace(base, "seq_len: 32", "seq_len: 8", 1), []string{"seq_len", "8"}},
		{"bad sweep path", base + "sweep: {optimizer.lr: [1]}\n", []string{"sweep.optimizer.lr"}},
		{"bad name", strings.Replace(base, "name: exp", "name: ../x", 1), []string{"field name"}},
		{"float for int", strings.Replace(base, "steps: 10", "steps: 10.5", 1), []string{"10.5"}},
		{"unknown top-level field", base + "optimizer: adam\n", []string{"line 7: unknown field optimizer (known: name, task, train, models, sweep"}},
		{"not a mapping", "- name: exp\n", []string{"line 1: an experiment file maps field names"}},
		// A typo in a swept path points at the sweep entry's line.
		{"sweep model field typo", base + "sweep:\n  model.d_modl: [8, 16]\n", []string{"line 8: unknown field d_modl (known: arch, d_model"}},
		{"sweep task field typo", base + "sweep:\n  task.seq_ln: [8, 16]\n", []string{"line 8: unknown field seq_ln"}},
		{"sweep train field typo", base + "sweep:\n  zip: [{train.lrr: [0.1]}]\n", []string{"line 8: unknown field lrr"}},
	}
	for i, c := range cases {
		_, err := sweep.Parse([]byte(c.yaml))
		require.Error(t, err, "case %d %s", i, c.name)
		var ce *sweep.ConfigError
		require.True(t, errors.As(err, &ce), "case %d %s: %T is not a ConfigError", i, c.name, err)
		for _, w := range c.want {
			require.Contains(t, err.Error(), w, "case %d %s", i, c.name)
		}
		require.NotContains(t, err.Error(), "unknown position", "case %d %s", i, c.name)
		require.NotContains(t, err.Error(), "sweep.file", "case %d %s: an internal type", i, c.name)
	}
}
