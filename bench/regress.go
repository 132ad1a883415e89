package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"golang.org/x/perf/benchmath"
)

// CompareOptions decide when a difference is a regression.
type CompareOptions struct {
	// Threshold is the smallest slowdown that counts (0.05: 5% slower
	// median); smaller differences are "same" even when significant.
	Threshold float64
	// Alpha is the significance level of the Mann-Whitney U test.
	Alpha float64
	// AllowDeviceChange compares files from different devices or backends
	// (otherwise an error: their times are not comparable).
	AllowDeviceChange bool
}

// Verdicts of a comparison.
const (
	Faster       = "faster"
	Slower       = "slower"
	Same         = "same"
	Insufficient = "~" // too few samples for the test to ever reach Alpha
)

// Delta is one benchmark in both files.
type Delta struct {
	Name             string
	OldMedian        float64 // seconds
	NewMedian        float64
	Change           float64 // NewMedian/OldMedian − 1: +0.2 is 20% slower
	P                float64 // the U test's p-value
	N1, N2           int
	Verdict          string
	Warnings         []string
	OldIQR, NewIQR   float64
	OldSpan, NewSpan float64 // (max − min) / median
}

// Comparison is the result of comparing two bench files.
type Comparison struct {
	Options        CompareOptions
	OldDevice      string
	NewDevice      string
	OldBackend     string
	NewBackend     string
	Precision      string   // of both files (they must agree)
	Deltas         []Delta  // in the current file's order
	OnlyOld        []string // benchmarks missing from the current file
	OnlyNew        []string // benchmarks new in the current file
	OldCeil        *Ceilings
	NewCeil        *Ceilings
	Regressions    int // verdict slower
	Insufficient   int
	DeviceMismatch bool
	// The hosts of the two runs (their load) and whether each run was
	// interrupted (then only the benchmarks it finished are compared).
	OldHost, NewHost               Host
	OldInterrupted, NewInterrupted bool
}

// Compare matches the benchmarks of two files by name (the name holds the
// op, the pass and every shape parameter) and compares each pair's
// samples with the Mann-Whitney U test, as benchstat does
// (benchmath.AssumeNothing). A benchmark is slower when the test rejects
// "same distribution" at o.Alpha and its median grew by more than
// o.Threshold; faster likewise; "~" when the sample counts are too small
// for any p-value to reach o.Alpha. Errors: different precisions (fp32,
// tf32, bf16: a bf16 time is not a regression of an fp32 one, and
// --allow-device-change does not lift it), different device or backend
// (unless allowed), no benchmark in common.
func Compare(old, cur *File, o CompareOptions) (*Comparison, error) {
	if o.Alpha <= 0 || o.Alpha >= 1 {
		return nil, fmt.Errorf("alpha %v is not allowed (0 < alpha < 1)", o.Alpha)
	}
	if o.Threshold < 0 || math.IsNaN(o.Threshold) {
		return nil, fmt.Errorf("threshold %v is not allowed (≥ 0)", o.Threshold)
	}
	oldP, curP := precisionOf(old), precisionOf(cur)
	if oldP != curP {
		return nil, fmt.Errorf("the files time different precisions: baseline %s, current %s; "+
			"regress compares a precision with itself (run `seqbench bench --dtype %s` for a baseline)", oldP, curP, curP)
	}
	c := &Comparison{Options: o, Precision: curP, OldDevice: old.Device, NewDevice: cur.Device, OldBackend: old.Backend,
		NewBackend: cur.Backend, OldCeil: old.Ceilings, NewCeil: cur.Ceilings, OldHost: old.Host, NewHost: cur.Host,
		OldInterrupted: old.Interrupted, NewInterrupted: cur.Interrupted}
	if old.Device != cur.Device || old.Backend != cur.Backend {
		c.DeviceMismatch = true
		if !o.AllowDeviceChange {
			return nil, fmt.Errorf("the files come from different devices: baseline %q (%s), current %q (%s); "+
				"their times are not comparable (--allow-device-change compares them anyway)",
				old.Device, old.Backend, cur.Device, cur.Backend)
		}
	}
	byName := map[string]Result{}
	for _, r := range old.Results {
		byName[r.Name] = r
	}
	matched := map[string]bool{}
	thr := benchmath.Thresholds{CompareAlpha: o.Alpha}
	for _, r := range cur.Results {
		b, ok := byName[r.Name]
		if !ok {
			c.OnlyNew = append(c.OnlyNew, r.Name)
			continue
		}
		matched[r.Name] = true
		d := compareSamples(r.Name, b.Samples, r.Samples, &thr, o)
		switch d.Verdict {
		case Slower:
			c.Regressions++
		case Insufficient:
			c.Insufficient++
		}
		c.Deltas = append(c.Deltas, d)
	}
	for _, r := range old.Results {
		if !matched[r.Name] {
			c.OnlyOld = append(c.OnlyOld, r.Name)
		}
	}
	if len(c.Deltas) == 0 {
		return nil, fmt.Errorf("no benchmark in common (baseline has %d, current %d: different suites, ops or shapes?)",
			len(old.Results), len(cur.Results))
	}
	return c, nil
}

// precisionOf is f's precision, fp32 for a file that records none.
func precisionOf(f *File) string {
	if f.Precision == "" {
		return PrecisionFP32
	}
	return f.Precision
}

// loadLine is the host-load line of the header ("" when neither file
// recorded a load): a busy host slows the ops whose time the host CPU
// sets, so a slowdown there under a higher load may be the host's.
func (c *Comparison) loadLine() string {
	o, n := c.OldHost, c.NewHost
	if o.Load1Start <= 0 && o.Load1End <= 0 && n.Load1Start <= 0 && n.Load1End <= 0 {
		return ""
	}
	cpus := fmt.Sprintf(" on %d CPUs", n.CPUs)
	if o.CPUs != n.CPUs {
		cpus = fmt.Sprintf(" on %d and %d CPUs", o.CPUs, n.CPUs)
	}
	return fmt.Sprintf("host load (1 min) baseline %.2f → %.2f, current %.2f → %.2f%s",
		o.Load1Start, o.Load1End, n.Load1Start, n.Load1End, cpus)
}

