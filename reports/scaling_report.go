package reports

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot/vg"
)

// A scaling study is an experiment of the lm task in which some arch was
// trained at sizes at least twice apart (minScalingSpan). Its report draws validation loss and
// perplexity against training FLOPs and parameters with a fitted law per
// arch (FitScaling) and the compute-optimal frontier, and tabulates the
// fits and every run (docs/SCALING.md).

// scalingArch is one arch's points: at each size the best training
// setting (lowest mean final loss), seeds averaged.
type scalingArch struct {
	arch          string
	params, flops []float64
	mean, lo, hi  []float64
	fitC, fitN    ScalingFit
	errC, errN    error
	style         style
}

// studyDesign is the design of a scaling study: train settings that vary
// (steps derived per size, warm-up, ...) are each size's recipe, so they
// become table columns instead of facets; task settings still make
// separate studies.
func (d design) studyDesign() design {
	var facets []string
	dependent := slices.Clone(d.dependent)
	for _, k := range d.facetKeys {
		if strings.HasPrefix(k, "task.") {
			facets = append(facets, k)
		} else {
			dependent = append(dependent, k)
		}
	}
	d.facetKeys, d.dependent = facets, dependent
	return d
}

// studyKeys are the task settings each of which makes a separate study.
func (ep *expPlots) studyKeys() []string { return ep.d.facetKeys }

// minScalingSpan is the least ratio between an arch's largest and
// smallest N that makes its sizes a scaling study: models a few parameters
// apart (a sweep over the attention fraction at equal parameters) are one
// size, and a power law fitted through them is noise.
const minScalingSpan = 2

// isScalingStudy reports whether the finished runs are lm runs with some
// arch at two or more sizes at least minScalingSpan apart in N.
func (ep *expPlots) isScalingStudy() bool {
	if len(ep.ok) == 0 {
		return false
	}
	for _, r := range ep.ok {
		if r.Summary.Task != "lm" {
			return false
		}
	}
	for _, a := range groupBy(ep.ok, nil, true) {
		if spansSizes(a.runs, scalingN) {
			return true
		}
	}
	return false
}

// spansSizes reports whether size(r) over runs spans a factor of
// minScalingSpan: sizes enough apart for a power law through them to mean
// something.
func spansSizes(runs []*Run, size func(*Run) float64) bool {
	lo, hi := math.Inf(1), 0.0
	for _, r := range runs {
		lo, hi = math.Min(lo, size(r)), math.Max(hi, size(r))
	}
	return hi >= minScalingSpan*lo
}

func sizeKey(r *Run) string { return strconv.Itoa(r.Summary.Params) }

// scalingN is a run's N: its non-embedding parameters where recorded,
// else all of them.
func scalingN(r *Run) float64 {
	if r.Summary.NonEmbeddingParams > 0 {
		return float64(r.Summary.NonEmbeddingParams)
	}
	return float64(r.Summary.Params)
}

func (ep *expPlots) scalingArchs(runs []*Run) []scalingArch {
	choice := append(append(slices.Clone(ep.d.seriesKeys), ep.d.dependent...), lrKey)
	var out []scalingArch
	for _, a := range groupBy(runs, nil, true) {
		sa := scalingArch{arch: a.runs[0].Summary.Arch, style: style{color: archColor(a.runs[0].Summary.Arch)}}
		for _, size := range groupByFunc(a.runs, sizeKey) {
			var best []*Run
			bestLoss := math.Inf(1)
			for _, cfg := range groupBy(size.runs, choice, false) {
				if l := meanOf(cfg.runs, finalLoss); l < bestLoss || best == nil {
					best, bestLoss = cfg.runs, l
				}
			}
			st := statsOf(best, finalLoss)
			sa.params = append(sa.params, scalingN(best[0]))
			sa.flops = append(sa.flops, meanOf(best, trainFLOPs))
			sa.mean, sa.lo, sa.hi = append(sa.mean, st.mean), append(sa.lo, st.lo), append(sa.hi, st.hi)
		}
		sa.fitC, sa.errC = FitScaling(sa.flops, sa.mean)
		sa.fitN, sa.errN = FitScaling(sa.params, sa.mean)
		out = append(out, sa)
	}
	return out
}

// lawText writes a fit as "L = E + a·C^−α, α 0.123 [0.101, 0.140]".
func lawText(f ScalingFit, x string) string {
	s := "L = "
	if f.Irreducible {
		s += strconv.FormatFloat(f.E, 'f', 3, 64) + " + "
	}
	s += strconv.FormatFloat(f.A, 'g', 3, 64) + "·" + x + "^−" + signed(f.Alpha)
	if !math.IsNaN(f.AlphaLo) {
		s += fmt.Sprintf(" (95%% CI of α: %s to %s)", signed(f.AlphaLo), signed(f.AlphaHi))
	}
	return s
}

