package nn

// The fused sequence ops of the non-attention architectures. Layouts follow
// the PyTorch reference implementations (docs/DESIGN.md, "Tensor conventions"),
// so tensors compare one to one with mamba_ssm, torch.nn.LSTM/GRU and the
// S4D reference. As everywhere in Backend: forwards overwrite their
// outputs, backwards accumulate into the gradients asked for (nil: not
// wanted), and optional inputs are nil when absent.
//
// Every recurrent op can start from a given state and return its final
// state: step (generation) mode is the same op with L = 1 carrying the
// state, and a long sequence can be processed in pieces with memory that
// does not grow with its length. Backwards assume a zero initial state.
//
// A carried state (Conv1D's state, the scans' H0 and hT) is of the
// backend's type or, on a MixedBackend whose activations are bfloat16 in
// that call, bfloat16: the decode state of a bf16 model, as mamba_ssm
// keeps it. It is read exactly, the math is float32, and each value is
// rounded once when written. H0 and hT are of one type; a backward's H0
// is of the backend's type.

// ScanArgs are the inputs of the Mamba-1 selective scan (mamba_ssm's
// selective_scan_fn). Channel d reads group d/(D/G) of Bm and Cm. With
// δ = delta + DeltaBias, softplus'ed when DeltaSoftplus:
//
//	h_t[d,n] = exp(δ_t[d]·A[d,n])·h_{t−1}[d,n] + δ_t[d]·Bm_t[g,n]·U_t[d]
//	y_t[d]   = Σ_n Cm_t[g,n]·h_t[d,n] + Dskip[d]·U_t[d]
//	out_t[d] = y_t[d]·SiLU(Z_t[d])   (when Z is given, else y_t[d])
type ScanArgs struct {
	B, D, L, N, G int
	U, Delta      Buffer // (B, D, L)
	A             Buffer // (D, N)
	Bm, Cm        Buffer // (B, G, N, L)
	Dskip         Buffer // (D) or nil
	Z             Buffer // (B, D, L) or nil
	DeltaBias     Buffer // (D) or nil
	DeltaSoftplus bool
	H0            Buffer // (B, D, N) initial state or nil (zeros)
	// Ckpt, when not nil, is ScanCheckpointLen(b, a) elements of the
	// backend's DType, given to both the forward and the backward: the
	// forward saves in it the states its backward would otherwise
	// recompute (a backend that has none needs no buffer and ignores it).
	Ckpt Buffer
}

// ScanCheckpointer is a Backend whose selective scan can save, in the
// forward, states that its backward reads instead of recomputing them
// (ScanArgs.Ckpt): ScanCheckpointLen is the buffer's length for a, 0 when
// nothing would be saved.
type ScanCheckpointer interface {
	ScanCheckpointLen(a ScanArgs) int
}

// ScanCheckpointLen is the length of ScanArgs.Ckpt that b's selective scan
// takes for a: 0 unless b is a ScanCheckpointer that saves states at a.
func ScanCheckpointLen(b Backend, a ScanArgs) int {
	if c, ok := b.(ScanCheckpointer); ok {
		return c.ScanCheckpointLen(a)
	}
	return 0
}

// ScanGrads receive the selective scan's gradients (accumulated).
type ScanGrads struct {
	U, Delta, A, Bm, Cm, Dskip, Z, DeltaBias Buffer
}

// SSDArgs are the inputs of the Mamba-2 state space dual (mamba_ssm's
// mamba_chunk_scan_combined without z). Head h reads group h/(H/G) of Bm
// and Cm. With dt = Dt + DtBias, softplus'ed when DtSoftplus:
//
//	h_t[h] = exp(dt_t[h]·A[h])·h_{t−1}[h] + dt_t[h]·X_t[h] ⊗ Bm_t[g]   (P×N)
//	out_t[h] = h_t[h]·Cm_t[g] + Dskip[h]·X_t[h]
//
// computed by the chunked algorithm with chunks of Chunk steps (the result
// does not depend on Chunk beyond rounding).
type SSDArgs struct {
	B, L, H, P, G, N, Chunk int
	X                       Buffer // (B, L, H, P)
	Dt                      Buffer // (B, L, H)
	A                       Buffer // (H)
	Bm, Cm                  Buffer // (B, L, G, N)
	Dskip                   Buffer // (H) or nil
	DtBias                  Buffer // (H) or nil
	DtSoftplus              bool
	H0                      Buffer // (B, H, P, N) initial state or nil (zeros)
}

// SSDGrads receive the SSD's gradients (accumulated).
type SSDGrads struct {
	X, Dt, A, Bm, Cm, Dskip, DtBias Buffer
}

