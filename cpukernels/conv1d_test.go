package cpukernels

import (
	"strings"
	"testing"

	"seqbench/nn"
)

// The conformance suite (nn/backendtest) checks Conv1D against a float64
// loop and finite differences, with and without a carried state; here are
// the golden vectors and the rejected activations.

func TestConv1DGolden(t *testing.T) {
	const file = "07_conv1d.safetensors"
	v := refGolden(t, file)
	flags, shapes := goldenHeader(t, file)
	act := nn.Identity
	if strings.Contains(flags, "--activation silu") {
		act = nn.SiLU
	}
	testConv1DGolden[float64](t, file+" float64", v, act, shapes, 1e-10)
	testConv1DGolden[float32](t, file+" float32", v, act, shapes, 1e-4)
}

func testConv1DGolden[T Float](t *testing.T, name string, v map[string][]float64, act nn.Activation, shapes map[string][]int, tol float64) {
	xs, ws := shapes["x"], shapes["weight"]
	B, C, L, W := xs[0], xs[1], xs[2], ws[1]
	n := B * C * L
	x, w, bias := refBuf[T](v["x"]), refBuf[T](v["weight"]), goldenBuf[T](v, "bias")
	out := refPoisoned[T](n)
	New[T]().Conv1D(out, x, w, bias, nil, B, C, L, W, act)
	refRel(t, name+" out", refF64(out, n), v["out"], tol)
	refCheckGuard(t, name+" out", out, n)

	dx, dw := make(Buf[T], n), make(Buf[T], C*W)
	var dbias nn.Buffer
	if bias != nil {
		dbias = make(Buf[T], C)
	}
	New[T]().Conv1DBackward(dx, dw, dbias, x, w, bias, refBuf[T](v["dout"]), B, C, L, W, act)
	refRel(t, name+" dx", refF64(dx, n), v["dx"], tol)
	refRel(t, name+" dweight", refF64(dw, C*W), v["dweight"], tol)
	if bias != nil {
		refRel(t, name+" dbias", refF64(dbias.(Buf[T]), C), v["dbias"], tol)
	}
}

func TestConv1DErrors(t *testing.T) {
	x := make(Buf[float32], 16)
	refPanics(t, "GELU", "want identity or silu", func() {
		New[float32]().Conv1D(x, x, x, nil, nil, 1, 2, 3, 2, nn.GELU)
	})
	refPanics(t, "W = 0", "W ≥ 1", func() {
		New[float32]().Conv1DBackward(x, x, nil, x, x, nil, x, 1, 2, 3, 0, nn.SiLU)
	})
	refPanics(t, "short state", "state holds 3 elements, needs 4", func() {
		New[float32]().Conv1D(x, x, x, nil, make(Buf[float32], 3), 1, 2, 3, 3, nn.SiLU)
	})
}
