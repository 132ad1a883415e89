package cpukernels

import (
	"math"
	"testing"

	"seqbench/nn"
)

// adamwTorch is torch.optim.AdamW's single-tensor step for one element,
// written as in torch/optim/adamw.py (decay first, then the Adam update).
func adamwTorch(p, g, m, v float64, lr, b1, b2, eps, wd float64, step int) (float64, float64, float64) {
	p *= 1 - lr*wd
	m = b1*m + (1-b1)*g   // exp_avg.lerp_(grad, 1 - beta1)
	v = b2*v + (1-b2)*g*g // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
	bc1 := 1 - math.Pow(b1, float64(step))
	bc2 := 1 - math.Pow(b2, float64(step))
	stepSize := lr / bc1
	denom := math.Sqrt(v)/math.Sqrt(bc2) + eps
	return p - stepSize*m/denom, m, v
}

func TestAdamW(t *testing.T) {
	t.Run("float64", func(t *testing.T) { testAdamW3(t, New[float64](), 1e-14) })
	t.Run("float32", func(t *testing.T) { testAdamW3(t, New[float32](), 1e-6) })
}

// testAdamW3 runs three steps with changing gradients, including a zero
// gradient and one far larger than the rest, against adamwTorch.
func testAdamW3[T Float](t *testing.T, be *Backend[T], rtol float64) {
	p0 := []float64{0.5, -1.25, 3, 0, 1e-3, -7}
	grads := [][]float64{
		{0.1, -0.2, 0, 5, 1e-4, -100},
		{-0.3, 0.2, 0, 4, 2e-4, 50},
		{0.05, 0, 0, -6, -1e-4, 1},
	}
	n := len(p0)
	p, g, m, v := be.Alloc(n), be.Alloc(n), be.Alloc(n), be.Alloc(n)
	be.Write(p, p0)
	ref := append([]float64(nil), be.Read(p)...)
	rm, rv := make([]float64, n), make([]float64, n)
	for step, gs := range grads {
		a := nn.AdamWArgs{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: step + 1}
		be.Write(g, gs)
		be.AdamW(p, g, m, v, a)
		for i := range ref {
			gi := float64(T(gs[i]))
			ref[i], rm[i], rv[i] = adamwTorch(ref[i], gi, rm[i], rv[i], a.LR, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, a.Step)
		}
		ewClose(t, "p", be.Read(p), ref, rtol, 0)
		ewClose(t, "m", be.Read(m), rm, rtol, 0)
		ewClose(t, "v", be.Read(v), rv, rtol, 0)
	}
}

// A moment that decays below the smallest normal float32 is stored as 0.
func TestAdamWFlushesMoments(t *testing.T) {
	be := New[float32]()
	p, g := Buf[float32]{1}, Buf[float32]{0}
	m, v := Buf[float32]{2e-38}, Buf[float32]{2e-38}
	be.AdamW(p, g, m, v, nn.AdamWArgs{LR: 1e-3, Beta1: 0.5, Beta2: 0.5, Eps: 1e-8, Step: 10})
	if m[0] != 0 || v[0] != 0 {
		t.Fatalf("m, v = %g, %g, want 0, 0", m[0], v[0])
	}
}

func TestAdamWBadStep(t *testing.T) {
	be := New[float64]()
	b := be.Alloc(1)
	refPanics(t, "step 0", "step 0", func() { be.AdamW(b, b, b, b, nn.AdamWArgs{LR: 1}) })
}