// RNNArgs are the inputs of a one-layer LSTM or GRU over a batch-first
// sequence, with torch.nn.LSTM/GRU weight layouts and gate orders (LSTM:
// i, f, g, o; GRU: r, z, n, with n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn))).
// Gates = 4 for LSTM, 3 for GRU.
type RNNArgs struct {
	B, L, I, H int
	X          Buffer // (B, L, I)
	Wih        Buffer // (Gates·H, I)
	Whh        Buffer // (Gates·H, H)
	Bih, Bhh   Buffer // (Gates·H) or nil
	H0, C0     Buffer // (B, H) initial states or nil (zeros); C0 is LSTM's cell
}

// RNNGrads receive an LSTM's or GRU's gradients (accumulated).
type RNNGrads struct {
	X, Wih, Whh, Bih, Bhh Buffer
}

// LSTMSavedLen and GRUSavedLen size the buffer a forward fills for its
// backward (the layout inside is the backend's own).
func LSTMSavedLen(B, L, H int) int { return B * L * 5 * H }

// GRUSavedLen: see LSTMSavedLen.
func GRUSavedLen(B, L, H int) int { return B * L * 4 * H }

// S4DArgs are the parameters of H diagonal complex SSMs of N2 = N/2 modes
// (the conjugate half implied), discretised with ZOH: dt = exp(LogDt[h]),
// A = ARe + i·AIm, C̃ = C·(exp(dt·A) − 1)/A, and the convolution kernel
//
//	K[h,k] = 2·Re Σ_n C̃[h,n]·exp(dt·A[h,n]·k),  k = 0 .. L−1.
type S4DArgs struct {
	H, N2, L int
	LogDt    Buffer // (H)
	ARe, AIm Buffer // (H, N2)
	CRe, CIm Buffer // (H, N2)
}

// S4DGrads receive the kernel's parameter gradients (accumulated).
type S4DGrads struct {
	LogDt, ARe, AIm, CRe, CIm Buffer
}

// SeqOps are the fused ops of the recurrent and state-space architectures.
type SeqOps interface {
	// Conv1D is the causal depthwise convolution over x (B, C, L) with
	// weight (C, W) and optional bias (C), then the activation
	// (Identity or SiLU):
	//
	//	out[b,c,t] = act(bias[c] + Σ_k w[c,k]·x[b,c,t−W+1+k])
	//
	// where x before t = 0 is state[b,c,·] (B, C, W−1) when state is given
	// (zeros otherwise); a given state is then overwritten with the last
	// W−1 inputs, which is what step mode carries.
	Conv1D(out, x, w, bias, state Buffer, B, C, L, W int, act Activation)
	Conv1DBackward(dx, dw, dbias, x, w, bias, dout Buffer, B, C, L, W int, act Activation)

	// SelectiveScan writes out (B, D, L) and, when hT is given, the final
	// state (B, D, N). hT may be a.H0: the state then advances in place
	// (step mode).
	SelectiveScan(out, hT Buffer, a ScanArgs)
	SelectiveScanBackward(g ScanGrads, a ScanArgs, dout Buffer)

	// SSD writes out (B, L, H, P) and, when hT is given, the final state
	// (B, H, P, N). hT may be a.H0: the state then advances in place.
	SSD(out, hT Buffer, a SSDArgs)
	SSDBackward(g SSDGrads, a SSDArgs, dout Buffer)

	// LSTM writes out (B, L, H) (every h_t), the final states hT, cT (B, H)
	// when given, and saved (LSTMSavedLen) for the backward when given.
	LSTM(out, hT, cT, saved Buffer, a RNNArgs)
	LSTMBackward(g RNNGrads, a RNNArgs, out, saved, dout Buffer)
	// GRU is LSTM's counterpart (no cell state).
	GRU(out, hT, saved Buffer, a RNNArgs)
	GRUBackward(g RNNGrads, a RNNArgs, out, saved, dout Buffer)

	// S4DKernel writes the convolution kernel K (H, L).
	S4DKernel(K Buffer, a S4DArgs)
	S4DKernelBackward(g S4DGrads, a S4DArgs, dK Buffer)
	// FFTConv is the causal convolution of u (B, H, L) with K (H, L) plus
	// the skip: out[b,h,t] = Σ_{k≤t} K[h,k]·u[b,h,t−k] + Dskip[h]·u[b,h,t],
	// in O(L log L) through an FFT of size ≥ 2L.
	FFTConv(out, u, K, Dskip Buffer, B, H, L int)
	FFTConvBackward(du, dK, dDskip, u, K, Dskip, dout Buffer, B, H, L int)
	// S4DRecurrent runs the same SSM as a recurrence over u (B, H, L),
	// carrying state (B, H, N2, 2) (real and imaginary parts, zeros to
	// start) in place: out equals FFTConv with S4DKernel's K. It is the
	// step mode of s4d (forward only).
	S4DRecurrent(out, state, u, Dskip Buffer, a S4DArgs, B int)
}
