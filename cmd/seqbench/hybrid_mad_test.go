package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// hybridMADPatterns are configs/hybrid_mad.yaml's four models, by pattern.
var hybridMADPatterns = []string{
	"attention mlp attention mlp", "mamba1 mlp attention mlp", "attention mlp mamba1 mlp", "mamba1 mlp mamba1 mlp",
}

// configs/hybrid_mad.yaml plans the full MAD protocol (66 settings × 3
// learning rates × 2 weight decays = 396 runs) for each of its four models.
func TestHybridMADConfigDryRun(t *testing.T) {
	t.Chdir("../..")
	code, stdout, stderr := runCLI(t, "run", "--dry-run", "configs/hybrid_mad.yaml", "--device", "cpu", "--out", t.TempDir())
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "experiment hybrid-mad: 1584 runs")
	for _, p := range hybridMADPatterns {
		require.Equal(t, 396, strings.Count(stdout, "mad.model=hybrid(d_model=128,pattern="+p+","), p)
	}
	for _, want := range []string{"mad.task=memorization", "mad.setting=vocab=8192", "mad.task=selective_copying",
		"mad.setting=num_tokens=96", "train.lr=0.0005", "train.weight_decay=0.1"} {
		require.Contains(t, stdout, want)
	}
}

// configs/hybrid_mad.yaml, shrunk (d_model 16, two heads, every task at a
// tiny baseline, memorization with one change, one learning rate, one
// epoch of two batches of 4) but with its four models, trains on the CPU;
// `mad score` scores every model on all six tasks, and the report lists
// each model's layers and attention fraction.
func TestHybridMADConfigTrains(t *testing.T) {
	data, err := os.ReadFile("../../configs/hybrid_mad.yaml")
	require.NoError(t, err)
	src := string(data)
	const tasks = `  eval_every_epochs: 1
  tasks:
    in_context_recall:
      baseline: {seq_len: 16, num_train_examples: 8, num_test_examples: 4}
      changes: {}
    fuzzy_in_context_recall:
      baseline: {seq_len: 16, num_train_examples: 8, num_test_examples: 4}
      changes: {}
    noisy_in_context_recall:
      baseline: {seq_len: 16, num_train_examples: 8, num_test_examples: 4}
      changes: {}
    selective_copying:
      baseline: {seq_len: 16, num_tokens: 4, num_train_examples: 8, num_test_examples: 4}
      changes: {}
    compression:
      baseline: {seq_len: 8, num_train_examples: 8, num_test_examples: 4}
      changes: {}
    memorization:
      baseline: {vocab: 16, seq_len: 8, num_train_examples: 8, num_test_examples: 4}
      changes: {vocab: [24]}
`
	for _, r := range []struct {
		old, new string
		n        int
	}{
		{"  eval_every_epochs: 1\n", tasks, 1},
		{"lrs: [1.0e-4, 5.0e-4, 1.0e-3]", "lrs: [3.0e-3]", 1},
		{"weight_decays: [0.0, 0.1]", "weight_decays: [0.0]", 1},
		{"epochs: 200", "epochs: 1", 1},
		{"batch_size: 128", "batch_size: 4", 1},
		{"log_every: 100", "log_every: 1", 1},
		{"d_model: 128", "d_model: 16", 4},
		{"n_heads: 16", "n_heads: 2", 3},
	} {
		require.Equal(t, r.n, strings.Count(src, r.old), "%q in configs/hybrid_mad.yaml", r.old)
		src = strings.ReplaceAll(src, r.old, r.new)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	code, stdout, stderr := runCLI(t, "run", writeConfig(t, dir, src), "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "experiment hybrid-mad: 28 runs") // 4 models × 7 settings

	code, stdout, stderr = runCLI(t, "mad", "score", filepath.Join(out, "hybrid-mad"))
	require.Equal(t, 0, code, stderr)
	for _, p := range hybridMADPatterns {
		label := "hybrid(d_model=16,pattern=" + p + ","
		i := strings.Index(stdout, label)
		require.GreaterOrEqual(t, i, 0, "%s:\n%s", label, stdout)
		line, _, _ := strings.Cut(stdout[i:], "\n")
		_, scores, _ := strings.Cut(line, ") ")
		cols := strings.Fields(scores) // the six tasks, then overall
		require.Len(t, cols, 7, line)
		for _, c := range cols {
			_, err := strconv.ParseFloat(c, 64)
			require.NoError(t, err, "%s: every task scored, none marked '*' or '-'", line)
		}
	}

	report, err := os.ReadFile(filepath.Join(out, "hybrid-mad", "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(report), "Accuracy vs attention_fraction")
	// The runs table has a row per run with its layers and attention
	// fraction: 7 rows (the settings) per model.
	var header []string
	rows := map[string]int{} // "layers fraction" -> rows
	for _, line := range strings.Split(string(report), "\n") {
		cells := strings.Split(line, "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) > 2 && cells[1] == "arch" && header == nil {
			header = cells
			require.Subset(t, header, []string{"layers", "attention_fraction"}, line)
		}
		if len(cells) == len(header) && cells[1] == "hybrid" {
			rows[cells[slices.Index(header, "layers")]+" "+cells[slices.Index(header, "attention_fraction")]]++
		}
	}
	require.Equal(t, map[string]int{"attention mlp attention mlp 0.5": 7, "mamba1 mlp attention mlp 0.25": 7,
		"attention mlp mamba1 mlp 0.25": 7, "mamba1 mlp mamba1 mlp 0": 7}, rows, "report.md:\n%s", report)
}
