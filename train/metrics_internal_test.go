package train

import (
	"fmt"
	"math"
	"testing"

	"seqbench/tasks"
)

// Micro, macro (torchmetrics' average="macro": classes that occur as a
// target or a scored prediction, a class only predicted scoring 0; ignored
// positions count nowhere) and per-example accuracy, by hand. Two sequences
// of T = 4:
//
//	targets 0 0 1 1 | 1 2 _ _
//	preds   0 1 1 1 | 3 2 4 0
//
// micro 4/6; per class 0: 1/2, 1: 2/3, 2: 1/1, 3: 0 (predicted only), 4 not
// counted (predicted at an ignored position): macro (1/2 + 2/3 + 1 + 0)/4;
// per example (3/4 + 1/2)/2.
func TestEvalAccumMetrics(t *testing.T) {
	I := tasks.Ignore
	targets := []int32{0, 0, 1, 1, 1, 2, I, I}
	pred := []int32{0, 1, 1, 1, 3, 2, 4, 0}
	var a evalAccum
	a.correct, a.count = hitRate(pred, targets)*6, 6
	a.tally(targets, pred, 5, 4)
	a.endPiece()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"micro", a.correct / float64(a.count), 4.0 / 6},
		{"macro", a.macro(), (0.5 + 2.0/3 + 1 + 0) / 4},
		{"per example", a.perExample(), (0.75 + 0.5) / 2},
	} {
		if math.Abs(c.got-c.want) > 1e-15 {
			t.Errorf("%s accuracy %.17g, want %.17g", c.name, c.got, c.want)
		}
	}
	// A second piece: its sequences are new examples, the classes add up.
	a.tally([]int32{2, I, I, I}, []int32{0, 0, 0, 0}, 5, 4)
	a.endPiece()
	if got, want := a.perExample(), (0.75+0.5+0)/3; math.Abs(got-want) > 1e-15 {
		t.Errorf("per example after a second piece %g, want %g", got, want)
	}
	if got, want := a.macro(), (0.5+2.0/3+0.5+0)/4; math.Abs(got-want) > 1e-15 {
		t.Errorf("macro after a second piece %g, want %g", got, want)
	}
	// Step mode scores a sequence over several chunks: rows of one chunk
	// are B sequences of T = 1 here, and endPiece comes after the last.
	var s evalAccum
	s.tally([]int32{1, 2}, []int32{1, 0}, 3, 1)
	s.tally([]int32{1, 2}, []int32{1, 2}, 3, 1)
	s.endPiece()
	if got, want := s.perExample(), (1+0.5)/2; got != want {
		t.Errorf("chunked per example %g, want %g", got, want)
	}
}

// eval_examples 10 in batches of 4 on a fixed test set of 10: the batches
// hold 4, 4 and 2 sequences, every test example exactly once.
func TestEvalBatchesCoverTestSetOnce(t *testing.T) {
	task, err := (&tasks.MQARConfig{Vocab: 32, SeqLen: 16, NumKVPairs: 2, PowerA: 0.01, NumTestExamples: 10}).Build()
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.BatchSize, c.EvalExamples = 4, 10
	seen := map[string]bool{}
	var sizes []int
	for i, size := range c.evalBatchSizes() {
		b := evalBatch(task, c, i, size)
		sizes = append(sizes, b.B)
		for s := range b.B {
			seen[fmt.Sprint(b.Inputs[s*b.L:(s+1)*b.L])] = true
		}
	}
	if fmt.Sprint(sizes) != "[4 4 2]" || len(seen) != 10 {
		t.Errorf("batches of %v holding %d distinct sequences, want [4 4 2] and 10", sizes, len(seen))
	}
}
