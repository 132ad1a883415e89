package train

import (
	"fmt"
	"math/rand/v2"

	"seqbench/arch"
	"seqbench/nn"
	"seqbench/tasks"
)

// Cost is what a run will take, known before it trains.
type Cost struct {
	Steps  int
	SeqLen int
	// Tokens are the training tokens, steps × batch_size × seq_len.
	Tokens int64
	// Evals are the evaluations: every eval_every steps and at the end.
	Evals int
	// FLOPsPerToken is the model's forward FLOPs per token and FLOPs the
	// run's training FLOPs (arch.TrainingFLOPs); both 0 where the model
	// has more than CostBuildLimit parameters.
	FLOPsPerToken float64
	FLOPs         float64
}

// CostBuildLimit is the most parameters CostOf builds a model of:
// FLOPs are counted on a built model (arch.Model.FLOPsPerToken), whose
// weights take 4 bytes a parameter on a float32 backend.
const CostBuildLimit = 1 << 28

// CostOf counts spec's steps, tokens, evaluations and training FLOPs,
// building its task and, on be (a CPU backend: the weights are only
// counted), its model.
func CostOf(spec Spec, be nn.Backend) (Cost, error) {
	task, err := spec.Task.Build()
	if err != nil {
		return Cost{}, fmt.Errorf("building task: %w", err)
	}
	c := spec.Train
	if c.Epochs > 0 {
		if c.Steps, err = epochSteps(c, task, spec.TaskName); err != nil {
			return Cost{}, err
		}
	}
	L := task.SeqLen()
	cost := Cost{Steps: c.Steps, SeqLen: L, Tokens: int64(c.Steps) * int64(c.BatchSize) * int64(L)}
	if c.EvalEvery > 0 {
		cost.Evals = (c.Steps + c.EvalEvery - 1) / c.EvalEvery
	}
	if spec.Model.NumParams(task.Vocab(), L) > CostBuildLimit {
		return cost, nil
	}
	m, err := spec.Model.Build(arch.Env{Backend: be, Vocab: task.Vocab(), MaxLen: L, RNG: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		return Cost{}, fmt.Errorf("building model: %w", err)
	}
	cost.FLOPsPerToken = m.FLOPsPerToken(L)
	cost.FLOPs = arch.TrainingFLOPs(m, L, float64(cost.Tokens))
	for _, p := range m.Params() {
		be.Free(p.T.Data)
	}
	return cost, nil
}

// epochSteps is the steps of train.epochs over task's fixed training set:
// ⌈epochs · examples / batch_size⌉.
func epochSteps(c Config, task tasks.Task, taskName string) (int, error) {
	fixed, ok := task.(tasks.FixedTrainSet)
	n := 0
	if ok {
		n = fixed.TrainExamples()
	}
	if n <= 0 {
		return 0, fmt.Errorf("field train.epochs: %d needs a task with a fixed training set (mqar with num_examples); %s streams fresh data", c.Epochs, taskName)
	}
	steps := (int64(c.Epochs)*int64(n) + int64(c.BatchSize) - 1) / int64(c.BatchSize)
	if steps > 1<<31 {
		return 0, fmt.Errorf("field train.epochs: %d epochs of %d examples in batches of %d is %d steps, over 2^31", c.Epochs, n, c.BatchSize, steps)
	}
	return int(steps), nil
}
