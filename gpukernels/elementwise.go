package gpukernels

import (
	"unsafe"

	"seqbench/nn"
)

// elementwise launches a grid-stride kernel of elementwise.cu over n.
func (be *Backend) elementwise(op, name string, n int, args ...uint64) {
	if n == 0 {
		return
	}
	k := be.fn(op, "elementwise", name)
	be.launch(op, k, dim(be.blocksFor(n, 256)), dim(256), 0, args...)
}

// Add is out[i] = a[i] + b[i] over n = out.Len().
func (be *Backend) Add(out, a, b nn.Buffer) {
	o := be.buf(out, -1, "Add", "out")
	x, y := be.buf(a, o.n, "Add", "a"), be.buf(b, o.n, "Add", "b")
	be.enter("Add")
	defer be.exit()
	be.elementwise("Add", "add", o.n, pArg(o), pArg(x), pArg(y), iArg(o.n))
}

// Mul is out[i] = a[i]·b[i] over n = out.Len().
func (be *Backend) Mul(out, a, b nn.Buffer) {
	o := be.buf(out, -1, "Mul", "out")
	x, y := be.buf(a, o.n, "Mul", "a"), be.buf(b, o.n, "Mul", "b")
	be.enter("Mul")
	defer be.exit()
	be.elementwise("Mul", "mul", o.n, pArg(o), pArg(x), pArg(y), iArg(o.n))
}

// MulBackward is da[i] += dout[i]·b[i]; db[i] += dout[i]·a[i] over
// n = dout.Len() (either gradient may be nil).
func (be *Backend) MulBackward(da, db, a, b, dout nn.Buffer) {
	const op = "MulBackward"
	g := be.buf(dout, -1, op, "dout")
	n := g.n
	dA, dB := be.optBuf(da, n, op, "da"), be.optBuf(db, n, op, "db")
	var x, y *Buffer
	if dA != nil {
		y = be.buf(b, n, op, "b")
	}
	if dB != nil {
		x = be.buf(a, n, op, "a")
	}
	if dA == nil && dB == nil {
		return
	}
	be.enter(op)
	defer be.exit()
	be.elementwise(op, "mul_backward", n, pArg(dA), pArg(dB), pArg(x), pArg(y), pArg(g), iArg(n))
}

// Axpy is y[i] += alpha·x[i] over n = y.Len().
func (be *Backend) Axpy(alpha float64, x, y nn.Buffer) {
	yd := be.buf(y, -1, "Axpy", "y")
	xd := be.buf(x, yd.n, "Axpy", "x")
	be.enter("Axpy")
	defer be.exit()
	be.elementwise("Axpy", "axpy", yd.n, pArg(yd), pArg(xd), fArg(alpha), iArg(yd.n))
}

// Scale is x[i] *= s.
func (be *Backend) Scale(x nn.Buffer, s float64) {
	xd := be.buf(x, -1, "Scale", "x")
	be.enter("Scale")
	defer be.exit()
	be.elementwise("Scale", "scale", xd.n, pArg(xd), fArg(s), iArg(xd.n))
}

// Act is out[i] = f(x[i]) for the activation kind (formulas as
// cpukernels.Act, evaluated in the element type; results below its
// smallest normal number become 0).
func (be *Backend) Act(kind nn.Activation, out, x nn.Buffer) {
	check("Act", kind.Check())
	o := be.buf(out, -1, "Act", "out")
	xd := be.buf(x, o.n, "Act", "x")
	be.enter("Act")
	defer be.exit()
	if kind == nn.Identity {
		be.copy("Act", o, xd, o.n)
		return
	}
	be.elementwise("Act", "act", o.n, pArg(o), pArg(xd), iArg(int(kind)), iArg(o.n))
}

// ActBackward is dx[i] += f'(x[i])·dout[i] (ReLU'(0) = 0).
func (be *Backend) ActBackward(kind nn.Activation, dx, x, dout nn.Buffer) {
	check("ActBackward", kind.Check())
	d := be.buf(dx, -1, "ActBackward", "dx")
	xd, g := be.buf(x, d.n, "ActBackward", "x"), be.buf(dout, d.n, "ActBackward", "dout")
	be.enter("ActBackward")
	defer be.exit()
	be.elementwise("ActBackward", "act_backward", d.n, pArg(d), pArg(xd), pArg(g), iArg(int(kind)), iArg(d.n))
}

