package bench

import (
	"fmt"
	"math/rand/v2"

	"seqbench/nn"
)

// measureCeilings times the device's two limits through the backend
// itself, so each op's time can be set against what this device reached
// in the same run:
//   - copy: Backend.Copy of o.CopyElems elements (much larger than the
//     cache), bytes read + written per second;
//   - GEMM: one square o.GemmSize³ Backend.Gemm, 2·n³ FLOPs per second.
//
// Inputs are random, as everywhere. Under bf16 both are in bfloat16 (a
// copy of activations; a GEMM of bfloat16 A and B into a bfloat16 C with
// float32 sums), the ceilings of what the bf16 ops do.
func measureCeilings(d *Device, o Options) (c *Ceilings, err error) {
	be := d.Backend
	rng := rand.New(rand.NewPCG(o.Seed, 11))
	in := newInputs(be, newPools(rng), rng, 0)
	defer in.free()
	E := in.eh()
	impl := implName(be, o.Precision)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()

	n := o.CopyElems
	src, dst := in.normalH(n, 0, 1), in.allocH(n)
	samples, reps, err := d.measure(func() { be.Copy(dst, src) }, o)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	cp := Result{Name: fmt.Sprintf("CeilingCopy%s/n=%d", dtypeName(o.Precision), n), Suite: "ceilings", Op: "copy", Impl: impl, Pass: PassForward,
		Shape: Shape{"n": n}, Reps: reps, Samples: samples, Bytes: 2 * float64(n) * E}
	cp.derive(nil)
	in.free()

	m := o.GemmSize
	a, b, out := in.normalH(m*m, 0, 1), in.normalH(m*m, 0, 1), in.allocH(m*m)
	args := nn.GemmArgs{M: m, N: m, K: m, Alpha: 1, LDA: m, LDB: m, LDC: m, Batch: 1}
	samples, reps, err = d.measure(func() { be.Gemm(a, b, out, args) }, o)
	if err != nil {
		return nil, fmt.Errorf("GEMM: %w", err)
	}
	mm := float64(m)
	gm := Result{Name: fmt.Sprintf("CeilingGemm%s/M=%d/N=%d/K=%d", dtypeName(o.Precision), m, m, m), Suite: "ceilings", Op: "gemm", Impl: impl,
		Pass: PassForward, Shape: Shape{"M": m, "N": m, "K": m}, Reps: reps, Samples: samples,
		Bytes: 3 * mm * mm * E, FLOPs: 2 * mm * mm * mm}
	gm.derive(nil)
	c = &Ceilings{Copy: cp, Gemm: gm}
	c.rates()
	return c, nil
}

// merge adds the samples of a second measurement (Run measures before and
// after the suite, so a burst of load from other processes at one moment
// does not lower the ceilings).
func (c *Ceilings) merge(more *Ceilings) {
	c.Copy.Samples = append(c.Copy.Samples, more.Copy.Samples...)
	c.Gemm.Samples = append(c.Gemm.Samples, more.Gemm.Samples...)
	c.Copy.derive(nil)
	c.Gemm.derive(nil)
	c.rates()
}

// rates sets the ceilings from the fastest sample: a ceiling is the most
// the device did, and load from elsewhere only ever slows a sample down.
func (c *Ceilings) rates() {
	c.CopyBytesPerS = c.Copy.Bytes / c.Copy.Min
	c.GemmFLOPsPerS = c.Gemm.FLOPs / c.Gemm.Min
}
