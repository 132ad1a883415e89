package nn

import (
	"slices"
	"strings"
	"testing"
)

// fakeBuf is a Buffer for the checks that only ask whether one is present.
type fakeBuf struct{ n int }

func (b *fakeBuf) Len() int { return b.n }

func TestChecks(t *testing.T) {
	var nilBuf *fakeBuf // a typed nil: absent, as a backend's nil *Buffer
	scan := ScanArgs{B: 2, D: 6, L: 5, N: 4, G: 3}
	ssd := SSDArgs{B: 1, L: 8, H: 4, P: 2, G: 2, N: 3, Chunk: 4}
	rnn := RNNArgs{B: 1, L: 0, I: 3, H: 2}
	cases := []struct {
		name string
		err  error
		want string // "" when the arguments are valid
	}{
		{"gemm ok", func() error {
			_, _, _, e := (GemmArgs{M: 2, N: 3, K: 4, LDA: 4, LDB: 3, LDC: 3, Batch: 1}).Lens()
			return e
		}(), ""},
		{"gemm LDA", func() error {
			_, _, _, e := (GemmArgs{TransA: true, M: 2, N: 3, K: 4, LDA: 1, LDB: 3, LDC: 3, Batch: 1}).Lens()
			return e
		}(), "LDA ≥ 2"},
		{"adamw step", AdamWArgs{Step: 0}.Check(), "step 0, counted from 1"},
		{"adamw ok", AdamWArgs{Step: 1}.Check(), ""},
		{"activation", Activation(42).Check(), "unknown activation 42"},
		{"activation ok", Exp.Check(), ""},
		{"copy block overlap", CheckCopyBlock(0, 2, 0, 4, 2, 3), "dstStride=2"},
		{"copy block broadcast ok", CheckCopyBlock(0, 3, 0, 0, 2, 3), ""},
		{"matrix", CheckMatrix(-1, 2), "negative shape -1×2"},
		{"rows d", CheckRows(3, 0), "rows=3 d=0, needs rows ≥ 0 and d ≥ 1"},
		{"rows ok", CheckRows(0, 1), ""},
		{"ids", CheckIDs([]int32{0, 2}, 6, 3), "ids[1] = 2 is outside the table's [0, 2)"},
		{"ids d", CheckIDs(nil, 6, 0), "row length d = 0"},
		{"ids ok", CheckIDs([]int32{1, 0}, 6, 3), ""},
		{"targets short", CheckTargets([]int32{0}, 2, 3, -1), "1 targets for 2 rows"},
		{"targets range", CheckTargets([]int32{0, 3}, 2, 3, -1), "targets[1] = 3 is outside [0, 3) and is not the ignore index -1"},
		{"targets ignore ok", CheckTargets([]int32{-1, 2}, 2, 3, -1), ""},
		{"targets V", CheckTargets([]int32{0}, 1, 0, -1), "d=0"},
		{"rope odd", CheckRoPE(1, 1, 1, 3), "head dim Dh = 3, needs an even Dh ≥ 2"},
		{"rope negative", CheckRoPE(1, -2, 1, 4), "negative shape B=1 H=-2 L=1"},
		{"rope ok", CheckRoPE(0, 0, 0, 2), ""},
		{"attention causal", CheckAttention(1, 1, 4, 3, 8, true), "Lk = 3 < Lq = 4"},
		{"attention no key", CheckAttention(1, 1, 4, 0, 8, false), "4 queries but no key"},
		{"attention Dh", CheckAttention(1, 1, 4, 4, 0, false), "Dh = 0"},
		{"attention negative", CheckAttention(-1, 1, 4, 4, 8, false), "B=-1"},
		{"attention cache ok", CheckAttention(1, 1, 1, 9, 8, true), ""},
		{"conv W", CheckConv1D(1, 1, 1, 0, SiLU), "W=0 (W ≥ 1, others ≥ 0)"},
		{"conv act", CheckConv1D(1, 1, 1, 4, GELU), "activation gelu, want identity or silu"},
		{"conv ok", CheckConv1D(0, 0, 0, 1, Identity), ""},
		{"fftconv", CheckFFTConv(1, 1, -3), "L=-3"},
		{"scan ok", scan.Check(), ""},
		{"scan G", func() error { a := scan; a.G = 4; return a.Check() }(), "G=4 (N, G ≥ 1; G must divide D)"},
		{"scan N", func() error { a := scan; a.N = 0; return a.Check() }(), "N=0"},
		{"ssd ok", ssd.Check(), ""},
		{"ssd G", func() error { a := ssd; a.G = 3; return a.Check() }(), "G=3"},
		{"ssd Chunk", func() error { a := ssd; a.Chunk = 0; return a.Check() }(), "Chunk=0"},
		{"ssd dDskip", SSDGrads{Dskip: &fakeBuf{4}}.Check(ssd), "dDskip asked for without Dskip"},
		{"ssd dDtBias", SSDGrads{DtBias: &fakeBuf{4}}.Check(ssd), "dDtBias asked for without DtBias"},
		{"ssd grads ok", SSDGrads{Dskip: &fakeBuf{4}, DtBias: nilBuf}.Check(SSDArgs{Dskip: &fakeBuf{4}}), ""},
		{"rnn ok", rnn.Check(false), ""},
		{"rnn B", func() error { a := rnn; a.B = 0; return a.Check(false) }(), "B=0"},
		{"gru C0", func() error { a := rnn; a.C0 = &fakeBuf{2}; return a.Check(true) }(), "C0 given, but a GRU has no cell state"},
		{"gru typed nil C0 ok", func() error { a := rnn; a.C0 = nilBuf; return a.Check(true) }(), ""},
		{"lstm C0 ok", func() error { a := rnn; a.C0 = &fakeBuf{2}; return a.Check(false) }(), ""},
		{"s4d", S4DArgs{H: 1, N2: -1}.Check(), "N2=-1"},
		{"s4d batch", CheckS4DRecurrent(S4DArgs{H: 1, N2: 1, L: 1}, -1), "negative batch -1"},
		{"s4d ok", CheckS4DRecurrent(S4DArgs{}, 0), ""},
	}
	for _, c := range cases {
		switch {
		case c.want == "" && c.err != nil:
			t.Errorf("%s: %v, want no error", c.name, c.err)
		case c.want != "" && c.err == nil:
			t.Errorf("%s: no error, want one containing %q", c.name, c.want)
		case c.want != "" && !strings.Contains(c.err.Error(), c.want):
			t.Errorf("%s: %q, want one containing %q", c.name, c.err, c.want)
		}
	}
}

