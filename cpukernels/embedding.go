package cpukernels

import (
	"slices"

	"seqbench/nn"
)

// Embedding gathers rows of table (V, d), V = table.Len()/d:
//
//	for i, id := range ids {
//		out[i,:] = table[id,:]
//	}
//
// It panics when an id is outside [0, V).
func (be *Backend[T]) Embedding(out, table nn.Buffer, ids []int32, d int) {
	const op = "Embedding"
	n := len(ids) * d
	os, ts := data[T](out, n, op, "out"), data[T](table, -1, op, "table")
	check(op, nn.CheckIDs(ids, len(ts), d))
	be.parallelFor(len(ids), rowGrain(d), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			id := int(ids[i])
			copy(os[i*d:(i+1)*d], ts[id*d:(id+1)*d])
		}
	})
}

// EmbeddingBackward scatter-adds the rows of dout (len(ids), d) into dtable:
//
//	for i, id := range ids {
//		dtable[id,:] += dout[i,:]
//	}
//
// The positions of each id are summed in order, in float64, by one worker,
// so the result does not depend on the number of workers.
func (be *Backend[T]) EmbeddingBackward(dtable, dout nn.Buffer, ids []int32, d int) {
	const op = "EmbeddingBackward"
	gs, ts := data[T](dout, len(ids)*d, op, "dout"), data[T](dtable, -1, op, "dtable")
	check(op, nn.CheckIDs(ids, len(ts), d))
	// order lists the positions sorted by (id, position): runs of one id.
	order := make([]int32, len(ids))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if ids[a] != ids[b] {
			return int(ids[a]) - int(ids[b])
		}
		return int(a) - int(b)
	})
	var starts []int
	for i := range order {
		if i == 0 || ids[order[i]] != ids[order[i-1]] {
			starts = append(starts, i)
		}
	}
	starts = append(starts, len(order))
	groups := len(starts) - 1
	be.parallelFor(groups, max(1, groups*rowGrain(d)/max(len(ids), 1)), func(lo, hi int) {
		acc := make([]float64, d)
		for g := lo; g < hi; g++ {
			clear(acc)
			for _, i := range order[starts[g]:starts[g+1]] {
				for c, v := range gs[int(i)*d : int(i+1)*d] {
					acc[c] += float64(v)
				}
			}
			id := int(ids[order[starts[g]]])
			tr := ts[id*d : (id+1)*d]
			for c, v := range acc {
				tr[c] += T(v)
			}
		}
	})
}
