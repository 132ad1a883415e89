package reports

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

// Hybrid runs over patterns (an attention-fraction sweep, as
// configs/hybrid_lm.yaml) group by their attention fraction: the pattern,
// attention_at and every are not series of their own, and the sweep is one
// curve of final loss against model.attention_fraction.
func TestHybridPatternsPlotAsOneCurve(t *testing.T) {
	root := t.TempDir()
	expDir := filepath.Join(root, "hybrid-lm")
	task := map[string]any{"name": "lm", "seq_len": 128}
	tr := map[string]any{"lr": 1.5e-3, "seed": 1}
	for i, m := range []map[string]any{
		{"pattern": "mamba2*8"},
		{"pattern": "mamba2", "attention_at": []int{3}},
		{"pattern": "mamba2*3 attention mamba2*3 attention"},
		{"pattern": "mamba2 attention"},
		{"pattern": "mamba2", "every": map[string]any{"k": 1, "block": "attention"}},
	} {
		m["d_model"], m["n_layers"] = 32, 8
		writeRun(t, expDir, "hybrid-lm", synthRun{arch: "hybrid", task: task, train: tr, model: m,
			params: 1000, steps: 10, evalEvery: 5, batchTok: 100, curve: decay(3, 1.5+0.1*float64(i), 0, 5)})
	}
	res, err := Load(root)
	require.NoError(t, err)
	e := res.Experiments[0]
	fractions := map[string]bool{}
	for _, r := range e.Runs {
		v, ok := r.Setting(attentionFractionKey)
		require.True(t, ok, "%s has no attention fraction", r.Name)
		fractions[v] = true
	}
	require.Equal(t, map[string]bool{"0": true, "0.125": true, "0.25": true, "0.5": true, "1": true}, fractions)
	d := analyse(e.Runs)
	require.Equal(t, []string{attentionFractionKey}, d.seriesKeys)
	var found bool
	for _, f := range newExpPlots(e).sweeps() {
		if f.name == "hybrid-lm-loss-vs-attention_fraction" {
			found = true
			require.Len(t, f.legend, 1, "one curve")
		}
	}
	require.True(t, found, "no loss-vs-attention_fraction figure")
}

// Two hybrids of one attention fraction but different layers (attention
// first or last) stay two series, keyed by their layers.
func TestHybridLayersStaySeriesAtOneFraction(t *testing.T) {
	run := func(pattern, layers, frac string) *Run {
		return &Run{Name: pattern, Config: map[string]string{archKey: "hybrid", "model.pattern": pattern,
			layersKey: layers, attentionFractionKey: frac, "task.name": "lm"}}
	}
	runs := []*Run{run("attention mamba2", "attention mamba2", "0.5"), run("mamba2 attention", "mamba2 attention", "0.5"),
		run("mamba2", "mamba2", "0")}
	require.Equal(t, []string{attentionFractionKey, layersKey}, analyse(runs).seriesKeys)
}

// A setting only some runs have does not make the task a dependent of it:
// a MAD experiment whose tasks are told apart by name, one of which alone
// has frac_noise, plots a panel a task, never one mixing two.
func TestTaskNotLockstepWithPartialSetting(t *testing.T) {
	run := func(task, frac string) *Run {
		c := map[string]string{archKey: "hybrid", "task.name": task, "task.seq_len": "32"}
		if frac != "" {
			c["task.frac_noise"] = frac
		}
		return &Run{Name: task + frac, Config: c}
	}
	runs := []*Run{run("mad_in_context_recall", "0"), run("mad_noisy_in_context_recall", "0.2"),
		run("mad_selective_copying", ""), run("mad_fuzzy_in_context_recall", "")}
	d := analyse(runs)
	require.Contains(t, d.facetKeys, "task.name", "the task must split the panels; dependent: %v", d.dependent)
}

func TestWrapWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		w    int
		want string
	}{
		{"seq_len=16 task=mad_compression vocab=16", 44, "seq_len=16 task=mad_compression vocab=16"},
		{"seq_len=32 task=mad_noisy_in_context_recall num_train_examples=1024 vocab=32", 44,
			"seq_len=32 task=mad_noisy_in_context_recall\nnum_train_examples=1024 vocab=32"},
		{"a_very_long_single_word b", 5, "a_very_long_single_word\nb"},
		{"", 10, ""},
	} {
		require.Equal(t, c.want, wrapWords(c.in, c.w), "wrapWords(%q, %d)", c.in, c.w)
	}
}

// The closing table of a sweep (RunTable with the experiment folder) tells
// the hybrids of a models list apart by their attention fraction, as
// report.md's table does; from the summaries alone it cannot.
func TestRunTableReadsRunConfigs(t *testing.T) {
	root := t.TempDir()
	expDir := filepath.Join(root, "hybrid-mqar")
	task := map[string]any{"name": "mqar", "seq_len": 32}
	tr := map[string]any{"lr": 1e-3, "seed": 1}
	for _, p := range []string{"mamba1*2", "mamba1 attention", "attention*2"} {
		writeRun(t, expDir, "hybrid-mqar", synthRun{arch: "hybrid", task: task, train: tr,
			model: map[string]any{"pattern": p, "d_model": 32}, params: 1000, steps: 10, evalEvery: 5, batchTok: 100,
			curve: decay(3, 1.5, 0, 5)})
	}
	res, err := Load(root)
	require.NoError(t, err)
	var sums []train.Summary
	for _, r := range res.Experiments[0].Runs {
		sums = append(sums, r.Summary)
	}
	var with, without bytes.Buffer
	require.NoError(t, RunTable(&with, expDir, sums, false))
	require.NoError(t, RunTable(&without, "", sums, false))
	require.Contains(t, with.String(), "attention_fraction")
	require.Contains(t, with.String(), "0.5")
	require.NotContains(t, without.String(), "attention_fraction")
}
