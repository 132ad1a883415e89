package sweep

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"seqbench/internal/atomicfile"
	"seqbench/internal/units"
	"seqbench/train"
)

// PlanFileName is the file `sweep plan --device` leaves in the
// experiment's folder: what each run was measured to need, for `sweep run`
// to pack runs onto a GPU by.
const PlanFileName = "plan.json"

// PlanFile is plan.json.
type PlanFile struct {
	Device     string             `json:"device"`  // "cpu", "cuda"
	Backend    string             `json:"backend"` // the backend measured on
	MeasuredAt time.Time          `json:"measured_at"`
	Runs       map[string]RunPlan `json:"runs"` // by run name (arch-id)
}

// RunPlan is one run's entry in plan.json.
type RunPlan struct {
	Steps        int     `json:"steps"`
	Tokens       int64   `json:"tokens"`
	FLOPs        float64 `json:"flops"`
	Seconds      float64 `json:"seconds"`
	PeakMemBytes uint64  `json:"peak_mem_bytes"`
}

// WritePlan writes the measured estimates of exp's runs (est as Plan
// returns them; runs not measured are left out) to dir/plan.json.
func WritePlan(dir, device, backend string, exp *Experiment, est []Estimate) error {
	f := PlanFile{Device: device, Backend: backend, MeasuredAt: time.Now().UTC(), Runs: map[string]RunPlan{}}
	for i, e := range est {
		if e.Seconds > 0 {
			f.Runs[exp.Runs[i].Name] = RunPlan{Steps: e.Steps, Tokens: e.Tokens, FLOPs: e.FLOPs, Seconds: e.Seconds,
				PeakMemBytes: e.PeakMemBytes}
		}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, PlanFileName), append(data, '\n'))
}

// ReadPlan reads dir/plan.json.
func ReadPlan(dir string) (PlanFile, error) {
	var f PlanFile
	data, err := os.ReadFile(filepath.Join(dir, PlanFileName))
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("%s: %w", filepath.Join(dir, PlanFileName), err)
	}
	return f, nil
}

// packHeadroom is the share of a device's memory that packed runs may
// fill with their measured peaks: the rest is each worker's own CUDA
// context and what the caching allocator holds beyond a run's peak.
const packHeadroom = 0.8

// RunsPerDevice is how many of runs may train at once on one device of
// memBytes: as many as the largest measured peak among them fits in 80 %
// of it, at least 1 and at most most. Without a measurement of every run
// (plan.json from `sweep plan --device` on the same kind of device) it is
// 1. why says how the number was chosen.
func RunsPerDevice(f PlanFile, device string, runs []train.Spec, memBytes uint64, most int) (n int, why string) {
	if f.Device != device {
		return 1, fmt.Sprintf("one run a %s: no %s measured on %s (seqbench sweep plan --device %[1]s)", device, PlanFileName, device)
	}
	var peak uint64
	for _, r := range runs {
		p, ok := f.Runs[r.Name]
		if !ok {
			return 1, fmt.Sprintf("one run a %s: %s has no measurement of %s", device, PlanFileName, r.Name)
		}
		peak = max(peak, p.PeakMemBytes)
	}
	if peak == 0 || len(runs) == 0 {
		return 1, "one run a " + device
	}
	fits := int(packHeadroom * float64(memBytes) / float64(peak))
	n = max(1, min(most, fits))
	count := "one run"
	if n > 1 {
		count = fmt.Sprintf("%d runs", n)
	}
	return n, fmt.Sprintf("%s a %s: the largest measured peak, %s, fits %d times in %.0f %% of its %s (%s)",
		count, device, units.Bytes(int64(peak)), fits, 100*packHeadroom, units.Bytes(int64(memBytes)), PlanFileName)
}
