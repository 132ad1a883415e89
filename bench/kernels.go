package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"seqbench/nn"
)

// Shape is a benchmark's shape parameters by name ("B", "D", "L", ...).
type Shape map[string]int

// Kernel is the benchmark of one Backend op, called directly on the Backend
// (no tape). Its doc gives what one call does, its FLOPs and its bytes.
//
// Conventions: E is the element size (under bf16: 2 bytes for the
// activations and their gradients and the LSTM's and GRU's saved gates,
// 4 for what stays float32: parameters and their gradients, statistics,
// recurrent states; the types of
// docs/PRECISION.md's table); a multiply-add is 2 FLOPs and exp,
// softplus, sigmoid and tanh count 1 each. Bytes are the fewest a call must
// move: each input read once, each output written once, and gradients
// (which backwards accumulate) read and written. "fwdbwd" is the forward
// followed by the backward, and its counts are the sum of the two calls.
// Gradients are not zeroed between calls (a Fill no kernel needs would
// be timed too): they accumulate, as backwards do.
type Kernel struct {
	Op    string   // the op's name: "selective_scan"
	Bench string   // the Go benchmark name: "SelectiveScan"
	Dims  []string // shape parameters in the order of the name, "L" last
	Doc   string
	// variants are the default shapes without L, on a GPU or the CPU.
	variants func(gpu bool) []Shape
	prepare  func(in *inputs, s Shape) *kcase
}

// kcase is a prepared benchmark: inputs allocated, sets to rotate among.
// bwd is nil for an op without a backward (no fwdbwd pass).
type kcase struct {
	sets  int
	fwd   func(set int)
	bwd   func(set int) // nil: forward only
	flops [2]float64    // fwd, fwd+bwd
	bytes [2]float64
}

// Lengths are the default sequence lengths of the kernels suite: the
// papers' range on a GPU, a small one on the CPU so that `make bench`
// finishes in about a minute on two cores.
func Lengths(gpu bool) []int {
	if gpu {
		return []int{256, 512, 1024, 2048, 4096, 8192}
	}
	return []int{128, 256, 512}
}

// Kernels lists the kernel benchmarks.
func Kernels() []*Kernel { return kernels }

// KernelOps lists the op names of the kernel benchmarks.
func KernelOps() []string {
	var ops []string
	for _, k := range kernels {
		ops = append(ops, k.Op)
	}
	return ops
}

func lookupKernel(op string) (*Kernel, bool) {
	for _, k := range kernels {
		if k.Op == op {
			return k, true
		}
	}
	return nil, false
}

// sh builds a Shape from name, value pairs.
func sh(kv ...any) Shape {
	s := Shape{}
	for i := 0; i < len(kv); i += 2 {
		s[kv[i].(string)] = kv[i+1].(int)
	}
	return s
}

// variants crosses the batch sizes with the other shapes.
func batches(bs []int, rest ...Shape) []Shape {
	var out []Shape
	for _, r := range rest {
		for _, b := range bs {
			s := Shape{"B": b}
			for k, v := range r {
				s[k] = v
			}
			out = append(out, s)
		}
	}
	return out
}

