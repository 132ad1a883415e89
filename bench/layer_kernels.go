package bench

import (
	"math"

	"seqbench/nn"
)

// The benchmarks of the ops around the fused ones: elementwise and row
// ops, layout changes, the Linear layer's GEMMs, the embedding, the
// optimizer step and S4D's step mode. They take the same conventions as
// the fused kernels (Kernel); an op without a backward has no fwdbwd pass
// (kcase.bwd nil). Activations are (B, L, D) tensors, so n = B·L·D below.
func init() { kernels = append(kernels, layerKernels...) }

// bld are the activation shapes of the elementwise benchmarks.
func bld(gpu bool) []Shape {
	if gpu {
		return batches([]int{8}, sh("D", 2048))
	}
	return batches([]int{1}, sh("D", 512))
}

var layerKernels = []*Kernel{
	{
		Op: "add", Bench: "Add", Dims: []string{"B", "D", "L"},
		Doc:      "out = a + b (residual connections). FLOPs n; bytes 3E·n. Forward only.",
		variants: bld,
		prepare: func(in *inputs, s Shape) *kcase {
			n := s["B"] * s["L"] * s["D"]
			return unary(in, n, 2, true, func(out nn.Buffer, x []nn.Buffer) { in.be.Add(out, x[0], x[1]) }, nil,
				[2]float64{float64(n), 0}, [2]float64{3 * float64(n), 0})
		},
	},
	{
		Op: "axpy", Bench: "Axpy", Dims: []string{"B", "D", "L"},
		Doc:      "y += α·x (gradient accumulation). FLOPs 2n; bytes 3E·n (x read, y read and written). Forward only.",
		variants: bld,
		prepare: func(in *inputs, s Shape) *kcase {
			n := s["B"] * s["L"] * s["D"]
			return unary(in, n, 1, true, func(out nn.Buffer, x []nn.Buffer) { in.be.Axpy(0.5, x[0], out) }, nil,
				[2]float64{2 * float64(n), 0}, [2]float64{3 * float64(n), 0})
		},
	},
	{
		Op: "gelu", Bench: "GELU", Dims: []string{"B", "D", "L"},
		Doc: "exact GELU x·Φ(x) and its backward dx += GELU'(x)·dout, erf counting 1. FLOPs fwd 5n, bwd 10n; " +
			"bytes fwd 2E·n, bwd 4E·n (x and dout read, dx read and written).",
		variants: bld,
		prepare:  func(in *inputs, s Shape) *kcase { return prepAct(in, s, nn.GELU, 5, 10) },
	},
	{
		Op: "silu", Bench: "SiLU", Dims: []string{"B", "D", "L"},
		Doc: "SiLU x·sigmoid(x) and its backward, sigmoid counting 1. FLOPs fwd 2n, bwd 6n; bytes fwd 2E·n, " +
			"bwd 4E·n.",
		variants: bld,
		prepare:  func(in *inputs, s Shape) *kcase { return prepAct(in, s, nn.SiLU, 2, 6) },
	},
	{
		Op: "fill", Bench: "Fill", Dims: []string{"B", "D", "L"},
		Doc:      "x = v (zeroing gradients). No FLOPs; bytes E·n. Forward only.",
		variants: bld,
		prepare: func(in *inputs, s Shape) *kcase {
			n := s["B"] * s["L"] * s["D"]
			return unary(in, n, 0, false, func(out nn.Buffer, _ []nn.Buffer) { in.be.Fill(out, 1.5) }, nil,
				[2]float64{0, 0}, [2]float64{float64(n), 0})
		},
	},
	{
		Op: "sum_squares", Bench: "SumSquares", Dims: []string{"B", "D", "L"},
		Doc: "Σ x² returned to the host (the gradient norm of clipping), the wait for the result included. " +
			"FLOPs 2n; bytes E·n. Forward only.",
		variants: bld,
		prepare: func(in *inputs, s Shape) *kcase {
			n := s["B"] * s["L"] * s["D"]
			return unary(in, n, 1, false, func(_ nn.Buffer, x []nn.Buffer) { in.be.SumSquares(x[0]) }, nil,
				[2]float64{2 * float64(n), 0}, [2]float64{float64(n), 0})
		},
	},
	{
		Op: "adamw", Bench: "AdamW", Dims: []string{"D", "L"},
		Doc: "one AdamW step over D·L parameters (a weight matrix of L rows). With P = D·L: FLOPs 15·P " +
			"(moments, bias corrections, square root, update, decay); bytes 7E·P (p, g, m, v read; p, m, v " +
			"written). Forward only.",
		variants: func(gpu bool) []Shape {
			if gpu {
				return []Shape{sh("D", 8192)}
			}
			return []Shape{sh("D", 512)}
		},
		prepare: prepAdamW,
	},
	{
		Op: "add_bias", Bench: "AddBias", Dims: []string{"B", "D", "L"},
		Doc: "a Linear layer's bias: out = x + bias over rows B·L, and the backward's bias gradient dbias += " +
			"Σ_rows dout (SumRows). FLOPs fwd n, bwd n; bytes fwd E·(2n + D), bwd E·(n + 2D).",
		variants: bld,
		prepare:  prepAddBias,
	},
	{
		Op: "permute", Bench: "Permute", Dims: []string{"B", "H", "Dh", "L"},
		Doc: "attention's head split: x (B,L,H,Dh) → (B,H,L,Dh), and the backward's inverse permutation " +
			"accumulated into dx. No FLOPs; bytes fwd 2E·n, bwd 3E·n, n = B·L·H·Dh.",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("H", 16, "Dh", 64))
			}
			return batches([]int{1}, sh("H", 4, "Dh", 64))
		},
		prepare: prepPermute,
	},
	{
		Op: "copy_block", Bench: "CopyBlock", Dims: []string{"B", "D", "L"},
		Doc: "the first half of every row of x (B·L rows of D) into out (the split of a fused projection), " +
			"and the backward adding it back into dx. No FLOPs; bytes fwd E·n, bwd 1.5E·n.",
		variants: bld,
		prepare:  prepCopyBlock,
	},
	{
		Op: "rope", Bench: "RoPE", Dims: []string{"B", "H", "Dh", "L"},
		Doc: "rotary embedding of x (B,H,L,Dh), angles computed in the kernel, and its backward (the inverse " +
			"rotation accumulated). FLOPs fwd 3n, bwd 4n; bytes fwd 2E·n, bwd 3E·n, n = B·H·L·Dh.",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("H", 16, "Dh", 64))
			}
			return batches([]int{1}, sh("H", 4, "Dh", 64))
		},
		prepare: prepRoPE,
	},
	{
		Op: "embedding", Bench: "Embedding", Dims: []string{"B", "V", "D", "L"},
		Doc: "token embedding of B·L ids from a (V, D) table, and the backward's scatter-add into dtable. " +
			"FLOPs fwd 0, bwd BLD; bytes fwd 2E·BLD + 4·BL, bwd 3E·BLD + 4·BL (the rows the ids touch).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("V", 50280, "D", 1024))
			}
			return batches([]int{1}, sh("V", 4096, "D", 256))
		},
		prepare: prepEmbedding,
	},
	{
		Op: "argmax", Bench: "ArgmaxRows", Dims: []string{"B", "V", "L"},
		Doc: "the index of each row's largest logit (greedy decoding, accuracy), returned to the host. " +
			"FLOPs BLV (comparisons); bytes E·BLV + 4·BL. Forward only.",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{1}, sh("V", 50280))
			}
			return batches([]int{1}, sh("V", 4096))
		},
		prepare: prepArgmax,
	},
	{
		Op: "linear", Bench: "Linear", Dims: []string{"B", "I", "O", "L"},
		Doc: "a Linear layer's GEMMs: y = x Wᵀ for x (B·L, I), W (O, I); the backward dx += dy W and dW += " +
			"dyᵀ x. FLOPs fwd 2·BL·I·O, bwd 4·BL·I·O; bytes fwd E·(BLI + OI + BLO), bwd " +
			"E·(BLO + OI + BLI) + 2E·(BLI + OI).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("I", 1024, "O", 4096))
			}
			return batches([]int{1}, sh("I", 256, "O", 1024))
		},
		prepare: prepLinear,
	},
	{
		Op: "s4d_step", Bench: "S4DRecurrent", Dims: []string{"B", "H", "N", "L"},
		Doc: "S4D as a recurrence over L steps of u (B,H,L) carrying the state (B,H,N/2) complex: the step " +
			"mode of generation (L = 1) and chunks of it. FLOPs 10·BH·(N/2)·L (a complex multiply-add and " +
			"the output per mode and step); bytes E·(2·BHL + 4·H·N/2 + 2H) + 4E·BH·N/2 (the state read and " +
			"written). Forward only.",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("H", 1024, "N", 64))
			}
			return batches([]int{1}, sh("H", 256, "N", 64))
		},
		prepare: prepS4DStep,
	},
}