func TestGemmLens(t *testing.T) {
	// A stored 4×2 (TransA, ld 3), B 4×3 (ld 5), C 2×3 (ld 3), two batches.
	g := GemmArgs{TransA: true, M: 2, N: 3, K: 4, LDA: 3, LDB: 5, LDC: 3, StrideA: 20, StrideB: 30, StrideC: 10, Batch: 2}
	na, nb, nc, err := g.Lens()
	if err != nil || na != 20+3*3+2 || nb != 30+3*5+3 || nc != 10+1*3+3 {
		t.Errorf("Lens() = %d, %d, %d, %v", na, nb, nc, err)
	}
	if na, _, _, _ := (GemmArgs{M: 0, N: 3, K: 4, LDA: 4, LDB: 3, LDC: 3, Batch: 1}).Lens(); na != 0 {
		t.Errorf("an empty A needs %d elements, want 0", na)
	}
}

func TestPlanPermute(t *testing.T) {
	cases := []struct {
		shape, perm   []int
		n             int
		dims, strides []int
		err           string
	}{
		// (2,3,4) → (3,2,4): the last dim stays, rows of 4 move.
		{[]int{2, 3, 4}, []int{1, 0, 2}, 24, []int{3, 2, 4}, []int{4, 12, 1}, ""},
		// Identity with a size-1 dim: one contiguous run.
		{[]int{2, 1, 4}, []int{0, 1, 2}, 8, []int{8}, []int{1}, ""},
		// (2,3,4) → (4,2,3): dims 0 and 1 merge into one of 6 (stride 4).
		{[]int{2, 3, 4}, []int{2, 0, 1}, 24, []int{4, 6}, []int{1, 4}, ""},
		{[]int{1, 1}, []int{1, 0}, 1, nil, nil, ""},
		{[]int{2, 2}, []int{0, 0}, 0, nil, nil, "perm [0 0] is not a permutation of 0..1"},
		{[]int{2, 2}, []int{0}, 0, nil, nil, "one perm entry per dim"},
		{make([]int, 7), []int{0, 1, 2, 3, 4, 5, 6}, 0, nil, nil, "rank ≤ 6"},
		{[]int{2, -1}, []int{1, 0}, 0, nil, nil, "negative dim in shape [2 -1]"},
	}
	for _, c := range cases {
		p, err := PlanPermute(c.shape, c.perm)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("PlanPermute(%v, %v): %v, want an error containing %q", c.shape, c.perm, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("PlanPermute(%v, %v): %v", c.shape, c.perm, err)
			continue
		}
		dims, strides := p.Dims[:p.Rank], p.Strides[:p.Rank]
		if p.N != c.n || !slices.Equal(dims, c.dims) || !slices.Equal(strides, c.strides) {
			t.Errorf("PlanPermute(%v, %v) = n %d dims %v strides %v, want %d %v %v",
				c.shape, c.perm, p.N, dims, strides, c.n, c.dims, c.strides)
		}
	}
}
