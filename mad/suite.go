// Package mad defines the MAD benchmark suite (Poli, Thomas, Nguyen et al.
// 2024, "Mechanistic Design and Scaling of Hybrid Architectures", ICML
// 2024; github.com/athms/mad-lab) and computes the MAD score of trained
// runs.
//
// The protocol, as mad-lab's make_benchmark_mad_configs and
// compute_model_mad_scores implement it: each of six tasks has a baseline
// setting and a list of changes, each change one task variable set to one
// value with the others at the baseline (configs/tasks/*.yml); every
// setting is trained at every point of a 3×2 grid of learning rate
// {1e-4, 5e-4, 1e-3} and weight decay {0, 0.1} (AdamW, batch 128, 200
// epochs, cosine schedule); the score of a setting is the best test
// accuracy over the grid, a task's score the mean over its settings, and
// the MAD score of a model the mean over the six tasks.
//
// The `mad` experiment kind (sweep/mad.go) expands an experiment into these
// runs; Score reads their results back.
package mad

import (
	"fmt"
	"slices"
	"strings"
)

// Task is one task of the suite.
type Task struct {
	Name     string   // the suite's name, e.g. "in_context_recall"
	Short    string   // MAD's shorthand, e.g. "CR"
	TaskName string   // the registered task (tasks.Lookup), e.g. "mad_in_context_recall"
	Changes  []Change // MAD's difficulty changes, in MAD's order
}

// Change sets one task field to each of its values in turn.
type Change struct {
	Field  string   // the task config's YAML field
	Values []string // YAML scalars
}

// Setting is one task setting of the suite: the baseline, or the baseline
// with one field changed.
type Setting struct {
	Name  string // "baseline" or "<field>=<value>"
	Field string // "" for the baseline
	Value string
}

// The optimization grid and training length of MAD's protocol
// (mad/configs.py: make_benchmark_mad_configs, MADConfig).
var (
	LRs          = []float64{1e-4, 5e-4, 1e-3}
	WeightDecays = []float64{0, 0.1}
)

const (
	Epochs          = 200
	BatchSize       = 128
	NumTestExamples = 1280
)

// The changes MAD's task configs share.
var (
	numTrainChange = Change{"num_train_examples", []string{"6400", "3200", "1600", "800"}}
	vocabChange    = Change{"vocab", []string{"32", "64", "128"}}
	recallSeqLens  = Change{"seq_len", []string{"256", "512", "1024"}}
)

// Suite returns the six MAD tasks with their changes (mad-lab
// configs/tasks/*.yml). The baselines are the registered tasks' defaults.
func Suite() []Task {
	return []Task{
		{"in_context_recall", "CR", "mad_in_context_recall", []Change{vocabChange, recallSeqLens, numTrainChange}},
		{"fuzzy_in_context_recall", "FR", "mad_fuzzy_in_context_recall", []Change{vocabChange, recallSeqLens, numTrainChange}},
		{"noisy_in_context_recall", "NR", "mad_noisy_in_context_recall", []Change{
			{"vocab", []string{"48", "80", "144"}}, // 16 of them noise ids, as MAD's baseline 32
			recallSeqLens, numTrainChange,
			{"frac_noise", []string{"0.4", "0.6", "0.8"}},
		}},
		{"selective_copying", "SC", "mad_selective_copying", []Change{
			vocabChange, {"seq_len", []string{"512", "1024"}}, numTrainChange,
			{"num_tokens", []string{"32", "64", "96"}},
		}},
		{"compression", "C", "mad_compression", []Change{vocabChange, {"seq_len", []string{"64", "128", "256"}}, numTrainChange}},
		{"memorization", "M", "mad_memorization", []Change{{"vocab", []string{"512", "1024", "2048", "4096", "8192"}}}},
	}
}

// Lookup finds a suite task by its suite name.
func Lookup(name string) (Task, error) {
	for _, t := range Suite() {
		if t.Name == name {
			return t, nil
		}
	}
	return Task{}, fmt.Errorf("unknown MAD task %q (known: %s)", name, strings.Join(TaskNames(), ", "))
}

// TaskNames lists the suite's task names in MAD's order.
func TaskNames() []string {
	var names []string
	for _, t := range Suite() {
		names = append(names, t.Name)
	}
	return names
}

// Settings lists the settings of a list of changes: the baseline, then one
// per change value, in order (MAD's order).
func Settings(changes []Change) []Setting {
	s := []Setting{{Name: "baseline"}}
	for _, c := range changes {
		for _, v := range c.Values {
			s = append(s, Setting{Name: c.Field + "=" + v, Field: c.Field, Value: v})
		}
	}
	return s
}

// NumRuns is the number of runs of the full protocol for one model.
func NumRuns() int {
	n := 0
	for _, t := range Suite() {
		n += len(Settings(t.Changes))
	}
	return n * len(LRs) * len(WeightDecays)
}

// taskOrder sorts suite task names in MAD's order, others after them by
// name.
func taskOrder(a, b string) int {
	names := TaskNames()
	ia, ib := slices.Index(names, a), slices.Index(names, b)
	switch {
	case ia >= 0 && ib >= 0:
		return ia - ib
	case ia >= 0:
		return -1
	case ib >= 0:
		return 1
	}
	return strings.Compare(a, b)
}
