package reports

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"seqbench/internal/atomicfile"
)

// plotFont is the one face every plot uses; index.html embeds it once.
var plotFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// Text sizes, in points.
const (
	figTitleSize   = 13
	panelTitleSize = 11
	axisLabelSize  = 10
	tickLabelSize  = 9
	legendSize     = 10
)

// archOrder fixes the colour and the table order of the known archs. The
// colours are matplotlib's "tab10", which readers already know.
var archOrder = []string{"transformer", "lstm", "gru", "s4d", "mamba1", "mamba2"}

var archColors = map[string]color.RGBA{
	"transformer": rgb(0x1f77b4), // blue
	"lstm":        rgb(0x8c564b), // brown
	"gru":         rgb(0xe377c2), // pink
	"s4d":         rgb(0x2ca02c), // green
	"mamba1":      rgb(0xff7f0e), // orange
	"mamba2":      rgb(0xd62728), // red
}

// otherColors are for archs (and bench implementations) outside archOrder,
// chosen by a hash of the name so a name keeps its colour in every plot.
var otherColors = []color.RGBA{
	rgb(0x9467bd), rgb(0x17becf), rgb(0xbcbd22), rgb(0x7f7f7f),
	rgb(0x393b79), rgb(0x637939), rgb(0x843c39), rgb(0x7b4173),
}

func rgb(v uint32) color.RGBA {
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 255}
}

// archColor is the colour of an arch in every plot.
func archColor(arch string) color.RGBA {
	if c, ok := archColors[arch]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(arch))
	return otherColors[h.Sum32()%uint32(len(otherColors))]
}

// archRank orders archs as archOrder does, unknown ones after, by name.
func archRank(arch string) int {
	for i, a := range archOrder {
		if a == arch {
			return i
		}
	}
	return len(archOrder)
}

func withAlpha(c color.RGBA, a uint8) color.NRGBA {
	return color.NRGBA{R: c.R, G: c.G, B: c.B, A: a}
}

// Variants of one arch (say d_state 16 and 64) share its colour and differ
// by dash pattern and glyph.
var variantDashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)},
	{vg.Points(8), vg.Points(3), vg.Points(2), vg.Points(3)}}
var variantGlyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.PyramidGlyph{}, draw.BoxGlyph{}, draw.RingGlyph{}, draw.CrossGlyph{}}

// style is how one series is drawn.
type style struct {
	color   color.RGBA
	variant int
}

func (s style) line(width float64) draw.LineStyle {
	return draw.LineStyle{Color: s.color, Width: vg.Points(width), Dashes: variantDashes[s.variant%len(variantDashes)]}
}

func drawLine(c color.Color, width vg.Length, dashes []vg.Length) draw.LineStyle {
	return draw.LineStyle{Color: c, Width: width, Dashes: dashes}
}

func (s style) glyph() draw.GlyphStyle {
	return draw.GlyphStyle{Color: s.color, Radius: vg.Points(2.5), Shape: variantGlyphs[s.variant%len(variantGlyphs)]}
}

// scale of an axis: linear or logarithmic in base 2 or 10.
type scale int

const (
	linear scale = iota
	log2
	log10
)

// fwd maps a value to the axis's drawing coordinate: itself, or its
// logarithm. Log axes are drawn as linear axes over log values with ticks
// labelled by the original values, rather than with gonum's LogScale, which
// panics on values <= 0 and misplaces a centred axis label.
func (s scale) fwd(v float64) float64 {
	switch s {
	case log2:
		return math.Log2(v)
	case log10:
		return math.Log10(v)
	}
	return v
}

