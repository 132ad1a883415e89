package train

import (
	"fmt"
	"math"

	"seqbench/tasks"
)

// DefaultTokensPerParam is Chinchilla's compute-optimal ratio of training
// tokens to parameters (Hoffmann et al. 2022).
const DefaultTokensPerParam = 20

// SequenceLengther is a task config whose sequences all have one length,
// so that a token budget converts to steps (the lm task).
type SequenceLengther interface {
	TokensPerSequence() int
}

// DeriveSteps resolves steps: 0 into
//
//	steps = ⌈tokens_per_param · params / (batch_size · seq_len)⌉
//
// where params is the model's non-embedding parameter count
// (arch.NonEmbeddingParams) and seq_len the task's. A config with steps
// set is left as it is. The resolved config (ResolvedYAML) records the
// steps, and tokens_per_param where it derived them (reports then know the
// steps follow from the size, not from the experiment file).
func (c *Config) DeriveSteps(params int, task tasks.Config) error {
	if c.Steps > 0 {
		return nil
	}
	sl, ok := task.(SequenceLengther)
	if !ok {
		return fieldErr("steps", 0, "must be >= 1 for this task (deriving steps from tokens_per_param needs a task of one sequence length, such as lm)")
	}
	perStep := float64(c.BatchSize) * float64(sl.TokensPerSequence())
	steps := math.Ceil(c.TokensPerParam * float64(params) / perStep)
	if !(steps >= 1 && steps <= 1<<31-1) {
		return fieldErr("tokens_per_param", c.TokensPerParam, fmt.Sprintf("gives %v steps for %d parameters at %v tokens per step", steps, params, perStep))
	}
	c.Steps, c.stepsDerived = int(steps), true
	if c.Warmup >= c.Steps {
		return fieldErr("warmup", c.Warmup, fmt.Sprintf("must be below the %d steps tokens_per_param %v gives for %d parameters", c.Steps, c.TokensPerParam, params))
	}
	return nil
}
