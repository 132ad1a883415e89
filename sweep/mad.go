package sweep

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/internal/yamlcfg"
	"seqbench/mad"
	"seqbench/tasks"
	"seqbench/train"
)

// madBlock is the `mad` block of a `kind: mad` experiment. Every field is
// optional; the defaults are MAD's protocol.
//
//	kind: mad
//	mad:
//	  lrs: [1.0e-4, 5.0e-4, 1.0e-3]   # MAD's grid (the default)
//	  weight_decays: [0.0, 0.1]
//	  epochs: 200            # steps = epochs × ceil(num_train_examples / batch_size); 0: train.steps
//	  eval_every_epochs: 1   # eval_every in epochs (needs epochs); 0: train.eval_every
//	  tasks:                 # omitted: all six tasks, MAD's settings
//	    in_context_recall:
//	      baseline: {seq_len: 64}   # fields changed in the baseline (and so in every setting)
//	      changes: {vocab: [32]}    # replaces MAD's changes; {} runs the baseline only
//	    memorization: {}            # listed: MAD's baseline and changes
//
// The experiment has no `task` block, and its sweep block may not set
// task.*, train.lr or train.weight_decay (the suite does), nor, with
// epochs, train.steps or train.eval_every. train.eval_batches is always
// set to num_test_examples / batch_size, so every evaluation covers the
// test set once.
type madBlock struct {
	Tasks           yaml.Node  `yaml:"tasks"`
	LRs             *[]float64 `yaml:"lrs"`
	WeightDecays    *[]float64 `yaml:"weight_decays"`
	Epochs          int        `yaml:"epochs"`
	EvalEveryEpochs int        `yaml:"eval_every_epochs"`
}

type madTaskBlock struct {
	Baseline yaml.Node `yaml:"baseline"`
	Changes  yaml.Node `yaml:"changes"`
}

// madPlan is one suite task as the experiment runs it.
type madPlan struct {
	task     mad.Task
	baseline *yaml.Node // the task block of the baseline: name and changed fields
	settings []madSetting
}

type madSetting struct {
	mad.Setting
	value *yaml.Node // the changed field's value (nil for the baseline)
}

// parseKind handles the experiment kinds other than the plain one.
func parseKind(f *file) (*Experiment, error) {
	switch f.Kind {
	case KindMAD:
		return parseMAD(f)
	case KindPlain:
		return nil, configErr("line %d: field mad: not allowed in a plain experiment (add `kind: mad` to run the MAD suite)", f.MAD.Line)
	}
	return nil, configErr("field kind: %q is not allowed (absent or \"\" for a plain experiment, or \"mad\" for the MAD suite)", f.Kind)
}

