package mad

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"seqbench/train"
)

// The overrides the `mad` experiment kind records in every run (beside the
// changed task field, train.lr and train.weight_decay), so that the score
// can group runs without reading their configs.
const (
	KeyTask    = "mad.task"    // the suite task name
	KeySetting = "mad.setting" // the setting name ("baseline", "vocab=32")
	KeyModel   = "mad.model"   // a label of the model block
)

// Metric is the summary field a run is scored by.
type Metric string

const (
	// BestAccuracy is the best evaluation accuracy over the run's
	// evaluations. MAD scores the checkpoint with the lowest test
	// perplexity (its ModelCheckpoint, which trainer.validate loads), so
	// this can be slightly above MAD's number for the same run.
	BestAccuracy Metric = "best_accuracy"
	// FinalAccuracy is the accuracy at the last evaluation.
	FinalAccuracy Metric = "final_accuracy"
	// SelectedAccuracy and SelectedMacroAccuracy are the micro and macro
	// accuracy at the run's selected evaluation (train.select). MAD's
	// protocol is SelectedMacroAccuracy with select: loss: torchmetrics'
	// macro accuracy at the checkpoint of lowest test loss. A run without
	// a selection (an older summary) is not scored.
	SelectedAccuracy      Metric = "selected_accuracy"
	SelectedMacroAccuracy Metric = "selected_macro_accuracy"
)

var metrics = []Metric{BestAccuracy, FinalAccuracy, SelectedAccuracy, SelectedMacroAccuracy}

func (m Metric) of(s train.Summary) float64 {
	switch m {
	case FinalAccuracy:
		return s.FinalAccuracy
	case SelectedAccuracy, SelectedMacroAccuracy:
		if s.Selected == nil {
			return math.NaN()
		}
		if m == SelectedAccuracy {
			return s.Selected.Accuracy
		}
		return s.Selected.MacroAccuracy
	}
	return s.BestAccuracy
}

// ParseMetric checks a metric name.
func ParseMetric(s string) (Metric, error) {
	if m := Metric(s); slices.Contains(metrics, m) {
		return m, nil
	}
	names := make([]string, len(metrics))
	for i, m := range metrics {
		names[i] = string(m)
	}
	return "", fmt.Errorf("metric %q is not allowed (one of %s)", s, strings.Join(names, ", "))
}

// SettingScore is the score of one task setting: the best metric over the
// LR×WD grid among the runs that finished ok.
type SettingScore struct {
	Setting string
	Score   float64 // NaN when no run of the setting finished ok
	LR, WD  string  // the grid point of the best run
	Runs    int     // runs of the setting found
	OK      int     // of which finished ok
}

// TaskScore is one task's score: the mean over its scored settings.
type TaskScore struct {
	Task     string
	Score    float64 // NaN when no setting is scored
	Settings []SettingScore
	Scored   int // settings with a score
}

// ModelScore is the MAD score of one model variant.
type ModelScore struct {
	Model   string
	Tasks   []TaskScore // in MAD's task order
	Overall float64     // mean of the scored tasks' scores
}

// Report is the MAD score of every model variant of a results folder.
type Report struct {
	Metric Metric
	Models []ModelScore
	// Tasks are the task names found, in MAD's order: the table's columns.
	Tasks []string
	// Skipped lists summary files that could not be read.
	Skipped []string
}

// ErrNoRuns is returned when a folder holds no run of a `mad` experiment.
var ErrNoRuns = errors.New("no runs of a `mad` experiment (summary.json files whose overrides name mad.task and mad.setting)")

// Load reads every summary.json under dir (any depth) that belongs to a run
// of a `mad` experiment; unreadable ones are listed in skipped.
func Load(dir string) (sums []train.Summary, skipped []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "summary.json" {
			return nil
		}
		s, err := train.ReadSummary(filepath.Dir(path))
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", path, err))
			return nil
		}
		if s.Overrides[KeyTask] != "" && s.Overrides[KeySetting] != "" {
			sums = append(sums, s)
		}
		return nil
	})
	return sums, skipped, err
}

// Score loads a results folder and computes its report; ErrNoRuns when it
// holds no MAD run.
func Score(dir string, metric Metric) (*Report, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	sums, skipped, err := Load(dir)
	if err != nil {
		return nil, err
	}
	rep, err := Compute(sums, metric)
	if err != nil {
		return nil, err
	}
	rep.Skipped = skipped
	return rep, nil
}

// modelKey is what tells model variants apart: the experiment, the model
// label and every override that is not part of the MAD protocol (a swept
// model size or seed).
func modelKey(s train.Summary) (experiment, label string) {
	label = s.Overrides[KeyModel]
	if label == "" {
		label = s.Arch
	}
	var extra []string
	for k, v := range s.Overrides {
		if strings.HasPrefix(k, "mad.") || strings.HasPrefix(k, "task.") || k == "train.lr" || k == "train.weight_decay" {
			continue
		}
		extra = append(extra, k+"="+v)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		label += " " + strings.Join(extra, " ")
	}
	return s.Experiment, label
}

