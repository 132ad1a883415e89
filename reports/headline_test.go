package reports

import (
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

func copyRun(arch, task string, best float64) train.Summary {
	return train.Summary{Arch: arch, Task: task, BestAccuracy: best, Status: train.StatusOK}
}

func TestSelectionHeadlineShown(t *testing.T) {
	runs := []train.Summary{
		copyRun("s4d", "selective_copy", 0.789), copyRun("s4d", "copying", 0.996),
		copyRun("mamba1", "selective_copy", 0.996), copyRun("mamba1", "copying", 0.992),
		copyRun("mamba2", "selective_copy", 0.990), copyRun("mamba2", "selective_copy", 1.0), // two seeds: their mean
		copyRun("mamba2", "copying", 1.0),
		copyRun("transformer", "selective_copy", 0.6), copyRun("transformer", "copying", 0.96),
	}
	require.Equal(t, "headline (best accuracy): on selective copying the selective SSMs beat the LTI s4d clearly "+
		"(mamba1 0.996, mamba2 0.995; s4d 0.789);\n"+
		"on copying, its LTI-solvable control, every arch reaches 0.95 (lowest: transformer 0.960).\n",
		SelectionHeadline(runs))
}

func TestSelectionHeadlineNotShown(t *testing.T) {
	// Today's failure modes: a selective SSM still on its plateau, and one
	// that has not solved copying. A failed run does not count.
	runs := []train.Summary{
		copyRun("s4d", "selective_copy", 0.605), copyRun("s4d", "copying", 0.980),
		copyRun("mamba1", "selective_copy", 0.500), copyRun("mamba1", "copying", 0.99),
		copyRun("mamba2", "selective_copy", 0.906), copyRun("mamba2", "copying", 0.352),
		{Arch: "gru", Task: "copying", BestAccuracy: 0.1, Status: train.StatusFailed},
	}
	require.Equal(t, "headline not shown (best accuracy): on selective copying mamba1 0.500 not 0.10 above the LTI s4d's 0.605;"+
		" on copying mamba2 0.352 below 0.95.\n", SelectionHeadline(runs))

	// A selective SSM barely above s4d is not a clear win.
	runs = []train.Summary{copyRun("s4d", "selective_copy", 0.80), copyRun("s4d", "copying", 1), copyRun("mamba1", "selective_copy", 0.85)}
	require.Contains(t, SelectionHeadline(runs), "headline not shown")
}

func TestSelectionHeadlineNeedsBothTasks(t *testing.T) {
	require.Empty(t, SelectionHeadline(nil))
	// No copying control.
	require.Empty(t, SelectionHeadline([]train.Summary{copyRun("s4d", "selective_copy", 0.6), copyRun("mamba1", "selective_copy", 1)}))
	// No LTI model.
	require.Empty(t, SelectionHeadline([]train.Summary{copyRun("mamba1", "selective_copy", 1), copyRun("mamba1", "copying", 1)}))
	// No selective SSM.
	require.Empty(t, SelectionHeadline([]train.Summary{copyRun("s4d", "selective_copy", 0.6), copyRun("s4d", "copying", 1), copyRun("lstm", "selective_copy", 0.9)}))
}
