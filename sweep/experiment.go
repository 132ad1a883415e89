// Package sweep reads experiment YAML files, checks them, and expands them
// into the list of runs they describe: one run per model block times every
// point of the optional grid. Its executors train the runs: a local worker
// pool (RunLocal) or a Slurm job array (RunSlurm, whose tasks call
// RunWorker). Every executor skips runs whose summary says ok, so a sweep
// that stopped resumes where it stopped.
package sweep

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/internal/yamlcfg"
	"seqbench/tasks"
	"seqbench/train"
)

// ConfigError is an error in the experiment file: the command reports it and
// exits with status 2 before any run starts.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(format string, a ...any) error {
	return &ConfigError{fmt.Errorf(format, a...)}
}

// file is the raw shape of an experiment file; blocks stay YAML nodes until
// the grid has been applied and the registries decode them.
type file struct {
	Name   string      `yaml:"name"`
	Task   yaml.Node   `yaml:"task"`
	Train  yaml.Node   `yaml:"train"`
	Models []yaml.Node `yaml:"models"`
	Sweep  yaml.Node   `yaml:"sweep"`
	Slurm  yaml.Node   `yaml:"slurm"`
	// Kind is "" for a plain experiment or "mad" for the MAD suite, whose
	// `mad` block replaces `task` (see mad.go).
	Kind string    `yaml:"kind"`
	MAD  yaml.Node `yaml:"mad"`
}

// Experiment is a checked experiment: its name, its kind, its runs and the
// resources its Slurm jobs ask for (`sweep run --executor slurm`).
type Experiment struct {
	Name string
	// Kind is the file's `kind`: KindPlain or KindMAD (the MAD suite, whose
	// results `seqbench mad score` scores).
	Kind  string
	Runs  []train.Spec
	Slurm SlurmConfig
}

// Experiment kinds.
const (
	KindPlain = ""
	KindMAD   = "mad"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Load reads and expands an experiment file.
func Load(path string) (*Experiment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{err}
	}
	exp, err := Parse(data)
	if err != nil {
		return nil, &ConfigError{fmt.Errorf("%s: %w", path, err)}
	}
	return exp, nil
}

// Parse checks an experiment and expands it into runs. Every run is decoded
// and validated here, so a bad value anywhere fails before anything trains.
func Parse(data []byte) (*Experiment, error) {
	f, err := loadFile(data)
	if err != nil {
		return nil, err
	}
	if !nameRE.MatchString(f.Name) {
		return nil, configErr("field name: %q is not allowed (letters, digits, '.', '_', '-'; it names the results folder)", f.Name)
	}
	if f.Kind != "" || f.MAD.Kind != 0 {
		return parseKind(&f)
	}
	if f.Task.Kind == 0 {
		return nil, configErr("field task: missing (a block with `name` and the task's fields; tasks: %s)", strings.Join(tasks.Names(), ", "))
	}
	if len(f.Models) == 0 {
		return nil, configErr("field models: missing or empty (a list of model blocks; archs: %s)", strings.Join(arch.Names(), ", "))
	}
	grid, err := parseGrid(&f.Sweep)
	if err != nil {
		return nil, err
	}
	exp := &Experiment{Name: f.Name}
	if f.Slurm.Kind != 0 {
		if err := yamlcfg.Strict(&f.Slurm, &exp.Slurm); err != nil {
			return nil, configErr("slurm: %w", err)
		}
		if err := exp.Slurm.Validate(); err != nil {
			return nil, &ConfigError{yamlcfg.Locate(&f.Slurm, err)}
		}
	}
	ids := map[string]bool{}
	for mi := range f.Models {
		for _, point := range grid.points() {
			spec, err := resolve(&f, &f.Models[mi], point)
			if err != nil {
				return nil, err
			}
			if ids[spec.ID] {
				continue // the grid revisited an identical run
			}
			ids[spec.ID] = true
			exp.Runs = append(exp.Runs, spec)
		}
	}
	return exp, nil
}

