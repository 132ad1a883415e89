package reports

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"seqbench/train"
)

// Statuses a run can have here besides train's ok, failed and diverged.
const (
	// StatusIncomplete: config.yaml or metrics.jsonl but no summary.json, so
	// the run is still going or was killed before it could write one.
	StatusIncomplete = "incomplete"
	// StatusUnreadable: summary.json exists but does not parse.
	StatusUnreadable = "unreadable"
)

// The files of a run folder (docs/DESIGN.md "Results on disk").
const (
	summaryFile = "summary.json"
	configFile  = "config.yaml"
	metricsFile = "metrics.jsonl"
)

// Run is one run folder as read from disk.
type Run struct {
	Dir  string
	Name string // the folder name, <arch>-<id>
	// Summary is summary.json; for an incomplete run only Arch, Task, Steps
	// and Tokens are filled in, from config.yaml and metrics.jsonl.
	Summary train.Summary
	// Config is config.yaml flattened to dotted paths ("model.d_state" ->
	// "16"); nil when the file is missing.
	Config  map[string]string
	Metrics []train.Metrics
	// Status is the summary's status, StatusIncomplete or StatusUnreadable;
	// Reason says why a run is not ok.
	Status, Reason string
	// Differs lists, for a run of an earlier version of the experiment
	// file, the settings that differ from the current version's.
	Differs []string
	started time.Time // see startTime
}

// OK reports whether the run finished normally; only such runs are drawn.
func (r *Run) OK() bool { return r.Status == train.StatusOK }

// Setting is the run's value of a dotted config path: config.yaml where the
// run has one, else the summary's overrides.
func (r *Run) Setting(key string) (string, bool) {
	if r.Config != nil {
		v, ok := r.Config[key]
		return v, ok
	}
	v, ok := r.Summary.Overrides[key]
	return v, ok
}

// settingKeys lists the dotted paths Setting knows for this run.
func (r *Run) settingKeys() []string {
	if r.Config != nil {
		return sortedKeys(r.Config)
	}
	return sortedKeys(r.Summary.Overrides)
}

// Experiment is the runs of one experiment folder: those of the current
// version of its experiment file, and apart those of earlier versions
// (earlier.go).
type Experiment struct {
	Name    string
	Dir     string
	Runs    []*Run
	Earlier []*Run
}

// Results is everything under a results folder.
type Results struct {
	Dir         string
	Experiments []*Experiment
	Bench       []BenchResult
	// Warnings are problems that did not stop the report (unparsable
	// lines, unreadable files); they are shown with it.
	Warnings []string
}

// ErrNoResults is returned (wrapped) by Load for a folder without runs or
// bench files.
var ErrNoResults = errors.New("no results")

// Load reads a results folder: a results root (DIR/<experiment>/<run>/), one
// experiment folder (DIR/<run>/) or one run folder, plus any *.bench.json
// files below DIR. A run folder is one holding summary.json, config.yaml or
// metrics.jsonl. Unreadable pieces become warnings or run statuses; only a
// folder that cannot be read or holds nothing is an error.
func Load(dir string) (*Results, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	res := &Results{Dir: dir}
	if isRunDir(dir) {
		abs, _ := filepath.Abs(dir)
		exp := &Experiment{Name: filepath.Base(filepath.Dir(abs)), Dir: filepath.Dir(dir)}
		exp.Runs = []*Run{res.loadRun(dir)}
		res.Experiments = []*Experiment{exp}
	} else if runs := runDirs(dir); len(runs) > 0 {
		abs, _ := filepath.Abs(dir)
		res.Experiments = []*Experiment{res.loadExperiment(filepath.Base(abs), dir, runs)}
	} else {
		for _, sub := range subDirs(dir) {
			if runs := runDirs(sub); len(runs) > 0 {
				res.Experiments = append(res.Experiments, res.loadExperiment(filepath.Base(sub), sub, runs))
			}
		}
	}
	if err := res.loadBench(dir); err != nil {
		return nil, err
	}
	if len(res.Experiments) == 0 && len(res.Bench) == 0 {
		return nil, fmt.Errorf("%w in %s: expected run folders holding summary.json, config.yaml or metrics.jsonl "+
			"(DIR/<experiment>/<run>/ as `seqbench run` writes them), or *.bench.json files", ErrNoResults, dir)
	}
	return res, nil
}