var kernels = []*Kernel{
	{
		Op: "attention", Bench: "Attention", Dims: []string{"B", "H", "Dh", "L"},
		Doc: "causal softmax attention, q, k, v (B,H,L,Dh), scale 1/sqrt(Dh). With P = L(L+1)/2 query-key " +
			"pairs: FLOPs fwd 4·B·H·Dh·P (q kᵀ and p v), bwd 10·B·H·Dh·P (FlashAttention's count: 2.5× the " +
			"forward, scores recomputed); bytes fwd E·(4·BHLDh + BHL) (q, k, v read, out and lse written), " +
			"bwd E·(11·BHLDh + BHL) (q, k, v, out, dout, lse read; dq, dk, dv read and written).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{1, 8}, sh("H", 16, "Dh", 64), sh("H", 8, "Dh", 128))
			}
			return batches([]int{1}, sh("H", 4, "Dh", 64))
		},
		prepare: prepAttention,
	},
	{
		Op: "selective_scan", Bench: "SelectiveScan", Dims: []string{"B", "D", "N", "L"},
		Doc: "Mamba-1 selective scan as Mamba calls it: u, delta, z (B,D,L), A (D,N), B, C (B,1,N,L), D and " +
			"delta_bias (D), delta softplus. FLOPs fwd 7·BDLN + 10·BDL (per state element exp(δA), the update, " +
			"C·h), bwd 2× fwd (the reverse recurrence with the states recomputed); bytes fwd " +
			"E·(4·BDL + DN + 2·BNL + 2D), bwd E·(4·BDL + DN + 2·BNL + 2D) + 2E·(3·BDL + DN + 2·BNL + 2D).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{1, 8}, sh("D", 1024, "N", 16), sh("D", 2048, "N", 16))
			}
			return batches([]int{1}, sh("D", 256, "N", 16))
		},
		prepare: prepScan,
	},
	{
		Op: "ssd", Bench: "SSD", Dims: []string{"B", "H", "P", "N", "Q", "L"},
		Doc: "Mamba-2 state space dual, chunked (chunk Q): x (B,L,H,P), dt (B,L,H), A, D, dt_bias (H), B, C " +
			"(B,L,1,N), dt softplus. FLOPs fwd 2·B·L·(Q·N + H·(Q·P + 2·N·P)) (dense chunks: C Bᵀ per group, " +
			"(L∘C Bᵀ) X, chunk states and their output per head), bwd 2× fwd; bytes fwd " +
			"E·(2·BLHP + BLH + 2·BLN + 3H), bwd E·(2·BLHP + BLH + 2·BLN + 3H) + 2E·(BLHP + BLH + 2·BLN + 3H).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{1, 8}, sh("H", 32, "P", 64, "N", 64, "Q", 256), sh("H", 32, "P", 64, "N", 128, "Q", 256))
			}
			return batches([]int{1}, sh("H", 4, "P", 64, "N", 64, "Q", 64))
		},
		prepare: prepSSD,
	},
	{
		Op: "s4d_conv", Bench: "S4DConv", Dims: []string{"B", "H", "N", "L"},
		Doc: "S4D layer: the ZOH kernel K (H,L) from log_dt (H), A and C (H,N/2) complex, then the FFT causal " +
			"convolution of u (B,H,L) with K plus D·u. FLOPs fwd 8·H·(N/2)·L + 2.5·n·log2(n)·(2BH + H) + " +
			"3·n·BH + 2·BHL with n the FFT size (≥ 2L, a power of two), bwd 2× fwd; bytes (K is an " +
			"intermediate, not counted: the fraction shows its round trip) fwd E·(2·BHL + 4·H·N/2 + 2H), bwd " +
			"E·(2·BHL + 4·H·N/2 + 2H) + 2E·(BHL + 4·H·N/2 + 2H).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("H", 1024, "N", 64))
			}
			return batches([]int{1}, sh("H", 256, "N", 64))
		},
		prepare: prepS4D,
	},
	{
		Op: "lstm", Bench: "LSTM", Dims: []string{"B", "I", "H", "L"},
		Doc: "one torch.nn.LSTM layer over x (B,L,I), saving what the backward needs. FLOPs fwd " +
			"8·BLH·(I+H) + 20·BLH, bwd 2× fwd; bytes fwd E·(BLI + 4H·(I+H) + 8H + 6·BLH) (out and the " +
			"5·BLH saved gates written), bwd E·(BLI + 4H·(I+H) + 8H + 7·BLH) + 2E·(BLI + 4H·(I+H) + 8H).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("I", 1024, "H", 1024))
			}
			return batches([]int{1}, sh("I", 128, "H", 128))
		},
		prepare: func(in *inputs, s Shape) *kcase { return prepRNN(in, s, 4) },
	},
	{
		Op: "gru", Bench: "GRU", Dims: []string{"B", "I", "H", "L"},
		Doc: "one torch.nn.GRU layer over x (B,L,I), saving what the backward needs. FLOPs fwd " +
			"6·BLH·(I+H) + 15·BLH, bwd 2× fwd; bytes fwd E·(BLI + 3H·(I+H) + 6H + 5·BLH), bwd " +
			"E·(BLI + 3H·(I+H) + 6H + 6·BLH) + 2E·(BLI + 3H·(I+H) + 6H).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("I", 1024, "H", 1024))
			}
			return batches([]int{1}, sh("I", 128, "H", 128))
		},
		prepare: func(in *inputs, s Shape) *kcase { return prepRNN(in, s, 3) },
	},
	{
		Op: "conv1d", Bench: "Conv1D", Dims: []string{"B", "C", "W", "L"},
		Doc: "causal depthwise convolution (Mamba's, width W) with bias and SiLU over x (B,C,L). FLOPs fwd " +
			"2·BCLW + 5·BCL, bwd 6·BCLW + 8·BCL (pre-activation recomputed, dx and dw); bytes fwd " +
			"E·(2·BCL + CW + C), bwd E·(2·BCL + CW + C) + 2E·(BCL + CW + C).",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{8}, sh("C", 4096, "W", 4))
			}
			return batches([]int{1}, sh("C", 512, "W", 4))
		},
		prepare: prepConv1D,
	},
	{
		Op: "rmsnorm", Bench: "RMSNorm", Dims: []string{"B", "D", "L"},
		Doc: "RMSNorm over the last dim D of x (B·L rows). FLOPs fwd 4·BLD, bwd 9·BLD; bytes fwd " +
			"E·(2·BLD + D + BL), bwd E·(2·BLD + D + BL) + 2E·(BLD + D).",
		variants: func(gpu bool) []Shape {
			if gpu { // a warp per row (D ≤ 1024), a block per row
				return batches([]int{8}, sh("D", 1024), sh("D", 2048))
			}
			return batches([]int{1}, sh("D", 512))
		},
		prepare: func(in *inputs, s Shape) *kcase { return prepNorm(in, s, false) },
	},
	{
		Op: "layernorm", Bench: "LayerNorm", Dims: []string{"B", "D", "L"},
		Doc: "LayerNorm with bias over the last dim D of x (B·L rows). FLOPs fwd 7·BLD, bwd 11·BLD; bytes " +
			"fwd E·(2·BLD + 2D + 2·BL), bwd E·(2·BLD + D + 2·BL) + 2E·(BLD + 2D).",
		variants: func(gpu bool) []Shape {
			if gpu { // a warp per row (D ≤ 1024), a block per row
				return batches([]int{8}, sh("D", 1024), sh("D", 2048))
			}
			return batches([]int{1}, sh("D", 512))
		},
		prepare: func(in *inputs, s Shape) *kcase { return prepNorm(in, s, true) },
	},
	{
		Op: "cross_entropy", Bench: "CrossEntropy", Dims: []string{"B", "V", "L"},
		Doc: "fused softmax cross-entropy over logits (B·L, V) (GPT-NeoX's vocabulary on a GPU, as Mamba). " +
			"FLOPs fwd 4·BLV, bwd 5·BLV; bytes fwd E·(BLV + 2·BL) + 4·BL (int32 targets), bwd " +
			"E·(BLV + 2·BL + 2·BLV) + 4·BL.",
		variants: func(gpu bool) []Shape {
			if gpu {
				return batches([]int{1}, sh("V", 50280))
			}
			return batches([]int{1}, sh("V", 4096))
		},
		prepare: prepCrossEntropy,
	},
}