// panel is one plot of a figure. Data goes through its add methods, which
// drop points that are not finite or not > 0 on a log axis, map them to
// drawing coordinates and track their range, so no NaN and no value <= 0
// ever reaches an axis.
type panel struct {
	p                      *plot.Plot
	xs, ys                 scale
	xmin, xmax, ymin, ymax float64 // tracked range, in drawing coordinates
	// yFixed pins the y range (accuracy: 0..1).
	yFixed bool
	y0, y1 float64
	// yFormat, when set, writes the y tick labels (seconds as 10µs, 1ms).
	yFormat  func(float64) string
	nonEmpty bool
	dropped  int  // points left out (non-finite, or <= 0 on a log axis)
	finished bool // finish ran: a figure is drawn once per output format
}

func newPanel(title, xlabel, ylabel string, xs, ys scale) *panel {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = font.From(plotFont, panelTitleSize)
	p.Title.Padding = vg.Points(4)
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(plotFont, axisLabelSize)
		a.Tick.Label.Font = font.From(plotFont, tickLabelSize)
		a.Tick.Length = vg.Points(5)
	}
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 225}
	grid.Horizontal.Color = color.Gray{Y: 225}
	p.Add(grid)
	return &panel{p: p, xs: xs, ys: ys,
		xmin: math.Inf(1), xmax: math.Inf(-1), ymin: math.Inf(1), ymax: math.Inf(-1)}
}

func (pn *panel) fixY(lo, hi float64) { pn.yFixed, pn.y0, pn.y1 = true, lo, hi }

func valid(v float64, s scale) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && (s == linear || v > 0)
}

// clean keeps the points that can be drawn on the panel's axes.
func (pn *panel) clean(xs, ys []float64) plotter.XYs {
	pts := make(plotter.XYs, 0, len(xs))
	for i := range xs {
		if valid(xs[i], pn.xs) && valid(ys[i], pn.ys) {
			pts = append(pts, plotter.XY{X: pn.xs.fwd(xs[i]), Y: pn.ys.fwd(ys[i])})
		} else {
			pn.dropped++
		}
	}
	return pts
}

func (pn *panel) track(pts plotter.XYs) {
	for _, q := range pts {
		pn.xmin, pn.xmax = math.Min(pn.xmin, q.X), math.Max(pn.xmax, q.X)
		pn.ymin, pn.ymax = math.Min(pn.ymin, q.Y), math.Max(pn.ymax, q.Y)
		pn.nonEmpty = true
	}
}