func isRunDir(dir string) bool {
	for _, f := range []string{summaryFile, configFile, metricsFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// subDirs lists dir's subfolders, sorted, skipping hidden ones.
func subDirs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func runDirs(dir string) []string {
	var out []string
	for _, sub := range subDirs(dir) {
		if isRunDir(sub) {
			out = append(out, sub)
		}
	}
	return out
}

func (res *Results) warnf(format string, a ...any) {
	res.Warnings = append(res.Warnings, fmt.Sprintf(format, a...))
}

func (res *Results) loadExperiment(name, dir string, runDirs []string) *Experiment {
	exp := &Experiment{Name: name, Dir: dir}
	for _, d := range runDirs {
		exp.Runs = append(exp.Runs, res.loadRun(d))
	}
	exp.splitEarlier()
	return exp
}

// flattenConfig is config.yaml's data flattened to dotted paths, with the
// settings reports derive for hybrids (addHybridSettings).
func flattenConfig(data []byte) (map[string]string, error) {
	cfg, err := flattenYAML(data)
	if err != nil {
		return nil, err
	}
	addHybridSettings(data, cfg)
	return cfg, nil
}

// runConfig is run folder dir's flattened config.yaml; nil when it is
// missing or does not decode.
func runConfig(dir string) map[string]string {
	data, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil
	}
	cfg, _ := flattenConfig(data)
	return cfg
}

// loadRun reads one run folder; it never fails, a broken run gets a status
// and reason instead.
func (res *Results) loadRun(dir string) *Run {
	r := &Run{Dir: dir, Name: filepath.Base(dir)}
	if data, err := os.ReadFile(filepath.Join(dir, configFile)); err == nil {
		if r.Config, err = flattenConfig(data); err != nil {
			res.warnf("%s: %v", filepath.Join(dir, configFile), err)
		}
	}
	r.Metrics = res.loadMetrics(filepath.Join(dir, metricsFile))
	data, err := os.ReadFile(filepath.Join(dir, summaryFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Status, r.Reason = StatusIncomplete, "no summary.json (still running, or killed)"
	case err != nil:
		r.Status, r.Reason = StatusUnreadable, err.Error()
	default:
		if err := json.Unmarshal(data, &r.Summary); err != nil {
			r.Summary = train.Summary{}
			r.Status, r.Reason = StatusUnreadable, "summary.json: "+err.Error()
		} else {
			r.Status, r.Reason = r.Summary.Status, r.Summary.Reason
			if r.Status == "" {
				r.Status = StatusUnreadable
				r.Reason = "summary.json has no status"
			}
		}
	}
	if r.Status == StatusIncomplete || r.Status == StatusUnreadable {
		r.fillFromMetrics()
	}
	if r.Summary.Arch == "" {
		r.Summary.Arch = "?"
	}
	r.started = r.startTime()
	return r
}

// fillFromMetrics stands in for a missing summary: what config.yaml and
// metrics.jsonl say of the run so far (its progress, its last evaluation).
func (r *Run) fillFromMetrics() {
	nan := train.Num(math.NaN())
	s := &r.Summary
	s.Run = r.Name
	s.Arch, _ = r.Setting(archKey)
	s.Task, _ = r.Setting("task.name")
	s.FinalLoss, s.BestLoss, s.TrainLoss = nan, nan, nan
	for _, m := range r.Metrics {
		s.Steps, s.Tokens, s.WallSeconds, s.TrainSeconds = m.Step, m.Tokens, m.WallSeconds, m.TrainSeconds
		s.TrainLoss = m.Loss
		if m.EvalLoss != nil && m.EvalAccuracy != nil {
			s.FinalLoss, s.FinalAccuracy = *m.EvalLoss, *m.EvalAccuracy
			if math.IsNaN(float64(s.BestLoss)) || *m.EvalLoss < s.BestLoss {
				s.BestLoss = *m.EvalLoss
			}
			s.BestAccuracy = max(s.BestAccuracy, *m.EvalAccuracy)
		}
	}
	s.SetTokensPerSec()
}

// loadMetrics reads metrics.jsonl, skipping lines that do not parse (a run
// killed mid-write leaves a torn last line).
func (res *Results) loadMetrics(path string) []train.Metrics {
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			res.warnf("%s: %v", path, err)
		}
		return nil
	}
	defer f.Close()
	var out []train.Metrics
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	bad, line := 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var m train.Metrics
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			bad++
			continue
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		res.warnf("%s: %v", path, err)
	}
	if bad > 0 {
		res.warnf("%s: skipped %d of %d lines that are not valid JSON", path, bad, line)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	return out
}

// flattenYAML turns a YAML mapping into dotted paths -> scalar text; lists
// are written as YAML flow sequences.
func flattenYAML(data []byte) (map[string]string, error) {
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, sub := range x {
				walk(joinKey(prefix, k), sub)
			}
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = scalarText(e)
			}
			out[prefix] = "[" + strings.Join(parts, ", ") + "]"
		default:
			out[prefix] = scalarText(x)
		}
	}
	walk("", root)
	return out, nil
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func scalarText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case map[string]any: // a list entry such as an MQAR curriculum setting
		parts := make([]string, 0, len(x))
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+": "+scalarText(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	default:
		return fmt.Sprint(x)
	}
}

// okRuns returns the runs that finished normally.
func (e *Experiment) okRuns() []*Run {
	var out []*Run
	for _, r := range e.Runs {
		if r.OK() {
			out = append(out, r)
		}
	}
	return out
}

// counts returns how many runs have each status, statuses sorted.
func (e *Experiment) counts() (statuses []string, n map[string]int) {
	n = map[string]int{}
	for _, r := range e.Runs {
		n[r.Status]++
	}
	statuses = sortedKeys(n)
	slices.SortStableFunc(statuses, func(a, b string) int {
		// ok first, then the rest alphabetically
		return boolCmp(a != train.StatusOK, b != train.StatusOK)
	})
	return statuses, n
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