// scalingStudy draws, per study (task setting), loss and perplexity
// against training FLOPs C and parameters N on log axes: points per arch,
// its fitted law dashed, and the compute-optimal frontier over all archs.
func (ep *expPlots) scalingStudy() []*figure {
	var figs []*figure
	for _, st := range groupBy(ep.ok, ep.studyKeys(), false) {
		archs := ep.scalingArchs(st.runs)
		label := ep.d.label(st.runs[0], ep.studyKeys())
		f := &figure{name: ep.exp.Name + "-scaling", title: ep.exp.Name + ": scaling"}
		if label != "" {
			f.name += "-" + slug(label)
			f.title += " (" + label + ")"
		}
		lossC := newPanel("", "training FLOPs C", "final validation loss (nats/token)", log10, log10)
		lossN := newPanel("", "non-embedding parameters N", "final validation loss (nats/token)", log10, log10)
		pplC := newPanel("", "training FLOPs C", "perplexity", log10, log10)
		pplN := newPanel("", "non-embedding parameters N", "perplexity", log10, log10)
		f.panels = [][]*panel{{lossC, lossN}, {pplC, pplN}}
		var allC, allL []float64
		for _, sa := range archs {
			allC, allL = append(allC, sa.flops...), append(allL, sa.mean...)
			legend := sa.arch
			if sa.errC == nil {
				legend += ": α_C " + signed(sa.fitC.Alpha)
				if !math.IsNaN(sa.fitC.AlphaLo) {
					legend += " [" + signed(sa.fitC.AlphaLo) + ", " + signed(sa.fitC.AlphaHi) + "]"
				}
				if sa.fitC.Irreducible {
					legend += ", E " + strconv.FormatFloat(sa.fitC.E, 'f', 2, 64)
				}
			}
			for _, pn := range []struct {
				p   *panel
				x   []float64
				fit ScalingFit
				err error
				ppl bool
			}{{lossC, sa.flops, sa.fitC, sa.errC, false}, {lossN, sa.params, sa.fitN, sa.errN, false},
				{pplC, sa.flops, sa.fitC, sa.errC, true}, {pplN, sa.params, sa.fitN, sa.errN, true}} {
				y, lo, hi := sa.mean, sa.lo, sa.hi
				if pn.ppl {
					y, lo, hi = expAll(y), expAll(lo), expAll(hi)
				}
				th := pn.p.scatter(pn.x, y, lo, hi, sa.style)
				if pn.err == nil {
					fx, fy := fitLine(pn.x, pn.fit)
					if pn.ppl {
						fy = expAll(fy)
					}
					ls := sa.style.line(1.2)
					ls.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
					pn.p.line(fx, fy, ls, nil)
				}
				f.addLegend(legend, th)
			}
		}
		fc, fl := Frontier(allC, allL)
		if len(fc) > 0 {
			ls := drawLine(rgb(0x000000), vg.Points(1), nil)
			th := lossC.line(fc, fl, ls, nil)
			pplC.line(fc, expAll(fl), ls, nil)
			f.addLegend("compute-optimal frontier", th)
		}
		f.caption = fmt.Sprintf("Scaling%s: final validation loss and perplexity against training FLOPs C "+
			"(3 × forward FLOPs/token × tokens, docs/SCALING.md) and non-embedding parameters N, log–log. "+
			"Each point is an arch's best setting at that size; dashed, the law L = a·x^−α fitted per arch by least squares "+
			"in log space (with an irreducible E where it fits better: five sizes or more), its exponent α_C and the "+
			"bootstrap 95%% interval in the legend; solid black, the compute-optimal frontier (the lowest loss reached "+
			"at or below each compute)%s.", map[bool]string{true: " at " + label, false: ""}[label != ""], ep.aggregationNote("points"))
		figs = append(figs, f)
	}
	return figs
}

func expAll(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Exp(x)
	}
	return out
}

// scalingBlocks are a scaling study's tables: the fitted law per arch, and
// every run with its N, tokens, training FLOPs, loss and perplexity.
func (ep *expPlots) scalingBlocks() []block {
	if !ep.isScalingStudy() {
		return nil
	}
	var bs []block
	for _, st := range groupBy(ep.ok, ep.studyKeys(), false) {
		label := ep.d.label(st.runs[0], ep.studyKeys())
		fits := table{header: []string{"arch", "sizes", "loss against C", "loss against N"}, right: []bool{false, true, false, false}}
		for _, sa := range ep.scalingArchs(st.runs) {
			row := []string{sa.arch, strconv.Itoa(len(sa.flops)), "-", "-"}
			if sa.errC == nil {
				row[2] = lawText(sa.fitC, "C")
			}
			if sa.errN == nil {
				row[3] = lawText(sa.fitN, "N")
			}
			fits.rows = append(fits.rows, row)
		}
		heading := "Scaling fits"
		if label != "" {
			heading += " (" + label + ")"
		}
		bs = append(bs, block{heading: heading, level: 3},
			block{text: "Per arch, the law fitted to the final validation loss over its sizes (docs/SCALING.md): " +
				"least squares in log space, an irreducible E only where five or more sizes support it, and the " +
				"bootstrap 95% interval of the exponent (2000 resamples, fixed seed; from three sizes)."},
			block{table: &fits})
	}
	runs := table{header: []string{"run", "arch", "N (non-embedding)", "params", "tokens", "training FLOPs", "final val loss", "perplexity", "status"},
		right: []bool{false, false, true, true, true, true, true, true, false}}
	for _, r := range sortedRuns(ep.exp.Runs, ep.d) {
		s := r.Summary
		loss, ppl := "-", "-"
		if r.OK() {
			loss = strconv.FormatFloat(finalLoss(r), 'f', 4, 64)
			ppl = humanFloat(math.Exp(finalLoss(r)))
		}
		runs.rows = append(runs.rows, []string{r.Name, s.Arch, humanFloat(scalingN(r)), humanFloat(float64(s.Params)),
			humanFloat(float64(s.Tokens)), sciShort(trainFLOPs(r)), loss, ppl, r.Status})
	}
	bs = append(bs, block{heading: "Every run of the study", level: 3},
		block{text: "Non-embedding parameters N, all parameters, tokens trained on, training FLOPs C, final validation loss (nats/token) and perplexity."},
		block{table: &runs})
	return bs
}