// loadFile decodes the top level of an experiment file strictly: an
// unknown field is an error that lists the known ones.
func loadFile(data []byte) (file, error) {
	var f file
	var doc yaml.Node
	if err := yaml.Load(data, &doc); err != nil {
		return f, configErr("%w", err)
	}
	if len(doc.Content) == 0 {
		return f, nil // empty: the missing fields are reported next
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return f, configErr("line %d: an experiment file maps field names (name, task, train, models, ...) to values", top.Line)
	}
	if err := yamlcfg.Strict(top, &f); err != nil {
		return f, configErr("%w", err)
	}
	return f, nil
}

// setting is one grid value at a dotted path.
type setting struct {
	path  string
	value *yaml.Node
}

// grid is a list of axes; a point of the grid takes one value of every
// axis. A plain path is an axis whose values each set one field; a zip group
// is one axis whose values each set several fields together.
type grid struct {
	axes [][][]setting // axis -> value -> the settings it makes
}

// parseGrid reads the sweep block: a mapping from dotted paths
// (task.X, train.X, model.X; `seed` is train.seed) to lists of values, and
// optionally `zip`: a list of groups, each a mapping from paths to lists of
// one length whose i-th values go together (model.d_model with
// model.n_layers).
func parseGrid(n *yaml.Node) (*grid, error) {
	g := &grid{}
	if n.Kind == 0 {
		return g, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, configErr("line %d: field sweep: must map dotted paths (task.seq_len, train.lr, model.d_model, seed) to lists of values, plus an optional zip list", n.Line)
	}
	seen := map[string]int{} // path -> line of its first use
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value == "zip" {
			axes, err := parseZip(val, seen)
			if err != nil {
				return nil, err
			}
			g.axes = append(g.axes, axes...)
			continue
		}
		path, values, err := parseAxis(key, val, "sweep."+key.Value, seen)
		if err != nil {
			return nil, err
		}
		axis := make([][]setting, len(values))
		for j, v := range values {
			axis[j] = []setting{{path, v}}
		}
		g.axes = append(g.axes, axis)
	}
	return g, nil
}

// parseAxis checks one `path: [values]` entry and returns the canonical
// path and the values.
func parseAxis(key, val *yaml.Node, field string, seen map[string]int) (string, []*yaml.Node, error) {
	path := key.Value
	if path == "seed" {
		path = "train.seed"
	}
	head, _, ok := strings.Cut(path, ".")
	if !ok || !slices.Contains([]string{"task", "train", "model"}, head) {
		return "", nil, configErr("line %d: field %s: not a dotted path starting with task., train. or model. (or `seed`)", key.Line, field)
	}
	if line, dup := seen[path]; dup {
		return "", nil, configErr("line %d: field %s: %s is already swept on line %d (a path may appear once in the sweep block)", key.Line, field, path, line)
	}
	seen[path] = key.Line
	if val.Kind != yaml.SequenceNode || len(val.Content) == 0 {
		return "", nil, configErr("line %d: field %s: must be a non-empty list of values", val.Line, field)
	}
	return path, val.Content, nil
}

// parseZip reads `zip: [{path: [..], path: [..]}, ...]`: one axis per
// group, whose lists must have one length.
func parseZip(n *yaml.Node, seen map[string]int) ([][][]setting, error) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, configErr("line %d: field sweep.zip: must be a list of groups, each mapping paths to lists of one length (e.g. - {model.d_model: [64, 128], model.n_layers: [2, 4]})", n.Line)
	}
	var axes [][][]setting
	for gi, grp := range n.Content {
		if grp.Kind != yaml.MappingNode || len(grp.Content) == 0 {
			return nil, configErr("line %d: field sweep.zip[%d]: must map dotted paths to lists of values of one length", grp.Line, gi)
		}
		var axis [][]setting
		firstPath, firstLen := "", 0
		for i := 0; i+1 < len(grp.Content); i += 2 {
			key, val := grp.Content[i], grp.Content[i+1]
			field := fmt.Sprintf("sweep.zip[%d].%s", gi, key.Value)
			path, values, err := parseAxis(key, val, field, seen)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				firstPath, firstLen = path, len(values)
				axis = make([][]setting, len(values))
			} else if len(values) != firstLen {
				return nil, configErr("line %d: field %s: %d values is not allowed (the group zips it with %s, which has %d)", val.Line, field, len(values), firstPath, firstLen)
			}
			for j, v := range values {
				axis[j] = append(axis[j], setting{path, v})
			}
		}
		axes = append(axes, axis)
	}
	return axes, nil
}