// name is the Go benchmark name: Bench/pass=P[/dtype=bf16]/dim=v/.../L=v
// (no dtype component in fp32).
func (k *Kernel) name(pass string, s Shape, precision string) string {
	var b strings.Builder
	b.WriteString(k.Bench + "/pass=" + pass + dtypeName(precision))
	for _, d := range k.Dims {
		fmt.Fprintf(&b, "/%s=%d", d, s[d])
	}
	return b.String()
}

// variant is the shape without L, in name order: "B=1 D=256 N=16".
func variantOf(dims []string, s Shape) string {
	var parts []string
	for _, d := range dims {
		if d != "L" {
			parts = append(parts, fmt.Sprintf("%s=%d", d, s[d]))
		}
	}
	return strings.Join(parts, " ")
}

// shapes is the grid of k under o: the default variants (batch sizes
// replaced by o.Batches) times the lengths.
func (k *Kernel) shapes(o Options, gpu bool) []Shape {
	vs := k.variants(gpu)
	if len(o.Batches) > 0 {
		var out []Shape
		for _, v := range vs {
			for _, b := range o.Batches {
				s := Shape{}
				for key, val := range v {
					s[key] = val
				}
				s["B"] = b
				if !slices.ContainsFunc(out, func(x Shape) bool { return variantOf(k.Dims, x) == variantOf(k.Dims, s) }) {
					out = append(out, s)
				}
			}
		}
		vs = out
	}
	ls := o.Lengths
	if len(ls) == 0 {
		ls = Lengths(gpu)
	}
	var out []Shape
	for _, v := range vs {
		for _, l := range ls {
			s := Shape{"L": l}
			for key, val := range v {
				s[key] = val
			}
			out = append(out, s)
		}
	}
	return out
}

