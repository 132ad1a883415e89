package cpukernels

import (
	"runtime"
	"testing"
)

func TestNewWithWorkers(t *testing.T) {
	p := runtime.GOMAXPROCS(0)
	cases := []struct{ n, want int }{{1, 1}, {0, p}, {-3, p}, {p, p}, {p + 5, p}}
	for i, c := range cases {
		if got := NewWithWorkers[float32](c.n).workers; got != c.want {
			t.Errorf("case %d: NewWithWorkers(%d).workers = %d, want %d", i, c.n, got, c.want)
		}
	}
	// One worker runs every chunk on the calling goroutine, in order.
	be := NewWithWorkers[float64](1)
	var order []int
	be.parallelFor(10, 1, func(lo, hi int) { order = append(order, lo, hi) })
	if len(order) != 2 || order[0] != 0 || order[1] != 10 {
		t.Errorf("parallelFor with one worker split the range: %v", order)
	}
}
