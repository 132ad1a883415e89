// Package train runs one training run: batches from a task, a model from the
// arch registry, AdamW with a schedule and clipping, periodic evaluation on
// a fixed set, a NaN/Inf guard, and results written atomically to the run's
// folder (config.yaml, metrics.jsonl, summary.json).
package train

import (
	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/tasks"
)

// Spec is one fully resolved run of an experiment.
type Spec struct {
	Experiment string
	ID         string // hash of the resolved config: stable across reruns
	Name       string // folder name: <arch>-<id>
	Arch       string
	TaskName   string
	Task       tasks.Config
	Model      arch.Config
	Train      Config
	// Overrides are the grid values that produced this run (dotted path ->
	// value), for tables and plots.
	Overrides map[string]string
}

// ResolvedYAML is the run's complete configuration, every default filled
// in: what config.yaml holds and what the run ID hashes.
func (s Spec) ResolvedYAML() ([]byte, error) {
	if !s.Train.stepsDerived {
		// tokens_per_param only derives steps: runs whose steps the file
		// sets do not record it (and keep their ids).
		s.Train.TokensPerParam = 0
	}
	if s.Train.Precision == PrecisionFP32 {
		// The default, written out or not, is one run (and one id).
		s.Train.Precision = ""
	}
	if s.Train.GPUs == 1 {
		s.Train.GPUs = 0 // the default, as precision
	}
	if s.Train.Graph == GraphOn {
		s.Train.Graph = "" // the default, as prefetch
	}
	if s.Train.Prefetch == PrefetchOn {
		s.Train.Prefetch = "" // the default, as precision
	}
	return yaml.Dump(struct {
		Experiment string       `yaml:"experiment"`
		Task       tasks.Config `yaml:"task"`
		Train      Config       `yaml:"train"`
		Model      arch.Config  `yaml:"model"`
	}{s.Experiment, s.Task, s.Train, s.Model})
}
