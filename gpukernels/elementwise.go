package gpukernels

import (
	"fmt"
	"strings"
	"unsafe"

	"seqbench/nn"
)

// elementwise launches a grid-stride kernel of elementwise.cu over n, from
// the build of activation type at. The bfloat16 build's one-type kernels
// walk 8 elements a thread (one 16-byte load per operand), so they get a
// thread per 8; the *_mixed kernels one per element.
func (be *Backend) elementwise(op string, at nn.DType, name string, n int, args ...uint64) {
	if n == 0 {
		return
	}
	threads := n
	if at == nn.BFloat16 && !strings.HasSuffix(name, "_mixed") {
		threads = (n + 7) / 8
	}
	k := be.fnAs(op, at, "elementwise", name)
	be.launch(op, k, dim(be.blocksFor(threads, 256)), dim(256), 0, args...)
}

// ewTypes returns how an elementwise op runs on its operands ops, each of
// the backend's type or bfloat16 on its own (a nil one is skipped): when
// they are all of one type, that type's build of the op's kernel (mixed
// false); else mixed, the *_mixed kernel of the bfloat16 build, with bit k
// of types set when ops[k] is bfloat16 (the kernels' `types` argument).
func (be *Backend) ewTypes(op string, ops ...arg) (at nn.DType, mixed bool, types uint64) {
	at = be.dtype
	seen := false
	for k, a := range ops {
		if a.b == nil {
			continue
		}
		if a.b.dt != be.dtype && a.b.dt != nn.BFloat16 {
			panic(fmt.Sprintf("gpukernels.%s: %s is %v, must be %v or bfloat16", op, a.name, a.b.dt, be.dtype))
		}
		if a.b.dt == nn.BFloat16 {
			types |= 1 << k
		}
		if seen && a.b.dt != at {
			mixed = true
		}
		at, seen = a.b.dt, true
	}
	if mixed {
		at = nn.BFloat16
	}
	return at, mixed, types
}

// Add is out[i] = a[i] + b[i] over n = out.Len().
func (be *Backend) Add(out, a, b nn.Buffer) {
	o := be.buf(out, -1, "Add", "out")
	x, y := be.buf(a, o.n, "Add", "a"), be.buf(b, o.n, "Add", "b")
	at, mixed, types := be.ewTypes("Add", arg{"out", o}, arg{"a", x}, arg{"b", y})
	be.enter("Add")
	defer be.exit()
	if mixed {
		be.elementwise("Add", at, "add_mixed", o.n, pArg(o), pArg(x), pArg(y), types, iArg(o.n))
		return
	}
	be.elementwise("Add", at, "add", o.n, pArg(o), pArg(x), pArg(y), iArg(o.n))
}

// Mul is out[i] = a[i]·b[i] over n = out.Len().
func (be *Backend) Mul(out, a, b nn.Buffer) {
	o := be.buf(out, -1, "Mul", "out")
	x, y := be.buf(a, o.n, "Mul", "a"), be.buf(b, o.n, "Mul", "b")
	at, mixed, types := be.ewTypes("Mul", arg{"out", o}, arg{"a", x}, arg{"b", y})
	be.enter("Mul")
	defer be.exit()
	if mixed {
		be.elementwise("Mul", at, "mul_mixed", o.n, pArg(o), pArg(x), pArg(y), types, iArg(o.n))
		return
	}
	be.elementwise("Mul", at, "mul", o.n, pArg(o), pArg(x), pArg(y), iArg(o.n))
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
	at, mixed, types := be.ewTypes(op, arg{"da", dA}, arg{"db", dB}, arg{"a", x}, arg{"b", y}, arg{"dout", g})
	be.enter(op)
	defer be.exit()
	if mixed {
		be.elementwise(op, at, "mul_backward_mixed", n, pArg(dA), pArg(dB), pArg(x), pArg(y), pArg(g), types, iArg(n))
		return
	}
	be.elementwise(op, at, "mul_backward", n, pArg(dA), pArg(dB), pArg(x), pArg(y), pArg(g), iArg(n))
}

// Axpy is y[i] += alpha·x[i] over n = y.Len().
func (be *Backend) Axpy(alpha float64, x, y nn.Buffer) {
	yd := be.buf(y, -1, "Axpy", "y")
	xd := be.buf(x, yd.n, "Axpy", "x")
	at, mixed, types := be.ewTypes("Axpy", arg{"y", yd}, arg{"x", xd})
	be.enter("Axpy")
	defer be.exit()
	if mixed {
		be.elementwise("Axpy", at, "axpy_mixed", yd.n, pArg(yd), pArg(xd), fArg(alpha), types, iArg(yd.n))
		return
	}
	be.elementwise("Axpy", at, "axpy", yd.n, pArg(yd), pArg(xd), fArg(alpha), iArg(yd.n))
}