// unary prepares a benchmark over k random inputs of n elements and one
// output of n (zeros): fwd(out, ins), and bwd when not nil. act says the
// tensors are activations (bfloat16 under bf16); otherwise they are what
// stays float32 under bf16 (the float32 gradients that Fill zeroes and
// SumSquares measures). bytes are in elements.
func unary(in *inputs, n, k int, act bool, fwd, bwd func(out nn.Buffer, x []nn.Buffer), flops, bytes [2]float64) *kcase {
	E, normal, alloc := in.ef(), in.normal, in.alloc
	if act {
		E, normal, alloc = in.eh(), in.normalH, in.allocH
	}
	for i := range flops {
		bytes[i] *= E
	}
	sets := make([][]nn.Buffer, in.sets(E*float64(max(k, 1)*n)))
	for i := range sets {
		for range k {
			sets[i] = append(sets[i], normal(n, 0, 1))
		}
	}
	out := alloc(n)
	kc := &kcase{sets: len(sets), fwd: func(i int) { fwd(out, sets[i]) }, flops: flops, bytes: bytes}
	if bwd != nil {
		kc.bwd = func(i int) { bwd(out, sets[i]) }
	}
	return kc
}

func prepAct(in *inputs, s Shape, kind nn.Activation, fwdF, bwdF float64) *kcase {
	n := s["B"] * s["L"] * s["D"]
	dout, dx := in.normalH(n, 0, 1), in.allocH(n)
	fn := float64(n)
	return unary(in, n, 1, true,
		func(out nn.Buffer, x []nn.Buffer) { in.be.Act(kind, out, x[0]) },
		func(_ nn.Buffer, x []nn.Buffer) { in.be.ActBackward(kind, dx, x[0], dout) },
		[2]float64{fwdF * fn, (fwdF + bwdF) * fn}, [2]float64{2 * fn, 6 * fn})
}

