package train

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/internal/units"
	"seqbench/nn"
	"seqbench/tasks"
)

// memEstimate is a lower bound, in bytes, of what a run holds at once:
// what it will certainly allocate, so that a run that cannot fit ends
// before allocating (a Go allocation the system cannot satisfy kills the
// whole process, not just the run). Counts are float64: a size such as
// batch_size × seq_len × vocab may not fit an int64.
type memEstimate struct {
	// Params: the weights and their gradients; Optimizer: AdamW's two
	// moments; Activations: one B·L·d_model tensor per block and the
	// embedding (the blocks keep more for the backward pass); Logits: the
	// logits and their gradient that training holds at once, of a chunk
	// of rows (nn.LinearCEChunkRows) or of all B·L rows when fewer. All
	// on the backend's device.
	Params, Optimizer, Activations, Logits float64
	// Data: the training batch and the fixed evaluation set, token ids and
	// targets as int32, on the host.
	Data float64
}

// device is what the estimate puts on the backend's device.
func (m memEstimate) device() float64 { return m.Params + m.Optimizer + m.Activations + m.Logits }

func (m memEstimate) String() string {
	return fmt.Sprintf("parameters and gradients %s, optimizer state %s, activations %s, logits %s, data %s",
		humanFloat(m.Params), humanFloat(m.Optimizer), humanFloat(m.Activations), humanFloat(m.Logits), humanFloat(m.Data))
}

// estimateMemory estimates a run's memory from its config and task,
// without building anything: the parameter count comes from the model
// config (arch.Config.NumParams). dt is the type of the parameters,
// gradients and moments, act that of the activations and the logits
// (bfloat16 under bf16: 2 bytes an element, nn.DType.Size, as on a GPU;
// cpu-bfloat16 stores them in 4, so on the CPU the bound is lower still).
func estimateMemory(spec Spec, task tasks.Task, dt, act nn.DType) memEstimate {
	elem, actElem := float64(dt.Size()), float64(act.Size())
	c := spec.Train
	B, L, V := float64(c.BatchSize), float64(task.SeqLen()), float64(task.Vocab())
	P := float64(spec.Model.NumParams(task.Vocab(), task.SeqLen()))
	d, layers := modelSize(spec)
	return memEstimate{
		Params:      2 * P * elem,
		Optimizer:   2 * P * elem,
		Activations: B * L * d * (layers + 1) * actElem,
		Logits:      2 * math.Min(B*L, float64(nn.LinearCEChunkRows(task.Vocab()))) * V * actElem,
		Data:        float64(c.EvalBatches+1) * B * L * 2 * 4,
	}
}

// actDType is the type be's tapes store activations in: ActDType of a
// mixed-precision backend, else be's DType.
func actDType(be nn.Backend) nn.DType {
	if m, ok := be.(nn.MixedBackend); ok {
		return m.ActDType()
	}
	return be.DType()
}

// modelSize reads d_model and n_layers from a model config (every arch
// has both; 1 where one is missing, which only lowers the bound).
func modelSize(spec Spec) (d, layers float64) {
	d, layers = 1, 1
	data, err := yaml.Dump(spec.Model)
	if err != nil {
		return d, layers
	}
	var f struct {
		DModel  int `yaml:"d_model"`
		NLayers int `yaml:"n_layers"`
	}
	if yaml.Load(data, &f) == nil {
		d, layers = float64(max(f.DModel, 1)), float64(max(f.NLayers, 1))
	}
	return d, layers
}

// deviceMemory is a backend that can say how much device memory is free
// (a GPU backend may offer it; without it the device part is not checked).
type deviceMemory interface {
	MemInfo() (free, total uint64, err error)
}

// checkMemory returns an error when the estimate exceeds what the machine
// has: on the CPU backend the whole estimate against the physical memory,
// on a device the device part against its free memory (when the backend
// says) and the data against the host's.
func checkMemory(m memEstimate, be nn.Backend) error {
	host, err := physicalMemory()
	if err != nil {
		host = 0 // unknown: not checked
	}
	onHost := m.Data
	if strings.HasPrefix(be.Name(), "cpu") {
		onHost += m.device()
	} else if dm, ok := be.(deviceMemory); ok {
		if free, _, err := dm.MemInfo(); err == nil && m.device() > float64(free) {
			return fmt.Errorf("the run needs at least %s of device memory (%s), more than the %s free on the device",
				humanFloat(m.device()), m, humanFloat(float64(free)))
		}
	}
	if host > 0 && onHost > float64(host) {
		return fmt.Errorf("the run needs at least %s of memory (%s), more than the %s of physical memory (MemTotal in /proc/meminfo)",
			humanFloat(onHost), m, humanFloat(float64(host)))
	}
	return nil
}

// physicalMemory is MemTotal of /proc/meminfo, in bytes.
func physicalMemory() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: MemTotal %q: %w", fields[1], err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal line")
}

// humanFloat formats a byte count that may exceed an int64.
func humanFloat(b float64) string {
	if b < 1<<62 {
		return units.Bytes(int64(b))
	}
	return fmt.Sprintf("%.3g B", b)
}
