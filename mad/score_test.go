package mad

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

// run is one synthetic summary: model, task, setting, grid point, status
// and accuracies.
type run struct {
	model, task, setting, lr, wd, status string
	best, final                          float64
	extra                                map[string]string
}

func writeRuns(t *testing.T, dir string, runs []run) {
	t.Helper()
	for i, r := range runs {
		ov := map[string]string{KeyModel: r.model, KeyTask: r.task, KeySetting: r.setting, "train.lr": r.lr, "train.weight_decay": r.wd}
		for k, v := range r.extra {
			ov[k] = v
		}
		s := train.Summary{Experiment: "mad-x", Run: "r", Arch: strings.SplitN(r.model, "(", 2)[0], Task: "mad_" + r.task,
			Overrides: ov, Status: r.status, BestAccuracy: r.best, FinalAccuracy: r.final,
			FinalLoss: train.Num(math.NaN()), BestLoss: train.Num(1), TrainLoss: train.Num(1)}
		d := filepath.Join(dir, "mad-x", strings.Repeat("r", 1)+string(rune('a'+i%26))+string(rune('a'+i/26)))
		require.NoError(t, os.MkdirAll(d, 0o755))
		data, err := json.Marshal(s)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(d, "summary.json"), data, 0o644))
	}
}

const (
	mA = "transformer(d_model=8)"
	mB = "mamba1(d_model=8)"
)

// The numbers below are checked by hand:
//
//	A, in_context_recall: baseline max(0.50, 0.90) = 0.90 (the diverged
//	   0.95 does not count); vocab=32 max(0.40, 0.60) = 0.60; mean 0.75.
//	A, memorization: max(0.30, 0.20) = 0.30. Overall (0.75+0.30)/2 = 0.525.
//	B, in_context_recall: baseline 0.80; vocab=32 has only a failed run, so
//	   the task averages 1 of 2 settings: 0.80*. No memorization: overall
//	   0.80 over 1 of 2 tasks, marked.
//	A with model.d_model=16 swept: its own row, memorization 1.0.
//	final_accuracy for A: baseline max(0.45, 0.85), vocab=32 max(0.40,
//	   0.55): 0.70; memorization max(0.25, 0.20) = 0.25; overall 0.475.
func syntheticRuns() []run {
	return []run{
		{mA, "in_context_recall", "baseline", "0.0001", "0", "ok", 0.50, 0.45, nil},
		{mA, "in_context_recall", "baseline", "0.001", "0", "ok", 0.90, 0.85, nil},
		{mA, "in_context_recall", "baseline", "0.001", "0.1", "diverged", 0.95, 0.95, nil},
		{mA, "in_context_recall", "vocab=32", "0.0001", "0", "ok", 0.40, 0.40, nil},
		{mA, "in_context_recall", "vocab=32", "0.001", "0", "ok", 0.60, 0.55, nil},
		{mA, "memorization", "baseline", "0.0001", "0", "ok", 0.30, 0.25, nil},
		{mA, "memorization", "baseline", "0.001", "0", "ok", 0.20, 0.20, nil},
		{mB, "in_context_recall", "baseline", "0.001", "0", "ok", 0.80, 0.70, nil},
		{mB, "in_context_recall", "vocab=32", "0.001", "0", "failed", 0.99, 0.99, nil},
		{mA, "memorization", "baseline", "0.001", "0", "ok", 1.0, 1.0, map[string]string{"model.d_model": "16"}},
	}
}

