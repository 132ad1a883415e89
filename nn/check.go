package nn

import (
	"fmt"
	"math"
	"reflect"
)

// The argument contracts of the Backend ops, checked once here so that
// every backend rejects the same calls with the same words. Each check
// returns nil or an error naming the field, its value and what is allowed;
// a backend panics with it prefixed by its package and the op
// ("cpukernels.SSD: shape B=… (H, P, G, N, Chunk ≥ 1, G dividing H)"), as
// Backend's comment says. Buffer lengths are checked by the backends, which
// own the buffers; the lengths an op needs follow from the shapes checked
// here.

// MaxPermuteRank is the largest rank Permute accepts: the CUDA kernel
// takes its dims and strides as that many parameters each.
const MaxPermuteRank = 6

// PermutePlan is a checked Permute: the N elements of x walked in out's
// order as Rank dims (outermost first) with their x strides. Dims of size 1
// are dropped and an out dim that continues the next one in x is merged
// into it, so a permutation that keeps the last dims walks whole rows.
// Rank 0 with N > 0, or Rank 1 with stride 1, is a plain copy.
type PermutePlan struct {
	N             int
	Rank          int
	Dims, Strides [MaxPermuteRank]int
}

// PlanPermute checks Permute's shape and perm and merges the dims.
func PlanPermute(shape, perm []int) (PermutePlan, error) {
	var p PermutePlan
	rank := len(shape)
	if rank > MaxPermuteRank || len(perm) != rank {
		return p, fmt.Errorf("perm %v for shape %v (rank ≤ %d, one perm entry per dim)", perm, shape, MaxPermuteRank)
	}
	var seen [MaxPermuteRank]bool
	for _, d := range perm {
		if d < 0 || d >= rank || seen[d] {
			return p, fmt.Errorf("perm %v is not a permutation of 0..%d", perm, rank-1)
		}
		seen[d] = true
	}
	n := 1
	var xstride [MaxPermuteRank]int
	for i := rank - 1; i >= 0; i-- {
		if shape[i] < 0 {
			return p, fmt.Errorf("negative dim in shape %v", shape)
		}
		xstride[i] = n
		n *= shape[i]
	}
	p.N = n
	for i := 0; i < rank; i++ {
		d, s := shape[perm[i]], xstride[perm[i]]
		if d == 1 {
			continue
		}
		if p.Rank > 0 && p.Strides[p.Rank-1] == s*d {
			p.Dims[p.Rank-1] *= d
			p.Strides[p.Rank-1] = s
			continue
		}
		p.Dims[p.Rank], p.Strides[p.Rank] = d, s
		p.Rank++
	}
	return p, nil
}

// Lens checks the product's shape, strides and leading dimensions and
// returns the elements each of A, B and C must hold.
func (g GemmArgs) Lens() (na, nb, nc int, err error) {
	ra, ca := g.M, g.K // stored A is ra×ca
	if g.TransA {
		ra, ca = ca, ra
	}
	rb, cb := g.K, g.N
	if g.TransB {
		rb, cb = cb, rb
	}
	if g.M < 0 || g.N < 0 || g.K < 0 || g.Batch < 1 || g.StrideA < 0 || g.StrideB < 0 || g.StrideC < 0 ||
		g.OffA < 0 || g.OffB < 0 || g.OffC < 0 || g.LDA < ca || g.LDB < cb || g.LDC < g.N {
		return 0, 0, 0, fmt.Errorf("bad arguments %+v (need M, N, K, strides, offsets ≥ 0, Batch ≥ 1, LDA ≥ %d, LDB ≥ %d, LDC ≥ N)",
			g, ca, cb)
	}
	need := func(off, stride, rows, cols, ld int) int {
		if rows == 0 || cols == 0 {
			return 0
		}
		return off + (g.Batch-1)*stride + (rows-1)*ld + cols
	}
	return need(g.OffA, g.StrideA, ra, ca, g.LDA), need(g.OffB, g.StrideB, rb, cb, g.LDB),
		need(g.OffC, g.StrideC, g.M, g.N, g.LDC), nil
}

// Check rejects a step count below 1 (bias correction counts from 1).
func (a AdamWArgs) Check() error {
	if a.Step < 1 {
		return fmt.Errorf("step %d, counted from 1", a.Step)
	}
	return nil
}

// Check rejects an activation that is not one of the named constants.
func (a Activation) Check() error {
	if a < Identity || a > Exp {
		return fmt.Errorf("unknown activation %d", int(a))
	}
	return nil
}