// Compute groups runs by model variant, task and setting and scores them:
// per setting the best metric over the runs that finished ok, per task the
// mean over scored settings, overall the mean over scored tasks.
func Compute(sums []train.Summary, metric Metric) (*Report, error) {
	if len(sums) == 0 {
		return nil, ErrNoRuns
	}
	type variant struct{ experiment, label string }
	byModel := map[variant]map[string]map[string][]train.Summary{}
	experiments := map[string]bool{}
	taskSet := map[string]bool{}
	for _, s := range sums {
		e, l := modelKey(s)
		v := variant{e, l}
		experiments[e] = true
		if byModel[v] == nil {
			byModel[v] = map[string]map[string][]train.Summary{}
		}
		task, setting := s.Overrides[KeyTask], s.Overrides[KeySetting]
		taskSet[task] = true
		if byModel[v][task] == nil {
			byModel[v][task] = map[string][]train.Summary{}
		}
		byModel[v][task][setting] = append(byModel[v][task][setting], s)
	}
	rep := &Report{Metric: metric}
	for t := range taskSet {
		rep.Tasks = append(rep.Tasks, t)
	}
	slices.SortFunc(rep.Tasks, taskOrder)
	variants := make([]variant, 0, len(byModel))
	for v := range byModel {
		variants = append(variants, v)
	}
	slices.SortFunc(variants, func(a, b variant) int {
		return strings.Compare(a.experiment+"\x00"+a.label, b.experiment+"\x00"+b.label)
	})
	for _, v := range variants {
		ms := ModelScore{Model: v.label}
		if len(experiments) > 1 {
			ms.Model = v.experiment + ": " + v.label
		}
		var taskMeans []float64
		for _, task := range rep.Tasks {
			settings := byModel[v][task]
			if settings == nil {
				continue
			}
			ts := TaskScore{Task: task}
			var means []float64
			for _, name := range sortedSettings(task, settings) {
				ss := scoreSetting(name, settings[name], metric)
				ts.Settings = append(ts.Settings, ss)
				if !math.IsNaN(ss.Score) {
					means = append(means, ss.Score)
				}
			}
			ts.Scored, ts.Score = len(means), mean(means)
			if ts.Scored > 0 {
				taskMeans = append(taskMeans, ts.Score)
			}
			ms.Tasks = append(ms.Tasks, ts)
		}
		ms.Overall = mean(taskMeans)
		rep.Models = append(rep.Models, ms)
	}
	return rep, nil
}

// scoreSetting takes the best run of a setting's grid.
func scoreSetting(name string, runs []train.Summary, metric Metric) SettingScore {
	ss := SettingScore{Setting: name, Score: math.NaN(), Runs: len(runs)}
	for _, r := range runs {
		if r.Status != train.StatusOK {
			continue
		}
		ss.OK++
		if v := metric.of(r); math.IsNaN(ss.Score) || v > ss.Score {
			ss.Score, ss.LR, ss.WD = v, r.Overrides["train.lr"], r.Overrides["train.weight_decay"]
		}
	}
	return ss
}

// sortedSettings orders a task's settings as the suite lists them
// (baseline first), unknown ones after, by name.
func sortedSettings(task string, settings map[string][]train.Summary) []string {
	var order []string
	if t, err := Lookup(task); err == nil {
		for _, s := range Settings(t.Changes) {
			order = append(order, s.Name)
		}
	}
	names := make([]string, 0, len(settings))
	for n := range settings {
		names = append(names, n)
	}
	// order[0] is the baseline.
	rank := func(n string) int {
		if i := slices.Index(order, n); i >= 0 {
			return i
		}
		if n == "baseline" {
			return 0
		}
		return len(order) + 1
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return compareNatural(a, b)
	})
	return names
}

// compareNatural orders "vocab=32" before "vocab=128": same field, numeric
// values compared as numbers.
func compareNatural(a, b string) int {
	fa, va, _ := strings.Cut(a, "=")
	fb, vb, _ := strings.Cut(b, "=")
	if fa != fb {
		return strings.Compare(fa, fb)
	}
	var x, y float64
	if _, err := fmt.Sscan(va, &x); err == nil {
		if _, err := fmt.Sscan(vb, &y); err == nil && x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(va, vb)
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func short(task string) string {
	if t, err := Lookup(task); err == nil {
		return t.Short
	}
	return task
}

func cell(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

// WriteTable writes the score table: a row per model variant, a column per
// task and the overall score. A task score marked '*' averages fewer
// settings than were run (some setting had no run that finished ok); an
// overall score marked '*' averages fewer tasks than the table has.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "MAD score (%s: per setting the best over the LR×WD grid, mean over a task's settings; overall: mean over tasks)\n\n", r.Metric)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"model"}
	for _, t := range r.Tasks {
		head = append(head, short(t))
	}
	fmt.Fprintln(tw, strings.Join(append(head, "overall"), "\t"))
	marked := false
	for _, m := range r.Models {
		row := []string{m.Model}
		scored := 0
		for _, t := range r.Tasks {
			c := "-"
			for _, ts := range m.Tasks {
				if ts.Task != t {
					continue
				}
				c = cell(ts.Score)
				if ts.Scored > 0 {
					scored++
				}
				if ts.Scored < len(ts.Settings) && ts.Scored > 0 {
					c += "*"
					marked = true
				}
			}
			row = append(row, c)
		}
		o := cell(m.Overall)
		if scored < len(r.Tasks) && scored > 0 {
			o += "*"
			marked = true
		}
		fmt.Fprintln(tw, strings.Join(append(row, o), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var legend []string
	for _, t := range r.Tasks {
		legend = append(legend, short(t)+" "+t)
	}
	fmt.Fprintf(w, "\n%s\n", strings.Join(legend, ", "))
	if marked {
		fmt.Fprintln(w, "* averages only the settings (tasks) that have a run that finished ok; `mad score --settings` lists them")
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
	return nil
}

// WriteSettings writes every setting's score with its best grid point and
// how many of its runs finished ok.
func (r *Report) WriteSettings(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\ttask\tsetting\tscore\tlr\tweight_decay\truns ok")
	for _, m := range r.Models {
		for _, ts := range m.Tasks {
			for _, ss := range ts.Settings {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\n", m.Model, ts.Task, ss.Setting, cell(ss.Score), ss.LR, ss.WD, ss.OK, ss.Runs)
			}
		}
	}
	return tw.Flush()
}
