package gpukernels

import "seqbench/nn"

// RoPE rotates each head vector of x (B, H, L, Dh) by the angle of its
// position, pairing element i with i+h, h = Dh/2 (GPT-NeoX / HF Llama):
//
//	θ = (pos0+l) · base^(−2i/Dh)
//	out[.., l, i]   = x[.., l, i]·cos θ − x[.., l, i+h]·sin θ
//	out[.., l, i+h] = x[.., l, i+h]·cos θ + x[.., l, i]·sin θ
//
// Dh must be even. out may be x. x and out are activations: both bfloat16
// or both of the backend's type.
func (be *Backend) RoPE(out, x nn.Buffer, B, H, L, Dh, pos0 int, base float64) {
	be.rope("RoPE", out, x, B, H, L, Dh, pos0, nil, base, false)
}

// RoPEAt is RoPE from position pos[0], read by the kernel on the device
// (nn.Backend): the same launch serves every position. pos is of the
// backend's type.
func (be *Backend) RoPEAt(out, x nn.Buffer, B, H, L, Dh int, pos nn.Buffer, base float64) {
	p := be.buf(pos, 1, "RoPEAt", "pos")
	be.wantOwn("RoPEAt", arg{"pos", p})
	be.rope("RoPEAt", out, x, B, H, L, Dh, 0, p, base, false)
}

// RoPEBackward accumulates the adjoint of RoPE, the rotation by −θ:
//
//	dx[.., l, i]   += g[.., l, i]·cos θ + g[.., l, i+h]·sin θ
//	dx[.., l, i+h] += g[.., l, i+h]·cos θ − g[.., l, i]·sin θ
func (be *Backend) RoPEBackward(dx, dout nn.Buffer, B, H, L, Dh, pos0 int, base float64) {
	be.rope("RoPEBackward", dx, dout, B, H, L, Dh, pos0, nil, base, true)
}

// rope launches the kernel from position pos0, or pos[0] when pos is given.
func (be *Backend) rope(op string, dst, src nn.Buffer, B, H, L, Dh, pos0 int, pos *Buffer, base float64, backward bool) {
	check(op, nn.CheckRoPE(B, H, L, Dh))
	n := B * H * L * Dh
	dname, sname := "out", "x"
	if backward {
		dname, sname = "dx", "dout"
	}
	d, s := be.buf(dst, n, op, dname), be.buf(src, n, op, sname)
	at := be.actType(op, arg{dname, d}, arg{sname, s})
	if n == 0 {
		return
	}
	be.enter(op)
	defer be.exit()
	k := be.fnAs(op, at, "rope", "rope")
	// x: the (l, i) pairs; y: enough (b, h) slices to fill the device
	// without recomputing each angle more than a few times.
	pairs := L * Dh / 2
	bx := be.blocksFor(pairs, 256)
	by := gridY(min(B*H, max(1, be.maxGrid*4/bx)))
	be.launch(op, k, dim2(bx, by), dim(256), 0, pArg(d), pArg(s), iArg(B*H), iArg(L), iArg(Dh),
		iArg(pos0), pArg(pos), fArg(base), bArg(backward))
}