func TestScoreByHand(t *testing.T) {
	dir := t.TempDir()
	writeRuns(t, dir, syntheticRuns())
	// A run of a plain experiment and an unreadable summary are ignored.
	plain := filepath.Join(dir, "other", "transformer-1")
	require.NoError(t, os.MkdirAll(plain, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(plain, "summary.json"), []byte(`{"status":"ok","best_accuracy":1}`), 0o644))
	bad := filepath.Join(dir, "mad-x", "broken")
	require.NoError(t, os.MkdirAll(bad, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bad, "summary.json"), []byte(`{"status":`), 0o644))

	rep, err := Score(dir, BestAccuracy)
	require.NoError(t, err)
	require.Equal(t, []string{"in_context_recall", "memorization"}, rep.Tasks)
	require.Len(t, rep.Skipped, 1)
	require.Contains(t, rep.Skipped[0], "broken")
	require.Len(t, rep.Models, 3)
	byModel := map[string]ModelScore{}
	for _, m := range rep.Models {
		byModel[m.Model] = m
	}

	a := byModel[mA]
	require.Len(t, a.Tasks, 2)
	require.InDelta(t, 0.75, a.Tasks[0].Score, 1e-12)
	require.Equal(t, 2, a.Tasks[0].Scored)
	base := a.Tasks[0].Settings[0]
	require.Equal(t, SettingScore{Setting: "baseline", Score: 0.90, LR: "0.001", WD: "0", Runs: 3, OK: 2}, base)
	require.Equal(t, "vocab=32", a.Tasks[0].Settings[1].Setting)
	require.InDelta(t, 0.30, a.Tasks[1].Score, 1e-12)
	require.InDelta(t, 0.525, a.Overall, 1e-12)

	b := byModel[mB]
	require.Len(t, b.Tasks, 1)
	require.InDelta(t, 0.80, b.Tasks[0].Score, 1e-12)
	require.Equal(t, 1, b.Tasks[0].Scored)
	require.True(t, math.IsNaN(b.Tasks[0].Settings[1].Score))
	require.InDelta(t, 0.80, b.Overall, 1e-12)

	swept := byModel[mA+" model.d_model=16"]
	require.InDelta(t, 1.0, swept.Overall, 1e-12)

	var out bytes.Buffer
	require.NoError(t, rep.WriteTable(&out))
	table := out.String()
	rows := map[string][]string{} // a line's label (all but the last three fields) -> the three scores
	for _, line := range strings.Split(table, "\n") {
		require.Equal(t, strings.TrimRight(line, " "), line, "trailing spaces")
		if f := strings.Fields(line); len(f) > 3 {
			rows[strings.Join(f[:len(f)-3], " ")] = f[len(f)-3:]
		}
	}
	require.Equal(t, []string{"CR", "M", "overall"}, rows["model"], table)
	require.Equal(t, []string{"0.750", "0.300", "0.525"}, rows[mA], table)
	require.Equal(t, []string{"0.800*", "-", "0.800*"}, rows[mB], table)
	require.Equal(t, []string{"-", "1.000", "1.000*"}, rows[mA+" model.d_model=16"], table)
	for _, want := range []string{"CR in_context_recall, M memorization", "* averages only", "skipped "} {
		require.Contains(t, table, want, table)
	}
	out.Reset()
	require.NoError(t, rep.WriteSettings(&out))
	settings := out.String()
	var lines []string
	for _, line := range strings.Split(settings, "\n") {
		lines = append(lines, strings.Join(strings.Fields(line), " "))
	}
	require.Contains(t, lines, mA+" in_context_recall baseline 0.900 0.001 0 2/3", settings)
	require.Contains(t, lines, mB+" in_context_recall vocab=32 - 0/1", settings)

	fin, err := Score(dir, FinalAccuracy)
	require.NoError(t, err)
	for _, m := range fin.Models {
		if m.Model == mA {
			require.InDelta(t, 0.70, m.Tasks[0].Score, 1e-12)
			require.InDelta(t, 0.25, m.Tasks[1].Score, 1e-12)
			require.InDelta(t, 0.475, m.Overall, 1e-12)
		}
	}
}

func TestScoreEmpty(t *testing.T) {
	dir := t.TempDir()
	_, err := Score(dir, BestAccuracy)
	require.True(t, errors.Is(err, ErrNoRuns), "%v", err)
	_, err = Score(filepath.Join(dir, "missing"), BestAccuracy)
	require.True(t, os.IsNotExist(err), "%v", err)
}

