package train

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"seqbench/tasks"
)

// buildTask builds a registered task from its defaults, changed by set.
func buildTask(t *testing.T, name string, set func(tasks.Config)) tasks.Task {
	spec, err := tasks.Lookup(name)
	require.NoError(t, err)
	cfg := spec.New()
	if set != nil {
		set(cfg)
	}
	task, err := cfg.Build()
	require.NoError(t, err, name)
	return task
}

// Prefetched batches are exactly the batches generated one by one, in
// order, for every task that does not need files, whatever the number of
// workers, from any first index (a resumed run). mqar with a fixed set
// shares its epoch-shuffle cache between concurrent Batch calls; small
// sets put several epoch boundaries into the few batches.
func TestPrefetchedBatchesEqualSerial(t *testing.T) {
	var list []tasks.Task
	for _, name := range tasks.Names() {
		if name == "lm" {
			continue
		}
		list = append(list, buildTask(t, name, nil))
	}
	list = append(list, buildTask(t, "mqar", func(c tasks.Config) {
		m := c.(*tasks.MQARConfig)
		m.NumExamples, m.NumTestExamples = 5, 4
	}))
	const size = 3
	for _, task := range list {
		gen := func(i int64) tasks.Batch { return task.Batch(tasks.Train, 7, i, size) }
		for _, first := range []int64{0, 5} {
			const end = 17
			var want []tasks.Batch
			for i := first; i < end; i++ {
				want = append(want, gen(i))
			}
			for _, workers := range []int{0, 1, 2, 5} {
				b := newBatches(gen, first, end, workers)
				for i := first; i < end; i++ {
					require.Equal(t, want[i-first], b.take(), "batch %d, %d workers, %T", i, workers, task)
				}
				b.close()
			}
		}
	}
}

// A panic of the generator ends the run at the step that needs the batch
// (re-raised by take, with the value and the worker's stack), not when a
// worker meets it ahead of time; a run that ends before that step never
// sees it.
func TestPrefetchPanicAtItsStep(t *testing.T) {
	var generated atomic.Int64
	gen := func(i int64) tasks.Batch {
		generated.Add(1)
		if i == 3 {
			panic(errors.New("disk gone"))
		}
		return tasks.Batch{B: int(i)}
	}
	b := newBatches(gen, 0, 10, 2)
	for i := range 3 {
		require.Equal(t, i, b.take().B)
	}
	// The workers have run past batch 3 by now, without ending anything.
	require.Eventually(t, func() bool { return generated.Load() > 4 }, 5*time.Second, time.Millisecond)
	func() {
		defer func() {
			r := recover()
			require.NotNil(t, r)
			err, ok := r.(error)
			require.True(t, ok)
			require.Contains(t, err.Error(), "disk gone")
			require.Contains(t, err.Error(), "generating training batch 3")
			require.Equal(t, "disk gone", errors.Unwrap(err).Error())
		}()
		b.take()
	}()
	b.close()

	b = newBatches(gen, 0, 10, 2)
	require.Equal(t, 0, b.take().B)
	b.close() // batch 3's panic is dropped
}

// The workers stay a bounded number of batches ahead of the loop, and
// close stops them (no goroutine is left) even when the loop ends early.
func TestPrefetchIsBoundedAndCloses(t *testing.T) {
	before := runtime.NumGoroutine()
	var generated atomic.Int64
	gen := func(i int64) tasks.Batch { generated.Add(1); return tasks.Batch{B: int(i)} }
	const workers = 3
	b := newBatches(gen, 0, 1000, workers)
	require.Equal(t, 0, b.take().B)
	time.Sleep(50 * time.Millisecond)
	// Taken 1; at most the pending channels (2·workers) plus the one the
	// dispatcher holds are generated ahead.
	require.LessOrEqual(t, generated.Load(), int64(1+2*workers+1))
	b.close()
	// A goroutine ends just after its wg.Done: give them a moment.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left after close")

	// Past the last batch is a bug of the caller, in both modes.
	for _, w := range []int{0, 2} {
		b := newBatches(gen, 0, 1, w)
		b.take()
		require.PanicsWithValue(t, "train: batch 1 asked for, past the last (0)", func() { b.take() })
		b.close()
	}
}
