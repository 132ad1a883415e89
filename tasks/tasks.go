// Package tasks is the registry of synthetic and real sequence tasks. A task
// turns (config, seed, split, index) into a batch of token sequences with
// per-position targets; the same arguments always give the same batch, so a
// rerun reproduces its data exactly and evaluation sets are fixed per seed.
package tasks

import (
	"go.yaml.in/yaml/v4"

	"seqbench/internal/yamlcfg"
)

// Ignore marks a target position that is not scored (loss and accuracy).
const Ignore int32 = -100

// Split selects the training stream or the fixed evaluation set.
type Split int

const (
	Train Split = iota
	Eval
)

func (s Split) String() string {
	if s == Eval {
		return "eval"
	}
	return "train"
}

// Batch holds B sequences of length L, batch-major: Inputs[b·L+t] is token t
// of sequence b, Targets[b·L+t] what the model must predict there (or Ignore).
type Batch struct {
	B, L            int
	Inputs, Targets []int32
}

// Task generates batches.
type Task interface {
	// Vocab is the number of distinct token ids (inputs and targets < Vocab).
	Vocab() int
	// SeqLen is the length of every sequence.
	SeqLen() int
	// Batch returns batch number index of a split: a pure function of the
	// task config and its arguments.
	Batch(split Split, seed uint64, index int64, size int) Batch
	// Decode renders sequence i of a batch for a human (inputs, and the
	// scored targets marked).
	Decode(b Batch, i int) string
}

// Segmented is a task whose evaluation is reported per segment: the lengths
// of induction-head extrapolation, MQAR's (seq_len, kv_pairs) test
// curriculum. The training loop evaluates every segment on its own fixed
// set (Batch with split Eval) and records each result under its name.
type Segmented interface {
	Task
	EvalSegments() []Segment
}

// Segment is one named evaluation setting of a Segmented task.
type Segment struct {
	Name string // e.g. "L=1024" or "L=256,kv=32"
	Task Task   // generates the segment's sequences (its SeqLen may differ)
}

// FixedTrainSet is implemented by tasks that can train on a fixed set of
// examples drawn once, shuffled anew every epoch (mqar's num_examples):
// TrainExamples is the size of one epoch, 0 when the task streams fresh
// data. train.epochs turns it into steps.
type FixedTrainSet interface {
	TrainExamples() int
}

// LossMetrics is implemented by tasks whose loss has a customary unit
// (bits per byte, perplexity); the training loop records these beside the
// loss.
type LossMetrics interface {
	LossMetrics(loss float64) map[string]float64
}

// Config is a task block. Its struct has yaml tags for every field,
// including `name`, and holds the defaults before decoding.
type Config interface {
	// Validate checks the fields; errors name the field, the value and what
	// is allowed.
	Validate() error
	Build() (Task, error)
}

// Spec registers a task: its name, a one-line description and New, which
// returns a config holding the defaults.
type Spec = yamlcfg.Entry[Config]

var registry = yamlcfg.NewRegistry[Config]("task", "task", "name", "task.name")

// Register adds a task; it is called from init functions.
func Register(s Spec) { registry.Add(s) }

// Names lists the registered tasks, sorted.
func Names() []string { return registry.Names() }

// Lookup finds a task by name.
func Lookup(name string) (Spec, error) { return registry.Lookup(name) }

// Decode reads a task block: it finds `name`, then decodes the whole block
// strictly into that task's config and validates it.
func Decode(node *yaml.Node) (Config, error) { return registry.Decode(node) }
