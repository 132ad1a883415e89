package gpukernels

import (
	"strings"
	"testing"

	"seqbench/nn"
)

// A profile times every operation queued between StartProfile and
// StopProfile, one row per label, and agrees with StreamCounts; a GEMM of
// 1024³ takes longer than a fill of 1024 elements.
func TestGPUProfile(t *testing.T) {
	be := gpu(t, nn.Float32)
	const n = 1024
	a, b, c := be.Alloc(n*n), be.Alloc(n*n), be.Alloc(n*n)
	small := be.Alloc(n)
	defer func() {
		for _, x := range []nn.Buffer{a, b, c, small} {
			be.Free(x)
		}
	}()
	if _, err := be.StopProfile(); err == nil {
		t.Error("StopProfile with no profile running returned no error")
	}
	be.Fill(a, 1)
	gemm := nn.GemmArgs{M: n, N: n, K: n, Alpha: 1, LDA: n, LDB: n, LDC: n, Batch: 1}
	ops0, _ := be.StreamCounts()
	be.StartProfile()
	be.Fill(small, 2)
	for range 3 {
		be.Gemm(a, b, c, gemm)
		be.Scale(c, 0.5)
	}
	p, err := be.StopProfile()
	if err != nil {
		t.Fatal(err)
	}
	ops1, _ := be.StreamCounts()
	// Queued after the profile stopped: not in it.
	be.Scale(c, 0.5)
	if int64(p.Ops) != ops1-ops0 || p.Ops != 7 {
		t.Errorf("profile of 7 operations has %d (the stream counted %d)", p.Ops, ops1-ops0)
	}
	calls := map[string]int{}
	sec := map[string]float64{}
	total := 0
	for _, r := range p.Rows {
		calls[r.Label], sec[r.Label] = r.Calls, r.Seconds
		total += r.Calls
		if r.Seconds <= 0 {
			t.Errorf("row %q: %g s, want > 0", r.Label, r.Seconds)
		}
	}
	if total != p.Ops {
		t.Errorf("rows hold %d calls, the profile %d", total, p.Ops)
	}
	var scale string
	for l := range calls {
		if strings.HasPrefix(l, "Scale/") {
			scale = l
		}
	}
	if calls["Gemm"] != 3 || calls["Fill"] != 1 || scale == "" || calls[scale] != 3 {
		t.Errorf("rows %v, want Gemm ×3, Fill ×1 and Scale/<kernel> ×3", calls)
	}
	if p.Rows[0].Label != "Gemm" || sec["Gemm"] <= sec["Fill"] {
		t.Errorf("the 1024³ GEMMs (%g s) are not the first row over the fill of 1024 (%g s): %v", sec["Gemm"], sec["Fill"], p.Rows)
	}
	if p.Busy <= 0 || p.Busy > p.Span*1.0001 || p.Gaps() < 0 {
		t.Errorf("busy %g s, span %g s: want 0 < busy ≤ span", p.Busy, p.Span)
	}
	// A second profile reuses the events and starts empty.
	be.StartProfile()
	be.Scale(c, 2)
	p2, err := be.StopProfile()
	if err != nil || p2.Ops != 1 || len(p2.Rows) != 1 {
		t.Errorf("second profile: %+v, %v; want one operation", p2, err)
	}
	func() {
		be.StartProfile()
		defer func() {
			if recover() == nil {
				t.Error("StartProfile inside a running profile did not panic")
			}
			be.StopProfile()
		}()
		be.StartProfile()
	}()
}