// line adds a polyline (with glyphs when glyphs is set) and returns it for
// the legend, or nil when no point is drawable.
func (pn *panel) line(xs, ys []float64, ls draw.LineStyle, gs *draw.GlyphStyle) plot.Thumbnailer {
	pts := pn.clean(xs, ys)
	if len(pts) == 0 {
		return nil
	}
	pn.track(pts)
	l := &plotter.Line{XYs: pts, LineStyle: ls}
	pn.p.Add(l)
	if gs != nil || len(pts) == 1 {
		s := &plotter.Scatter{XYs: pts}
		if gs != nil {
			s.GlyphStyle = *gs
		} else {
			s.GlyphStyle = draw.GlyphStyle{Color: ls.Color, Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
		}
		pn.p.Add(s)
		return legendThumb{l, s}
	}
	return l
}

// band fills between lo and hi (the min–max over seeds); points where
// either bound cannot be drawn are left out.
func (pn *panel) band(xs, lo, hi []float64, c color.RGBA) {
	var upper, lower plotter.XYs
	for i := range xs {
		if valid(xs[i], pn.xs) && valid(lo[i], pn.ys) && valid(hi[i], pn.ys) && hi[i] > lo[i] {
			x := pn.xs.fwd(xs[i])
			upper = append(upper, plotter.XY{X: x, Y: pn.ys.fwd(hi[i])})
			lower = append(lower, plotter.XY{X: x, Y: pn.ys.fwd(lo[i])})
		}
	}
	if len(upper) < 2 {
		return
	}
	ring := make(plotter.XYs, 0, 2*len(upper))
	ring = append(ring, upper...)
	for i := len(lower) - 1; i >= 0; i-- {
		ring = append(ring, lower[i])
	}
	pn.track(ring)
	poly := &plotter.Polygon{XYs: []plotter.XYs{ring}, Color: withAlpha(c, 0x38)}
	pn.p.Add(poly)
}

// scatter adds points with vertical whiskers from lo to hi.
func (pn *panel) scatter(xs, ys, lo, hi []float64, st style) plot.Thumbnailer {
	pts := pn.clean(xs, ys)
	if len(pts) == 0 {
		return nil
	}
	pn.track(pts)
	for i := range xs {
		if valid(xs[i], pn.xs) && valid(lo[i], pn.ys) && valid(hi[i], pn.ys) && hi[i] > lo[i] {
			x := pn.xs.fwd(xs[i])
			w := plotter.XYs{{X: x, Y: pn.ys.fwd(lo[i])}, {X: x, Y: pn.ys.fwd(hi[i])}}
			pn.track(w)
			pn.p.Add(&plotter.Line{XYs: w, LineStyle: draw.LineStyle{Color: st.color, Width: vg.Points(1)}})
		}
	}
	s := &plotter.Scatter{XYs: pts, GlyphStyle: st.glyph()}
	s.GlyphStyle.Radius = vg.Points(3)
	pn.p.Add(s)
	return s
}

// legendThumb draws a line and its glyph in one legend entry.
type legendThumb []plot.Thumbnailer

func (t legendThumb) Thumbnail(c *draw.Canvas) {
	for _, th := range t {
		th.Thumbnail(c)
	}
}

// finish sets the axis ranges and tickers from the tracked data.
func (pn *panel) finish() {
	if pn.finished {
		return
	}
	pn.finished = true
	p := pn.p
	if !pn.nonEmpty {
		// Nothing drawable: a linear unit box that says so.
		pn.xs, pn.ys = linear, linear
		pn.xmin, pn.xmax, pn.ymin, pn.ymax = 0, 1, 0, 1
		p.Title.Text = strings.TrimSpace(p.Title.Text + " (no data)")
	}
	if pn.yFixed {
		pn.ymin = math.Min(pn.ymin, pn.ys.fwd(pn.y0))
		pn.ymax = math.Max(pn.ymax, pn.ys.fwd(pn.y1))
	}
	setAxis(&p.X, pn.xs, pn.xmin, pn.xmax, false, nil)
	setAxis(&p.Y, pn.ys, pn.ymin, pn.ymax, pn.yFixed, pn.yFormat)
}

// setAxis gives an axis its range (in drawing coordinates, padded a
// little unless exact) and ticker.
func setAxis(a *plot.Axis, s scale, lo, hi float64, exact bool, format func(float64) string) {
	if format == nil {
		format = humanFloat
	}
	if lo == hi {
		pad := 0.5 // a single log value: half a decade (or octave) each side
		if s == linear {
			pad = math.Max(math.Abs(lo)*0.1, 0.5)
		}
		lo, hi = lo-pad, hi+pad
	} else if !exact {
		pad := (hi - lo) * 0.03
		lo, hi = lo-pad, hi+pad
	}
	a.Min, a.Max = lo, hi
	switch s {
	case linear:
		a.Tick.Marker = humanTicks{}
	case log2:
		a.Tick.Marker = log2Ticks{}
	default:
		a.Tick.Marker = log10Ticks{format}
	}
}

// humanTicks label 4 to 8 round values (steps of 1, 2, 2.5 or 5 times a
// power of ten; gonum's default often gives only 3), with a minor tick
// between, large values written 200k, 1.5M.
type humanTicks struct{}

func (humanTicks) Ticks(lo, hi float64) []plot.Tick {
	step := niceStep(hi - lo)
	var ticks []plot.Tick
	start := math.Ceil(lo/step-1e-9) * step
	for v := start - step/2; v <= hi+1e-9*step; v += step / 2 {
		if v < lo-1e-9*step {
			continue
		}
		// Snap to the grid so 0.30000000000000004 reads 0.3.
		k := math.Round(v / (step / 2))
		val := k * step / 2
		t := plot.Tick{Value: val}
		if int64(k)%2 == 0 {
			t.Label = humanFloat(val)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// niceStep is the smallest of 1, 2, 2.5, 5 × 10^k that cuts span into at
// most 8 steps.
func niceStep(span float64) float64 {
	if !(span > 0) || math.IsInf(span, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(span/8)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if span/(m*mag) <= 8 {
			return m * mag
		}
	}
	return 10 * mag
}

// log10Ticks label the decades (every other one over many decades), and
// more of the 1..9 multiples when the range holds few decades: gonum's
// LogTicks would label nothing inside a range like 20k..60k.
type log10Ticks struct{ format func(float64) string }

func (t log10Ticks) Ticks(lo, hi float64) []plot.Tick {
	ticks := t.raw(math.Pow(10, lo), math.Pow(10, hi))
	for i := range ticks {
		ticks[i].Value = math.Log10(ticks[i].Value)
	}
	return ticks
}

// raw makes the ticks in data values.
func (t log10Ticks) raw(lo, hi float64) []plot.Tick {
	d0, d1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	var ticks []plot.Tick
	for d := d0; d <= d1; d++ {
		for m := 1; m < 10; m++ {
			if v := float64(m) * math.Pow(10, float64(d)); v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v})
			}
		}
	}
	// Label the densest set of multiples that still leaves room: decades,
	// then 1-2-5, then all of 1..9; every other decade past eight.
	for _, mults := range [][]int{{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		n := 0
		for i, tk := range ticks {
			if slices.Contains(mults, leadingDigit(tk.Value)) {
				ticks[i].Label = t.format(tk.Value)
				n++
			}
		}
		if n >= 3 {
			break
		}
	}
	if n := labelled(ticks); n > 8 {
		k := 0
		for i := range ticks {
			if ticks[i].Label != "" {
				if k%2 == 1 {
					ticks[i].Label = ""
				}
				k++
			}
		}
	}
	if labelled(ticks) < 2 {
		ticks = append(ticks, plot.Tick{Value: lo, Label: t.format(sig2(lo))}, plot.Tick{Value: hi, Label: t.format(sig2(hi))})
	}
	return ticks
}

// leadingDigit of a tick value m·10^d.
func leadingDigit(v float64) int {
	d := math.Floor(math.Log10(v))
	return int(math.Round(v / math.Pow(10, d)))
}

// log2Ticks label the powers of two, every other one when there are many.
type log2Ticks struct{}

func (log2Ticks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	e0, e1 := int(math.Ceil(lo-1e-9)), int(math.Floor(hi+1e-9))
	every := 1
	for (e1-e0)/every+1 > 9 {
		every++
	}
	for e := e0; e <= e1; e++ {
		t := plot.Tick{Value: float64(e)}
		if (e-e0)%every == 0 {
			t.Label = pow2Label(e)
		}
		ticks = append(ticks, t)
	}
	if labelled(ticks) < 2 {
		// Inside one octave: label the ends.
		a, b := math.Exp2(lo), math.Exp2(hi)
		ticks = append(ticks, plot.Tick{Value: math.Log2(sig2(a)), Label: humanFloat(sig2(a))},
			plot.Tick{Value: math.Log2(sig2(b)), Label: humanFloat(sig2(b))})
	}
	return ticks
}

func labelled(ts []plot.Tick) int {
	n := 0
	for _, t := range ts {
		if t.Label != "" {
			n++
		}
	}
	return n
}

func sig2(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 2, 64), 64)
	return f
}