// Scale is x[i] *= s.
func (be *Backend) Scale(x nn.Buffer, s float64) {
	xd := be.buf(x, -1, "Scale", "x")
	at := be.actType("Scale", arg{"x", xd})
	be.enter("Scale")
	defer be.exit()
	be.elementwise("Scale", at, "scale", xd.n, pArg(xd), fArg(s), iArg(xd.n))
}

// Act is out[i] = f(x[i]) for the activation kind (formulas as
// cpukernels.Act, evaluated in the element type, float for bfloat16;
// results below its smallest normal number become 0).
func (be *Backend) Act(kind nn.Activation, out, x nn.Buffer) {
	check("Act", kind.Check())
	o := be.buf(out, -1, "Act", "out")
	xd := be.buf(x, o.n, "Act", "x")
	at, mixed, types := be.ewTypes("Act", arg{"out", o}, arg{"x", xd})
	be.enter("Act")
	defer be.exit()
	if kind == nn.Identity {
		be.copy("Act", o, xd, o.n)
		return
	}
	if mixed {
		be.elementwise("Act", at, "act_mixed", o.n, pArg(o), pArg(xd), types, iArg(int(kind)), iArg(o.n))
		return
	}
	be.elementwise("Act", at, "act", o.n, pArg(o), pArg(xd), iArg(int(kind)), iArg(o.n))
}

// ActBackward is dx[i] += f'(x[i])·dout[i] (ReLU'(0) = 0).
func (be *Backend) ActBackward(kind nn.Activation, dx, x, dout nn.Buffer) {
	check("ActBackward", kind.Check())
	d := be.buf(dx, -1, "ActBackward", "dx")
	xd, g := be.buf(x, d.n, "ActBackward", "x"), be.buf(dout, d.n, "ActBackward", "dout")
	at, mixed, types := be.ewTypes("ActBackward", arg{"dx", d}, arg{"x", xd}, arg{"dout", g})
	be.enter("ActBackward")
	defer be.exit()
	if mixed {
		be.elementwise("ActBackward", at, "act_backward_mixed", d.n, pArg(d), pArg(xd), pArg(g), types, iArg(int(kind)),
			iArg(d.n))
		return
	}
	be.elementwise("ActBackward", at, "act_backward", d.n, pArg(d), pArg(xd), pArg(g), iArg(int(kind)), iArg(d.n))
}

// AddBias is out[r, c] = x[r, c] + bias[c] over a rows×cols matrix.
func (be *Backend) AddBias(out, x, bias nn.Buffer, rows, cols int) {
	check("AddBias", nn.CheckMatrix(rows, cols))
	n := rows * cols
	o, xd := be.buf(out, n, "AddBias", "out"), be.buf(x, n, "AddBias", "x")
	bd := be.buf(bias, cols, "AddBias", "bias")
	at, mixed, types := be.ewTypes("AddBias", arg{"out", o}, arg{"x", xd}, arg{"bias", bd})
	be.enter("AddBias")
	defer be.exit()
	if mixed {
		be.elementwise("AddBias", at, "add_bias_mixed", n, pArg(o), pArg(xd), pArg(bd), types, iArg(rows), iArg(cols))
		return
	}
	be.elementwise("AddBias", at, "add_bias", n, pArg(o), pArg(xd), pArg(bd), iArg(rows), iArg(cols))
}

// colSumTarget is about the number of threads a column sum launches (two
// waves of an H100/H200), fixed so the chunking, and so the rounding, depend
// on the shape only.
const colSumTarget = 1 << 18