func prepAdamW(in *inputs, s Shape) *kcase {
	P := s["D"] * s["L"]
	E := elemBytes(in.be)
	p, g, m := in.normal(P, 0, 0.02), in.normal(P, 0, 1e-3), in.normal(P, 0, 1e-3)
	v := in.uniform(P, 1e-8, 1e-6)
	step := 0
	return &kcase{
		sets: 1,
		fwd: func(int) {
			step++
			in.be.AdamW(p, g, m, v, nn.AdamWArgs{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: step})
		},
		flops: [2]float64{15 * float64(P), 0},
		bytes: [2]float64{7 * E * float64(P), 0},
	}
}

func prepAddBias(in *inputs, s Shape) *kcase {
	B, D, L := s["B"], s["D"], s["L"]
	rows, n := B*L, B*L*D
	Eh, Ef := in.eh(), in.ef()
	type set struct{ x, b nn.Buffer }
	sets := make([]set, in.sets(Eh*float64(n+D)))
	for i := range sets {
		// The bias as Linear reads it: its activation-type cast.
		sets[i] = set{in.normalH(n, 0, 1), in.normalH(D, 0, 0.1)}
	}
	out, dout, db := in.allocH(n), in.normalH(n, 0, 1), in.alloc(D)
	fn, fd := float64(n), float64(D)
	fwdB := Eh * (2*fn + fd)
	return &kcase{
		sets:  len(sets),
		fwd:   func(i int) { in.be.AddBias(out, sets[i].x, sets[i].b, rows, D) },
		bwd:   func(int) { in.be.SumRows(db, dout, rows, D) },
		flops: [2]float64{fn, 2 * fn},
		bytes: [2]float64{fwdB, fwdB + Eh*fn + Ef*2*fd},
	}
}

