// Package sweep reads experiment YAML files, checks them, and expands them
// into the list of runs they describe: one run per model block times every
// point of the optional grid.
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
}

// Experiment is a checked experiment: its name and its runs.
type Experiment struct {
	Name string
	Runs []train.Spec
}

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
	var f file
	if err := yaml.Load(data, &f, yaml.WithKnownFields()); err != nil {
		return nil, configErr("%w", err)
	}
	if !nameRE.MatchString(f.Name) {
		return nil, configErr("field name: %q is not allowed (letters, digits, '.', '_', '-'; it names the results folder)", f.Name)
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

// setting is one grid value at a dotted path.
type setting struct {
	path  string
	value *yaml.Node
}

type grid struct {
	paths  []string
	values [][]*yaml.Node
}

// parseGrid reads the sweep block: a mapping from dotted paths
// (task.X, train.X, model.X; `seed` is train.seed) to lists of values.
func parseGrid(n *yaml.Node) (*grid, error) {
	g := &grid{}
	if n.Kind == 0 {
		return g, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, configErr("line %d: field sweep: must map dotted paths (task.seq_len, train.lr, model.d_model, seed) to lists of values", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		path := key.Value
		if path == "seed" {
			path = "train.seed"
		}
		head, _, ok := strings.Cut(path, ".")
		if !ok || !slices.Contains([]string{"task", "train", "model"}, head) {
			return nil, configErr("line %d: field sweep.%s: not a dotted path starting with task., train. or model. (or `seed`)", key.Line, key.Value)
		}
		if val.Kind != yaml.SequenceNode || len(val.Content) == 0 {
			return nil, configErr("line %d: field sweep.%s: must be a non-empty list of values", val.Line, key.Value)
		}
		g.paths = append(g.paths, path)
		g.values = append(g.values, val.Content)
	}
	return g, nil
}

// points is the cartesian product of the grid, in file order with the last
// path varying fastest.
func (g *grid) points() [][]setting {
	out := [][]setting{nil}
	for i, path := range g.paths {
		var next [][]setting
		for _, p := range out {
			for _, v := range g.values[i] {
				next = append(next, append(slices.Clone(p), setting{path, v}))
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
		if err := set(target, strings.Split(rest, "."), clone(s.value)); err != nil {
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
	spec := train.Spec{
		Experiment: f.Name, Arch: yamlcfg.Value(modelN, "arch"), TaskName: yamlcfg.Value(taskN, "name"),
		Task: taskCfg, Model: modelCfg, Train: tc, Overrides: overrides,
	}
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
// on the way.
func set(n *yaml.Node, keys []string, value *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%q is not inside a mapping", keys[0])
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == keys[0] {
			if len(keys) == 1 {
				n.Content[i+1] = value
				return nil
			}
			return set(n.Content[i+1], keys[1:], value)
		}
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: keys[0]}
	if len(keys) == 1 {
		n.Content = append(n.Content, key, value)
		return nil
	}
	child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	n.Content = append(n.Content, key, child)
	return set(child, keys[1:], value)
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
