package reports

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"seqbench/mad"
)

// An experiment folder can hold the runs of several versions of its
// experiment file: editing `steps` and rerunning into the same --out adds
// runs with new ids beside the old ones. Each run's config.yaml is its
// resolved config, and its summary's overrides name the settings its grid
// point sets; every other task and train setting comes from the file's
// fixed blocks (or follows from the task and grid point, as a MAD run's
// step count does), and so is the same in the runs of one version that
// share a task and a grid point's task settings (a cell). A run belongs to
// the current version when it agrees on these settings with the most
// recently started run of its cell, and the cell's task name with the
// most recently started run of all; the others come from earlier versions
// and are reported apart (Experiment.Earlier), or with the rest after
// Results.IncludeEarlier (`report --all`).
//
// Model settings are not compared: a models list may hold one architecture
// twice on purpose, so an edited model entry is not told from a second
// one. A cell that only earlier versions had (a grid value since removed)
// looks current.

// splitEarlier moves the runs of earlier versions of the experiment file
// from e.Runs to e.Earlier, each with what differs (Run.Differs).
func (e *Experiment) splitEarlier() {
	swept := map[string]bool{}
	for _, r := range e.Runs {
		for k := range r.Summary.Overrides {
			swept[k] = true
		}
	}
	var latest *Run
	latestOfCell := map[string]*Run{}
	for _, r := range e.Runs {
		if r.Config == nil {
			continue
		}
		if latest == nil || r.started.After(latest.started) {
			latest = r
		}
		c := cell(r, swept)
		if l := latestOfCell[c]; l == nil || r.started.After(l.started) {
			latestOfCell[c] = r
		}
	}
	if latest == nil {
		return
	}
	var current []*Run
	for _, r := range e.Runs {
		if r.Config != nil {
			r.Differs = fixedDifferences(r, latest, latestOfCell[cell(r, swept)], swept)
		}
		if len(r.Differs) == 0 {
			current = append(current, r)
		} else {
			e.Earlier = append(e.Earlier, r)
		}
	}
	e.Runs = current
}

// cell is r's task and the values of the task settings any grid point of
// the experiment sets (swept), from config.yaml: a run without a summary
// has no overrides of its own.
func cell(r *Run, swept map[string]bool) string {
	var b strings.Builder
	b.WriteString(r.Config["task.name"])
	for _, k := range sortedKeys(swept) {
		if strings.HasPrefix(k, "task.") {
			fmt.Fprintf(&b, "\x00%s=%s", k, r.Config[k])
		}
	}
	return b.String()
}

// fixedDifferences lists the fixed settings (see splitEarlier) in which r
// differs from the current version: the task's name against the latest
// run, the other task and train settings against the latest run of r's
// cell. Settings that either run's grid point sets are skipped. Each
// difference reads "key=value (now value)".
func fixedDifferences(r, latest, latestOfCell *Run, swept map[string]bool) []string {
	var out []string
	for _, k := range sortedKeys(r.Config) {
		ref := latestOfCell
		switch {
		case k == "task.name":
			ref = latest
		case strings.HasPrefix(k, "task."), strings.HasPrefix(k, "train."):
		default:
			continue // model settings, the experiment's name
		}
		if k == "task.name" && swept[mad.KeyTask] {
			continue // a MAD grid point names its task there
		}
		if isSwept(r, k, swept) || isSwept(ref, k, swept) {
			continue
		}
		if k == "train.steps" && r.Config["train.tokens_per_param"] != "" {
			continue // derived from the model's size (train.DeriveSteps)
		}
		want, ok := ref.Config[k]
		if got := r.Config[k]; ok && got != want {
			out = append(out, fmt.Sprintf("%s=%s (now %s)", k, got, want))
		}
	}
	return out
}

// isSwept reports whether r's grid point sets k: r's overrides say, or
// for a run without a summary the experiment's grid (swept).
func isSwept(r *Run, k string, swept map[string]bool) bool {
	if r.Status == StatusIncomplete || r.Status == StatusUnreadable {
		return swept[k]
	}
	_, ok := r.Summary.Overrides[k]
	return ok
}

// startTime is when a run last started: its summary's started_at, or for a
// run without one the time its config.yaml was written.
func (r *Run) startTime() time.Time {
	if !r.Summary.StartedAt.IsZero() {
		return r.Summary.StartedAt
	}
	if st, err := os.Stat(filepath.Join(r.Dir, configFile)); err == nil {
		return st.ModTime()
	}
	return time.Time{}
}

// IncludeEarlier puts the runs of earlier versions of each experiment file
// back among its runs, as `seqbench report --all` shows them.
func (res *Results) IncludeEarlier() {
	for _, e := range res.Experiments {
		for _, r := range e.Earlier {
			r.Differs = nil
		}
		e.Runs = append(e.Runs, e.Earlier...)
		e.Earlier = nil
	}
}

// earlierNote introduces the list of an experiment's earlier runs.
func earlierNote(e *Experiment) string {
	return fmt.Sprintf("%s in %s came from an earlier version of the experiment file (settings below, then "+
		"the current ones); they are left out of the tables and plots (`seqbench report --all` includes them):",
		plural(len(e.Earlier), "run"), e.Dir)
}

// earlierItems describes each earlier run: name, arch, status and the
// settings that differ.
func earlierItems(e *Experiment) []string {
	items := make([]string, len(e.Earlier))
	for i, r := range e.Earlier {
		items[i] = fmt.Sprintf("%s (%s, %s): %s", r.Name, r.Summary.Arch, r.Status, strings.Join(r.Differs, ", "))
	}
	return items
}
