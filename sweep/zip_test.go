package sweep_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/sweep"
)

// A zip group varies its fields together; it is one axis of the grid.
func TestParseZip(t *testing.T) {
	exp, err := sweep.Parse([]byte(base + `
sweep:
  seed: [1, 2]
  zip:
    - model.d_model: [16, 32, 64]
      model.n_layers: [1, 2, 3]
`))
	require.NoError(t, err)
	require.Len(t, exp.Runs, 6)
	want := []string{
		"model.d_model=16 model.n_layers=1 train.seed=1",
		"model.d_model=32 model.n_layers=2 train.seed=1",
		"model.d_model=64 model.n_layers=3 train.seed=1",
		"model.d_model=16 model.n_layers=1 train.seed=2",
		"model.d_model=32 model.n_layers=2 train.seed=2",
		"model.d_model=64 model.n_layers=3 train.seed=2",
	}
	for i, r := range exp.Runs {
		require.Equal(t, want[i], sweep.Describe(r), "run %d", i)
	}

	// Ids hash the resolved config: the same run written as a plain
	// grid point (or with more zip values) keeps its id.
	plain, err := sweep.Parse([]byte(base + `
sweep:
  model.d_model: [32]
  model.n_layers: [2]
  seed: [2]
`))
	require.NoError(t, err)
	require.Equal(t, exp.Runs[4].ID, plain.Runs[0].ID)
	more, err := sweep.Parse([]byte(base + `
sweep:
  seed: [1, 2]
  zip:
    - {model.d_model: [16, 32, 64, 128], model.n_layers: [1, 2, 3, 4]}
`))
	require.NoError(t, err)
	require.Len(t, more.Runs, 8)
	ids := map[string]bool{}
	for _, r := range more.Runs {
		ids[r.ID] = true
	}
	for _, r := range exp.Runs {
		require.True(t, ids[r.ID], "run %s lost its id", r.Name)
	}

	// Two zip groups multiply.
	two, err := sweep.Parse([]byte(base + `
sweep:
  zip:
    - {model.d_model: [16, 32], model.n_layers: [1, 2]}
    - {train.lr: [1.0e-3, 2.0e-3], train.warmup: [1, 2]}
`))
	require.NoError(t, err)
	require.Len(t, two.Runs, 4)
	require.Equal(t, "model.d_model=32 model.n_layers=2 train.lr=1.0e-3 train.warmup=1", sweep.Describe(two.Runs[2]))
}

func TestParseZipErrors(t *testing.T) {
	cases := []struct {
		name, sweep string
		want        []string
	}{
		{"lengths differ", "zip: [{model.d_model: [16, 32], model.n_layers: [1]}]", []string{"sweep.zip[0].model.n_layers", "1 values", "model.d_model", "2"}},
		{"not a list", "zip: {model.d_model: [16]}", []string{"sweep.zip", "list of groups"}},
		{"group not a mapping", "zip: [[16, 32]]", []string{"sweep.zip[0]"}},
		{"bad path", "zip: [{optim.lr: [1]}]", []string{"sweep.zip[0].optim.lr", "dotted path"}},
		{"empty list", "zip: [{model.d_model: []}]", []string{"non-empty list"}},
		{"path twice", "model.d_model: [16]\n  zip: [{model.d_model: [32]}]", []string{"already swept", "line"}},
		{"seed alias twice", "seed: [1]\n  train.seed: [2]", []string{"train.seed", "already swept"}},
	}
	for i, c := range cases {
		_, err := sweep.Parse([]byte(base + "sweep:\n  " + c.sweep + "\n"))
		require.Error(t, err, "case %d %s", i, c.name)
		var ce *sweep.ConfigError
		require.True(t, errors.As(err, &ce), "case %d %s: %T", i, c.name, err)
		for _, w := range c.want {
			require.Contains(t, err.Error(), w, "case %d %s", i, c.name)
		}
	}
}

func TestParseSlurmBlock(t *testing.T) {
	exp, err := sweep.Parse([]byte(base + `
slurm:
  partition: gpu
  time: "2:00:00"
  gpus_per_task: 1
  cpus_per_task: 8
  mem: 32G
  runs_per_task: 4
  max_parallel: 16
  extra: ["--account=proj", "#SBATCH --qos=short"]
`))
	require.NoError(t, err)
	require.Equal(t, sweep.SlurmConfig{Partition: "gpu", Time: "2:00:00", GPUs: 1, CPUs: 8, Mem: "32G", RunsPerTask: 4,
		MaxParallel: 16, Extra: []string{"--account=proj", "#SBATCH --qos=short"}}, exp.Slurm)

	cases := []struct{ block, want string }{
		{"{partitoin: gpu}", "partitoin"},
		{"{partition: \"gpu\\necho pwned\"}", "slurm.partition"},
		{"{time: \"1h\"}", "slurm.time"},
		{"{mem: \"$(reboot)\"}", "slurm.mem"},
		{"{extra: [\"--account=a\\nrm -rf /\"]}", "slurm.extra"},
		{"{extra: [\"echo hi\"]}", "slurm.extra"},
		{"{gpus_per_task: -1}", "slurm.gpus_per_task"},
	}
	for i, c := range cases {
		_, err := sweep.Parse([]byte(base + "slurm: " + c.block + "\n"))
		require.Error(t, err, "case %d", i)
		var ce *sweep.ConfigError
		require.True(t, errors.As(err, &ce), "case %d: %T", i, err)
		require.Contains(t, err.Error(), c.want, "case %d", i)
		require.True(t, strings.Contains(err.Error(), "line") || strings.Contains(err.Error(), "partitoin"), "case %d: %v", i, err)
	}
}