// Several experiments in one folder are told apart in the model column;
// settings sort in the suite's order, unknown ones after by value.
func TestScoreExperimentsAndOrder(t *testing.T) {
	mk := func(exp, setting string, acc float64) train.Summary {
		return train.Summary{Experiment: exp, Status: "ok", BestAccuracy: acc, Overrides: map[string]string{
			KeyModel: "m", KeyTask: "selective_copying", KeySetting: setting, "train.lr": "0.001", "train.weight_decay": "0"}}
	}
	rep, err := Compute([]train.Summary{
		mk("e1", "vocab=128", 0.1), mk("e1", "num_tokens=32", 0.2), mk("e1", "baseline", 0.3),
		mk("e1", "vocab=32", 0.4), mk("e1", "odd=10", 0.5), mk("e1", "odd=9", 0.6), mk("e2", "baseline", 1),
	}, BestAccuracy)
	require.NoError(t, err)
	require.Len(t, rep.Models, 2)
	require.Equal(t, "e1: m", rep.Models[0].Model)
	var names []string
	for _, s := range rep.Models[0].Tasks[0].Settings {
		names = append(names, s.Setting)
	}
	require.Equal(t, []string{"baseline", "vocab=32", "vocab=128", "num_tokens=32", "odd=9", "odd=10"}, names)
	require.InDelta(t, (0.1+0.2+0.3+0.4+0.5+0.6)/6, rep.Models[0].Overall, 1e-12)

	_, err = ParseMetric("loss")
	require.Error(t, err)
	m, err := ParseMetric("final_accuracy")
	require.NoError(t, err)
	require.Equal(t, FinalAccuracy, m)
}

// The suite is MAD's: six tasks, 66 settings, a 3×2 grid.
func TestSuite(t *testing.T) {
	require.Equal(t, []string{"in_context_recall", "fuzzy_in_context_recall", "noisy_in_context_recall",
		"selective_copying", "compression", "memorization"}, TaskNames())
	n := map[string]int{}
	for _, task := range Suite() {
		n[task.Name] = len(Settings(task.Changes))
	}
	require.Equal(t, map[string]int{"in_context_recall": 11, "fuzzy_in_context_recall": 11, "noisy_in_context_recall": 14,
		"selective_copying": 13, "compression": 11, "memorization": 6}, n)
	require.Equal(t, 66*6, NumRuns())
	s := Settings([]Change{{"vocab", []string{"32"}}, {"seq_len", []string{"64", "128"}}})
	require.Equal(t, []Setting{{Name: "baseline"}, {"vocab=32", "vocab", "32"}, {"seq_len=64", "seq_len", "64"}, {"seq_len=128", "seq_len", "128"}}, s)
	_, err := Lookup("nope")
	require.ErrorContains(t, err, "known: in_context_recall")
}

// selected_accuracy and selected_macro_accuracy score each run at its
// selected evaluation; a run without one (an older summary) is not scored.
func TestScoreSelected(t *testing.T) {
	sum := func(lr string, sel *train.Selection) train.Summary {
		return train.Summary{Experiment: "mad-x", Arch: "transformer", Status: train.StatusOK,
			BestAccuracy: 0.99, FinalAccuracy: 0.98, Selected: sel,
			Overrides: map[string]string{KeyModel: mA, KeyTask: "memorization", KeySetting: "baseline", "train.lr": lr}}
	}
	runs := []train.Summary{
		sum("0.1", &train.Selection{By: "loss", Accuracy: 0.7, MacroAccuracy: 0.5}),
		sum("0.2", &train.Selection{By: "loss", Accuracy: 0.6, MacroAccuracy: 0.55}),
		sum("0.3", nil),
	}
	for _, c := range []struct {
		m    Metric
		want float64
		lr   string
	}{{SelectedAccuracy, 0.7, "0.1"}, {SelectedMacroAccuracy, 0.55, "0.2"}, {BestAccuracy, 0.99, "0.1"}} {
		m, err := ParseMetric(string(c.m))
		require.NoError(t, err)
		rep, err := Compute(runs, m)
		require.NoError(t, err)
		ss := rep.Models[0].Tasks[0].Settings[0]
		require.Equal(t, c.want, ss.Score, c.m)
		require.Equal(t, c.lr, ss.LR, c.m)
	}
	rep, err := Compute(runs[2:], SelectedMacroAccuracy)
	require.NoError(t, err)
	require.True(t, math.IsNaN(rep.Models[0].Overall))
	_, err = ParseMetric("macro")
	require.ErrorContains(t, err, "selected_macro_accuracy")
}
