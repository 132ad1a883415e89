package nn

import (
	"fmt"
	"math"
)

// A training step that reads nothing back before its end can be captured
// as a graph (Capturer) and replayed, which takes the host out of the
// step. Three host round trips stand in the way on a plain Backend: the
// mean loss (Sum, then Fill), the clip (the gradient norm read back to
// form the factor) and the divergence guard (the loss and the norm
// checked on the host before the update). A backend with the interfaces
// below does all three on the device; the step then reads one small
// buffer (StepStats) after it has run.

// DeviceLoss is a Backend that forms a mean loss and its gradient on the
// device. n, the number of targets that are not ignore, is derived from
// targets, which a graph's launch copies again as it does ids.
type DeviceLoss interface {
	// MeanLoss sets out[0] = Σ loss / n, or 0 when n is 0, equal bit for
	// bit to Fill(out, Sum(loss)/n).
	MeanLoss(out, loss Buffer, targets []int32, ignore int32)
	// MeanLossGrad fills dloss with g[0]/n (1/n when g is nil), or 0 when n
	// is 0, equal bit for bit to Fill(dloss, Read(g)[0]/n).
	MeanLossGrad(dloss, g Buffer, targets []int32, ignore int32)
}

// StepStats are what a device-side update leaves for the host to read
// after the step: the gradient norm, the loss, and whether the update
// was skipped (a non-finite norm or loss), as float64s (Read gives them
// in this order).
const (
	StatNorm = iota
	StatLoss
	StatSkipped
	numStats
)

// ClippedAdamW is a Backend that measures the gradients' norm, clips and
// updates without a host round trip, and skips the update on the device
// when the step diverged.
type ClippedAdamW interface {
	// NewStepStats allocates a buffer of the StepStats, float64 whatever
	// the backend's type.
	NewStepStats() Buffer
	// AdamWClipped is AdamWEach(ts, *a) with a.GradScale = ClipFactor(norm,
	// maxNorm), where norm is the L2 norm of the ts' gradients summed as
	// GradNorm sums them (each SumSquares in float64, added in ts' order),
	// the whole update equal bit for bit to GradNorm then AdamWEach; except
	// that nothing changes when the norm or loss[0] is not finite. It writes
	// the norm, loss[0] and 1 for a skipped update (else 0) into stats.
	// A graph that captured the call reads ts and *a again at each launch
	// (as it reads a host int32 input), so a caller rewrites them in place:
	// the learning rates and the step count change every step.
	AdamWClipped(ts []AdamWTensor, a *AdamWArgs, maxNorm float64, loss, stats Buffer)
}

// ArgmaxSetter is a Backend that writes each row's argmax into a device
// buffer (indices as values, exact below 2²⁴ columns) instead of returning
// them to the host, so that a captured step's accuracy is read after it.
type ArgmaxSetter interface {
	ArgmaxRowsInto(dst, x Buffer, rows, cols int)
}

// Argmax receives the index of each row's largest logit from a loss op:
// into Host (one per row) at once, or, with Host nil, into Dev, a buffer
// of b's type, indices as values (ArgmaxRowsInto), to be read after the
// step.
type Argmax struct {
	Host []int32
	Dev  Buffer
}

// Set stores the argmaxes of x's rows (rows of cols) as a's rows r0 ..
// r0+rows, with tp's scratch.
func (a *Argmax) Set(tp *Tape, x Buffer, r0, rows, cols int) {
	b := tp.B
	if a.Host != nil {
		copy(a.Host[r0:], b.ArgmaxRows(x, rows, cols))
		return
	}
	if r0 == 0 && rows == a.Dev.Len() {
		ArgmaxRowsInto(b, a.Dev, x, rows, cols)
		return
	}
	t := tp.AllocOut(rows)
	ArgmaxRowsInto(b, t, x, rows, cols)
	b.CopyBlock(a.Dev, r0, rows, t, 0, rows, 1, rows, false)
}

// rows is the number of rows a takes (0 for a nil a).
func (a *Argmax) rows() int {
	switch {
	case a == nil:
		return 0
	case a.Host != nil:
		return len(a.Host)
	case a.Dev != nil:
		return a.Dev.Len()
	}
	return 0
}

// DeviceStep reports whether b can run a whole training step without a
// host round trip before its end (DeviceLoss, ClippedAdamW, ArgmaxSetter).
// Elsewhere the functions below take the host's way to the same values.
func DeviceStep(b Backend) bool {
	_, l := b.(DeviceLoss)
	_, c := b.(ClippedAdamW)
	_, a := b.(ArgmaxSetter)
	return l && c && a
}

// MeanLoss is DeviceLoss.MeanLoss on b: on the device where b is a
// DeviceLoss, else HostMeanLoss.
func MeanLoss(b Backend, out, loss Buffer, targets []int32, ignore int32) {
	if d, ok := b.(DeviceLoss); ok {
		d.MeanLoss(out, loss, targets, ignore)
		return
	}
	HostMeanLoss(b, out, loss, targets, ignore)
}

