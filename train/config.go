package train

import (
	"fmt"
	"math"
)

// Config is the `train` block of an experiment.
type Config struct {
	// Steps is the number of optimizer steps; 0 derives them from
	// TokensPerParam (see DeriveSteps).
	Steps int `yaml:"steps"`
	// TokensPerParam sets the tokens of a run whose steps is 0: tokens =
	// tokens_per_param × the model's non-embedding parameters (Chinchilla's
	// compute-optimal rule is about 20). Once the steps are derived it is
	// dropped from the resolved config, which records the steps.
	TokensPerParam float64 `yaml:"tokens_per_param,omitempty"`
	// stepsDerived: DeriveSteps set Steps from TokensPerParam.
	stepsDerived bool

	BatchSize   int     `yaml:"batch_size"`
	LR          float64 `yaml:"lr"`
	WeightDecay float64 `yaml:"weight_decay"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	Warmup      int     `yaml:"warmup"`
	Schedule    string  `yaml:"schedule"`     // constant | cosine
	MinLRRatio  float64 `yaml:"min_lr_ratio"` // cosine floor as a fraction of lr
	GradClip    float64 `yaml:"grad_clip"`    // global-norm clip; 0 disables
	EvalEvery   int     `yaml:"eval_every"`
	EvalBatches int     `yaml:"eval_batches"` // size of the fixed eval set, in batches
	LogEvery    int     `yaml:"log_every"`    // metrics.jsonl and plain log lines
	// WeightDecayOn says which parameters weight_decay applies to:
	// "matrices" (mamba_ssm's and nanoGPT's convention: the 2-D weights of
	// projections, not embeddings, norms, biases or SSM dynamics) or "all"
	// (Zoology's and MAD's plain AdamW over every parameter). Parameters
	// an architecture puts in a group of their own (s4d's kernel_lr) follow
	// their group. Empty is matrices (and keeps the field out of the
	// resolved config, so run ids from before the field existed hold).
	WeightDecayOn string `yaml:"weight_decay_on,omitempty"`
	// Epochs, when > 0, replaces steps for a task with a fixed training
	// set (mqar's num_examples): the run takes ceil(epochs·examples /
	// batch_size) steps, each epoch a fresh shuffle of the set.
	Epochs int `yaml:"epochs,omitempty"`
	// EvalExamples, when > 0, replaces eval_batches: the fixed eval set
	// (and each segment's) is that many sequences, in batches of
	// batch_size, the last one partial (Zoology's 3,000 test examples).
	EvalExamples int `yaml:"eval_examples,omitempty"`
	// Select is how the run's scored evaluation (Summary.Selected) is
	// chosen: "accuracy" (the default; empty is accuracy) or "loss" (the
	// lowest eval loss, MAD's checkpoint selection). See Selection.
	Select string `yaml:"select,omitempty"`
	// TargetAccuracy stops a run early once its eval accuracy reaches it
	// (0 disables).
	TargetAccuracy float64 `yaml:"target_accuracy"`
	Seed           uint64  `yaml:"seed"`
	// CheckpointEvery saves checkpoint.safetensors every N steps and at the
	// end (0: only when the run is interrupted, so that it can resume).
	CheckpointEvery int `yaml:"checkpoint_every"`
	// Evaluation of long sequences (see eval.go). EvalParallelTokens is
	// the most tokens (B·L) one parallel Forward evaluates: longer eval
	// segments run in step mode. EvalChunk is the tokens per Step call in
	// step mode. EvalMemoryMB bounds what one evaluated piece may hold
	// besides the model: its logits, and in step mode the carried state
	// (a segment whose state would outgrow it is reported as oom).
	EvalParallelTokens int `yaml:"eval_parallel_tokens"`
	EvalChunk          int `yaml:"eval_chunk"`
	EvalMemoryMB       int `yaml:"eval_memory_mb"`
	// Precision is the arithmetic of the run (docs/PRECISION.md): "fp32"
	// (the default; empty is fp32, and the resolved config leaves it out
	// so that run ids from before the field existed hold), "tf32" (fp32
	// storage, GEMMs on the tensor cores' TF32 mode on CUDA; the same as
	// fp32 on the CPU) or "bf16" (bfloat16 activations, fp32 masters,
	// gradients, moments and statistics).
	Precision string `yaml:"precision,omitempty"`
	// Prefetch is "on" (the default; empty is on, and the resolved config
	// leaves it out) or "off". On, the next training batches are generated
	// on other goroutines while the current step trains; off, each is
	// generated in the loop before its step, a debugging aid. The batches,
	// and so every result, are the same either way: only the time differs.
	Prefetch string `yaml:"prefetch,omitempty"`
	// Graph is "on" (the default; empty is on, and the resolved config
	// leaves it out) or "off". On, where the backend can capture a step
	// without reading anything back before its end (a CUDA backend), the
	// training step is captured as a graph after its first eager step and
	// replayed, and captured again when the batch's shape changes; off,
	// every step runs eagerly, a debugging aid. Results are the same either
	// way: only the time differs.
	Graph string `yaml:"graph,omitempty"`
	// GPUs is the number of ranks of a data-parallel run (issue #23), one
	// per GPU: each trains on batch_size/gpus sequences of every global
	// batch of batch_size, and their gradients are averaged, so the run
	// trains as one rank with batch_size would, up to the order of sums.
	// 1 (the default; the resolved config leaves it out) is one rank.
	GPUs int `yaml:"gpus,omitempty"`
}

// The values of train.prefetch.
const (
	PrefetchOn  = "on"
	PrefetchOff = "off"
)

// The values of train.graph.
const (
	GraphOn  = "on"
	GraphOff = "off"
)

// The values of train.precision.
const (
	PrecisionFP32 = "fp32"
	PrecisionTF32 = "tf32"
	PrecisionBF16 = "bf16"
)

// PrecisionName is the precision a config runs in ("fp32" when empty).
func (c Config) PrecisionName() string {
	if c.Precision == "" {
		return PrecisionFP32
	}
	return c.Precision
}

// The criteria of train.select.
const (
	SelectAccuracy = "accuracy"
	SelectLoss     = "loss"
)

// DefaultConfig holds the defaults a train block starts from.
func DefaultConfig() Config {
	return Config{
		Steps: 1000, TokensPerParam: DefaultTokensPerParam, BatchSize: 32, LR: 1e-3, WeightDecay: 0.1,
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		Warmup: 100, Schedule: "cosine", MinLRRatio: 0.1, GradClip: 1,
		EvalEvery: 100, EvalBatches: 4, LogEvery: 10, Seed: 1,
		EvalParallelTokens: 1 << 17, EvalChunk: 1024, EvalMemoryMB: 2048, GPUs: 1,
	}
}

func fieldErr(field string, v any, allowed string) error {
	return fmt.Errorf("field train.%s: %v is not allowed (%s)", field, v, allowed)
}

// Validate checks every field; errors name the field, the value and what is
// allowed.
func (c *Config) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Steps < 0:
		return fieldErr("steps", c.Steps, "must be >= 1, or 0 to derive them from tokens_per_param")
	case c.TokensPerParam < 0 || !finite(c.TokensPerParam):
		return fieldErr("tokens_per_param", c.TokensPerParam, "must be > 0")
	case c.Steps == 0 && c.TokensPerParam == 0:
		return fieldErr("tokens_per_param", c.TokensPerParam, "must be > 0 when steps is 0 (it sets the steps)")
	case c.Steps > 0 && c.TokensPerParam != 0 && c.TokensPerParam != DefaultTokensPerParam:
		return fieldErr("tokens_per_param", c.TokensPerParam, fmt.Sprintf("only used with steps: 0, and steps is %d", c.Steps))
	case c.BatchSize < 1:
		return fieldErr("batch_size", c.BatchSize, "must be >= 1")
	case c.GPUs < 1 || c.GPUs > 1<<16:
		return fieldErr("gpus", c.GPUs, "must be in [1, 2^16]: the ranks of a data-parallel run")
	case c.BatchSize%c.GPUs != 0:
		return fieldErr("batch_size", c.BatchSize, fmt.Sprintf("must be a multiple of train.gpus = %d, the ranks that share each batch", c.GPUs))
	case !(c.LR > 0) || !finite(c.LR):
		return fieldErr("lr", c.LR, "must be > 0")
	case c.WeightDecay < 0 || !finite(c.WeightDecay):
		return fieldErr("weight_decay", c.WeightDecay, "must be >= 0")
	case c.WeightDecayOn != "" && c.WeightDecayOn != "matrices" && c.WeightDecayOn != "all":
		return fieldErr("weight_decay_on", fmt.Sprintf("%q", c.WeightDecayOn), `one of "matrices" (the default), "all"`)
	case c.Epochs < 0 || c.Epochs > 1<<20:
		return fieldErr("epochs", c.Epochs, "must be in [0, 2^20] (0: train for steps)")
	case c.EvalExamples < 0 || c.EvalExamples > 1<<30:
		return fieldErr("eval_examples", c.EvalExamples, "must be in [0, 2^30] (0: eval_batches batches)")
	case c.Precision != "" && c.Precision != PrecisionFP32 && c.Precision != PrecisionTF32 && c.Precision != PrecisionBF16:
		return fieldErr("precision", fmt.Sprintf("%q", c.Precision), `one of "fp32" (the default), "tf32", "bf16"`)
	case c.Prefetch != "" && c.Prefetch != PrefetchOn && c.Prefetch != PrefetchOff:
		return fieldErr("prefetch", fmt.Sprintf("%q", c.Prefetch), `one of "on" (the default), "off"`)
	case c.Graph != "" && c.Graph != GraphOn && c.Graph != GraphOff:
		return fieldErr("graph", fmt.Sprintf("%q", c.Graph), `one of "on" (the default), "off"`)
	case c.Select != "" && c.Select != SelectAccuracy && c.Select != SelectLoss:
		return fieldErr("select", fmt.Sprintf("%q", c.Select), `one of "accuracy" (the default), "loss"`)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fieldErr("beta1", c.Beta1, "must be in [0, 1)")
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fieldErr("beta2", c.Beta2, "must be in [0, 1)")
	case !(c.Eps > 0):
		return fieldErr("eps", c.Eps, "must be > 0")
	case c.Warmup < 0:
		return fieldErr("warmup", c.Warmup, "must be >= 0")
	case c.Schedule != "constant" && c.Schedule != "cosine":
		return fieldErr("schedule", fmt.Sprintf("%q", c.Schedule), `one of "constant", "cosine"`)
	case !(c.MinLRRatio >= 0 && c.MinLRRatio <= 1):
		return fieldErr("min_lr_ratio", c.MinLRRatio, "must be in [0, 1]")
	case c.GradClip < 0 || !finite(c.GradClip):
		return fieldErr("grad_clip", c.GradClip, "must be >= 0 (0 disables clipping)")
	case c.EvalEvery < 1:
		return fieldErr("eval_every", c.EvalEvery, "must be >= 1")
	case c.EvalBatches < 1:
		return fieldErr("eval_batches", c.EvalBatches, "must be >= 1")
	case c.LogEvery < 1:
		return fieldErr("log_every", c.LogEvery, "must be >= 1")
	case c.CheckpointEvery < 0:
		return fieldErr("checkpoint_every", c.CheckpointEvery, "must be >= 0 (0 saves only when interrupted)")
	case !(c.TargetAccuracy >= 0 && c.TargetAccuracy <= 1):
		return fieldErr("target_accuracy", c.TargetAccuracy, "must be in [0, 1] (0 disables early stopping)")
	case c.EvalParallelTokens < 1 || c.EvalParallelTokens > 1<<40:
		return fieldErr("eval_parallel_tokens", c.EvalParallelTokens, "must be in [1, 2^40]")
	case c.EvalChunk < 1 || c.EvalChunk > 1<<30:
		return fieldErr("eval_chunk", c.EvalChunk, "must be in [1, 2^30]")
	case c.EvalMemoryMB < 1 || c.EvalMemoryMB > 1<<30:
		return fieldErr("eval_memory_mb", c.EvalMemoryMB, "must be in [1, 2^30]")
	}
	return nil
}

// evalBatchSizes lists the sizes of the eval set's batches: eval_batches of
// batch_size, or eval_examples sequences in batches of batch_size.
func (c *Config) evalBatchSizes() []int {
	if c.EvalExamples == 0 {
		sizes := make([]int, c.EvalBatches)
		for i := range sizes {
			sizes[i] = c.BatchSize
		}
		return sizes
	}
	var sizes []int
	for left := c.EvalExamples; left > 0; left -= c.BatchSize {
		sizes = append(sizes, min(left, c.BatchSize))
	}
	return sizes
}

// evalSequences is the number of sequences in the eval set.
func (c *Config) evalSequences() int {
	n := 0
	for _, s := range c.evalBatchSizes() {
		n += s
	}
	return n
}
