package reports

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot/vg"

	"seqbench/train"
)

// segmentLengths lists the distinct lengths of the evaluation segments
// (tasks.Segmented: induction heads evaluated at 2^6..2^20) over the runs,
// with one segment name per length, sorted by length.
func segmentLengths(runs []*Run) (lengths []int, names map[int]string) {
	names = map[int]string{}
	for _, r := range runs {
		for _, s := range r.Summary.Segments {
			if s.SeqLen <= 0 {
				continue
			}
			if _, ok := names[s.SeqLen]; !ok {
				names[s.SeqLen] = s.Name
				lengths = append(lengths, s.SeqLen)
			}
		}
	}
	slices.Sort(lengths)
	return lengths, names
}

// segmentAt returns a run's segment of the given length.
func segmentAt(r *Run, length int) (train.SegmentSummary, bool) {
	for _, s := range r.Summary.Segments {
		if s.SeqLen == length {
			return s, true
		}
	}
	return train.SegmentSummary{}, false
}

// segmentAcc collects the final accuracy of the ok segments of one length
// over runs, and the statuses of the others.
func segmentAcc(runs []*Run, length int) (st stats, n int, statuses []string) {
	st = stats{lo: math.Inf(1), hi: math.Inf(-1)}
	for _, r := range runs {
		s, ok := segmentAt(r, length)
		switch {
		case !ok:
		case s.Status == train.SegmentOK && !math.IsNaN(float64(s.FinalLoss)):
			st.mean += s.FinalAccuracy
			st.lo, st.hi = math.Min(st.lo, s.FinalAccuracy), math.Max(st.hi, s.FinalAccuracy)
			n++
		default:
			if !slices.Contains(statuses, s.Status) {
				statuses = append(statuses, s.Status)
			}
		}
	}
	if n == 0 {
		return stats{math.NaN(), math.NaN(), math.NaN()}, 0, statuses
	}
	st.mean /= float64(n)
	return st, n, statuses
}

// extrapolationSeries groups the finished runs with segments: per facet,
// per series, the runs of the learning rate with the best (training
// length) accuracy, all seeds.
func (ep *expPlots) extrapolationSeries() (facets [][][]*Run, lengths []int, names map[int]string) {
	var withSegs []*Run
	for _, r := range ep.ok {
		if len(r.Summary.Segments) > 0 {
			withSegs = append(withSegs, r)
		}
	}
	lengths, names = segmentLengths(withSegs)
	if len(lengths) < 2 {
		return nil, nil, nil
	}
	for _, fc := range groupBy(withSegs, ep.d.facetKeys, false) {
		var series [][]*Run
		for _, s := range groupBy(fc.runs, ep.d.seriesKeys, true) {
			runs := s.runs
			if ep.d.lrVaries {
				runs, _ = bestLR(runs)
			}
			series = append(series, runs)
		}
		facets = append(facets, series)
	}
	return facets, lengths, names
}

// extrapolationTable is Mamba's Table 2 layout: one row per configuration,
// one column per evaluation length, cells the final accuracy (mean over
// seeds) or why a length was not evaluated (oom, skipped, failed).
func (ep *expPlots) extrapolationTable() *table {
	facets, lengths, names := ep.extrapolationSeries()
	if facets == nil {
		return nil
	}
	t := &table{header: []string{"arch"}}
	keys := append(append([]string{}, ep.d.seriesKeys...), ep.d.facetKeys...)
	cols := without(keys, "task.name")
	for _, k := range cols {
		t.header = append(t.header, ep.d.names[k])
	}
	t.header = append(t.header, "train L")
	for _, l := range lengths {
		t.header = append(t.header, names[l])
	}
	t.right = make([]bool, len(t.header))
	for i := 1; i < len(t.right); i++ {
		t.right[i] = true
	}
	for _, series := range facets {
		for _, runs := range series {
			r := runs[0]
			row := []string{r.Summary.Arch}
			for _, k := range cols {
				v, ok := r.Setting(k)
				if !ok {
					v = "-"
				}
				row = append(row, v)
			}
			row = append(row, fmt.Sprint(r.Summary.SeqLen))
			for _, l := range lengths {
				st, n, statuses := segmentAcc(runs, l)
				cell := "-"
				switch {
				case n > 0:
					cell = fmt.Sprintf("%.3f", st.mean)
				case len(statuses) > 0:
					cell = strings.Join(statuses, "/")
				}
				row = append(row, cell)
			}
			t.rows = append(t.rows, row)
		}
	}
	return t
}

// extrapolation draws final accuracy against evaluation length (log 2),
// one line per arch, the training length marked, for runs whose task
// evaluates segments of several lengths.
func (ep *expPlots) extrapolation() []*figure {
	facets, lengths, _ := ep.extrapolationSeries()
	if facets == nil {
		return nil
	}
	vals := make([]float64, len(lengths))
	for i, l := range lengths {
		vals[i] = float64(l)
	}
	xs := linear
	switch {
	case powersOfTwo(vals):
		xs = log2
	case vals[0] > 0 && vals[len(vals)-1]/vals[0] >= 50:
		xs = log10
	}
	f := &figure{name: ep.exp.Name + "-extrapolation", title: ep.exp.Name + ": length extrapolation"}
	if len(facets) > maxPanels {
		ep.notes = append(ep.notes, fmt.Sprintf("%s: the first %d of %d panels are drawn.", f.title, maxPanels, len(facets)))
		facets = facets[:maxPanels]
	}
	f.panels = gridOf(len(facets))
	missing := false
	for i, series := range facets {
		pn := newPanel(ep.d.panelTitle(series[0][0], ep.d.facetKeys), "evaluation length L", "final eval accuracy", xs, linear)
		pn.fixY(0, 1)
		setCell(f.panels, i, pn)
		trainL := map[int]bool{}
		for _, runs := range series {
			var px, pm, plo, phi []float64
			for _, l := range lengths {
				st, n, statuses := segmentAcc(runs, l)
				if n == 0 {
					missing = missing || len(statuses) > 0
					continue
				}
				px, pm, plo, phi = append(px, float64(l)), append(pm, st.mean), append(plo, st.lo), append(phi, st.hi)
			}
			r := runs[0]
			trainL[r.Summary.SeqLen] = true
			sty := ep.style(r, ep.d.seriesKeys)
			pn.band(px, plo, phi, sty.color)
			gs := sty.glyph()
			f.addLegend(ep.seriesLabel(r, ep.d.seriesKeys), pn.line(px, pm, sty.line(1.8), &gs))
		}
		for l := range trainL {
			if l > 0 {
				ls := vg.Points(1.2)
				th := pn.line([]float64{float64(l), float64(l)}, []float64{0, 1},
					drawLine(color.Gray{Y: 110}, ls, []vg.Length{vg.Points(4), vg.Points(3)}), nil)
				f.addLegend("training length", th)
			}
		}
	}
	if len(f.panels) == 1 && len(f.panels[0]) == 1 {
		f.panelW, f.panelH = 5.5*vg.Inch, 3.8*vg.Inch
	}
	axis := map[scale]string{linear: "", log2: " (log-2 axis)", log10: " (log axis)"}[xs]
	f.caption = fmt.Sprintf("Length extrapolation: final eval accuracy against the evaluation length%s, "+
		"the training length dashed, one line per arch%s", axis, ep.aggregationNote("points"))
	if missing {
		f.caption += "; lengths a model could not be evaluated at (out of memory, or skipped) have no point, the table says which"
	}
	f.caption += "."
	return []*figure{f}
}