// parseMAD expands a `kind: mad` experiment into one run per model block,
// sweep point, suite task, setting, learning rate and weight decay.
func parseMAD(f *file) (*Experiment, error) {
	if f.Task.Kind != 0 {
		return nil, configErr("line %d: field task: not allowed in a `kind: mad` experiment (the suite sets the tasks; change them under mad.tasks)", f.Task.Line)
	}
	if len(f.Models) == 0 {
		return nil, configErr("field models: missing or empty (a list of model blocks; archs: %s)", strings.Join(arch.Names(), ", "))
	}
	var mb madBlock
	if f.MAD.Kind != 0 {
		if err := yamlcfg.Strict(&f.MAD, &mb); err != nil {
			return nil, configErr("mad: %w", err)
		}
	}
	lrs, wds, err := madGrid(&mb, f.MAD.Line)
	if err != nil {
		return nil, err
	}
	if mb.Epochs < 0 || mb.Epochs > 1<<20 {
		return nil, configErr("line %d: field mad.epochs: %d is not allowed (must be in [0, 2^20]; 0 trains train.steps steps)", f.MAD.Line, mb.Epochs)
	}
	if mb.EvalEveryEpochs < 0 || (mb.EvalEveryEpochs > 0 && mb.Epochs == 0) {
		return nil, configErr("line %d: field mad.eval_every_epochs: %d is not allowed (must be >= 0, and 0 unless mad.epochs is set)", f.MAD.Line, mb.EvalEveryEpochs)
	}
	plans, err := madPlans(&mb.Tasks)
	if err != nil {
		return nil, err
	}
	grid, err := parseGrid(&f.Sweep)
	if err != nil {
		return nil, err
	}
	if err := checkMADGrid(grid, mb.Epochs > 0); err != nil {
		return nil, err
	}
	exp := &Experiment{Name: f.Name, Kind: KindMAD}
	if f.Slurm.Kind != 0 {
		if err := yamlcfg.Strict(&f.Slurm, &exp.Slurm); err != nil {
			return nil, configErr("slurm: %w", err)
		}
		if err := exp.Slurm.Validate(); err != nil {
			return nil, &ConfigError{yamlcfg.Locate(&f.Slurm, err)}
		}
	}
	ids := map[string]string{} // run ID -> the task and setting that made it
	for mi := range f.Models {
		label := modelLabel(&f.Models[mi])
		for _, point := range grid.points() {
			for _, p := range plans {
				for _, s := range p.settings {
					for _, lr := range lrs {
						for _, wd := range wds {
							spec, err := resolveMAD(f, &f.Models[mi], point, p, s, lr, wd, &mb)
							if err != nil {
								return nil, err
							}
							spec.Overrides[mad.KeyTask], spec.Overrides[mad.KeySetting], spec.Overrides[mad.KeyModel] = p.task.Name, s.Name, label
							what := p.task.Name + " " + s.Name
							if prev, dup := ids[spec.ID]; dup {
								if prev != what {
									return nil, configErr("mad: task %s, setting %s: the same run as %s (a change value equal to the baseline's?)", p.task.Name, s.Name, prev)
								}
								continue // the grid revisited an identical run
							}
							ids[spec.ID] = what
							exp.Runs = append(exp.Runs, spec)
						}
					}
				}
			}
		}
	}
	return exp, nil
}

// madGrid returns the learning rates and weight decays as YAML scalars.
func madGrid(mb *madBlock, line int) (lrs, wds []*yaml.Node, err error) {
	pick := func(field string, list *[]float64, def []float64, ok func(float64) bool, allowed string) ([]*yaml.Node, error) {
		vals := def
		if list != nil {
			vals = *list
		}
		if len(vals) == 0 {
			return nil, configErr("line %d: field mad.%s: an empty list is not allowed (omit it for MAD's %v)", line, field, def)
		}
		var nodes []*yaml.Node
		for i, v := range vals {
			if !ok(v) || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, configErr("line %d: field mad.%s: %v (entry %d) is not allowed (%s)", line, field, v, i, allowed)
			}
			if slices.Contains(vals[:i], v) {
				return nil, configErr("line %d: field mad.%s: %v (entry %d) is not allowed (listed twice)", line, field, v, i)
			}
			nodes = append(nodes, scalar(strconv.FormatFloat(v, 'g', -1, 64)))
		}
		return nodes, nil
	}
	if lrs, err = pick("lrs", mb.LRs, mad.LRs, func(v float64) bool { return v > 0 }, "learning rates must be > 0"); err != nil {
		return nil, nil, err
	}
	wds, err = pick("weight_decays", mb.WeightDecays, mad.WeightDecays, func(v float64) bool { return v >= 0 }, "weight decays must be >= 0")
	return lrs, wds, err
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