func prepPermute(in *inputs, s Shape) *kcase {
	B, H, Dh, L := s["B"], s["H"], s["Dh"], s["L"]
	n := B * L * H * Dh
	fn := float64(n)
	out, dout, dx := in.allocH(n), in.normalH(n, 0, 1), in.allocH(n)
	return unary(in, n, 1, true,
		func(_ nn.Buffer, x []nn.Buffer) {
			in.be.Permute(out, x[0], []int{B, L, H, Dh}, []int{0, 2, 1, 3}, false)
		},
		func(nn.Buffer, []nn.Buffer) { in.be.Permute(dx, dout, []int{B, H, L, Dh}, []int{0, 2, 1, 3}, true) },
		[2]float64{0, 0}, [2]float64{2 * fn, 5 * fn})
}

func prepCopyBlock(in *inputs, s Shape) *kcase {
	B, D, L := s["B"], s["D"], s["L"]
	rows, n, half := B*L, B*L*D, D/2
	fn := float64(n)
	dout, dx := in.normalH(rows*half, 0, 1), in.allocH(n)
	return unary(in, n, 1, true,
		func(out nn.Buffer, x []nn.Buffer) { in.be.CopyBlock(out, 0, half, x[0], 0, D, rows, half, false) },
		func(nn.Buffer, []nn.Buffer) { in.be.CopyBlock(dx, 0, D, dout, 0, half, rows, half, true) },
		[2]float64{0, 0}, [2]float64{fn, 2.5 * fn})
}

func prepRoPE(in *inputs, s Shape) *kcase {
	B, H, Dh, L := s["B"], s["H"], s["Dh"], s["L"]
	n := B * H * L * Dh
	fn := float64(n)
	dout, dx := in.normalH(n, 0, 1), in.allocH(n)
	return unary(in, n, 1, true,
		func(out nn.Buffer, x []nn.Buffer) { in.be.RoPE(out, x[0], B, H, L, Dh, 0, 10000) },
		func(nn.Buffer, []nn.Buffer) { in.be.RoPEBackward(dx, dout, B, H, L, Dh, 0, 10000) },
		[2]float64{3 * fn, 7 * fn}, [2]float64{2 * fn, 5 * fn})
}