// AddBias is out[r, c] = x[r, c] + bias[c] over a rows×cols matrix.
func (be *Backend) AddBias(out, x, bias nn.Buffer, rows, cols int) {
	check("AddBias", nn.CheckMatrix(rows, cols))
	n := rows * cols
	o, xd := be.buf(out, n, "AddBias", "out"), be.buf(x, n, "AddBias", "x")
	bd := be.buf(bias, cols, "AddBias", "bias")
	be.enter("AddBias")
	defer be.exit()
	be.elementwise("AddBias", "add_bias", n, pArg(o), pArg(xd), pArg(bd), iArg(rows), iArg(cols))
}

// colSumTarget is about the number of threads a column sum launches (two
// waves of an H100/H200), fixed so the chunking, and so the rounding, depend
// on the shape only.
const colSumTarget = 1 << 18

// colSum adds to out[c] (c < cols) the sum over rows of a term given by mode
// (see reduce.cu col_partial): rows are cut into chunks summed in parallel
// into double partials, which col_finish adds in chunk order.
func (be *Backend) colSum(op string, out, a, g, mean, rstd *Buffer, rows, cols, mode int) {
	if rows == 0 || cols == 0 {
		return
	}
	chunks := min(max(1, colSumTarget/cols), (rows+7)/8, 65535)
	chunks = max(chunks, 1)
	rpc := (rows + chunks - 1) / chunks
	chunks = (rows + rpc - 1) / rpc
	part := be.newBuffer(chunks*cols, nn.Float64)
	defer be.release(part)
	kp := be.fn(op, "reduce", "col_partial")
	be.launch(op, kp, dim2((cols+127)/128, chunks), dim(128), 0, pArg(part), pArg(a), pArg(g), pArg(mean), pArg(rstd),
		iArg(rows), iArg(cols), iArg(rpc), iArg(mode))
	kf := be.fn(op, "reduce", "col_finish")
	be.launch(op, kf, dim(be.blocksFor(cols, 256)), dim(256), 0, pArg(out), pArg(part), iArg(chunks), iArg(cols))
}

// SumRows is out[c] += Σ_r x[r, c], summed in double.
func (be *Backend) SumRows(out, x nn.Buffer, rows, cols int) {
	check("SumRows", nn.CheckMatrix(rows, cols))
	o := be.buf(out, cols, "SumRows", "out")
	xd := be.buf(x, rows*cols, "SumRows", "x")
	be.enter("SumRows")
	defer be.exit()
	be.colSum("SumRows", o, xd, nil, nil, nil, rows, cols, 0)
}

// reduceBlocks is the first stage's grid for n elements: fixed by n, so the
// partial sums (and the result, bit for bit) do not depend on the device.
func reduceBlocks(n int) int { return max(1, min((n+2047)/2048, 1024)) }

// reduce is Σ x[i] (or x[i]²) in double, two-stage and deterministic.
func (be *Backend) reduce(op string, x *Buffer, squares bool) float64 {
	if x.n == 0 {
		return 0
	}
	nb := reduceBlocks(x.n)
	part := be.newBuffer(nb+1, nn.Float64)
	defer be.release(part)
	kp := be.fn(op, "reduce", "reduce_partial")
	be.launch(op, kp, dim(nb), dim(256), 0, pArg(part)+8, pArg(x), iArg(x.n), bArg(squares))
	kf := be.fn(op, "reduce", "reduce_finish")
	be.launch(op, kf, dim(1), dim(1024), 0, pArg(part), pArg(part)+8, iArg(nb))
	var s float64
	be.download(op, unsafe.Slice((*byte)(unsafe.Pointer(&s)), 8), part.ptr)
	return s
}

// Sum is Σ x[i], accumulated in double.
func (be *Backend) Sum(x nn.Buffer) float64 {
	xd := be.buf(x, -1, "Sum", "x")
	be.enter("Sum")
	defer be.exit()
	return be.reduce("Sum", xd, false)
}

// SumSquares is Σ x[i]², accumulated in double; non-finite if any element is.
func (be *Backend) SumSquares(x nn.Buffer) float64 {
	xd := be.buf(x, -1, "SumSquares", "x")
	be.enter("SumSquares")
	defer be.exit()
	return be.reduce("SumSquares", xd, true)
}
