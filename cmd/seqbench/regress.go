package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"seqbench/bench"
)

// cmdRegress compares two bench files: exit 0 when nothing got slower, 1
// when a benchmark is slower than the baseline by more than the threshold
// and significantly so, 2 when the files cannot be compared (unreadable,
// malformed, no benchmark in common, different precisions or devices).
func cmdRegress(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("regress", flag.ContinueOnError)
	threshold := fs.String("threshold", "5%", "smallest slowdown of the median that fails (\"5%\" or 0.05)")
	alpha := fs.Float64("alpha", 0.05, "significance level of the Mann-Whitney U test")
	allow := fs.Bool("allow-device-change", false, "compare files from different devices or backends")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{fmt.Sprintf("takes BASELINE and CURRENT bench files, got %d arguments", len(pos))}
	}
	thr, err := parseThreshold(*threshold)
	if err != nil {
		return err
	}
	if !(*alpha > 0 && *alpha < 1) {
		return usageError{fmt.Sprintf("--alpha %v is not allowed (0 < alpha < 1)", *alpha)}
	}
	var files [2]*bench.File
	for i, p := range pos {
		if files[i], err = bench.ReadFile(p); err != nil {
			return usageError{err.Error()}
		}
	}
	c, err := bench.Compare(files[0], files[1], bench.CompareOptions{Threshold: thr, Alpha: *alpha, AllowDeviceChange: *allow})
	if err != nil {
		return usageError{err.Error()}
	}
	if err := c.WriteTable(stdout); err != nil {
		return err
	}
	if c.Regressions > 0 {
		return fmt.Errorf("%d of %d benchmarks are slower than the baseline by more than %s (p < %v)",
			c.Regressions, len(c.Deltas), *threshold, *alpha)
	}
	return nil
}

// parseThreshold reads "5%" (percent) or "0.05" (a fraction).
func parseThreshold(s string) (float64, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if pct {
		v /= 100
	}
	if err != nil || !(v >= 0) || math.IsInf(v, 0) || (!pct && v >= 1) {
		return 0, usageError{fmt.Sprintf("--threshold %q is not allowed (a percentage such as 5%% or a fraction such as 0.05)", s)}
	}
	return v, nil
}
