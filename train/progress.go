package train

import (
	"fmt"
	"io"
	"strings"
)

// progress shows a run's advance: a bar redrawn in place on a terminal, or a
// plain line per logged step in a log file.
type progress struct {
	w           io.Writer
	interactive bool
	total       int
	drawn       bool
}

func newProgress(w io.Writer, interactive bool, total int) *progress {
	return &progress{w: w, interactive: interactive, total: total}
}

func (p *progress) update(step int, m Metrics) {
	if p.w == nil {
		return
	}
	eval := ""
	if m.EvalAccuracy != nil {
		eval = fmt.Sprintf(" eval_loss %.4f eval_acc %.3f", float64(*m.EvalLoss), *m.EvalAccuracy)
	}
	line := fmt.Sprintf("step %*d/%d loss %.4f acc %.3f lr %.2e %8.0f tok/s%s",
		len(fmt.Sprint(p.total)), step, p.total, float64(m.Loss), m.Accuracy, m.LR, m.TokensPerSec, eval)
	if !p.interactive {
		fmt.Fprintln(p.w, "  "+line)
		return
	}
	const width = 24
	filled := width * step / p.total
	bar := strings.Repeat("█", filled) + strings.Repeat("·", width-filled)
	fmt.Fprintf(p.w, "\r\033[K  %s %s", bar, line)
	p.drawn = true
}

func (p *progress) done() {
	if p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}