// CheckCopyBlock checks CopyBlock's block: no negative size, offset or
// source stride, and rows of dst that do not overlap.
func CheckCopyBlock(dstOff, dstStride, srcOff, srcStride, rows, cols int) error {
	if rows < 0 || cols < 0 || dstOff < 0 || srcOff < 0 || srcStride < 0 || (rows > 1 && dstStride < cols) {
		return fmt.Errorf("bad block rows=%d cols=%d dstOff=%d dstStride=%d srcOff=%d srcStride=%d",
			rows, cols, dstOff, dstStride, srcOff, srcStride)
	}
	return nil
}

// CheckMatrix rejects a negative rows×cols shape (AddBias, SumRows).
func CheckMatrix(rows, cols int) error {
	if rows < 0 || cols < 0 {
		return fmt.Errorf("negative shape %d×%d", rows, cols)
	}
	return nil
}

// CheckRows checks the rows×d shape of a row-wise op (norms, cross
// entropy, argmax): rows ≥ 0 and a row of at least one element.
func CheckRows(rows, d int) error {
	if rows < 0 || d < 1 {
		return fmt.Errorf("shape rows=%d d=%d, needs rows ≥ 0 and d ≥ 1", rows, d)
	}
	return nil
}

// CheckIDs checks Embedding's ids against a table of tableLen elements in
// rows of d: d ≥ 1 and every id in [0, tableLen/d).
func CheckIDs(ids []int32, tableLen, d int) error {
	if d < 1 {
		return fmt.Errorf("row length d = %d, needs d ≥ 1", d)
	}
	V := tableLen / d
	for i, id := range ids {
		if id < 0 || int(id) >= V {
			return fmt.Errorf("ids[%d] = %d is outside the table's [0, %d)", i, id, V)
		}
	}
	return nil
}

// CheckTargets checks CrossEntropy's rows×V shape and its targets: one per
// row, each the ignore index or in [0, V).
func CheckTargets(targets []int32, rows, V int, ignore int32) error {
	if err := CheckRows(rows, V); err != nil {
		return err
	}
	if len(targets) < rows {
		return fmt.Errorf("%d targets for %d rows", len(targets), rows)
	}
	for r, t := range targets[:rows] {
		if t != ignore && (t < 0 || int(t) >= V) {
			return fmt.Errorf("targets[%d] = %d is outside [0, %d) and is not the ignore index %d", r, t, V, ignore)
		}
	}
	return nil
}

// CheckRoPE checks RoPE's shape: no negative size and an even head dim
// Dh ≥ 2 (element i pairs with i + Dh/2).
func CheckRoPE(B, H, L, Dh int) error {
	if B < 0 || H < 0 || L < 0 {
		return fmt.Errorf("negative shape B=%d H=%d L=%d", B, H, L)
	}
	if Dh < 2 || Dh%2 != 0 {
		return fmt.Errorf("head dim Dh = %d, needs an even Dh ≥ 2", Dh)
	}
	return nil
}

// CheckAttention rejects the shapes Attention cannot compute: negative
// sizes, an empty head, queries without keys, and a causal mask that
// leaves the first queries no key (Lk < Lq).
func CheckAttention(B, H, Lq, Lk, Dh int, causal bool) error {
	switch {
	case B < 0 || H < 0 || Lq < 0 || Lk < 0:
		return fmt.Errorf("negative shape B=%d H=%d Lq=%d Lk=%d", B, H, Lq, Lk)
	case Dh < 1:
		return fmt.Errorf("head dim Dh = %d, needs Dh ≥ 1", Dh)
	case Lq > 0 && Lk < 1:
		return fmt.Errorf("%d queries but no key", Lq)
	case causal && Lk < Lq:
		return fmt.Errorf("causal with Lk = %d < Lq = %d leaves the first queries no key", Lk, Lq)
	}
	return nil
}

// CheckAttentionCached checks AttentionCached's shape: Attention's,
// causal, for a cache of kvRows ≥ Lq rows in each (b, h) block.
func CheckAttentionCached(B, H, Lq, kvRows, Dh int) error {
	return CheckAttention(B, H, Lq, kvRows, Dh, true)
}

// CheckAppendRows checks AppendRows' shape.
func CheckAppendRows(dstStride, rows, cols, unit int) error {
	if rows < 0 || cols < 0 || unit < 0 || dstStride < cols {
		return fmt.Errorf("rows %d of %d columns into rows of %d (unit %d): all ≥ 0, the columns at most the row", rows, cols, dstStride, unit)
	}
	return nil
}

