package nn

import "fmt"

// Differentiable wrappers of the fused sequence ops (see SeqOps for their
// definitions). Optional tensor inputs are nil when absent. State buffers
// (initial and final states, conv state) are for step mode: they carry no
// gradient, and a backward through an op given an initial state panics.

func data(t *Tensor) Buffer {
	if t == nil {
		return nil
	}
	return t.Data
}

func noStateBackward(op string, states ...Buffer) {
	for _, s := range states {
		if s != nil {
			panic("nn." + op + ": backward through an op started from a carried state is not supported (step mode is inference only)")
		}
	}
}

// Conv1D is the causal depthwise convolution over x (B, C, L) with w (C, W)
// and optional bias (C), then act (Identity or SiLU). A non-nil state
// (B, C, W−1) supplies the inputs before x and is advanced (step mode).
func (tp *Tape) Conv1D(x, w, bias *Tensor, act Activation, state Buffer) *Tensor {
	B, C, L, W := x.Dim(0), x.Dim(1), x.Dim(2), w.Dim(1)
	if w.Dim(0) != C {
		panic(fmt.Sprintf("nn.Conv1D: weight %v for x %v", w.Shape, x.Shape))
	}
	out := tp.out(x.Shape, x, w, bias)
	tp.B.Conv1D(out.Data, x.Data, w.Data, data(bias), state, B, C, L, W, act)
	tp.onBackward(out, func(g Buffer) {
		noStateBackward("Conv1D", state)
		tp.B.Conv1DBackward(tp.grad(x), tp.grad(w), tp.grad(bias), x.Data, w.Data, data(bias), g, B, C, L, W, act)
	})
	return out
}

// ScanInputs are the tensors of a selective scan: U, Delta, Z (B, D, L);
// A (D, N); Bm, Cm (B, N, L) or (B, G, N, L); D, DeltaBias (D). H0 and HT
// are optional (B, D, N) state buffers.
type ScanInputs struct {
	U, Delta, A, Bm, Cm, D, Z, DeltaBias *Tensor
	DeltaSoftplus                        bool
	H0, HT                               Buffer
}

// SelectiveScan runs the Mamba-1 selective scan; the result is (B, D, L).
func (tp *Tape) SelectiveScan(in ScanInputs) *Tensor {
	G := 1
	if len(in.Bm.Shape) == 4 {
		G = in.Bm.Dim(1)
	}
	a := ScanArgs{B: in.U.Dim(0), D: in.U.Dim(1), L: in.U.Dim(2), N: in.A.Dim(1), G: G,
		U: in.U.Data, Delta: in.Delta.Data, A: in.A.Data, Bm: in.Bm.Data, Cm: in.Cm.Data,
		Dskip: data(in.D), Z: data(in.Z), DeltaBias: data(in.DeltaBias), DeltaSoftplus: in.DeltaSoftplus, H0: in.H0}
	out := tp.out(in.U.Shape, in.U, in.Delta, in.A, in.Bm, in.Cm, in.D, in.Z, in.DeltaBias)
	if out.grad != nil {
		if n := ScanCheckpointLen(tp.B, a); n > 0 {
			a.Ckpt = tp.Alloc(n)
		}
	}
	tp.B.SelectiveScan(out.Data, in.HT, a)
	tp.readsNot(out, out)
	tp.onBackward(out, func(g Buffer) {
		noStateBackward("SelectiveScan", in.H0)
		tp.B.SelectiveScanBackward(ScanGrads{U: tp.grad(in.U), Delta: tp.grad(in.Delta), A: tp.grad(in.A),
			Bm: tp.grad(in.Bm), Cm: tp.grad(in.Cm), Dskip: tp.grad(in.D), Z: tp.grad(in.Z),
			DeltaBias: tp.grad(in.DeltaBias)}, a, g)
	})
	return out
}

// SSDInputs are the tensors of a Mamba-2 SSD: X (B, L, H, P); Dt (B, L, H);
// A, D, DtBias (H); Bm, Cm (B, L, G, N). H0 and HT are optional (B, H, P, N)
// state buffers.
type SSDInputs struct {
	X, Dt, A, Bm, Cm, D, DtBias *Tensor
	DtSoftplus                  bool
	Chunk                       int
	H0, HT                      Buffer
}

// SSD runs the chunked state space dual; the result is (B, L, H, P).
func (tp *Tape) SSD(in SSDInputs) *Tensor {
	a := SSDArgs{B: in.X.Dim(0), L: in.X.Dim(1), H: in.X.Dim(2), P: in.X.Dim(3), G: in.Bm.Dim(2), N: in.Bm.Dim(3),
		Chunk: in.Chunk, X: in.X.Data, Dt: in.Dt.Data, A: in.A.Data, Bm: in.Bm.Data, Cm: in.Cm.Data,
		Dskip: data(in.D), DtBias: data(in.DtBias), DtSoftplus: in.DtSoftplus, H0: in.H0}
	out := tp.out(in.X.Shape, in.X, in.Dt, in.A, in.Bm, in.Cm, in.D, in.DtBias)
	tp.B.SSD(out.Data, in.HT, a)
	tp.readsNot(out, out)
	tp.onBackward(out, func(g Buffer) {
		noStateBackward("SSD", in.H0)
		tp.B.SSDBackward(SSDGrads{X: tp.grad(in.X), Dt: tp.grad(in.Dt), A: tp.grad(in.A), Bm: tp.grad(in.Bm),
			Cm: tp.grad(in.Cm), Dskip: tp.grad(in.D), DtBias: tp.grad(in.DtBias)}, a, g)
	})
	return out
}

