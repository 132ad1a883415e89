package reports

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot/vg"

	"seqbench/train"
)

// Caps that keep a report readable; what is left out is said in it.
const (
	maxCurveFigures = 8 // learning-curve figures (one per facet) per experiment
	maxMergedLines  = 6 // settings fold into one learning-curve figure up to this many lines
	maxCurveLines   = 8 // past this, a learning-curve figure keeps each arch's best configuration
	maxPanels       = 9 // panels of a metric-vs-variable or scaling figure
	panelCols       = 3 // panels per row when there are several facets
)

// expPlots draws the figures of one experiment: its runs, what varies, and
// a stable variant (dash and glyph) per series label within an arch.
type expPlots struct {
	exp     *Experiment
	d       design
	ok      []*Run
	variant map[string]map[string]int // series keys -> series label -> variant
	notes   []string
}

func newExpPlots(e *Experiment) *expPlots {
	ep := &expPlots{exp: e, ok: e.okRuns(), variant: map[string]map[string]int{}}
	ep.d = analyse(e.Runs)
	if ep.isScalingStudy() {
		ep.d = ep.d.studyDesign()
	}
	return ep
}

func (ep *expPlots) seriesLabel(r *Run, keys []string) string {
	return strings.TrimSpace(r.Summary.Arch + " " + ep.d.label(r, keys))
}

// style of a run's series under the given keys: the arch's colour, and the
// index of its label among the arch's labels over all runs as its variant,
// so a series is drawn alike in every figure that groups by the same keys.
func (ep *expPlots) style(r *Run, keys []string) style {
	id := strings.Join(keys, ",")
	if ep.variant[id] == nil {
		m := map[string]int{}
		perArch := map[string]int{}
		for _, b := range groupBy(ep.exp.Runs, keys, true) {
			a := b.runs[0].Summary.Arch
			m[ep.seriesLabel(b.runs[0], keys)] = perArch[a]
			perArch[a]++
		}
		ep.variant[id] = m
	}
	return style{color: archColor(r.Summary.Arch), variant: ep.variant[id][ep.seriesLabel(r, keys)]}
}

func (ep *expPlots) figures() []*figure {
	if len(ep.ok) == 0 {
		return nil
	}
	var figs []*figure
	figs = append(figs, ep.learningCurves()...)
	figs = append(figs, ep.sweeps()...)
	figs = append(figs, ep.extrapolation()...)
	if ep.isScalingStudy() {
		figs = append(figs, ep.scalingStudy()...)
	} else {
		figs = append(figs, ep.scaling()...)
	}
	return figs
}

