package sweep

import (
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/internal/yamlcfg"
	"seqbench/tasks"
	"seqbench/train"
)

// LoadRun rebuilds a run's spec from the config.yaml in its folder (the
// fully resolved config train.Run wrote), for `seqbench run --resume DIR`.
// The rebuilt run has the same id, so it is the same run.
func LoadRun(dir string) (train.Spec, error) {
	path := filepath.Join(dir, "config.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return train.Spec{}, &ConfigError{fmt.Errorf("%s is not a run folder: %w", dir, err)}
	}
	var f struct {
		Experiment string    `yaml:"experiment"`
		Task       yaml.Node `yaml:"task"`
		Train      yaml.Node `yaml:"train"`
		Model      yaml.Node `yaml:"model"`
	}
	if err := yaml.Load(data, &f, yaml.WithKnownFields()); err != nil {
		return train.Spec{}, &ConfigError{fmt.Errorf("%s: %w", path, err)}
	}
	taskCfg, err := tasks.Decode(&f.Task)
	if err != nil {
		return train.Spec{}, &ConfigError{fmt.Errorf("%s: %w", path, err)}
	}
	tc := train.DefaultConfig()
	if err := yamlcfg.Strict(&f.Train, &tc); err != nil {
		return train.Spec{}, &ConfigError{fmt.Errorf("%s: train: %w", path, err)}
	}
	modelCfg, err := arch.Decode(&f.Model)
	if err != nil {
		return train.Spec{}, &ConfigError{fmt.Errorf("%s: %w", path, err)}
	}
	spec := train.Spec{Experiment: f.Experiment, Arch: yamlcfg.Value(&f.Model, "arch"),
		TaskName: yamlcfg.Value(&f.Task, "name"), Task: taskCfg, Model: modelCfg, Train: tc}
	spec, err = identify(spec)
	if err != nil {
		return train.Spec{}, err
	}
	if spec.Name != filepath.Base(filepath.Clean(dir)) {
		return train.Spec{}, &ConfigError{fmt.Errorf("%s: its config resolves to run %s, not %s (edited, or from another version of seqbench)",
			path, spec.Name, filepath.Base(dir))}
	}
	return spec, nil
}
