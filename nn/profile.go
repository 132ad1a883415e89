package nn

import (
	"cmp"
	"slices"
)

// A Profile is where a device's time went while a piece of work (a
// training step) ran: each operation's time from the moment the device
// started it to the moment it finished, summed by label, and the time the
// device sat between operations, waiting for the host to queue the next
// one or for a download.
type Profile struct {
	// Span is the seconds from the start of the first operation to the end
	// of the last one.
	Span float64 `json:"span_s"`
	// Busy is the seconds the operations ran (Σ of their times); Span −
	// Busy is the device's idle time between them.
	Busy float64 `json:"busy_s"`
	// Ops is the number of operations timed.
	Ops int `json:"ops"`
	// Rows are the labels (an op and, for a kernel, its name), the most
	// time first.
	Rows []ProfileRow `json:"rows"`
}

// A ProfileRow is the operations of one label in a Profile.
type ProfileRow struct {
	Label   string  `json:"label"`
	Calls   int     `json:"calls"`
	Seconds float64 `json:"seconds"`
}

// Gaps is the seconds the device sat idle between operations.
func (p Profile) Gaps() float64 { return max(p.Span-p.Busy, 0) }

// SortRows orders the rows by time, the most first (label on ties, so the
// order is the same every run).
func (p *Profile) SortRows() {
	slices.SortFunc(p.Rows, func(a, b ProfileRow) int {
		if c := cmp.Compare(b.Seconds, a.Seconds); c != 0 {
			return c
		}
		return cmp.Compare(a.Label, b.Label)
	})
}

// Profiler is a Backend that can time the operations it queues: between
// StartProfile and StopProfile every operation is timed on the device.
// Timing adds work on the host for each operation, so a profiled step is
// slower than an unprofiled one where the host is the bottleneck; the
// kernels' own times are unaffected.
type Profiler interface {
	StartProfile()
	StopProfile() (Profile, error)
}