func prepEmbedding(in *inputs, s Shape) *kcase {
	B, V, D, L := s["B"], s["V"], s["D"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	ntok := B * L
	sets := make([][]int32, in.sets(Eh*float64(ntok*D)))
	for i := range sets {
		sets[i] = in.ids(ntok, V)
	}
	// The table as the forward reads it (its activation-type cast); the
	// gradient is the master's.
	table, dtable := in.normalH(V*D, 0, 1), in.alloc(V*D)
	out, dout := in.allocH(ntok*D), in.normalH(ntok*D, 0, 1)
	fn, ft := float64(ntok*D), float64(ntok)
	fwdB := 2*Eh*fn + 4*ft
	return &kcase{
		sets:  len(sets),
		fwd:   func(i int) { in.be.Embedding(out, table, sets[i], D) },
		bwd:   func(i int) { in.be.EmbeddingBackward(dtable, dout, sets[i], D) },
		flops: [2]float64{0, fn},
		bytes: [2]float64{fwdB, fwdB + Eh*fn + 2*Ef*fn + 4*ft},
	}
}

func prepArgmax(in *inputs, s Shape) *kcase {
	B, V, L := s["B"], s["V"], s["L"]
	rows := B * L
	n := rows * V
	fn := float64(n)
	k := unary(in, n, 1, true, func(_ nn.Buffer, x []nn.Buffer) { in.be.ArgmaxRows(x[0], rows, V) }, nil,
		[2]float64{fn, 0}, [2]float64{fn, 0})
	k.bytes[0] += 4 * float64(rows)
	return k
}

func prepLinear(in *inputs, s Shape) *kcase {
	B, I, O, L := s["B"], s["I"], s["O"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	rows := B * L
	k := 1 / math.Sqrt(float64(I))
	type set struct{ x, w nn.Buffer }
	sets := make([]set, in.sets(Eh*float64(rows*I+O*I)))
	for i := range sets {
		// W as the GEMMs read it (its activation-type cast); dW is the
		// master's gradient.
		sets[i] = set{in.normalH(rows*I, 0, 1), in.uniformH(O*I, -k, k)}
	}
	y, dy := in.allocH(rows*O), in.normalH(rows*O, 0, 1)
	dx, dw := in.allocH(rows*I), in.alloc(O*I)
	f := 2 * float64(rows) * float64(I) * float64(O)
	fx, fw, fy := float64(rows*I), float64(O*I), float64(rows*O)
	fwdB := Eh * (fx + fw + fy)
	return &kcase{
		sets: len(sets),
		fwd: func(i int) {
			in.be.Gemm(sets[i].x, sets[i].w, y, nn.GemmArgs{TransB: true, M: rows, N: O, K: I, Alpha: 1,
				LDA: I, LDB: I, LDC: O, Batch: 1})
		},
		bwd: func(i int) {
			in.be.Gemm(dy, sets[i].w, dx, nn.GemmArgs{M: rows, N: I, K: O, Alpha: 1, Beta: 1, LDA: O, LDB: I, LDC: I, Batch: 1})
			in.be.Gemm(dy, sets[i].x, dw, nn.GemmArgs{TransA: true, M: O, N: I, K: rows, Alpha: 1, Beta: 1,
				LDA: O, LDB: I, LDC: I, Batch: 1})
		},
		flops: [2]float64{f, 3 * f},
		bytes: [2]float64{fwdB, fwdB + Eh*(fy+fw+fx) + 2*Eh*fx + 2*Ef*fw},
	}
}

func prepS4DStep(in *inputs, s Shape) *kcase {
	B, H, N, L := s["B"], s["H"], s["N"], s["L"]
	N2 := N / 2
	Eh, Ef := in.eh(), in.ef()
	bhl, hn := B*H*L, H*N2
	a := nn.S4DArgs{H: H, N2: N2, L: L,
		LogDt: in.uniform(H, math.Log(1e-3), math.Log(0.1)),
		ARe:   in.uniform(hn, -0.6, -0.4), AIm: in.uniform(hn, 0, math.Pi*float64(max(N2, 1))),
		CRe: in.normal(hn, 0, 0.5), CIm: in.normal(hn, 0, 0.5)}
	sets := make([]nn.Buffer, in.sets(Eh*float64(bhl)))
	for i := range sets {
		sets[i] = in.normalH(bhl, 0, 1)
	}
	d, out, state := in.normal(H, 1, 0.1), in.allocH(bhl), in.alloc(B*hn*2)
	return &kcase{
		sets:  len(sets),
		fwd:   func(i int) { in.be.S4DRecurrent(out, state, sets[i], d, a, B) },
		flops: [2]float64{10 * float64(B*hn*L), 0},
		bytes: [2]float64{Eh*float64(2*bhl) + Ef*float64(4*hn+2*H) + 4*Ef*float64(B*hn), 0},
	}
}
