package reports

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	_ "seqbench/arch/attention" // the shipped configs' architectures
	_ "seqbench/arch/mamba1"
	_ "seqbench/arch/mamba2"
	_ "seqbench/arch/rnn"
	_ "seqbench/arch/ssm"
	"seqbench/configs"
	"seqbench/sweep"
)

// specRuns are the runs of an experiment file as Load would read them
// after they ran (config.yaml and the summary's overrides), started at
// start + i seconds.
func specRuns(t *testing.T, data []byte, start time.Time) []*Run {
	t.Helper()
	exp, err := sweep.Parse(data)
	require.NoError(t, err)
	runs := make([]*Run, len(exp.Runs))
	for i, s := range exp.Runs {
		resolved, err := s.ResolvedYAML()
		require.NoError(t, err)
		cfg, err := flattenYAML(resolved)
		require.NoError(t, err)
		r := &Run{Name: s.Name, Config: cfg, Status: "ok"}
		r.Summary.Arch, r.Summary.Overrides = s.Arch, s.Overrides
		r.started = start.Add(time.Duration(i) * time.Second)
		runs[i] = r
	}
	return runs
}

// Every shipped experiment's runs are one version of its file (whatever
// its grid sweeps, tasks and MAD settings included); after an edit of a
// fixed train setting (batch_size, or log_every where the grid sweeps
// batch_size), the runs of the file before it are all earlier ones and the
// runs after it all current, whichever ran last.
func TestEarlierShippedConfigs(t *testing.T) {
	t.Chdir("..") // configs name data files relative to the repository
	for _, name := range configs.Names() {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("configs", name))
			require.NoError(t, err)
			field := "batch_size"
			if strings.Contains(string(data), "train.batch_size:") {
				field = "log_every"
			}
			steps := regexp.MustCompile(`(?m)(\b` + field + `:\s*)(\d+)`)
			t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			e := &Experiment{Name: name, Runs: specRuns(t, data, t0)}
			n := len(e.Runs)
			e.splitEarlier()
			require.Len(t, e.Runs, n)
			require.Empty(t, e.Earlier)

			m := steps.FindSubmatch(data)
			require.NotNil(t, m, "no "+field)
			old, _ := strconv.Atoi(string(m[2]))
			edited := steps.ReplaceAll(data, []byte("${1}"+strconv.Itoa(2*old)))
			e = &Experiment{Name: name, Runs: append(specRuns(t, data, t0), specRuns(t, edited, t0.Add(time.Hour))...)}
			e.splitEarlier()
			require.Len(t, e.Runs, n, "the runs of the edited file")
			require.Len(t, e.Earlier, n, "the runs of the file before the edit")
			for _, r := range e.Earlier {
				require.Contains(t, r.Differs, "train."+field+"="+strconv.Itoa(old)+" (now "+strconv.Itoa(2*old)+")")
			}
		})
	}
}

// Adding values to a grid keeps every run current (the old ones were not
// rerun, so they started earlier), and so does a run still going, which
// has config.yaml but no summary (and so no overrides of its own).
func TestEarlierGridExtension(t *testing.T) {
	root := t.TempDir()
	exp := filepath.Join(root, "exp")
	for seed := 1; seed <= 3; seed++ {
		s := quickRun("transformer", seed)
		s.started = time.Date(2025, 1, 1, seed, 0, 0, 0, time.UTC)
		s.noSummary = seed == 3
		writeRun(t, exp, "exp", s)
	}
	old := quickRun("transformer", 1)
	old.train = map[string]any{"steps": 30, "seed": 1}
	writeRun(t, exp, "exp", old)

	res, err := Load(exp)
	require.NoError(t, err)
	e := res.Experiments[0]
	require.Len(t, e.Runs, 3)
	require.Len(t, e.Earlier, 1)
	require.Equal(t, []string{"train.steps=30 (now 60)"}, e.Earlier[0].Differs)

	res.IncludeEarlier()
	require.Len(t, e.Runs, 4)
	require.Empty(t, e.Earlier)
}