func compareSamples(name string, oldS, newS []float64, thr *benchmath.Thresholds, o CompareOptions) Delta {
	s1 := benchmath.NewSample(slices.Clone(oldS), thr)
	s2 := benchmath.NewSample(slices.Clone(newS), thr)
	a := benchmath.AssumeNothing
	m1, m2 := a.Summary(s1, 0.95).Center, a.Summary(s2, 0.95).Center
	cmp := a.Compare(s1, s2)
	d := Delta{Name: name, OldMedian: m1, NewMedian: m2, Change: m2/m1 - 1, P: cmp.P, N1: cmp.N1, N2: cmp.N2,
		OldIQR: iqr(s1.Values), NewIQR: iqr(s2.Values),
		OldSpan: (s1.Values[len(s1.Values)-1] - s1.Values[0]) / m1, NewSpan: (s2.Values[len(s2.Values)-1] - s2.Values[0]) / m2}
	for _, w := range cmp.Warnings {
		d.Warnings = append(d.Warnings, w.Error())
	}
	switch {
	case minUTestP(len(oldS), len(newS)) > o.Alpha:
		d.Verdict = Insufficient
	case cmp.P < o.Alpha && d.Change > o.Threshold:
		d.Verdict = Slower
	case cmp.P < o.Alpha && d.Change < -o.Threshold:
		d.Verdict = Faster
	default:
		d.Verdict = Same
	}
	return d
}

// minUTestP is the smallest two-sided p-value the exact Mann-Whitney U
// test can give for sample sizes n1, n2 (complete separation, no ties):
// 2 / C(n1+n2, n1). When it exceeds alpha no data can show a difference.
func minUTestP(n1, n2 int) float64 {
	if n1 == 0 || n2 == 0 {
		return 1
	}
	// log C(n1+n2, n1) through lgamma, exact enough for a comparison.
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x) + 1); return v }
	return math.Min(1, 2*math.Exp(-(lg(n1+n2)-lg(n1)-lg(n2))))
}

func iqr(sorted []float64) float64 {
	m := quantile(sorted, 0.5)
	if m <= 0 {
		return 0
	}
	return (quantile(sorted, 0.75) - quantile(sorted, 0.25)) / m
}

// WriteTable writes one row per benchmark in both files (name, old and new
// median, change, p-value, verdict), then the benchmarks in one file only
// and a summary line.
func (c *Comparison) WriteTable(w io.Writer) error {
	o := c.Options
	if c.DeviceMismatch {
		fmt.Fprintf(w, "warning: comparing different devices: baseline %q (%s), current %q (%s), precision %s\n",
			c.OldDevice, c.OldBackend, c.NewDevice, c.NewBackend, c.Precision)
	} else {
		fmt.Fprintf(w, "device %s, backend %s, precision %s\n", c.NewDevice, c.NewBackend, c.Precision)
	}
	if c.OldCeil != nil && c.NewCeil != nil {
		fmt.Fprintf(w, "ceilings: copy %.3g -> %.3g GB/s, GEMM %.3g -> %.3g GFLOP/s\n",
			c.OldCeil.CopyBytesPerS/1e9, c.NewCeil.CopyBytesPerS/1e9, c.OldCeil.GemmFLOPsPerS/1e9, c.NewCeil.GemmFLOPsPerS/1e9)
	}
	if line := c.loadLine(); line != "" {
		fmt.Fprintln(w, line)
	}
	for _, f := range []struct {
		which       string
		interrupted bool
	}{{"baseline", c.OldInterrupted}, {"current", c.NewInterrupted}} {
		if f.interrupted {
			fmt.Fprintf(w, "%s was interrupted: only the benchmarks it finished are compared\n", f.which)
		}
	}
	header := []string{"benchmark", "old median", "new median", "delta", "p-value", "n", "verdict"}
	right := []bool{false, true, true, true, true, true, false}
	var rows [][]string
	for _, d := range c.Deltas {
		n := fmt.Sprintf("%d+%d", d.N1, d.N2)
		rows = append(rows, []string{d.Name, HumanSeconds(d.OldMedian) + fmt.Sprintf(" ±%.0f%%", 50*d.OldIQR),
			HumanSeconds(d.NewMedian) + fmt.Sprintf(" ±%.0f%%", 50*d.NewIQR), fmt.Sprintf("%+.2f%%", 100*d.Change),
			fmt.Sprintf("%.3g", d.P), n, d.Verdict})
	}
	if err := renderTable(w, header, right, rows); err != nil {
		return err
	}
	if len(c.OnlyOld) > 0 {
		fmt.Fprintf(w, "only in the baseline (not compared): %s\n", strings.Join(c.OnlyOld, ", "))
	}
	if len(c.OnlyNew) > 0 {
		fmt.Fprintf(w, "only in the current file (not compared): %s\n", strings.Join(c.OnlyNew, ", "))
	}
	if c.Insufficient > 0 {
		fmt.Fprintf(w, "~: %d benchmarks have too few samples for the U test to reach alpha %v (take --repeat ≥ 4, better 10)\n",
			c.Insufficient, o.Alpha)
	}
	fmt.Fprintf(w, "%d compared, %d slower by more than %.3g%% at alpha %v (Mann-Whitney U test)\n",
		len(c.Deltas), c.Regressions, 100*o.Threshold, o.Alpha)
	return nil
}
