package sweep

import (
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"seqbench/train"
)

// progress reports a sweep as it goes: runs done, failed, running and an
// ETA. On a terminal a status line is redrawn in place (every second) with
// each finished run printed above it; in a log, each finished run is one
// line that ends with the counts.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	total    int // runs in the sweep
	skipped  int // already ok before it started
	slots    int // runs that can train at once; 0: unknown (Slurm)
	begin    time.Time
	done     int // finished in this sweep, failed and interrupted ones included
	failed   int // failed or diverged
	cut      int // interrupted
	locked   int // left to another process
	running  map[string]time.Time
	took     []float64 // seconds of the runs finished in this sweep
	extra    string    // executor-specific status (Slurm task states)
	announce bool      // print a line as each run starts
	drawn    bool
	stopTick chan struct{}
}

func newProgress(w io.Writer, tty bool, total, skipped, slots int) *progress {
	p := &progress{w: w, tty: tty && w != nil, total: total, skipped: skipped, slots: slots,
		begin: time.Now(), running: map[string]time.Time{}, stopTick: make(chan struct{})}
	if p.tty {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					p.mu.Lock()
					p.draw()
					p.mu.Unlock()
				case <-p.stopTick:
					return
				}
			}
		}()
	}
	return p
}

// printf writes a line of its own (above the status line on a terminal).
func (p *progress) printf(format string, a ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintf(p.w, format+"\n", a...)
	p.draw()
}

func (p *progress) start(spec train.Spec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.running[spec.Name]; !ok {
		p.running[spec.Name] = time.Now()
	}
	if p.announce && p.w != nil {
		p.clear()
		fmt.Fprintf(p.w, "[%d/%d] %s  %s %s\n", p.skipped+p.done+len(p.running), p.total, spec.Name, spec.TaskName, Describe(spec))
	}
	p.draw()
}

// setExtra sets the executor's own part of the status line.
func (p *progress) setExtra(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.extra = s
	p.draw()
}

// finish records a finished run and prints its line.
func (p *progress) finish(spec train.Spec, s train.Summary) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, spec.Name)
	p.done++
	switch {
	case s.Status == train.StatusInterrupted:
		p.cut++
	case Failure(s.Status):
		p.failed++
	}
	if s.WallSeconds > 0 {
		p.took = append(p.took, s.WallSeconds)
	}
	if p.w == nil {
		return
	}
	p.clear()
	line := fmt.Sprintf("[%d/%d] %-8s %s", p.skipped+p.done, p.total, s.Status, spec.Name)
	if d := Describe(spec); d != "" {
		line += "  " + d
	}
	if s.Status == train.StatusOK {
		line += fmt.Sprintf("  loss %.4g acc %.3f", float64(s.FinalLoss), s.FinalAccuracy)
	} else if s.Reason != "" {
		line += "  (" + firstLine(s.Reason) + ")"
	}
	line += fmt.Sprintf("  %s", roundDuration(s.WallSeconds))
	if !p.tty {
		line += " | " + p.status()
	}
	fmt.Fprintln(p.w, line)
	p.draw()
}

// skipLocked records a run left to the process that holds its lock.
func (p *progress) skipLocked(spec train.Spec, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.locked++
	if p.w == nil {
		return
	}
	p.clear()
	fmt.Fprintf(p.w, "skipped %s: %v\n", spec.Name, err)
	p.draw()
}

// close removes the status line and stops redrawing it.
func (p *progress) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		close(p.stopTick)
		p.tty = false
		if p.drawn {
			fmt.Fprint(p.w, "\r\033[K")
		}
	}
}

// clear erases the status line before a line of output.
func (p *progress) clear() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *progress) draw() {
	if !p.tty {
		return
	}
	line := p.status()
	// A line that wraps cannot be redrawn in place: cut it to the width.
	if f, ok := p.w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 1 {
			if r := []rune(line); len(r) > width-1 {
				line = string(r[:width-2]) + "…"
			}
		}
	}
	fmt.Fprint(p.w, "\r\033[K"+line)
	p.drawn = true
}

// status is "done 3/12, failed 1, running 2, pending 7, ETA 1m20s" (with
// "interrupted N" after failed once a run was).
func (p *progress) status() string {
	pendingN := p.total - p.skipped - p.done - p.locked - len(p.running)
	parts := []string{fmt.Sprintf("done %d/%d", p.skipped+p.done, p.total)}
	if p.skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped (already ok)", p.skipped))
	}
	parts = append(parts, fmt.Sprintf("failed %d", p.failed))
	if p.cut > 0 {
		parts = append(parts, fmt.Sprintf("interrupted %d", p.cut))
	}
	if p.locked > 0 {
		parts = append(parts, fmt.Sprintf("locked by another process %d", p.locked))
	}
	parts = append(parts, fmt.Sprintf("running %d", len(p.running)), fmt.Sprintf("pending %d", max(pendingN, 0)))
	if p.extra != "" {
		parts = append(parts, p.extra)
	}
	if eta, ok := p.eta(max(pendingN, 0)); ok {
		parts = append(parts, "ETA "+roundDuration(eta))
	}
	s := strings.Join(parts, ", ")
	if names := p.runningNames(); p.tty && names != "" {
		s += " [" + names + "]"
	}
	return s
}

// eta estimates the seconds left. With a known number of slots it plays
// the schedule forward: each running run needs the mean run time minus what
// it has had (one already past the mean is taken to be two-thirds done),
// and each pending run the mean, started on the slot that frees first.
// Without slots (Slurm): the pace so far, in runs per second.
func (p *progress) eta(pendingN int) (float64, bool) {
	if len(p.took) == 0 {
		return 0, false
	}
	if p.slots <= 0 {
		rate := float64(p.done) / time.Since(p.begin).Seconds()
		return float64(pendingN+len(p.running)) / rate, rate > 0
	}
	mean := 0.0
	for _, t := range p.took {
		mean += t
	}
	mean /= float64(len(p.took))
	free := make([]float64, 0, max(p.slots, len(p.running))) // when each slot frees up
	for _, since := range p.running {
		had := time.Since(since).Seconds()
		if had < mean {
			free = append(free, mean-had)
		} else {
			free = append(free, had/2)
		}
	}
	for len(free) < p.slots {
		free = append(free, 0)
	}
	for range pendingN {
		i := 0
		for j, f := range free {
			if f < free[i] {
				i = j
			}
		}
		free[i] += mean
	}
	eta := 0.0
	for _, f := range free {
		eta = math.Max(eta, f)
	}
	return eta, true
}

func (p *progress) runningNames() string {
	names := make([]string, 0, len(p.running))
	for n := range p.running {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 3 {
		names = append(names[:3], "…")
	}
	return strings.Join(names, " ")
}

func roundDuration(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