// aggregationNote says how seeds and learning rates were folded.
func (ep *expPlots) aggregationNote(what string) string {
	var parts []string
	if ep.d.seedVaries {
		parts = append(parts, what+" are the mean over seeds with the min–max range shaded")
	}
	if ep.d.lrVaries {
		parts = append(parts, "each point takes the learning rate with the best final accuracy")
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// learningCurves draws, per facet (combination of varying task/train
// settings), eval loss and accuracy against steps and tokens, one line per
// arch (and model variant), seeds aggregated.
func (ep *expPlots) learningCurves() []*figure {
	facetKeys, seriesKeys := ep.d.facetKeys, ep.d.seriesKeys
	facets := groupBy(ep.ok, facetKeys, false)
	lineOf := "arch"
	// A few settings fit in one figure, each its own line: the quickstart's
	// selective copying and copying side by side.
	if all := append(append([]string{}, seriesKeys...), facetKeys...); len(facets) > 1 &&
		len(groupBy(ep.ok, all, true)) <= maxMergedLines {
		lineOf = "arch and " + strings.Join(names(ep.d, facetKeys), ", ")
		facetKeys, seriesKeys = nil, all
		facets = groupBy(ep.ok, nil, false)
	}
	if len(facets) > maxCurveFigures {
		ep.notes = append(ep.notes, fmt.Sprintf("Learning curves are drawn for the first %d of %d settings (%s).",
			maxCurveFigures, len(facets), strings.Join(names(ep.d, ep.d.facetKeys), ", ")))
		facets = facets[:maxCurveFigures]
	}
	var figs []*figure
	for _, fc := range facets {
		flabel := ep.d.label(fc.runs[0], facetKeys)
		f := &figure{name: ep.exp.Name + "-curves", title: ep.exp.Name + ": learning curves"}
		if flabel != "" {
			f.name += "-" + slug(flabel)
			f.title += " (" + flabel + ")"
		}
		type series struct {
			label     string
			st        style
			runs      []*Run
			evalLoss  curve
			trainLoss curve
			evalAcc   curve
		}
		var ss []series
		for _, b := range groupBy(fc.runs, seriesKeys, true) {
			runs, lr := b.runs, ""
			if ep.d.lrVaries {
				runs, lr = bestLR(b.runs)
			}
			s := series{label: ep.seriesLabel(runs[0], seriesKeys), st: ep.style(runs[0], seriesKeys), runs: runs}
			if lr != "" {
				s.label += " lr=" + lr
			}
			step := func(m train.Metrics) float64 { return float64(m.Step) }
			s.evalLoss = aggregate(runs, step, func(m train.Metrics) (float64, bool) {
				if m.EvalLoss == nil {
					return 0, false
				}
				return float64(*m.EvalLoss), true
			})
			s.trainLoss = aggregate(runs, step, func(m train.Metrics) (float64, bool) { return float64(m.Loss), true })
			s.evalAcc = aggregate(runs, step, func(m train.Metrics) (float64, bool) {
				if m.EvalAccuracy == nil {
					return 0, false
				}
				return *m.EvalAccuracy, true
			})
			ss = append(ss, s)
		}
		// Past maxCurveLines lines nobody can follow one: keep the best
		// configuration of each arch (the sweeps and the table show all).
		pruned := 0
		if len(ss) > maxCurveLines {
			best := map[string]int{}
			var order []string
			for i, s := range ss {
				a := s.runs[0].Summary.Arch
				j, seen := best[a]
				if !seen {
					order = append(order, a)
					best[a] = i
					continue
				}
				if betterRuns(s.runs, ss[j].runs) {
					best[a] = i
				}
			}
			var kept []series
			for _, a := range order {
				s := ss[best[a]]
				s.st.variant = 0 // the arch's only line: solid
				if cfg := strings.TrimSpace(strings.TrimPrefix(s.label, a)); cfg != "" {
					s.label = a + " (best: " + cfg + ")"
				}
				kept = append(kept, s)
			}
			pruned = len(ss)
			ss = kept
		}
		lossLo, lossHi := math.Inf(1), math.Inf(-1)
		for _, s := range ss {
			for _, c := range []curve{s.evalLoss, s.trainLoss} {
				for i := range c.mean {
					if c.lo[i] > 0 {
						lossLo = math.Min(lossLo, c.lo[i])
					}
					lossHi = math.Max(lossHi, c.hi[i])
				}
			}
		}
		// Copy-style tasks drive the loss to ~1e-4: a log axis shows the
		// tail, a linear one a flat line.
		lossScale := linear
		if lossLo > 0 && lossHi/lossLo > 30 {
			lossScale = log10
		}
		lossStep := newPanel("", "step", "loss", linear, lossScale)
		accStep := newPanel("", "step", "eval accuracy", linear, linear)
		lossTok := newPanel("", "tokens", "loss", linear, lossScale)
		accTok := newPanel("", "tokens", "eval accuracy", linear, linear)
		accStep.fixY(0, 1)
		accTok.fixY(0, 1)
		f.panels = [][]*panel{{lossStep, accStep}, {lossTok, accTok}}
		f.linkX = [][]*panel{{lossStep, accStep}, {lossTok, accTok}}
		for _, s := range ss {
			// tokens per step is fixed within a run: map the step axis of
			// each aggregated curve to tokens through the run's metrics.
			tok := tokensOfStep(s.runs)
			for _, pc := range []struct {
				loss, acc *panel
				x         func([]float64) []float64
			}{{lossStep, accStep, func(v []float64) []float64 { return v }}, {lossTok, accTok, tok}} {
				thin := s.st.line(0.8)
				thin.Color = withAlpha(s.st.color, 0x80)
				pc.loss.line(pc.x(s.trainLoss.x), s.trainLoss.mean, thin, nil)
				pc.loss.band(pc.x(s.evalLoss.x), s.evalLoss.lo, s.evalLoss.hi, s.st.color)
				gs := s.st.glyph()
				th := pc.loss.line(pc.x(s.evalLoss.x), s.evalLoss.mean, s.st.line(1.8), &gs)
				f.addLegend(s.label, th)
				pc.acc.band(pc.x(s.evalAcc.x), s.evalAcc.lo, s.evalAcc.hi, s.st.color)
				pc.acc.line(pc.x(s.evalAcc.x), s.evalAcc.mean, s.st.line(1.8), &gs)
			}
		}
		setting := ""
		if flabel != "" {
			setting = " at " + flabel
		}
		perArch := "one line per " + lineOf
		if pruned > 0 {
			perArch = fmt.Sprintf("one line per arch, its configuration with the best final accuracy (of %d; the table lists all)", pruned)
		}
		f.caption = fmt.Sprintf("Learning curves%s: eval loss (thick, with markers at the evaluations; thin: training loss) "+
			"and eval accuracy against training steps (top) and tokens seen (bottom), %s%s.",
			setting, perArch, ep.aggregationNote("lines"))
		figs = append(figs, f)
	}
	return figs
}

// tokensOfStep maps steps to tokens seen, from the first run's metrics
// (linear in step for a fixed batch shape).
func tokensOfStep(runs []*Run) func([]float64) []float64 {
	var perStep float64
	for _, r := range runs {
		for _, m := range r.Metrics {
			if m.Step > 0 && m.Tokens > 0 {
				perStep = float64(m.Tokens) / float64(m.Step)
				break
			}
		}
		if perStep > 0 {
			break
		}
	}
	return func(steps []float64) []float64 {
		out := make([]float64, len(steps))
		for i, s := range steps {
			out[i] = s * perStep
			if perStep == 0 {
				out[i] = math.NaN()
			}
		}
		return out
	}
}

func names(d design, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = d.names[k]
	}
	return out
}

// sweeps draws the final metric against each task.* or model.* setting
// that takes several numeric values: accuracy against sequence length for
// selective copying, MQAR accuracy against d_model per sequence length
// (Zoology's figure), and so on. The other varying task/train settings
// make panels, the other model settings separate lines.
func (ep *expPlots) sweeps() []*figure {
	var figs []*figure
	cands := append(append([]string{}, ep.d.facetKeys...), ep.d.seriesKeys...)
	useLoss := true
	for _, r := range ep.ok {
		if r.Summary.Task != "lm" {
			useLoss = false
		}
	}
	var drawnX []string
	for _, x := range cands {
		if !strings.HasPrefix(x, "task.") && !strings.HasPrefix(x, "model.") {
			continue
		}
		vals, ok := numericValues(ep.ok, x)
		// A task setting is worth a line from two values; a model setting
		// (often swept alongside others) from three.
		if need := map[bool]int{true: 2, false: 3}[strings.HasPrefix(x, "task.")]; !ok || len(vals) < need {
			continue
		}
		// A setting that moves in lockstep with an earlier one (MQAR's
		// num_kv_pairs with seq_len) would draw the same plot again.
		if dup := lockstepWith(ep.ok, x, drawnX); dup != "" {
			continue
		}
		drawnX = append(drawnX, x)
		xs := linear
		switch {
		case powersOfTwo(vals) && vals[len(vals)-1]/vals[0] >= 4:
			xs = log2
		case vals[0] > 0 && vals[len(vals)-1]/vals[0] >= 50:
			xs = log10
		}
		facetKeys, seriesKeys := without(ep.d.facetKeys, x), without(ep.d.seriesKeys, x)
		// Too many lines to follow: model settings become panels instead,
		// the one with the most values first.
		for len(seriesKeys) > 0 && len(groupBy(ep.ok, seriesKeys, true)) > maxCurveLines {
			most, n := "", 0
			for _, k := range seriesKeys {
				if vals, _ := distinctValues(ep.ok, k); len(vals) > n {
					most, n = k, len(vals)
				}
			}
			seriesKeys = without(seriesKeys, most)
			facetKeys = append(facetKeys, most)
		}
		xname := ep.d.names[x]
		metric, what, ys := finalAcc, "accuracy", linear
		if useLoss {
			metric, what, ys = finalLoss, "loss", log10
		}
		ylabel := "final eval " + what
		f := &figure{name: ep.exp.Name + "-" + what + "-vs-" + slug(xname),
			title: fmt.Sprintf("%s: %s vs %s", ep.exp.Name, what, xname)}
		facets := groupBy(ep.ok, facetKeys, false)
		if len(facets) > maxPanels {
			ep.notes = append(ep.notes, fmt.Sprintf("%s: the first %d of %d panels are drawn.", f.title, maxPanels, len(facets)))
			facets = facets[:maxPanels]
		}
		f.panels = gridOf(len(facets))
		drawn := 0
		for i, fc := range facets {
			pn := newPanel(ep.d.panelTitle(fc.runs[0], facetKeys), xname, ylabel, xs, ys)
			if !useLoss {
				pn.fixY(0, 1)
			}
			setCell(f.panels, i, pn)
			for _, s := range groupBy(fc.runs, seriesKeys, true) {
				var px, pm, plo, phi []float64
				for _, at := range groupBy(s.runs, []string{x}, false) {
					runs := at.runs
					if ep.d.lrVaries {
						runs, _ = bestLR(runs)
					}
					st := statsOf(runs, metric)
					px = append(px, settingFloat(runs[0], x))
					pm, plo, phi = append(pm, st.mean), append(plo, st.lo), append(phi, st.hi)
				}
				r := s.runs[0]
				st := ep.style(r, seriesKeys)
				pn.band(px, plo, phi, st.color)
				gs := st.glyph()
				th := pn.line(px, pm, st.line(1.8), &gs)
				f.addLegend(ep.seriesLabel(r, seriesKeys), th)
				drawn += len(px)
			}
		}
		if len(f.panels) == 1 && len(f.panels[0]) == 1 {
			f.panelW, f.panelH = 5.5*vg.Inch, 3.8*vg.Inch
		}
		axis := map[scale]string{linear: "", log2: " (log-2 axis)", log10: " (log axis)"}[xs]
		panels := ""
		if len(facetKeys) > 0 {
			panels = "; one panel per " + strings.Join(names(ep.d, facetKeys), ", ")
		}
		f.caption = fmt.Sprintf("%s against %s%s, one line per arch%s%s.",
			upperFirst(ylabel), xname, axis, ep.aggregationNote("points"), panels)
		figs = append(figs, f)
	}
	return figs
}

// setCell puts the i-th panel of a grid in row-major order.
func setCell(grid [][]*panel, i int, pn *panel) {
	cols := len(grid[0])
	grid[i/cols][i%cols] = pn
}

// gridOf lays n panels out in a near-square grid, at most panelCols wide.
func gridOf(n int) [][]*panel {
	cols := min(int(math.Ceil(math.Sqrt(float64(n)))), panelCols)
	rows := (n + cols - 1) / cols
	g := make([][]*panel, rows)
	for i := range g {
		g[i] = make([]*panel, cols)
	}
	return g
}

// scaling draws final eval loss against parameters and against training
// FLOPs, log–log, with a power law a·x^b fitted per arch (least squares in
// log–log space, see FitPowerLaw), for every arch with at least three
// distinct parameter counts spanning a factor of minScalingSpan. One
// figure per facet.
func (ep *expPlots) scaling() []*figure {
	var figs []*figure
	facets := groupBy(ep.ok, ep.d.facetKeys, false)
	if len(facets) > maxPanels {
		facets = facets[:maxPanels]
	}
	for _, fc := range facets {
		type pointSet struct {
			arch          string
			params, flops []float64
			mean, lo, hi  []float64
			fitN, fitC    PowerLaw
			errN, errC    error
			style         style
		}
		var sets []pointSet
		for _, a := range groupBy(fc.runs, nil, true) {
			byParams := groupByFunc(a.runs, func(r *Run) string { return strconv.Itoa(r.Summary.Params) })
			if len(byParams) < 3 || !spansSizes(a.runs, func(r *Run) float64 { return float64(r.Summary.Params) }) {
				continue
			}
			ps := pointSet{arch: a.runs[0].Summary.Arch, style: style{color: archColor(a.runs[0].Summary.Arch)}}
			for _, pb := range byParams {
				// Best configuration (lr, model variant) at this size,
				// seeds averaged.
				var best []*Run
				bestLoss := math.Inf(1)
				for _, cfg := range groupBy(pb.runs, append(append([]string{}, ep.d.seriesKeys...), lrKey), false) {
					if l := meanOf(cfg.runs, finalLoss); l < bestLoss || best == nil {
						best, bestLoss = cfg.runs, l
					}
				}
				st := statsOf(best, finalLoss)
				ps.params = append(ps.params, float64(best[0].Summary.Params))
				ps.flops = append(ps.flops, meanOf(best, trainFLOPs))
				ps.mean, ps.lo, ps.hi = append(ps.mean, st.mean), append(ps.lo, st.lo), append(ps.hi, st.hi)
			}
			ps.fitN, ps.errN = FitPowerLaw(ps.params, ps.mean)
			ps.fitC, ps.errC = FitPowerLaw(ps.flops, ps.mean)
			sets = append(sets, ps)
		}
		if len(sets) == 0 {
			continue
		}
		flabel := ep.d.label(fc.runs[0], ep.d.facetKeys)
		f := &figure{name: ep.exp.Name + "-scaling", title: ep.exp.Name + ": scaling"}
		if flabel != "" {
			f.name += "-" + slug(flabel)
			f.title += " (" + flabel + ")"
		}
		byN := newPanel("", "parameters N", "final eval loss", log10, log10)
		byC := newPanel("", "training FLOPs C", "final eval loss", log10, log10)
		f.panels = [][]*panel{{byN, byC}}
		for _, ps := range sets {
			label := ps.arch
			var exps []string
			if ps.errN == nil {
				exps = append(exps, "N^"+signed(ps.fitN.B))
			}
			if ps.errC == nil {
				exps = append(exps, "C^"+signed(ps.fitC.B))
			}
			if len(exps) > 0 {
				label += ": loss ~ " + strings.Join(exps, ", ")
			}
			for _, pn := range []struct {
				p   *panel
				x   []float64
				fit PowerLaw
				err error
			}{{byN, ps.params, ps.fitN, ps.errN}, {byC, ps.flops, ps.fitC, ps.errC}} {
				th := pn.p.scatter(pn.x, ps.mean, ps.lo, ps.hi, ps.style)
				if pn.err == nil {
					fx, fy := fitLine(pn.x, pn.fit)
					ls := ps.style.line(1.2)
					ls.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
					pn.p.line(fx, fy, ls, nil)
				}
				f.addLegend(label, th)
			}
		}
		f.caption = fmt.Sprintf("Scaling%s: final eval loss against parameters N and training FLOPs C "+
			"(3 × forward FLOPs/token × tokens), log–log, with the power law a·x^b fitted per arch by least squares "+
			"in log–log space (dashed; the exponent b is in the legend); each point is the best configuration at that size%s.",
			map[bool]string{true: " at " + flabel, false: ""}[flabel != ""], ep.aggregationNote("points"))
		figs = append(figs, f)
	}
	return figs
}

// groupByFunc splits runs by key(r), in order of first appearance after
// sorting by the key numerically.
func groupByFunc(runs []*Run, key func(*Run) string) []bucket {
	var out []bucket
	index := map[string]int{}
	for _, r := range runs {
		k := key(r)
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, bucket{key: k})
		}
		out[i].runs = append(out[i].runs, r)
	}
	sortBuckets(out)
	return out
}

func sortBuckets(bs []bucket) {
	slices.SortStableFunc(bs, func(a, b bucket) int { return compareValues(a.key, b.key) })
}

// fitLine samples a fitted law (a PowerLaw or a ScalingFit) over the x
// range, evenly in log space.
func fitLine(xs []float64, p interface{ At(float64) float64 }) (fx, fy []float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		if valid(x, log10) {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	if !(hi > lo) {
		return nil, nil
	}
	const n = 32
	for i := range n {
		x := lo * math.Pow(hi/lo, float64(i)/(n-1))
		fx, fy = append(fx, x), append(fy, p.At(x))
	}
	return fx, fy
}

// signed writes an exponent to 3 decimals.
func signed(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// slug makes a file-name-safe piece: letters, digits, '.', '_' and '-'.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_'
		if ok {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}