func runKernels(ctx context.Context, d *Device, o Options, f *File) error {
	rng := rand.New(rand.NewPCG(o.Seed, 7))
	p := newPools(rng)
	ks := kernels
	if len(o.Ops) > 0 {
		ks = nil
		for _, op := range o.Ops {
			k, _ := lookupKernel(op)
			ks = append(ks, k)
		}
	}
	impl := implName(d.Backend, o.Precision)
	for _, k := range ks {
		for _, s := range k.shapes(o, d.GPU) {
			if stopped(ctx, f) {
				return nil
			}
			in := newInputs(d.Backend, p, rng, d.CacheBytes)
			kc, err := prepareSafely(k, in, s)
			if err != nil {
				for _, pass := range []string{PassForward, PassForwardBackward} {
					f.Skipped = append(f.Skipped, Skip{k.name(pass, s, o.Precision), err.Error()})
				}
				in.free()
				continue
			}
			for pi, pass := range []string{PassForward, PassForwardBackward} {
				if pi == 1 && kc.bwd == nil {
					break // a forward-only op
				}
				if stopped(ctx, f) {
					in.free()
					return nil
				}
				set := 0
				run := func() {
					kc.fwd(set)
					if pi == 1 {
						kc.bwd(set)
					}
					set = (set + 1) % kc.sets
				}
				name := k.name(pass, s, o.Precision)
				samples, reps, err := d.measure(run, o)
				if err != nil {
					f.Skipped = append(f.Skipped, Skip{name, err.Error()})
					o.progress("%-48s skipped: %v\n", name, err)
					continue
				}
				r := Result{Name: name, Suite: "kernels", Op: k.Op, Impl: impl, Pass: pass, L: s["L"], Shape: s,
					Variant: variantOf(k.Dims, s), Reps: reps, Samples: samples,
					Bytes: kc.bytes[pi], FLOPs: kc.flops[pi]}
				r.derive(f.Ceilings)
				f.Results = append(f.Results, r)
				o.progress("%-48s %10s  %8.3g GB/s %8.3g GFLOP/s  (%d×%d, %d sets)\n", name, HumanSeconds(r.Median),
					r.BytesPerS/1e9, r.FLOPsPerS/1e9, len(samples), reps, kc.sets)
			}
			in.free()
		}
	}
	return nil
}

// prepareSafely turns a panic while allocating (out of device memory) into
// an error.
func prepareSafely(k *Kernel, in *inputs, s Shape) (kc *kcase, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("preparing inputs: %v", p)
		}
	}()
	return k.prepare(in, s), nil
}

