package train

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
	"seqbench/safetensors"
)

// fuzzModel is a two-parameter model and its optimizer on the float64 CPU
// backend.
func fuzzModel() (nn.Backend, *nn.AdamW) {
	be := cpukernels.New[float64]()
	params := []nn.Param{{Name: "w", T: nn.NewParam(be, 2, 3), Decay: true}, {Name: "b", T: nn.NewParam(be, 3)}}
	return be, nn.NewAdamW(be, params, 0.1)
}

// checkpointSeeds are checkpoint files for fuzzModel: a good one, then
// malformed ones (another model's shapes, a missing moment, unreadable or
// impossible progress, not a safetensors file at all).
func checkpointSeeds(t testing.TB) [][]byte {
	be, opt := fuzzModel()
	dir := t.TempDir()
	save := func(st progressState, edit func([]safetensors.Tensor, map[string]string) ([]safetensors.Tensor, map[string]string)) []byte {
		if err := saveCheckpoint(dir, be, opt, st); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, CheckpointFile)
		ts, meta, err := safetensors.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		list := make([]safetensors.Tensor, 0, len(ts))
		for _, x := range ts {
			list = append(list, x)
		}
		list, meta = edit(list, meta)
		if err := safetensors.WriteFile(path, list, "", meta); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	keep := func(ts []safetensors.Tensor, m map[string]string) ([]safetensors.Tensor, map[string]string) {
		return ts, m
	}
	good := progressState{Step: 7, AdamSteps: 7, ElapsedSec: 1.5}
	return [][]byte{
		save(good, keep),
		save(good, func(ts []safetensors.Tensor, m map[string]string) ([]safetensors.Tensor, map[string]string) {
			for i := range ts {
				if ts[i].Name == "w" {
					ts[i].Shape = []int{3, 2}
				}
			}
			return ts, m
		}),
		save(good, func(ts []safetensors.Tensor, m map[string]string) ([]safetensors.Tensor, map[string]string) {
			var out []safetensors.Tensor
			for _, x := range ts {
				if x.Name != momentPrefix2+"b" {
					out = append(out, x)
				}
			}
			return out, m
		}),
		save(good, func(ts []safetensors.Tensor, m map[string]string) ([]safetensors.Tensor, map[string]string) {
			m[metaState] = `{"step": 7,`
			return ts, m
		}),
		save(progressState{Step: -3, AdamSteps: 7}, keep),
		save(progressState{Step: 7, AdamSteps: -1}, keep),
		save(progressState{Step: 7, AdamSteps: 7, ElapsedSec: -2}, keep),
		[]byte("not a checkpoint"),
		{},
	}
}

// FuzzLoadCheckpoint: a checkpoint file never panics loadCheckpoint, and
// what it accepts is a progress a run can continue from (steps and elapsed
// time ≥ 0, finite).
func FuzzLoadCheckpoint(f *testing.F) {
	for _, s := range checkpointSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, CheckpointFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		be, opt := fuzzModel()
		st, err := loadCheckpoint(dir, be, opt)
		if err != nil {
			if !strings.Contains(err.Error(), CheckpointFile) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if st.Step < 0 || opt.Steps < 0 || !(st.ElapsedSec >= 0) || math.IsInf(st.ElapsedSec, 0) {
			t.Fatalf("accepted progress step %d, adam steps %d, elapsed %v", st.Step, opt.Steps, st.ElapsedSec)
		}
	})
}

// The malformed seeds are rejected.
func TestCheckpointSeedsRejected(t *testing.T) {
	for i, s := range checkpointSeeds(t)[1:] {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, CheckpointFile), s, 0o644); err != nil {
			t.Fatal(err)
		}
		be, opt := fuzzModel()
		if _, err := loadCheckpoint(dir, be, opt); err == nil {
			t.Errorf("malformed seed %d accepted", i+1)
		}
	}
}
