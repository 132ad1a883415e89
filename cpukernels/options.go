package cpukernels

import "runtime"

// NewWithWorkers returns a CPU backend whose kernels use at most n
// goroutines (n < 1, or more than GOMAXPROCS: GOMAXPROCS). A sweep that
// trains several runs at once gives each run's backend a share of the
// cores, so workers × threads stays within them instead of every run
// spreading over all cores and the runs fighting for them.
func NewWithWorkers[T Float](n int) *Backend[T] {
	p := runtime.GOMAXPROCS(0)
	if n < 1 || n > p {
		n = p
	}
	return &Backend[T]{workers: n}
}