// madPlans reads mad.tasks: which suite tasks run, with which baseline
// fields and changes.
func madPlans(n *yaml.Node) ([]madPlan, error) {
	if n.Kind == 0 {
		var plans []madPlan
		for _, t := range mad.Suite() {
			p, err := madPlanOf(t, nil)
			if err != nil {
				return nil, err
			}
			plans = append(plans, p)
		}
		return plans, nil
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return nil, configErr("line %d: field mad.tasks: must map suite task names (%s) to {baseline: {...}, changes: {...}} blocks", n.Line, strings.Join(mad.TaskNames(), ", "))
	}
	var plans []madPlan
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		t, err := mad.Lookup(key.Value)
		if err != nil {
			return nil, configErr("line %d: field mad.tasks: %w", key.Line, err)
		}
		for _, p := range plans {
			if p.task.Name == t.Name {
				return nil, configErr("line %d: field mad.tasks.%s: listed twice", key.Line, t.Name)
			}
		}
		var tb madTaskBlock
		if !(val.Kind == yaml.ScalarNode && val.Tag == "!!null") {
			if err := yamlcfg.Strict(val, &tb); err != nil {
				return nil, configErr("mad.tasks.%s: %w", t.Name, err)
			}
		}
		p, err := madPlanOf(t, &tb)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// madPlanOf builds a task's plan from its (optional) block.
func madPlanOf(t mad.Task, tb *madTaskBlock) (madPlan, error) {
	p := madPlan{task: t, baseline: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}}
	p.baseline.Content = append(p.baseline.Content, scalar("name"), scalar(t.TaskName))
	field := "mad.tasks." + t.Name
	if tb != nil && tb.Baseline.Kind != 0 {
		b := &tb.Baseline
		if b.Kind != yaml.MappingNode {
			return p, configErr("line %d: field %s.baseline: must map task fields to values", b.Line, field)
		}
		p.baseline.Line = b.Line
		for i := 0; i+1 < len(b.Content); i += 2 {
			if b.Content[i].Value == "name" {
				return p, configErr("line %d: field %s.baseline.name: not allowed (the suite names the task: %s)", b.Content[i].Line, field, t.TaskName)
			}
			p.baseline.Content = append(p.baseline.Content, clone(b.Content[i]), clone(b.Content[i+1]))
		}
	}
	p.settings = []madSetting{{Setting: mad.Setting{Name: "baseline"}}}
	if tb == nil || tb.Changes.Kind == 0 {
		for _, s := range mad.Settings(t.Changes)[1:] {
			p.settings = append(p.settings, madSetting{s, scalar(s.Value)})
		}
		return p, nil
	}
	c := &tb.Changes
	if c.Kind != yaml.MappingNode {
		return p, configErr("line %d: field %s.changes: must map task fields to lists of values ({} for the baseline only)", c.Line, field)
	}
	for i := 0; i+1 < len(c.Content); i += 2 {
		key, val := c.Content[i], c.Content[i+1]
		if key.Value == "name" {
			return p, configErr("line %d: field %s.changes.name: not allowed (the suite names the task)", key.Line, field)
		}
		if val.Kind != yaml.SequenceNode || len(val.Content) == 0 {
			return p, configErr("line %d: field %s.changes.%s: must be a non-empty list of values", val.Line, field, key.Value)
		}
		// Check the field name here, where its line is known (the run's
		// task block gets a copy of the key without one).
		spec, err := tasks.Lookup(t.TaskName)
		if err != nil {
			return p, configErr("%s: %w", field, err)
		}
		probe := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{clone(key), clone(val.Content[0])}}
		if err := yamlcfg.Strict(probe, spec.New()); err != nil && strings.Contains(err.Error(), "unknown field") {
			return p, configErr("%s.changes: %w", field, err)
		}
		for _, v := range val.Content {
			if v.Kind != yaml.ScalarNode {
				return p, configErr("line %d: field %s.changes.%s: values must be scalars", v.Line, field, key.Value)
			}
			s := mad.Setting{Name: key.Value + "=" + v.Value, Field: key.Value, Value: v.Value}
			for _, prev := range p.settings {
				if prev.Name == s.Name {
					return p, configErr("line %d: field %s.changes.%s: %s listed twice", v.Line, field, key.Value, v.Value)
				}
			}
			p.settings = append(p.settings, madSetting{s, v})
		}
	}
	return p, nil
}

