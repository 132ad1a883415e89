package gpukernels

import (
	"errors"
	"fmt"

	"seqbench/nn"
)

var _ nn.Profiler = (*Backend)(nil)

// profiler times every operation queued while it is on with a pair of
// events around it: start, recorded just before the operation is queued,
// and end, just after. The device stamps an event when the stream reaches
// it, so end − start is the operation's time on the device (with the launch
// overhead of a back-to-back kernel, about a microsecond) and the start of
// one operation minus the end of the one before is the time the device sat
// idle between them.
type profiler struct {
	on     bool
	events []uintptr // created once and reused by later profiles
	used   int
	open   uintptr // the start event of the operation being queued
	marks  []profMark
}

type profMark struct {
	label      string
	start, end uintptr
}

// StartProfile starts timing every operation queued on the stream, until
// StopProfile. Profiles do not nest.
func (be *Backend) StartProfile() {
	be.enter("StartProfile")
	defer be.exit()
	if be.prof.on {
		panic("gpukernels.StartProfile: a profile is already running")
	}
	if be.capture != nil {
		panic("gpukernels.StartProfile: not inside a graph capture (time the graph's launches instead)")
	}
	be.prof.on, be.prof.used, be.prof.open, be.prof.marks = true, 0, 0, be.prof.marks[:0]
}

// StopProfile waits for the operations queued since StartProfile and
// returns their times by label: the op, and for a kernel the op and the
// kernel's name ("SelectiveScanBackward/scan_chunk_bwd").
func (be *Backend) StopProfile() (nn.Profile, error) {
	be.enter("StopProfile")
	defer be.exit()
	p := &be.prof
	if !p.on {
		return nn.Profile{}, errors.New("gpukernels.StopProfile: no profile is running")
	}
	p.on = false
	if len(p.marks) == 0 {
		return nn.Profile{}, nil
	}
	if err := be.drv.EventSynchronize(p.marks[len(p.marks)-1].end); err != nil {
		return nn.Profile{}, err
	}
	be.counts.hostWaits++
	elapsed := func(a, b uintptr) (float64, error) {
		ms, err := be.drv.EventElapsed(a, b)
		return ms / 1e3, err
	}
	out := nn.Profile{Ops: len(p.marks)}
	var err error
	if out.Span, err = elapsed(p.marks[0].start, p.marks[len(p.marks)-1].end); err != nil {
		return nn.Profile{}, err
	}
	row := map[string]int{}
	for _, m := range p.marks {
		s, err := elapsed(m.start, m.end)
		if err != nil {
			return nn.Profile{}, fmt.Errorf("gpukernels.StopProfile: %s: %w", m.label, err)
		}
		out.Busy += s
		i, ok := row[m.label]
		if !ok {
			i = len(out.Rows)
			row[m.label] = i
			out.Rows = append(out.Rows, nn.ProfileRow{Label: m.label})
		}
		out.Rows[i].Calls++
		out.Rows[i].Seconds += s
	}
	out.SortRows()
	return out, nil
}

// profStart records the start event of the next operation when a profile
// is running; call it just before queuing the operation.
func (be *Backend) profStart(op string) {
	if be.prof.on {
		be.prof.open = be.profEvent(op)
	}
}

// profEnd records the end event of the operation just queued: op, or a
// launch of kernel in op.
func (be *Backend) profEnd(op, kernel string) {
	p := &be.prof
	if !p.on || p.open == 0 {
		return
	}
	label := op
	if kernel != "" {
		label += "/" + kernel
	}
	p.marks = append(p.marks, profMark{label: label, start: p.open, end: be.profEvent(op)})
	p.open = 0
}

// profEvent records a reused (or new) event on the stream.
func (be *Backend) profEvent(op string) uintptr {
	p := &be.prof
	if p.used == len(p.events) {
		ev, err := be.drv.EventCreate()
		must(op, err)
		p.events = append(p.events, ev)
	}
	ev := p.events[p.used]
	p.used++
	must(op, be.drv.EventRecord(ev, be.stream))
	return ev
}

// releaseProfile destroys the profiler's events (at Close).
func (be *Backend) releaseProfile() error {
	var errs []error
	for _, ev := range be.prof.events {
		errs = append(errs, be.drv.EventDestroy(ev))
	}
	be.prof = profiler{}
	return errors.Join(errs...)
}