// RNNInputs are the tensors of one LSTM or GRU layer: X (B, L, I), torch
// weights Wih (G·H, I), Whh (G·H, H), biases (G·H) or nil. H0, C0 (initial)
// and HT, CT (final) are optional (B, H) state buffers.
type RNNInputs struct {
	X, Wih, Whh, Bih, Bhh *Tensor
	H0, C0, HT, CT        Buffer
}

func (in RNNInputs) args(gates int) RNNArgs {
	H := in.Whh.Dim(1)
	if in.Wih.Dim(0) != gates*H {
		panic(fmt.Sprintf("nn: RNN weight_ih %v for hidden size %d and %d gates", in.Wih.Shape, H, gates))
	}
	return RNNArgs{B: in.X.Dim(0), L: in.X.Dim(1), I: in.X.Dim(2), H: H, X: in.X.Data,
		Wih: in.Wih.Data, Whh: in.Whh.Data, Bih: data(in.Bih), Bhh: data(in.Bhh), H0: in.H0, C0: in.C0}
}

func (in RNNInputs) grads(tp *Tape) RNNGrads {
	return RNNGrads{X: tp.grad(in.X), Wih: tp.grad(in.Wih), Whh: tp.grad(in.Whh), Bih: tp.grad(in.Bih), Bhh: tp.grad(in.Bhh)}
}

// LSTM runs one torch-compatible LSTM layer; the result is every h_t
// (B, L, H). What it saves for the backward (the gates and cell states)
// is an activation, in out's type: bfloat16 under bf16
// (docs/PRECISION.md).
func (tp *Tape) LSTM(in RNNInputs) *Tensor {
	a := in.args(4)
	out := tp.out([]int{a.B, a.L, a.H}, in.X, in.Wih, in.Whh, in.Bih, in.Bhh)
	var saved Buffer
	if out.RequiresGrad() {
		saved = tp.AllocAs(LSTMSavedLen(a.B, a.L, a.H), DTypeOf(tp.B, out.Data))
	}
	tp.B.LSTM(out.Data, in.HT, in.CT, saved, a)
	tp.onBackward(out, func(g Buffer) {
		noStateBackward("LSTM", in.H0, in.C0)
		tp.B.LSTMBackward(in.grads(tp), a, out.Data, saved, g)
	})
	return out
}

// GRU runs one torch-compatible GRU layer; the result is every h_t
// (B, L, H). Its saved gates are in out's type, as the LSTM's.
func (tp *Tape) GRU(in RNNInputs) *Tensor {
	a := in.args(3)
	out := tp.out([]int{a.B, a.L, a.H}, in.X, in.Wih, in.Whh, in.Bih, in.Bhh)
	var saved Buffer
	if out.RequiresGrad() {
		saved = tp.AllocAs(GRUSavedLen(a.B, a.L, a.H), DTypeOf(tp.B, out.Data))
	}
	tp.B.GRU(out.Data, in.HT, saved, a)
	tp.onBackward(out, func(g Buffer) {
		noStateBackward("GRU", in.H0)
		tp.B.GRUBackward(in.grads(tp), a, out.Data, saved, g)
	})
	return out
}

// S4DKernel builds the (H, L) convolution kernel of diagonal SSMs with
// LogDt (H) and A, C as real/imaginary parts (H, N/2).
func (tp *Tape) S4DKernel(logDt, aRe, aIm, cRe, cIm *Tensor, L int) *Tensor {
	a := S4DArgs{H: aRe.Dim(0), N2: aRe.Dim(1), L: L, LogDt: logDt.Data, ARe: aRe.Data, AIm: aIm.Data, CRe: cRe.Data, CIm: cIm.Data}
	out := tp.out32([]int{a.H, L}, logDt, aRe, aIm, cRe, cIm)
	tp.B.S4DKernel(out.Data, a)
	tp.onBackward(out, func(g Buffer) {
		tp.B.S4DKernelBackward(S4DGrads{LogDt: tp.grad(logDt), ARe: tp.grad(aRe), AIm: tp.grad(aIm),
			CRe: tp.grad(cRe), CIm: tp.grad(cIm)}, a, g)
	})
	return out
}

// FFTConv is the causal convolution of u (B, H, L) with K (H, L) plus the
// skip D (H) or nil.
func (tp *Tape) FFTConv(u, K, D *Tensor) *Tensor {
	B, H, L := u.Dim(0), u.Dim(1), u.Dim(2)
	out := tp.out(u.Shape, u, K, D)
	tp.B.FFTConv(out.Data, u.Data, K.Data, data(D), B, H, L)
	tp.onBackward(out, func(g Buffer) {
		tp.B.FFTConvBackward(tp.grad(u), tp.grad(K), tp.grad(D), u.Data, K.Data, data(D), g, B, H, L)
	})
	return out
}
