package backendtest

import (
	"fmt"
	"strings"
	"testing"

	"seqbench/nn"
)

// testContracts calls every op with one argument outside its contract and
// checks that the backend panics with nn's check of that argument, prefixed
// by the op ("<pkg>.<Op>: <nn's error>"): the backends reject the same
// calls with the same words because they ask nn, not a copy of their own.
// Buffers are long enough that the shape, not a length, is what is wrong.
func testContracts(t *testing.T, b nn.Backend) {
	var bufs []nn.Buffer
	alloc := func(n int) nn.Buffer {
		v := b.Alloc(n)
		bufs = append(bufs, v)
		return v
	}
	x := func() nn.Buffer { return alloc(256) }
	defer func() {
		for _, v := range bufs {
			b.Free(v)
		}
	}()
	_, permErr := nn.PlanPermute([]int{2, 2}, []int{0, 0})
	badGemm := nn.GemmArgs{M: -1, N: 2, K: 2, LDA: 2, LDB: 2, LDC: 2, Batch: 1}
	_, _, _, gemmErr := badGemm.Lens()
	scan := nn.ScanArgs{B: 1, D: 3, L: 2, N: 2, G: 2, U: x(), Delta: x(), A: x(), Bm: x(), Cm: x()}
	ssd := nn.SSDArgs{B: 1, L: 2, H: 2, P: 2, G: 1, N: 2, Chunk: 2, X: x(), Dt: x(), A: x(), Bm: x(), Cm: x()}
	badChunk := ssd
	badChunk.Chunk = 0
	rnn := nn.RNNArgs{B: 1, L: 2, I: 2, H: 2, X: x(), Wih: x(), Whh: x()}
	noBatch := rnn
	noBatch.B = 0
	gruC0 := rnn
	gruC0.C0 = x()
	s4d := nn.S4DArgs{H: 2, N2: 2, L: 4, LogDt: x(), ARe: x(), AIm: x(), CRe: x(), CIm: x()}
	badS4D := s4d
	badS4D.H = -1

	cases := []struct {
		op   string
		want error // nn's verdict on the bad argument
		call func()
	}{
		{"Permute", permErr, func() { b.Permute(x(), x(), []int{2, 2}, []int{0, 0}, false) }},
		{"Gemm", gemmErr, func() { b.Gemm(x(), x(), x(), badGemm) }},
		{"CopyBlock", nn.CheckCopyBlock(0, 2, 0, 3, 2, 3), func() { b.CopyBlock(x(), 0, 2, x(), 0, 3, 2, 3, false) }},
		{"Act", nn.Activation(99).Check(), func() { b.Act(99, x(), x()) }},
		{"ActBackward", nn.Activation(-1).Check(), func() { b.ActBackward(-1, x(), x(), x()) }},
		{"AddBias", nn.CheckMatrix(-1, 2), func() { b.AddBias(x(), x(), x(), -1, 2) }},
		{"SumRows", nn.CheckMatrix(2, -1), func() { b.SumRows(x(), x(), 2, -1) }},
		{"RMSNorm", nn.CheckRows(2, 0), func() { b.RMSNorm(x(), x(), x(), x(), 2, 0, 1e-5) }},
		{"RMSNormBackward", nn.CheckRows(-1, 2), func() { b.RMSNormBackward(x(), x(), x(), x(), x(), x(), -1, 2) }},
		{"LayerNorm", nn.CheckRows(2, 0), func() { b.LayerNorm(x(), x(), x(), x(), x(), nil, 2, 0, 1e-5) }},
		{"LayerNormBackward", nn.CheckRows(2, 0), func() { b.LayerNormBackward(x(), x(), nil, x(), x(), x(), x(), x(), 2, 0) }},
		{"Embedding", nn.CheckIDs([]int32{0, 5}, 6, 3), func() { b.Embedding(x(), alloc(6), []int32{0, 5}, 3) }},
		{"EmbeddingBackward", nn.CheckIDs([]int32{-1}, 256, 0), func() { b.EmbeddingBackward(x(), x(), []int32{-1}, 0) }},
		{"CrossEntropy", nn.CheckTargets([]int32{0, 7}, 2, 3, -100), func() {
			b.CrossEntropy(x(), x(), x(), []int32{0, 7}, 2, 3, -100)
		}},
		{"CrossEntropyBackward", nn.CheckTargets([]int32{0}, 2, 3, -100), func() {
			b.CrossEntropyBackward(x(), x(), x(), x(), []int32{0}, 2, 3, -100)
		}},
		{"ArgmaxRows", nn.CheckRows(2, 0), func() { b.ArgmaxRows(x(), 2, 0) }},
		{"RoPE", nn.CheckRoPE(1, 1, 2, 3), func() { b.RoPE(x(), x(), 1, 1, 2, 3, 0, 10000) }},
		{"RoPEBackward", nn.CheckRoPE(1, -1, 2, 4), func() { b.RoPEBackward(x(), x(), 1, -1, 2, 4, 0, 10000) }},
		{"Attention", nn.CheckAttention(1, 1, 5, 3, 4, true), func() {
			b.Attention(x(), x(), x(), x(), x(), 1, 1, 5, 3, 4, 1, true)
		}},
		{"AttentionCached", nn.CheckAttentionCached(1, 1, 4, 3, 4), func() {
			b.AttentionCached(x(), x(), x(), x(), x(), 1, 1, 4, x(), 3, 4, 1)
		}},
		{"AppendRows", nn.CheckAppendRows(2, 1, 3, 1), func() { b.AppendRows(x(), 2, x(), 1, 3, x(), 1) }},
		{"AttentionBackward", nn.CheckAttention(1, 1, 2, 2, 0, false), func() {
			b.AttentionBackward(x(), x(), x(), x(), x(), x(), x(), x(), x(), 1, 1, 2, 2, 0, 1, false)
		}},
		{"AttentionDropout", nn.CheckAttnDrop(nn.AttnDrop{P: 1}), func() {
			b.AttentionDropout(x(), x(), x(), x(), x(), 1, 1, 2, 2, 4, 1, true, nn.AttnDrop{P: 1})
		}},
		{"AttentionDropoutBackward", nn.CheckAttention(1, 1, 3, 2, 4, true), func() {
			b.AttentionDropoutBackward(x(), x(), x(), x(), x(), x(), x(), x(), x(), 1, 1, 3, 2, 4, 1, true, nn.AttnDrop{P: 0.1})
		}},
		{"AdamW", nn.AdamWArgs{}.Check(), func() { b.AdamW(x(), x(), x(), x(), nn.AdamWArgs{LR: 1}) }},
		{"Conv1D", nn.CheckConv1D(1, 2, 4, 3, nn.GELU), func() { b.Conv1D(x(), x(), x(), nil, nil, 1, 2, 4, 3, nn.GELU) }},
		{"Conv1DBackward", nn.CheckConv1D(1, 2, 4, 0, nn.SiLU), func() {
			b.Conv1DBackward(x(), x(), nil, x(), x(), nil, x(), 1, 2, 4, 0, nn.SiLU)
		}},
		{"SelectiveScan", scan.Check(), func() { b.SelectiveScan(x(), nil, scan) }},
		{"SelectiveScanBackward", scan.Check(), func() { b.SelectiveScanBackward(nn.ScanGrads{U: x()}, scan, x()) }},
		{"SSD", badChunk.Check(), func() { b.SSD(x(), nil, badChunk) }},
		{"SSDBackward", nn.SSDGrads{Dskip: x()}.Check(ssd), func() { b.SSDBackward(nn.SSDGrads{Dskip: x()}, ssd, x()) }},
		{"LSTM", noBatch.Check(false), func() { b.LSTM(x(), nil, nil, nil, noBatch) }},
		{"GRU", gruC0.Check(true), func() { b.GRU(x(), nil, nil, gruC0) }},
		{"S4DKernel", badS4D.Check(), func() { b.S4DKernel(x(), badS4D) }},
		{"S4DKernelBackward", badS4D.Check(), func() { b.S4DKernelBackward(nn.S4DGrads{LogDt: x()}, badS4D, x()) }},
		{"S4DRecurrent", nn.CheckS4DRecurrent(s4d, -1), func() { b.S4DRecurrent(x(), x(), x(), nil, s4d, -1) }},
		{"FFTConv", nn.CheckFFTConv(-1, 2, 4), func() { b.FFTConv(x(), x(), x(), nil, -1, 2, 4) }},
		{"FFTConvBackward", nn.CheckFFTConv(1, 2, -4), func() {
			b.FFTConvBackward(x(), x(), nil, x(), x(), nil, x(), 1, 2, -4)
		}},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			if c.want == nil {
				t.Fatalf("the case's argument passes nn's check: the test is wrong")
			}
			want := "." + c.op + ": " + c.want.Error()
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("no panic, want one ending %q", want)
				}
				if msg := fmt.Sprint(r); !strings.HasSuffix(msg, want) {
					t.Errorf("panic %q, want one ending %q", msg, want)
				}
			}()
			c.call()
		})
	}
}
