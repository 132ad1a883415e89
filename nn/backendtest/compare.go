package backendtest

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// RelErr is the norm-wise relative error ‖got − want‖₂ / ‖want‖₂ (the
// absolute ‖got − want‖₂ when want is all zeros) and the index of the element
// with the largest |got − want|. A NaN or infinity in got where want differs
// makes the error +Inf at that element; so do slices of different lengths
// (worst is then −1, as it is for empty slices).
func RelErr(got, want []float64) (err float64, worst int) {
	if len(got) != len(want) {
		return math.Inf(1), -1
	}
	worst = -1
	var num, den, maxd float64
	for i, w := range want {
		d := diff(got[i], w)
		if worst < 0 || d > maxd {
			worst, maxd = i, d
		}
		num += d * d
		if !math.IsInf(w, 0) && !math.IsNaN(w) {
			den += w * w
		}
	}
	if math.IsInf(maxd, 1) {
		return math.Inf(1), worst
	}
	if den == 0 {
		return math.Sqrt(num), worst
	}
	return math.Sqrt(num / den), worst
}

// diff is |g − w|, 0 when both are the same value (infinities and NaN
// included) and +Inf when only one of them is non-finite.
func diff(g, w float64) float64 {
	if same(g, w) {
		return 0
	}
	if math.IsNaN(g) || math.IsNaN(w) || math.IsInf(g, 0) || math.IsInf(w, 0) {
		return math.Inf(1)
	}
	return math.Abs(g - w)
}

// AssertClose fails t when RelErr(got, want) exceeds tol, printing the error,
// the worst element and the first few elements off by more than tol relative
// to max(|want[i]|, rms(want)).
func AssertClose(t testing.TB, name string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d elements, want %d", name, len(got), len(want))
		return
	}
	err, worst := RelErr(got, want)
	if err <= tol {
		return
	}
	rms := 0.0
	for _, w := range want {
		if !math.IsInf(w, 0) && !math.IsNaN(w) {
			rms += w * w
		}
	}
	if len(want) > 0 {
		rms = math.Sqrt(rms / float64(len(want)))
	}
	var first []string
	bad := 0
	for i, w := range want {
		if diff(got[i], w) > tol*max(math.Abs(w), rms) {
			if len(first) < 5 {
				first = append(first, fmt.Sprintf("[%d] got %.10g want %.10g", i, got[i], w))
			}
			bad++
		}
	}
	t.Errorf("%s: rel err %.3g > %.1g (n=%d, %d elements off); worst [%d]: got %.10g want %.10g; first: %s",
		name, err, tol, len(want), bad, worst, got[worst], want[worst], strings.Join(first, ", "))
}
