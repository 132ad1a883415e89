package train

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"

	"seqbench/tasks"
)

// batches hands the training loop its batches in step order. With
// workers > 0 it generates them ahead, on that many goroutines, while the
// current step trains; with 0 each batch is generated when asked for.
//
// Either way batch i is gen(i), and a task's Batch is a pure function of
// its arguments (tasks.Task; the tasks that cache, mqar's epoch shuffles,
// do so under a lock), so the loop trains on exactly the same batches
// whichever goroutine made them and whatever the number of workers.
//
// On a device backend the upload of the next batch would start here too,
// on the worker, once the backend can take token ids ahead of the op that
// reads them: today nn.Backend's Embedding and CrossEntropy take host
// slices and copy them to the device inside the op, so the upload still
// happens in the step.
type batches struct {
	gen  func(index int64) tasks.Batch
	next int64 // the index take returns next
	end  int64

	// Prefetching: pending holds, in index order, one channel per
	// dispatched index, which receives that batch; its capacity bounds
	// how far ahead the workers run.
	pending chan chan generated
	stop    chan struct{}
	wg      sync.WaitGroup
}

// generated is one batch from a worker, or the panic that generating it
// raised (re-raised by take, at the step that needed the batch).
type generated struct {
	batch    tasks.Batch
	panicked *generatorPanic
}

// generatorPanic is a panic of a task's Batch on a prefetch goroutine,
// with that goroutine's stack.
type generatorPanic struct {
	value any
	index int64
	stack []byte
}

func (p *generatorPanic) Error() string {
	return fmt.Sprintf("%v\n\ngenerating training batch %d on a prefetch goroutine:\n%s", p.value, p.index, p.stack)
}

// Unwrap keeps an error that the generator panicked with visible to
// errors.As (an out-of-memory error stays one).
func (p *generatorPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

// prefetchWorkers is how many goroutines generate batches ahead: half the
// cores (the other half issue the step, or compute it on the CPU), 1 to 8.
func prefetchWorkers() int { return min(max(runtime.GOMAXPROCS(0)/2, 1), 8) }

// newBatches serves batches first .. end−1 of gen, generated ahead by
// workers goroutines (0: none, each generated in take). close must be
// called when the loop ends.
func newBatches(gen func(int64) tasks.Batch, first, end int64, workers int) *batches {
	b := &batches{gen: gen, next: first, end: end}
	if workers <= 0 || first >= end {
		return b
	}
	depth := 2 * workers
	b.pending = make(chan chan generated, depth)
	b.stop = make(chan struct{})
	type job struct {
		index int64
		out   chan generated
	}
	work := make(chan job)
	b.wg.Add(1 + workers)
	go func() {
		defer b.wg.Done()
		defer close(work)
		defer close(b.pending)
		for i := first; i < end; i++ {
			out := make(chan generated, 1)
			select {
			case b.pending <- out:
			case <-b.stop:
				return
			}
			select {
			case work <- job{i, out}:
			case <-b.stop:
				return
			}
		}
	}()
	for range workers {
		go func() {
			defer b.wg.Done()
			for j := range work {
				j.out <- b.generate(j.index)
			}
		}()
	}
	return b
}

// generate runs gen(i) on a worker, catching a panic so that it ends the
// run at the step that needs the batch, as it would without prefetching.
func (b *batches) generate(i int64) (g generated) {
	defer func() {
		if r := recover(); r != nil {
			g.panicked = &generatorPanic{value: r, index: i, stack: debug.Stack()}
		}
	}()
	return generated{batch: b.gen(i)}
}

// take returns the next batch in index order.
func (b *batches) take() tasks.Batch {
	if b.next >= b.end {
		panic(fmt.Sprintf("train: batch %d asked for, past the last (%d)", b.next, b.end-1))
	}
	b.next++
	if b.pending == nil {
		return b.gen(b.next - 1)
	}
	g := <-<-b.pending
	if g.panicked != nil {
		panic(g.panicked)
	}
	return g.batch
}

// close stops the workers and waits for them (each finishes the batch it
// is generating).
func (b *batches) close() {
	if b.pending == nil {
		return
	}
	close(b.stop)
	b.wg.Wait()
}
