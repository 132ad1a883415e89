package gpukernels

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
// It panics when an id is outside [0, V). table and out are activations
// (both bfloat16, the table's cast under bf16, or both of the backend's
// type).
func (be *Backend) Embedding(out, table nn.Buffer, ids []int32, d int) {
	const op = "Embedding"
	o, t := be.buf(out, len(ids)*d, op, "out"), be.buf(table, -1, op, "table")
	check(op, nn.CheckIDs(ids, t.n, d))
	at := be.actType(op, arg{"table", t}, arg{"out", o})
	if len(ids) == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	idb := be.uploadInt32(op, ids, func(ids []int32) error { return nn.CheckIDs(ids, t.n, d) })
	defer be.release(idb)
	k := be.fnAs(op, at, "embedding", "embedding_fwd")
	be.launch(op, k, dim(be.rowBlocks(len(ids))), dim(rowThreads(d)), 0, pArg(o), pArg(t), pArg(idb), iArg(len(ids)), iArg(d))
}

// EmbeddingBackward scatter-adds the rows of dout (len(ids), d) into dtable:
//
//	for i, id := range ids {
//		dtable[id,:] += dout[i,:]
//	}
//
// The host groups the positions by id (in position order); one GPU block
// sums each group in double, so there are no atomics and the result does
// not depend on scheduling. dout is an activation (bfloat16 or the
// backend's type); dtable, the master's gradient, is of the backend's type.
func (be *Backend) EmbeddingBackward(dtable, dout nn.Buffer, ids []int32, d int) {
	const op = "EmbeddingBackward"
	g, t := be.buf(dout, len(ids)*d, op, "dout"), be.buf(dtable, -1, op, "dtable")
	check(op, nn.CheckIDs(ids, t.n, d))
	at := be.actType(op, arg{"dout", g})
	be.wantOwn(op, arg{"dtable", t})
	if len(ids) == 0 {
		return
	}
	order, starts, gid := groupByID(ids, t.n/d)
	groups := len(gid)
	// One upload: order (n) | starts (groups+1) | gid (groups).
	packed := make([]int32, 0, len(order)+2*groups+1)
	packed = append(append(append(packed, order...), starts...), gid...)
	be.enter(op)
	defer be.exit()
	pb := be.uploadInt32(op, packed, nil)
	defer be.release(pb)
	base := pArg(pb)
	k := be.fnAs(op, at, "embedding", "embedding_bwd")
	be.launch(op, k, dim(be.rowBlocks(groups)), dim(rowThreads(d)), 0, pArg(t), pArg(g), base,
		base+uint64(4*len(order)), base+uint64(4*(len(order)+groups+1)), iArg(groups), iArg(d))
}

// groupByID returns the positions of ids sorted by (id, position), the
// start of each id's run in that order (plus the end), and each run's id.
// A counting sort when the vocabulary V is not much larger than the ids.
func groupByID(ids []int32, V int) (order, starts, gid []int32) {
	n := len(ids)
	order = make([]int32, n)
	if V <= 8*n+4096 {
		count := make([]int32, V+1)
		for _, id := range ids {
			count[id+1]++
		}
		for v := 0; v < V; v++ {
			if count[v+1] > 0 {
				starts = append(starts, count[v])
				gid = append(gid, int32(v))
			}
			count[v+1] += count[v]
		}
		for i, id := range ids {
			order[count[id]] = int32(i)
			count[id]++
		}
		return order, append(starts, int32(n)), gid
	}
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return int(ids[a]) - int(ids[b]) })
	for i, p := range order {
		if i == 0 || ids[p] != ids[order[i-1]] {
			starts = append(starts, int32(i))
			gid = append(gid, ids[p])
		}
	}
	return order, append(starts, int32(n)), gid
}