// points is the cartesian product of the axes, in file order with the last
// axis varying fastest.
func (g *grid) points() [][]setting {
	out := [][]setting{nil}
	for _, axis := range g.axes {
		var next [][]setting
		for _, p := range out {
			for _, v := range axis {
				next = append(next, append(slices.Clip(p), v...))
			}
		}
		out = next
	}
	return out
}

// resolve applies one grid point to copies of the blocks, decodes them and
// returns the run.
func resolve(f *file, model *yaml.Node, point []setting) (train.Spec, error) {
	taskN, trainN, modelN := clone(&f.Task), clone(&f.Train), clone(model)
	overrides := map[string]string{}
	for _, s := range point {
		head, rest, _ := strings.Cut(s.path, ".")
		target := map[string]*yaml.Node{"task": taskN, "train": trainN, "model": modelN}[head]
		if target.Kind == 0 {
			*target = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		if err := set(target, strings.Split(rest, "."), clone(s.value), s.value.Line); err != nil {
			return train.Spec{}, configErr("line %d: field sweep.%s: %w", s.value.Line, s.path, err)
		}
		overrides[s.path] = s.value.Value
	}
	taskCfg, err := tasks.Decode(taskN)
	if err != nil {
		return train.Spec{}, &ConfigError{err}
	}
	tc := train.DefaultConfig()
	if trainN.Kind != 0 {
		if err := yamlcfg.Strict(trainN, &tc); err != nil {
			return train.Spec{}, configErr("train: %w", err)
		}
	}
	if err := tc.Validate(); err != nil {
		return train.Spec{}, &ConfigError{yamlcfg.Locate(trainN, err)}
	}
	modelCfg, err := arch.Decode(modelN)
	if err != nil {
		return train.Spec{}, &ConfigError{err}
	}
	if err := tc.DeriveSteps(arch.NonEmbeddingParams(modelCfg), taskCfg); err != nil {
		return train.Spec{}, &ConfigError{yamlcfg.Locate(trainN, err)}
	}
	spec := train.Spec{
		Experiment: f.Name, Arch: yamlcfg.Value(modelN, "arch"), TaskName: yamlcfg.Value(taskN, "name"),
		Task: taskCfg, Model: modelCfg, Train: tc, Overrides: overrides,
	}
	return identify(spec)
}

// identify sets a run's id, a hash of its resolved config (so adding values
// to a grid keeps the ids of the runs that existed), and its folder name.
func identify(spec train.Spec) (train.Spec, error) {
	resolved, err := spec.ResolvedYAML()
	if err != nil {
		return train.Spec{}, err
	}
	sum := sha256.Sum256(resolved)
	spec.ID = hex.EncodeToString(sum[:])[:10]
	spec.Name = spec.Arch + "-" + spec.ID
	return spec, nil
}

// set writes value at a key path inside a mapping node, creating mappings
// on the way; the keys it creates carry line (the sweep entry's), so that
// an error about them points there.
func set(n *yaml.Node, keys []string, value *yaml.Node, line int) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%q is not inside a mapping", keys[0])
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == keys[0] {
			if len(keys) == 1 {
				n.Content[i+1] = value
				return nil
			}
			return set(n.Content[i+1], keys[1:], value, line)
		}
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: keys[0], Line: line, Column: 1}
	if len(keys) == 1 {
		n.Content = append(n.Content, key, value)
		return nil
	}
	child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line, Column: 1}
	n.Content = append(n.Content, key, child)
	return set(child, keys[1:], value, line)
}

func clone(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = clone(ch)
	}
	return &c
}

// Describe lists the swept values of a run as "k=v k=v" (sorted).
func Describe(s train.Spec) string {
	keys := make([]string, 0, len(s.Overrides))
	for k := range s.Overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", k, s.Overrides[k])
	}
	return b.String()
}