// colSum adds to out[c] (c < cols) the sum over rows of a term given by mode
// (see reduce.cu col_partial): rows are cut into chunks summed in parallel
// into double partials, which col_finish adds in chunk order. a and g (the
// activations summed) are of one type, whose build runs col_partial; out is
// of either type, whose build runs col_finish (the partials are double in
// both), so a bfloat16 dout sums into a float32 gradient.
func (be *Backend) colSum(op string, out, a, g, mean, rstd *Buffer, rows, cols, mode int) {
	at := be.actType(op, arg{"a", a}, arg{"g", g})
	be.actType(op, arg{"out", out})
	be.wantOwn(op, arg{"mean", mean}, arg{"rstd", rstd})
	if rows == 0 || cols == 0 {
		return
	}
	chunks := min(max(1, colSumTarget/cols), (rows+7)/8, 65535)
	chunks = max(chunks, 1)
	rpc := (rows + chunks - 1) / chunks
	chunks = (rows + rpc - 1) / rpc
	part := be.newBuffer(chunks*cols, nn.Float64)
	defer be.release(part)
	kp := be.fnAs(op, at, "reduce", "col_partial")
	be.launch(op, kp, dim2((cols+127)/128, chunks), dim(128), 0, pArg(part), pArg(a), pArg(g), pArg(mean), pArg(rstd),
		iArg(rows), iArg(cols), iArg(rpc), iArg(mode))
	kf := be.fnAs(op, out.dt, "reduce", "col_finish")
	be.launch(op, kf, dim(be.blocksFor(cols, 256)), dim(256), 0, pArg(out), pArg(part), iArg(chunks), iArg(cols))
}

// SumRows is out[c] += Σ_r x[r, c], summed in double; x and out are each of
// the backend's type or bfloat16 (a bfloat16 dout into a float32 bias
// gradient).
func (be *Backend) SumRows(out, x nn.Buffer, rows, cols int) {
	check("SumRows", nn.CheckMatrix(rows, cols))
	o := be.buf(out, cols, "SumRows", "out")
	xd := be.buf(x, rows*cols, "SumRows", "x")
	be.ewTypes("SumRows", arg{"out", o}, arg{"x", xd})
	be.enter("SumRows")
	defer be.exit()
	be.colSum("SumRows", o, xd, nil, nil, nil, rows, cols, 0)
}

// reduceBlocks is the first stage's grid for n elements: fixed by n, so the
// partial sums (and the result, bit for bit) do not depend on the device.
func reduceBlocks(n int) int { return max(1, min((n+2047)/2048, 1024)) }

// reduce is Σ x[i] (or x[i]²) in double, two-stage and deterministic; x is
// of the backend's type or bfloat16.
func (be *Backend) reduce(op string, x *Buffer, squares bool) float64 {
	be.actType(op, arg{"x", x})
	if x.n == 0 {
		return 0
	}
	part := be.newBuffer(reduceBlocks(x.n)+1, nn.Float64)
	defer be.release(part)
	be.queueReduce(op, x, squares, pArg(part), pArg(part)+8)
	var s float64
	be.download(op, unsafe.Slice((*byte)(unsafe.Pointer(&s)), 8), part.ptr)
	return s
}

// queueReduce queues the two stages of reduce for a non-empty x: the
// partials into part (reduceBlocks(x.n) doubles), their sum into the double
// at out. Nothing is read back.
func (be *Backend) queueReduce(op string, x *Buffer, squares bool, out, part uint64) {
	nb := reduceBlocks(x.n)
	kp := be.fnAs(op, x.dt, "reduce", "reduce_partial")
	be.launch(op, kp, dim(nb), dim(256), 0, part, pArg(x), iArg(x.n), bArg(squares))
	kf := be.fnAs(op, x.dt, "reduce", "reduce_finish")
	be.launch(op, kf, dim(1), dim(1024), 0, out, part, iArg(nb))
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

// SumSquaresEach is SumSquares of every buffer in xs (bit for bit the same
// values) with one download: the reductions are queued one after another on
// the stream, sharing one scratch for their partials, and their results land
// side by side.
func (be *Backend) SumSquaresEach(xs []nn.Buffer) []float64 {
	const op = "SumSquaresEach"
	bufs := make([]*Buffer, len(xs))
	maxBlocks := 0
	for i, x := range xs {
		name := fmt.Sprintf("xs[%d]", i)
		bufs[i] = be.buf(x, -1, op, name)
		be.actType(op, arg{name, bufs[i]})
		maxBlocks = max(maxBlocks, reduceBlocks(bufs[i].n))
	}
	be.enter(op)
	defer be.exit()
	out := make([]float64, len(xs))
	if len(xs) == 0 {
		return out
	}
	scratch := be.newBuffer(len(xs)+maxBlocks, nn.Float64)
	defer be.release(scratch)
	part := pArg(scratch) + 8*uint64(len(xs))
	for i, x := range bufs {
		if x.n > 0 {
			be.queueReduce(op, x, true, pArg(scratch)+8*uint64(i), part)
		}
	}
	be.download(op, unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 8*len(out)), scratch.ptr)
	for i, x := range bufs {
		if x.n == 0 { // its slot was never written
			out[i] = 0
		}
	}
	return out
}
