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
// not depend on scheduling. The grouping goes up in a layout of fixed size
// for len(ids) (groupedIDs), derived from ids at each launch of a graph
// that captured the call. dout is an activation (bfloat16 or the
// backend's type); dtable, the master's gradient, is of the backend's type.
func (be *Backend) EmbeddingBackward(dtable, dout nn.Buffer, ids []int32, d int) {
	const op = "EmbeddingBackward"
	g, t := be.buf(dout, len(ids)*d, op, "dout"), be.buf(dtable, -1, op, "dtable")
	check(op, nn.CheckIDs(ids, t.n, d))
	at := be.actType(op, arg{"dout", g})
	be.wantOwn(op, arg{"dtable", t})
	n := len(ids)
	if n == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	pb := be.uploadDerived(op, groupedLen(n), func(dst []int32) error {
		if err := nn.CheckIDs(ids, t.n, d); err != nil {
			return err
		}
		groupByID(dst, ids, t.n/d)
		return nil
	})
	defer be.release(pb)
	count, order, starts, gid := groupedParts(pArg(pb), n)
	k := be.fnAs(op, at, "embedding", "embedding_bwd")
	be.launch(op, k, dim(be.rowBlocks(n)), dim(rowThreads(d)), 0, pArg(t), pArg(g), order, starts, gid, count, iArg(d))
}

// groupedLen is the int32 words of n ids grouped by id: the number of
// groups, the positions in (id, position) order (n), each group's start
// in that order plus the end (at most n+1), and each group's id (at most
// n).
func groupedLen(n int) int { return 3*n + 2 }

// groupedParts are the device addresses of the parts of a grouping of n
// ids at base.
func groupedParts(base uint64, n int) (count, order, starts, gid uint64) {
	return base, base + 4, base + 4*uint64(1+n), base + 4*uint64(2+2*n)
}

// groupByID writes ids grouped by id into dst (groupedLen(len(ids))
// words, groupedParts' layout): a counting sort when the vocabulary V is
// not much larger than the ids, else a stable sort.
func groupByID(dst []int32, ids []int32, V int) {
	n := len(ids)
	order, starts, gid := dst[1:1+n], dst[1+n:2+2*n], dst[2+2*n:2+3*n]
	groups := 0
	if V <= 8*n+4096 {
		count := make([]int32, V+1)
		for _, id := range ids {
			count[id+1]++
		}
		for v := 0; v < V; v++ {
			if count[v+1] > 0 {
				starts[groups], gid[groups] = count[v], int32(v)
				groups++
			}
			count[v+1] += count[v]
		}
		for i, id := range ids {
			order[count[id]] = int32(i)
			count[id]++
		}
	} else {
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int { return int(ids[a]) - int(ids[b]) })
		for i, p := range order {
			if i == 0 || ids[p] != ids[order[i-1]] {
				starts[groups], gid[groups] = int32(i), ids[p]
				groups++
			}
		}
	}
	starts[groups] = int32(n)
	dst[0] = int32(groups)
}