// checkMADGrid rejects sweep paths the suite sets itself.
func checkMADGrid(g *grid, epochs bool) error {
	for _, axis := range g.axes {
		for _, s := range axis[0] {
			why := ""
			switch {
			case strings.HasPrefix(s.path, "task."):
				why = "the suite sets the tasks; change them under mad.tasks"
			case s.path == "train.lr" || s.path == "train.weight_decay":
				why = "the suite sweeps them; set mad.lrs and mad.weight_decays"
			case s.path == "train.eval_batches":
				why = "the suite evaluates the whole test set: num_test_examples / batch_size batches"
			case epochs && (s.path == "train.steps" || s.path == "train.eval_every"):
				why = "mad.epochs sets them; set mad.epochs to 0 to sweep them"
			}
			if why != "" {
				return configErr("line %d: field sweep.%s: not allowed in a `kind: mad` experiment (%s)", s.value.Line, s.path, why)
			}
		}
	}
	return nil
}

// resolveMAD resolves one run of the suite: the task's baseline block with
// the setting's change, the grid point's learning rate and weight decay,
// and the train block completed from the task's example counts.
func resolveMAD(f *file, model *yaml.Node, point []setting, p madPlan, s madSetting, lr, wd *yaml.Node, mb *madBlock) (train.Spec, error) {
	fc := *f
	fc.Task = *clone(p.baseline)
	pt := slices.Clip(point)
	if s.Field != "" {
		pt = append(pt, setting{"task." + s.Field, s.value})
	}
	pt = append(pt, setting{"train.lr", lr}, setting{"train.weight_decay", wd})
	wrap := func(err error) error {
		return configErr("mad: task %s, setting %s: %w", p.task.Name, s.Name, err)
	}
	// A first pass decodes the blocks; its task config and batch size give
	// the steps and eval batches of the second.
	spec, err := resolve(&fc, model, pt)
	if err != nil {
		return spec, wrap(err)
	}
	mc, ok := spec.Task.(tasks.MADConfig)
	if !ok {
		return spec, wrap(fmt.Errorf("task %s is not a MAD task", spec.TaskName))
	}
	nTrain, nTest := mc.ExampleCounts()
	B := spec.Train.BatchSize
	if nTest%B != 0 {
		return spec, wrap(fmt.Errorf("num_test_examples %d is not a multiple of train.batch_size %d (every evaluation covers the test set once, in whole batches)", nTest, B))
	}
	tr := clone(&f.Train)
	if tr.Kind == 0 {
		*tr = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	put := func(key string, v int) error { return set(tr, []string{key}, scalar(strconv.Itoa(v)), f.MAD.Line) }
	err = put("eval_batches", nTest/B)
	if mb.Epochs > 0 && err == nil {
		perEpoch := (nTrain + B - 1) / B
		err = put("steps", mb.Epochs*perEpoch)
		if mb.EvalEveryEpochs > 0 && err == nil {
			err = put("eval_every", mb.EvalEveryEpochs*perEpoch)
		}
	}
	if err != nil {
		return spec, wrap(fmt.Errorf("train: %w", err))
	}
	fc.Train = *tr
	spec, err = resolve(&fc, model, pt)
	if err != nil {
		return spec, wrap(err)
	}
	return spec, nil
}

// modelLabel names a model block by its arch and scalar fields in file
// order, "transformer(d_model=128,n_layers=2)": how the MAD score tells the
// models of an experiment apart.
func modelLabel(n *yaml.Node) string {
	var fields []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "arch" {
			continue
		}
		val := v.Value
		if v.Kind != yaml.ScalarNode {
			val = "..."
		}
		fields = append(fields, k.Value+"="+val)
	}
	return yamlcfg.Value(n, "arch") + "(" + strings.Join(fields, ",") + ")"
}
