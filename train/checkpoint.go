package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"seqbench/internal/atomicfile"
	"seqbench/nn"
	"seqbench/safetensors"
)

// CheckpointFile is the name of a run's checkpoint in its folder.
const CheckpointFile = "checkpoint.safetensors"

// Checkpoint tensor names: parameters under their own names, AdamW moments
// under these prefixes (torch's exp_avg and exp_avg_sq).
const (
	momentPrefix1 = "optim.exp_avg."
	momentPrefix2 = "optim.exp_avg_sq."
	metaState     = "seqbench.state"
)

// progressState is what, besides tensors, a resumed run needs to continue
// exactly: the step (batches are a pure function of config, seed and step,
// so the step is the whole data-RNG state), the optimizer's step count and
// the running summary.
type progressState struct {
	Step       int     `json:"step"`
	AdamSteps  int     `json:"adam_steps"`
	Summary    Summary `json:"summary"`
	ElapsedSec float64 `json:"elapsed_seconds"`
}

// saveCheckpoint writes parameters, AdamW moments and progress atomically,
// in the backend's precision.
func saveCheckpoint(dir string, be nn.Backend, opt *nn.AdamW, st progressState) error {
	var ts []safetensors.Tensor
	add := func(name string, shape []int, b nn.Buffer) {
		ts = append(ts, safetensors.Tensor{Name: name, Shape: shape, Data: be.Read(b)})
	}
	for _, s := range opt.Slots() {
		p := s.Param
		add(p.Name, p.T.Shape, p.T.Data)
		add(momentPrefix1+p.Name, p.T.Shape, s.M)
		add(momentPrefix2+p.Name, p.T.Shape, s.V)
	}
	meta, err := json.Marshal(st)
	if err != nil {
		return err
	}
	dtype := safetensors.F32
	if be.DType() == nn.Float64 {
		dtype = safetensors.F64
	}
	return safetensors.WriteFile(filepath.Join(dir, CheckpointFile), ts, dtype,
		map[string]string{metaState: string(meta), "format": "seqbench checkpoint v1"})
}

// loadCheckpoint restores parameters and moments in place and returns the
// saved progress. Every parameter must be present with its shape: a
// checkpoint of another model is an error naming the first mismatch.
func loadCheckpoint(dir string, be nn.Backend, opt *nn.AdamW) (progressState, error) {
	var st progressState
	path := filepath.Join(dir, CheckpointFile)
	tensors, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(meta[metaState]), &st); err != nil {
		return st, fmt.Errorf("%s: no readable progress in its metadata: %w", path, err)
	}
	if st.Step < 0 || st.AdamSteps < 0 || !(st.ElapsedSec >= 0) || math.IsInf(st.ElapsedSec, 0) {
		return st, fmt.Errorf("%s: impossible progress in its metadata: step %d, optimizer steps %d, elapsed %v s (want steps ≥ 0 and finite seconds ≥ 0)",
			path, st.Step, st.AdamSteps, st.ElapsedSec)
	}
	load := func(name string, shape []int, b nn.Buffer) error {
		t, ok := tensors[name]
		if !ok {
			return fmt.Errorf("%s: tensor %s is missing (a checkpoint of another model?)", path, name)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(shape) {
			return fmt.Errorf("%s: tensor %s has shape %v, the model's is %v", path, name, t.Shape, shape)
		}
		be.Write(b, t.Data)
		return nil
	}
	for _, s := range opt.Slots() {
		p := s.Param
		for _, x := range []struct {
			name string
			buf  nn.Buffer
		}{{p.Name, p.T.Data}, {momentPrefix1 + p.Name, s.M}, {momentPrefix2 + p.Name, s.V}} {
			if err := load(x.name, p.T.Shape, x.buf); err != nil {
				return st, err
			}
		}
	}
	opt.Steps = st.AdamSteps
	return st, nil
}

// truncateMetrics drops the lines of metrics.jsonl logged after step, so a
// resumed run continues the file as an uninterrupted run would have
// written it.
func truncateMetrics(path string, step int) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		var m struct {
			Step int `json:"step"`
		}
		if line == "" || json.Unmarshal([]byte(line), &m) != nil || m.Step > step {
			break // a torn last line, or past the checkpoint
		}
		keep = append(keep, line+"\n")
	}
	return atomicfile.WriteFile(path, []byte(strings.Join(keep, "")))
}