// PositionAt is the whole number ≥ 0 that a position buffer's value v
// holds (RoPEAt, AppendRows, AttentionCached), or an error naming it.
func PositionAt(v float64) (int, error) {
	if !(v >= 0) || v != math.Trunc(v) || v > 1<<24 {
		return 0, fmt.Errorf("position %v is not a whole number in [0, 2^24]", v)
	}
	return int(v), nil
}

// CheckConv1D checks Conv1D's shape (W ≥ 1, others ≥ 0) and activation
// (Identity or SiLU, the two the fused kernels apply).
func CheckConv1D(B, C, L, W int, act Activation) error {
	if B < 0 || C < 0 || L < 0 || W < 1 {
		return fmt.Errorf("shape B=%d, C=%d, L=%d, W=%d (W ≥ 1, others ≥ 0)", B, C, L, W)
	}
	if act != Identity && act != SiLU {
		return fmt.Errorf("activation %v, want identity or silu", act)
	}
	return nil
}

// CheckFFTConv rejects a negative FFTConv shape.
func CheckFFTConv(B, H, L int) error {
	if B < 0 || H < 0 || L < 0 {
		return fmt.Errorf("negative shape B=%d H=%d L=%d", B, H, L)
	}
	return nil
}

// Check checks the scan's shape: N, G ≥ 1, others ≥ 0, and G dividing D
// (channel d reads group d/(D/G)).
func (a ScanArgs) Check() error {
	if a.B < 0 || a.D < 0 || a.L < 0 || a.N < 1 || a.G < 1 || a.D%a.G != 0 {
		return fmt.Errorf("shape B=%d, D=%d, L=%d, N=%d, G=%d (N, G ≥ 1; G must divide D)", a.B, a.D, a.L, a.N, a.G)
	}
	return nil
}

// Check checks the SSD's shape: H, P, G, N, Chunk ≥ 1, B, L ≥ 0, and G
// dividing H (head h reads group h/(H/G)).
func (a SSDArgs) Check() error {
	if a.B < 0 || a.L < 0 || a.H < 1 || a.P < 1 || a.G < 1 || a.N < 1 || a.Chunk < 1 || a.H%a.G != 0 {
		return fmt.Errorf("shape B=%d L=%d H=%d P=%d G=%d N=%d Chunk=%d (H, P, G, N, Chunk ≥ 1, G dividing H)",
			a.B, a.L, a.H, a.P, a.G, a.N, a.Chunk)
	}
	return nil
}

// Check rejects gradients of the optional parameters a does not have.
func (g SSDGrads) Check(a SSDArgs) error {
	if !absent(g.Dskip) && absent(a.Dskip) {
		return fmt.Errorf("dDskip asked for without Dskip")
	}
	if !absent(g.DtBias) && absent(a.DtBias) {
		return fmt.Errorf("dDtBias asked for without DtBias")
	}
	return nil
}

// Check checks an LSTM's (gru false) or GRU's shape: B, I, H ≥ 1, L ≥ 0,
// and no cell state C0 for a GRU.
func (a RNNArgs) Check(gru bool) error {
	if a.B < 1 || a.L < 0 || a.I < 1 || a.H < 1 {
		return fmt.Errorf("bad shape B=%d L=%d I=%d H=%d (need B, I, H ≥ 1, L ≥ 0)", a.B, a.L, a.I, a.H)
	}
	if gru && !absent(a.C0) {
		return fmt.Errorf("C0 given, but a GRU has no cell state")
	}
	return nil
}

// Check rejects a negative S4D shape.
func (a S4DArgs) Check() error {
	if a.H < 0 || a.N2 < 0 || a.L < 0 {
		return fmt.Errorf("negative shape H=%d N2=%d L=%d", a.H, a.N2, a.L)
	}
	return nil
}

// CheckS4DRecurrent checks S4DRecurrent's parameters and batch.
func CheckS4DRecurrent(a S4DArgs, B int) error {
	if err := a.Check(); err != nil {
		return err
	}
	if B < 0 {
		return fmt.Errorf("negative batch %d", B)
	}
	return nil
}

// absent reports whether an optional buffer is missing: nil, or a nil
// pointer of a backend's buffer type stored in the interface.
func absent(b Buffer) bool {
	if b == nil {
		return true
	}
	v := reflect.ValueOf(b)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