func prepAttention(in *inputs, s Shape) *kcase {
	B, H, Dh, L := s["B"], s["H"], s["Dh"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	n := B * H * L * Dh
	type set struct{ q, k, v nn.Buffer }
	sets := make([]set, in.sets(3*float64(n)*Eh))
	for i := range sets {
		sets[i] = set{in.normalH(n, 0, 1), in.normalH(n, 0, 1), in.normalH(n, 0, 1)}
	}
	out, lse := in.allocH(n), in.alloc(B*H*L)
	dq, dk, dv := in.allocH(n), in.allocH(n), in.allocH(n)
	dout := in.normalH(n, 0, 1)
	scale := 1 / math.Sqrt(float64(Dh))
	pairs := float64(L) * float64(L+1) / 2
	bhd := float64(B * H * Dh)
	fwdF, bwdF := 4*bhd*pairs, 10*bhd*pairs
	fn, bhl := float64(n), float64(B*H*L)
	fwdB, bwdB := Eh*4*fn+Ef*bhl, Eh*11*fn+Ef*bhl
	return &kcase{
		sets: len(sets),
		fwd: func(i int) {
			x := sets[i]
			in.be.Attention(out, lse, x.q, x.k, x.v, B, H, L, L, Dh, scale, true)
		},
		bwd: func(i int) {
			x := sets[i]
			in.be.AttentionBackward(dq, dk, dv, x.q, x.k, x.v, out, lse, dout, B, H, L, L, Dh, scale, true)
		},
		flops: [2]float64{fwdF, fwdF + bwdF},
		bytes: [2]float64{fwdB, fwdB + bwdB},
	}
}

// dtBiasLo and dtBiasHi bound Mamba's dt bias: the inverse softplus of dt
// log-uniform in [1e-3, 0.1].
var dtBiasLo, dtBiasHi = math.Log(math.Expm1(1e-3)), math.Log(math.Expm1(0.1))

func prepScan(in *inputs, s Shape) *kcase {
	B, D, N, L := s["B"], s["D"], s["N"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	bdl, bnl := B*D*L, B*N*L
	type set struct{ a nn.ScanArgs }
	setBytes := Eh*float64(3*bdl+2*bnl) + Ef*float64(D*N+2*D)
	sets := make([]set, in.sets(setBytes))
	for i := range sets {
		sets[i] = set{nn.ScanArgs{B: B, D: D, L: L, N: N, G: 1,
			U: in.normalH(bdl, 0, 1), Delta: in.normalH(bdl, 0, 0.5),
			A:  in.uniform(D*N, -16, -1), // S4D-Real: A_n = −(n+1)
			Bm: in.normalH(bnl, 0, 1), Cm: in.normalH(bnl, 0, 1),
			Dskip: in.normal(D, 1, 0.1), Z: in.normalH(bdl, 0, 1),
			DeltaBias: in.uniform(D, dtBiasLo, dtBiasHi), DeltaSoftplus: true}}
	}
	out := in.allocH(bdl)
	g := nn.ScanGrads{U: in.allocH(bdl), Delta: in.allocH(bdl), A: in.alloc(D * N), Bm: in.allocH(bnl), Cm: in.allocH(bnl),
		Dskip: in.alloc(D), Z: in.allocH(bdl), DeltaBias: in.alloc(D)}
	dout := in.normalH(bdl, 0, 1)
	fwdF := 7*float64(bdl)*float64(N) + 10*float64(bdl)
	rd := Eh*float64(4*bdl+2*bnl) + Ef*float64(D*N+2*D)
	rw := Eh*float64(3*bdl+2*bnl) + Ef*float64(D*N+2*D)
	return &kcase{
		sets:  len(sets),
		fwd:   func(i int) { in.be.SelectiveScan(out, nil, sets[i].a) },
		bwd:   func(i int) { in.be.SelectiveScanBackward(g, sets[i].a, dout) },
		flops: [2]float64{fwdF, 3 * fwdF},
		bytes: [2]float64{rd, rd + rd + 2*rw},
	}
}

func prepSSD(in *inputs, s Shape) *kcase {
	B, H, P, N, Q, L := s["B"], s["H"], s["P"], s["N"], s["Q"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	blhp, blh, bln := B*L*H*P, B*L*H, B*L*N
	setBytes := Eh*float64(blhp+blh+2*bln) + Ef*float64(3*H)
	sets := make([]nn.SSDArgs, in.sets(setBytes))
	for i := range sets {
		sets[i] = nn.SSDArgs{B: B, L: L, H: H, P: P, G: 1, N: N, Chunk: Q,
			X: in.normalH(blhp, 0, 1), Dt: in.normalH(blh, 0, 0.5),
			A:  in.uniform(H, -16, -1), // A_init_range (1, 16), negated
			Bm: in.normalH(bln, 0, 1), Cm: in.normalH(bln, 0, 1),
			Dskip: in.normal(H, 1, 0.1), DtBias: in.uniform(H, dtBiasLo, dtBiasHi), DtSoftplus: true}
	}
	out := in.allocH(blhp)
	g := nn.SSDGrads{X: in.allocH(blhp), Dt: in.allocH(blh), A: in.alloc(H), Bm: in.allocH(bln), Cm: in.allocH(bln),
		Dskip: in.alloc(H), DtBias: in.alloc(H)}
	dout := in.normalH(blhp, 0, 1)
	fwdF := 2 * float64(B*L) * float64(Q*N+H*(Q*P+2*N*P))
	rd := Eh*float64(2*blhp+blh+2*bln) + Ef*float64(3*H)
	rw := Eh*float64(blhp+blh+2*bln) + Ef*float64(3*H)
	return &kcase{
		sets:  len(sets),
		fwd:   func(i int) { in.be.SSD(out, nil, sets[i]) },
		bwd:   func(i int) { in.be.SSDBackward(g, sets[i], dout) },
		flops: [2]float64{fwdF, 3 * fwdF},
		bytes: [2]float64{rd, 2*rd + 2*rw},
	}
}

func prepS4D(in *inputs, s Shape) *kcase {
	B, H, N, L := s["B"], s["H"], s["N"], s["L"]
	N2 := N / 2
	Eh, Ef := in.eh(), in.ef()
	bhl, hn := B*H*L, H*N2
	type set struct {
		a    nn.S4DArgs
		u, d nn.Buffer
	}
	setBytes := Eh*float64(bhl) + Ef*float64(4*hn+2*H)
	sets := make([]set, in.sets(setBytes))
	for i := range sets {
		sets[i] = set{
			a: nn.S4DArgs{H: H, N2: N2, L: L,
				LogDt: in.uniform(H, math.Log(1e-3), math.Log(0.1)),
				// Around S4D-Lin's A_n = −1/2 + iπn.
				ARe: in.uniform(hn, -0.6, -0.4), AIm: in.uniform(hn, 0, math.Pi*float64(max(N2, 1))),
				CRe: in.normal(hn, 0, 0.5), CIm: in.normal(hn, 0, 0.5)},
			u: in.normalH(bhl, 0, 1), d: in.normal(H, 1, 0.1)}
	}
	K, out := in.alloc(H*L), in.allocH(bhl)
	du, dK, dD := in.allocH(bhl), in.alloc(H*L), in.alloc(H)
	g := nn.S4DGrads{LogDt: in.alloc(H), ARe: in.alloc(hn), AIm: in.alloc(hn), CRe: in.alloc(hn), CIm: in.alloc(hn)}
	dout := in.normalH(bhl, 0, 1)
	n := 1
	for n < 2*L {
		n *= 2
	}
	fn := float64(n)
	fwdF := 8*float64(hn*L) + 2.5*fn*math.Log2(fn)*float64(2*B*H+H) + 3*fn*float64(B*H) + 2*float64(bhl)
	rd := Eh*float64(2*bhl) + Ef*float64(4*hn+2*H)
	rw := Eh*float64(bhl) + Ef*float64(4*hn+2*H)
	return &kcase{
		sets: len(sets),
		fwd: func(i int) {
			x := sets[i]
			in.be.S4DKernel(K, x.a)
			in.be.FFTConv(out, x.u, K, x.d, B, H, L)
		},
		bwd: func(i int) {
			x := sets[i]
			in.be.FFTConvBackward(du, dK, dD, x.u, K, x.d, dout, B, H, L)
			in.be.S4DKernelBackward(g, x.a, dK)
		},
		flops: [2]float64{fwdF, 3 * fwdF},
		bytes: [2]float64{rd, 2*rd + 2*rw},
	}
}

// prepRNN prepares an LSTM (gates 4) or GRU (gates 3).
func prepRNN(in *inputs, s Shape, gates int) *kcase {
	B, I, H, L := s["B"], s["I"], s["H"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	bli, blh, gh := B*L*I, B*L*H, gates*H
	k := 1 / math.Sqrt(float64(H)) // torch's init: U(−1/√H, 1/√H)
	setBytes := Eh*float64(bli) + Ef*float64(gh*(I+H)+2*gh)
	sets := make([]nn.RNNArgs, in.sets(setBytes))
	for i := range sets {
		sets[i] = nn.RNNArgs{B: B, L: L, I: I, H: H, X: in.normalH(bli, 0, 1),
			Wih: in.uniform(gh*I, -k, k), Whh: in.uniform(gh*H, -k, k),
			Bih: in.uniform(gh, -k, k), Bhh: in.uniform(gh, -k, k)}
	}
	savedLen := nn.GRUSavedLen(B, L, H)
	if gates == 4 {
		savedLen = nn.LSTMSavedLen(B, L, H)
	}
	out, saved := in.allocH(blh), in.allocH(savedLen) // saved: activations, out's type
	g := nn.RNNGrads{X: in.allocH(bli), Wih: in.alloc(gh * I), Whh: in.alloc(gh * H), Bih: in.alloc(gh), Bhh: in.alloc(gh)}
	dout := in.normalH(blh, 0, 1)
	fwdF := 2*float64(B*L)*float64(gh)*float64(I+H) + float64(5*gates)*float64(blh)
	params := Eh*float64(bli) + Ef*float64(gh*(I+H)+2*gh) // x and the weights
	fwdB := params + Eh*float64(blh) + Eh*float64(savedLen)
	bwdB := params + Eh*float64(2*blh) + Eh*float64(savedLen) + 2*params
	return &kcase{
		sets: len(sets),
		fwd: func(i int) {
			if gates == 4 {
				in.be.LSTM(out, nil, nil, saved, sets[i])
			} else {
				in.be.GRU(out, nil, saved, sets[i])
			}
		},
		bwd: func(i int) {
			if gates == 4 {
				in.be.LSTMBackward(g, sets[i], out, saved, dout)
			} else {
				in.be.GRUBackward(g, sets[i], out, saved, dout)
			}
		},
		flops: [2]float64{fwdF, 3 * fwdF},
		bytes: [2]float64{fwdB, fwdB + bwdB},
	}
}

func prepConv1D(in *inputs, s Shape) *kcase {
	B, C, W, L := s["B"], s["C"], s["W"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	bcl := B * C * L
	type set struct{ x, w, b nn.Buffer }
	k := 1 / math.Sqrt(float64(W))
	sets := make([]set, in.sets(Eh*float64(bcl)+Ef*float64(C*W+C)))
	for i := range sets {
		sets[i] = set{in.normalH(bcl, 0, 1), in.uniform(C*W, -k, k), in.uniform(C, -k, k)}
	}
	out, dx, dw, db := in.allocH(bcl), in.allocH(bcl), in.alloc(C*W), in.alloc(C)
	dout := in.normalH(bcl, 0, 1)
	fb := float64(bcl)
	fwdF, bwdF := 2*fb*float64(W)+5*fb, 6*fb*float64(W)+8*fb
	rd := Eh*float64(2*bcl) + Ef*float64(C*W+C)
	rw := Eh*float64(bcl) + Ef*float64(C*W+C)
	return &kcase{
		sets: len(sets),
		fwd: func(i int) {
			x := sets[i]
			in.be.Conv1D(out, x.x, x.w, x.b, nil, B, C, L, W, nn.SiLU)
		},
		bwd: func(i int) {
			x := sets[i]
			in.be.Conv1DBackward(dx, dw, db, x.x, x.w, x.b, dout, B, C, L, W, nn.SiLU)
		},
		flops: [2]float64{fwdF, fwdF + bwdF},
		bytes: [2]float64{rd, 2*rd + 2*rw},
	}
}

// prepNorm prepares RMSNorm, or LayerNorm with bias.
func prepNorm(in *inputs, s Shape, layer bool) *kcase {
	B, D, L := s["B"], s["D"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	rows := B * L
	n := rows * D
	type set struct{ x, w, b nn.Buffer }
	sets := make([]set, in.sets(Eh*float64(n)+Ef*float64(2*D)))
	for i := range sets {
		sets[i] = set{x: in.normalH(n, 0, 1), w: in.normal(D, 1, 0.1)}
		if layer {
			sets[i].b = in.normal(D, 0, 0.1)
		}
	}
	out, mean, rstd := in.allocH(n), in.alloc(rows), in.alloc(rows)
	dx, dw, db := in.allocH(n), in.alloc(D), in.alloc(D)
	dout := in.normalH(n, 0, 1)
	const eps = 1e-5
	fn, fd, fr := float64(n), float64(D), float64(rows)
	if layer {
		rd := Eh*2*fn + Ef*(2*fd+2*fr)
		return &kcase{
			sets: len(sets),
			fwd: func(i int) {
				x := sets[i]
				in.be.LayerNorm(out, mean, rstd, x.x, x.w, x.b, rows, D, eps)
			},
			bwd: func(i int) {
				x := sets[i]
				in.be.LayerNormBackward(dx, dw, db, x.x, x.w, mean, rstd, dout, rows, D)
			},
			flops: [2]float64{7 * fn, 18 * fn},
			bytes: [2]float64{rd, rd + (rd - Ef*fd) + 2*(Eh*fn+Ef*2*fd)}, // the backward reads no bias
		}
	}
	rd := Eh*2*fn + Ef*(fd+fr)
	return &kcase{
		sets: len(sets),
		fwd: func(i int) {
			x := sets[i]
			in.be.RMSNorm(out, rstd, x.x, x.w, rows, D, eps)
		},
		bwd: func(i int) {
			x := sets[i]
			in.be.RMSNormBackward(dx, dw, x.x, x.w, rstd, dout, rows, D)
		},
		flops: [2]float64{4 * fn, 13 * fn},
		bytes: [2]float64{rd, 2*rd + 2*(Eh*fn+Ef*fd)},
	}
}

func prepCrossEntropy(in *inputs, s Shape) *kcase {
	B, V, L := s["B"], s["V"], s["L"]
	Eh, Ef := in.eh(), in.ef()
	rows := B * L
	type set struct {
		logits  nn.Buffer
		targets []int32
	}
	sets := make([]set, in.sets(Eh*float64(rows*V)))
	for i := range sets {
		sets[i] = set{in.normalH(rows*V, 0, 2), in.ids(rows, V)}
	}
	loss, lse := in.alloc(rows), in.alloc(rows)
	dlogits := in.allocH(rows * V)
	dloss := in.uniform(rows, 0.5, 1.5)
	const ignore = -1 // no target is ignored: every row counts
	fn, fr := float64(rows*V), float64(rows)
	fwdB := Eh*fn + Ef*2*fr + 4*fr
	bwdB := Eh*3*fn + Ef*2*fr + 4*fr
	return &kcase{
		sets: len(sets),
		fwd: func(i int) {
			x := sets[i]
			in.be.CrossEntropy(loss, lse, x.logits, x.targets, rows, V, ignore)
		},
		bwd: func(i int) {
			x := sets[i]
			in.be.CrossEntropyBackward(dlogits, x.logits, lse, dloss, x.targets, rows, V, ignore)
		},
		flops: [2]float64{4 * fn, 9 * fn},
		bytes: [2]float64{fwdB, fwdB + bwdB},
	}
}
