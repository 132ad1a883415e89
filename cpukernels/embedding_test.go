package cpukernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestEmbedding(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	for i, c := range []struct {
		V, d int
		ids  []int32
	}{
		{1, 1, []int32{0, 0}},
		{7, 6, nil},
		{7, 6, []int32{3}},
		{7, 6, []int32{6, 0, 3, 3, 1, 6, 6, 2, 0, 5, 4, 3, 3, 1, 6, 0, 2}},
		{40, 2, []int32{39, 1, 39, 17, 0}},
	} {
		name := fmt.Sprintf("case %d (V=%d, d=%d, %d ids)", i, c.V, c.d, len(c.ids))
		n := len(c.ids) * c.d
		table, g := refRandn(rng, c.V*c.d, 1), refRandn(rng, n, 1)
		want, wantD := make([]float64, n), refRandn(rng, c.V*c.d, 1)
		dt0 := append([]float64(nil), wantD...)
		for p, id := range c.ids {
			for k := range c.d {
				want[p*c.d+k] = table[int(id)*c.d+k]
				wantD[int(id)*c.d+k] += g[p*c.d+k]
			}
		}
		testEmbedding[float64](t, name+" float64", table, g, dt0, want, wantD, c.ids, c.d, 1e-14)
		testEmbedding[float32](t, name+" float32", table, g, dt0, want, wantD, c.ids, c.d, 1e-6)
	}
}

func testEmbedding[T Float](t *testing.T, name string, table, g, dt0, want, wantD []float64, ids []int32, d int, tol float64) {
	t.Helper()
	n := len(ids) * d
	be := New[T]()
	out := refPoisoned[T](n)
	be.Embedding(out, refBuf[T](table), ids, d)
	refRel(t, name+" out", refF64(out, n), refRound[T](want), 0)
	refCheckGuard(t, name+" out", out, n)
	dt := refWithGuard[T](dt0)
	be.EmbeddingBackward(dt, refBuf[T](g), ids, d)
	refRel(t, name+" dtable", refF64(dt, len(dt0)), wantD, tol)
	refCheckGuard(t, name+" dtable", dt, len(dt0))
}

// TestEmbeddingBackwardRepeats sums many rows into few: float32 must keep
// float64 accuracy, and the result must not depend on the workers.
func TestEmbeddingBackwardRepeats(t *testing.T) {
	const V, d, n = 3, 5, 4000
	rng := rand.New(rand.NewPCG(2, 2))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(V))
	}
	g := refRound[float32](refRandn(rng, n*d, 1))
	want := make([]float64, V*d)
	for p, id := range ids {
		for k := range d {
			want[int(id)*d+k] += g[p*d+k]
		}
	}
	var first []float64
	for _, workers := range []int{1, 2, 3} {
		be := &Backend[float32]{workers: workers}
		dt := make(Buf[float32], V*d)
		be.EmbeddingBackward(dt, refBuf[float32](g), ids, d)
		refRel(t, fmt.Sprintf("%d workers", workers), refF64(dt, V*d), want, 1e-6)
		if first == nil {
			first = refF64(dt, V*d)
		}
		refRel(t, fmt.Sprintf("%d workers vs 1", workers), refF64(dt, V*d), first, 0)
	}
}

func TestEmbeddingBadID(t *testing.T) {
	be := New[float32]()
	table := make(Buf[float32], 4*3) // V = 4
	for _, id := range []int32{-1, 4} {
		ids := []int32{0, id, 1}
		out := refPoisoned[float32](len(ids) * 3)
		refPanics(t, fmt.Sprintf("Embedding id %d", id), "ids[1] = "+fmt.Sprint(id), func() {
			be.Embedding(out, table, ids, 3)
		})
		refPanics(t, fmt.Sprintf("EmbeddingBackward id %d", id), "outside", func() {
			be.EmbeddingBackward(table, out, ids, 3)
		})
	}
}