// pow2Label writes 2^e as sequence lengths are usually written: 512,
// 8192, 16k, 1M (binary multiples).
func pow2Label(e int) string {
	switch {
	case e < 0:
		return strconv.FormatFloat(math.Ldexp(1, e), 'g', -1, 64)
	case e < 14:
		return strconv.Itoa(1 << e)
	case e < 20:
		return strconv.Itoa(1<<(e-10)) + "k"
	case e < 30:
		return strconv.Itoa(1<<(e-20)) + "M"
	}
	return strconv.Itoa(1<<(e-30)) + "G"
}

// humanFloat writes a tick or table value: 0.001, 0.5, 64, 4096, 16.4k,
// 2.5M, 1e14. Integers below 10 000 are written exactly.
func humanFloat(v float64) string {
	a := math.Abs(v)
	trim := func(x float64, suffix string) string {
		return strconv.FormatFloat(x, 'f', -1, 64) + suffix
	}
	switch {
	case a >= 1e12:
		return sciShort(v)
	case a >= 1e9:
		return trim(round3(v/1e9), "B")
	case a >= 1e6:
		return trim(round3(v/1e6), "M")
	case a >= 1e4:
		return trim(round3(v/1e3), "k")
	case a == 0:
		return "0"
	case a < 1e-3:
		return sciShort(v)
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(round3(v), 'f', -1, 64)
}

// sciShort writes 5e13 or 1.5e-5 (no '+', no leading zeros).
func sciShort(v float64) string {
	s := strconv.FormatFloat(round3(v), 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	sign := ""
	if exp[0] == '-' {
		sign = "-"
	}
	exp = strings.TrimLeft(exp[1:], "0")
	return mant + "e" + sign + exp
}

// shortSeconds writes a time tick: 10µs, 1ms, 2.5s.
func shortSeconds(s float64) string {
	switch {
	case s < 1e-6:
		return humanFloat(round3(s*1e9)) + "ns"
	case s < 1e-3:
		return humanFloat(round3(s*1e6)) + "µs"
	case s < 1:
		return humanFloat(round3(s*1e3)) + "ms"
	}
	return humanFloat(round3(s)) + "s"
}

// round3 rounds to 3 significant digits.
func round3(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	return f
}

// figure is a grid of panels with a title and one legend on the right, so
// the legend never covers data.
type figure struct {
	name    string // file stem under plots/
	title   string
	caption string // the sentence report.md puts under it
	panels  [][]*panel
	legend  []legendEntry
	// linkX lists groups of panels that share one x range (loss and
	// accuracy against the same step axis).
	linkX  [][]*panel
	panelW vg.Length
	panelH vg.Length
}

type legendEntry struct {
	label string
	thumb plot.Thumbnailer
}

// addLegend records a legend entry once per label.
func (f *figure) addLegend(label string, th plot.Thumbnailer) {
	if th == nil {
		return
	}
	for _, e := range f.legend {
		if e.label == label {
			return
		}
	}
	f.legend = append(f.legend, legendEntry{label, th})
}

func (f *figure) newLegend() plot.Legend {
	l := plot.NewLegend()
	l.TextStyle.Font = font.From(plotFont, legendSize)
	l.Top, l.Left = true, true
	l.Padding = vg.Points(3)
	l.ThumbnailWidth = vg.Points(26)
	for _, e := range f.legend {
		l.Add(e.label, e.thumb)
	}
	return l
}

func (f *figure) size() (w, h, legendW, titleH vg.Length) {
	rows, cols := len(f.panels), 0
	for _, r := range f.panels {
		cols = max(cols, len(r))
	}
	pw, ph := f.panelW, f.panelH
	if pw == 0 {
		pw = 4.2 * vg.Inch
	}
	if ph == 0 {
		ph = 3.2 * vg.Inch
	}
	if len(f.legend) > 0 {
		l := f.newLegend()
		for _, e := range f.legend {
			legendW = max(legendW, l.TextStyle.Width(" "+e.label))
		}
		legendW += l.ThumbnailWidth + vg.Points(16)
	}
	if f.title != "" {
		titleH = vg.Points(figTitleSize * 2)
	}
	w = vg.Length(cols)*pw + legendW
	h = vg.Length(rows)*ph + titleH
	// A long legend makes the figure taller rather than run off the bottom.
	if len(f.legend) > 0 {
		l := f.newLegend()
		need := vg.Length(len(f.legend))*(l.TextStyle.Rectangle("Xg").Max.Y+l.Padding) + titleH + vg.Points(20)
		h = max(h, need)
	}
	return w, h, legendW, titleH
}

func (f *figure) draw(c draw.Canvas) {
	_, _, legendW, titleH := f.size()
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	if f.title != "" {
		sty := draw.TextStyle{Color: color.Black, Font: font.From(plotFont, figTitleSize),
			XAlign: draw.XCenter, YAlign: draw.YTop, Handler: plot.DefaultTextHandler}
		c.FillText(sty, vg.Point{X: (c.Min.X + c.Max.X - legendW) / 2, Y: c.Max.Y - vg.Points(5)}, f.title)
	}
	for _, g := range f.linkX {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, pn := range g {
			if pn.nonEmpty {
				lo, hi = math.Min(lo, pn.xmin), math.Max(hi, pn.xmax)
			}
		}
		for _, pn := range g {
			if pn.nonEmpty {
				pn.xmin, pn.xmax = lo, hi
			}
		}
	}
	for _, row := range f.panels {
		for _, pn := range row {
			if pn != nil {
				pn.finish()
			}
		}
	}
	area := c
	area.Max.Y -= titleH
	area.Max.X -= legendW
	rows, cols := len(f.panels), 0
	for _, r := range f.panels {
		cols = max(cols, len(r))
	}
	plots := make([][]*plot.Plot, rows)
	for i, r := range f.panels {
		plots[i] = make([]*plot.Plot, cols)
		for j, pn := range r {
			if pn != nil {
				plots[i][j] = pn.p
			}
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(14), PadY: vg.Points(12),
		PadTop: vg.Points(4), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}
	canvases := plot.Align(plots, tiles, area)
	for i := range plots {
		for j := range plots[i] {
			if plots[i][j] != nil {
				plots[i][j].Draw(canvases[i][j])
			}
		}
	}
	if len(f.legend) > 0 {
		l := f.newLegend()
		lc := c
		lc.Min.X = c.Max.X - legendW + vg.Points(4)
		lc.Max.Y = c.Max.Y - titleH - vg.Points(12)
		l.Draw(lc)
	}
}

// pngDPI is the resolution of the PNGs: sharp on a laptop screen, small on
// disk.
const pngDPI = 110

// renderPNG draws the figure into PNG bytes.
func (f *figure) renderPNG(dpi int) ([]byte, error) {
	w, h, _, _ := f.size()
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	f.draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// renderSVG draws the figure into SVG bytes; embed puts the font inside
// (the standalone .svg files), index.html embeds it once for all instead.
func (f *figure) renderSVG(embed bool) ([]byte, error) {
	w, h, _, _ := f.size()
	c := vgsvg.NewWith(vgsvg.UseWH(w, h), vgsvg.EmbedFonts(embed))
	f.draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// save writes dir/<name>.png and dir/<name>.svg.
func (f *figure) save(dir string, dpi int) (pngPath, svgPath string, err error) {
	png, err := f.renderPNG(dpi)
	if err != nil {
		return "", "", fmt.Errorf("%s.png: %w", f.name, err)
	}
	svg, err := f.renderSVG(true)
	if err != nil {
		return "", "", fmt.Errorf("%s.svg: %w", f.name, err)
	}
	pngPath, svgPath = filepath.Join(dir, f.name+".png"), filepath.Join(dir, f.name+".svg")
	if err := atomicfile.WriteFile(pngPath, png); err != nil {
		return "", "", err
	}
	if err := atomicfile.WriteFile(svgPath, svg); err != nil {
		return "", "", err
	}
	return pngPath, svgPath, nil
}