// MeanLossGrad is DeviceLoss.MeanLossGrad on b, as MeanLoss.
func MeanLossGrad(b Backend, dloss, g Buffer, targets []int32, ignore int32) {
	if d, ok := b.(DeviceLoss); ok {
		d.MeanLossGrad(dloss, g, targets, ignore)
		return
	}
	HostMeanLossGrad(b, dloss, g, targets, ignore)
}

// NewStepStats is ClippedAdamW.NewStepStats on b, or a HostStats.
func NewStepStats(b Backend) Buffer {
	if c, ok := b.(ClippedAdamW); ok {
		return c.NewStepStats()
	}
	return NewHostStats()
}

// FreeStepStats returns a NewStepStats buffer of b.
func FreeStepStats(b Backend, stats Buffer) {
	if _, ok := stats.(HostStats); !ok {
		b.Free(stats)
	}
}

// AdamWClipped is ClippedAdamW.AdamWClipped on b, as MeanLoss.
func AdamWClipped(b Backend, ts []AdamWTensor, a *AdamWArgs, maxNorm float64, loss, stats Buffer) {
	if c, ok := b.(ClippedAdamW); ok {
		c.AdamWClipped(ts, a, maxNorm, loss, stats)
		return
	}
	HostAdamWClipped(b, ts, a, maxNorm, loss, stats)
}

// ArgmaxRowsInto is ArgmaxSetter.ArgmaxRowsInto on b, as MeanLoss.
func ArgmaxRowsInto(b Backend, dst, x Buffer, rows, cols int) {
	if s, ok := b.(ArgmaxSetter); ok {
		s.ArgmaxRowsInto(dst, x, rows, cols)
		return
	}
	HostArgmaxRowsInto(b, dst, x, rows, cols)
}

// HostStats is the StepStats buffer of the host's way (HostAdamWClipped):
// float64 whatever the backend's type.
type HostStats []float64

// Len is the number of stats.
func (h HostStats) Len() int { return len(h) }

// ReadStats reads a StepStats buffer of b after the step.
func ReadStats(b Backend, stats Buffer) (norm, loss float64, skipped bool) {
	v, ok := stats.(HostStats)
	if !ok {
		v = b.Read(stats)
	}
	return v[StatNorm], v[StatLoss], v[StatSkipped] != 0
}

// NewHostStats is a StepStats buffer for HostAdamWClipped.
func NewHostStats() Buffer { return make(HostStats, numStats) }

// HostMeanLoss is DeviceLoss.MeanLoss computed with b's own ops and a host
// read: the definition the device implementations match, and the way a
// backend without them (the CPU, whose device is the host) takes.
func HostMeanLoss(b Backend, out, loss Buffer, targets []int32, ignore int32) {
	mean := 0.0
	if n := countTargets(targets, ignore); n > 0 {
		mean = b.Sum(loss) / float64(n)
	}
	b.Fill(out, mean)
}

// HostMeanLossGrad is DeviceLoss.MeanLossGrad as HostMeanLoss is MeanLoss.
func HostMeanLossGrad(b Backend, dloss, g Buffer, targets []int32, ignore int32) {
	v := 0.0
	if n := countTargets(targets, ignore); n > 0 {
		s := 1.0
		if g != nil {
			s = b.Read(g)[0]
		}
		v = s / float64(n)
	}
	b.Fill(dloss, v)
}

// HostAdamWClipped is ClippedAdamW.AdamWClipped as HostMeanLoss is
// MeanLoss; stats is a HostStats.
func HostAdamWClipped(b Backend, ts []AdamWTensor, a *AdamWArgs, maxNorm float64, loss, stats Buffer) {
	st, ok := stats.(HostStats)
	if !ok || len(st) < numStats {
		panic(fmt.Sprintf("nn.AdamWClipped: stats is a %T of %d, not NewStepStats' buffer", stats, stats.Len()))
	}
	grads := make([]Buffer, len(ts))
	for i, t := range ts {
		grads[i] = t.G
	}
	ss := 0.0
	for _, s := range SumSquaresEach(b, grads) {
		ss += s
	}
	norm, l := math.Sqrt(ss), b.Read(loss)[0]
	st[StatNorm], st[StatLoss], st[StatSkipped] = norm, l, 0
	if !finite(norm) || !finite(l) {
		st[StatSkipped] = 1
		return
	}
	args := *a
	args.GradScale = ClipFactor(norm, maxNorm)
	AdamWEach(b, ts, args)
}

// HostArgmaxRowsInto is ArgmaxSetter.ArgmaxRowsInto through the host.
func HostArgmaxRowsInto(b Backend, dst, x Buffer, rows, cols int) {
	idx := b.ArgmaxRows(x, rows, cols)
	v := make([]float64, rows)
	for i, j := range idx {
		v[i] = float64(j)
	}
	b.Write(dst, v)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
