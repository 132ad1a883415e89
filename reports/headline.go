package reports

import (
	"fmt"
	"slices"
	"strings"

	"seqbench/train"
)

// The thresholds of SelectionHeadline: an arch solves a task at
// solvedAccuracy, and the selective SSMs beat the LTI one clearly when each
// is clearMargin above it.
const (
	solvedAccuracy = 0.95
	clearMargin    = 0.10
)

// selectiveSSMs are the archs whose state update depends on the input
// (Mamba's selection); ltiSSM is the one whose convolution kernel does not.
var (
	selectiveSSMs = []string{"mamba1", "mamba2"}
	ltiSSM        = "s4d"
)

// SelectionHeadline says whether the runs show what selective copying
// against its control, copying, is built to show (Mamba, Gu & Dao 2023,
// Sec. 3.1 and Table 1): on selective copying the selective SSMs (mamba1,
// mamba2) beat the LTI one (s4d) clearly, by clearMargin or more, while on
// copying, which an LTI convolution can solve, every arch reaches
// solvedAccuracy. The numbers are best accuracies, averaged over the ok
// runs of an arch and task (seeds). It returns "" unless there are ok runs
// of s4d on both tasks and of a selective SSM on selective copying.
func SelectionHeadline(runs []train.Summary) string {
	acc := map[string]map[string][]float64{} // task -> arch -> best accuracies
	for _, s := range runs {
		if s.Status != train.StatusOK || (s.Task != "selective_copy" && s.Task != "copying") {
			continue
		}
		if acc[s.Task] == nil {
			acc[s.Task] = map[string][]float64{}
		}
		acc[s.Task][s.Arch] = append(acc[s.Task][s.Arch], s.BestAccuracy)
	}
	sel, cp := means(acc["selective_copy"]), means(acc["copying"])
	var selective []string
	for _, a := range selectiveSSMs {
		if _, ok := sel[a]; ok {
			selective = append(selective, a)
		}
	}
	_, ltiSel := sel[ltiSSM]
	_, ltiCp := cp[ltiSSM]
	if len(selective) == 0 || !ltiSel || !ltiCp {
		return ""
	}

	var beat, notBeat []string
	for _, a := range selective {
		item := fmt.Sprintf("%s %.3f", a, sel[a])
		if sel[a] >= sel[ltiSSM]+clearMargin {
			beat = append(beat, item)
		} else {
			notBeat = append(notBeat, item)
		}
	}
	archs := make([]string, 0, len(cp))
	for a := range cp {
		archs = append(archs, a)
	}
	slices.Sort(archs)
	lowest := archs[0]
	var unsolved []string
	for _, a := range archs {
		if cp[a] < cp[lowest] {
			lowest = a
		}
		if cp[a] < solvedAccuracy {
			unsolved = append(unsolved, fmt.Sprintf("%s %.3f", a, cp[a]))
		}
	}

	var b strings.Builder
	if len(notBeat) == 0 && len(unsolved) == 0 {
		fmt.Fprintf(&b, "headline (best accuracy): on selective copying the selective SSMs beat the LTI %s clearly (%s; %s %.3f);\n",
			ltiSSM, strings.Join(beat, ", "), ltiSSM, sel[ltiSSM])
		fmt.Fprintf(&b, "on copying, its LTI-solvable control, every arch reaches %.2f (lowest: %s %.3f).\n", solvedAccuracy, lowest, cp[lowest])
		return b.String()
	}
	b.WriteString("headline not shown (best accuracy):")
	if len(notBeat) > 0 {
		fmt.Fprintf(&b, " on selective copying %s not %.2f above the LTI %s's %.3f;", strings.Join(notBeat, ", "), clearMargin, ltiSSM, sel[ltiSSM])
	}
	if len(unsolved) > 0 {
		fmt.Fprintf(&b, " on copying %s below %.2f;", strings.Join(unsolved, ", "), solvedAccuracy)
	}
	return strings.TrimSuffix(b.String(), ";") + ".\n"
}

// means averages each arch's accuracies.
func means(m map[string][]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for a, v := range m {
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		out[a] = sum / float64(len(v))
	}
	return out
}
