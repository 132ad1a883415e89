package gpukernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

func TestGPUMemory(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, n := range []int{1, 3, 1000, 1<<20 + 3} {
			t.Run(fmt.Sprintf("%s/n%d", dt, n), func(t *testing.T) {
				ck := newChecker(t, dt, "Memory", uint64(n))
				be := ck.g
				buf := ck.alloc(n)
				for i, v := range be.Read(buf) {
					if v != 0 {
						t.Fatalf("Alloc(%d): element [%d] = %v, want 0", n, i, v)
					}
				}
				vals := ck.randn(n, 1)
				vals[0] = math.Inf(-1)
				be.Write(buf, vals)
				for i, v := range be.Read(buf) {
					want := vals[i]
					if dt == nn.Float32 {
						want = float64(float32(want))
					}
					if v != want {
						t.Fatalf("Write/Read: element [%d] = %v, want %v", i, v, want)
					}
				}
				for _, v := range []float64{-2.5, 0, math.NaN()} {
					be.Fill(buf, v)
					for i, g := range be.Read(buf) {
						if !same(g, v) {
							t.Fatalf("Fill(%v): element [%d] = %v", v, i, g)
						}
					}
				}
				src := ck.in(ck.randn(n, 1))
				dst := ck.out(n, true)
				be.Copy(dst.g, src.g)
				ck.c.Copy(dst.c, src.c)
				ck.fwd("Copy", dst)
			})
		}
	}
}

func TestGPUCopyBlock(t *testing.T) {
	needGPU(t)
	type cbCase struct{ dstOff, dstStride, srcOff, srcStride, rows, cols int }
	cases := []cbCase{
		{0, 1, 0, 1, 1, 1}, {2, 7, 0, 3, 5, 3}, {0, 2, 5, 9, 4, 2}, {1, 1, 0, 1, 1, 100003},
		{3, 300, 1, 301, 1000, 299}, {0, 64, 0, 0, 70000, 64}, // a stride-0 broadcast over more rows than gridDim.y
	}
	for _, dt := range dtypes {
		for _, c := range cases {
			for _, accumulate := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%+v/acc%v", dt, c, accumulate), func(t *testing.T) {
					ck := newChecker(t, dt, "CopyBlock", uint64(c.rows*c.cols))
					nd := c.dstOff + (c.rows-1)*c.dstStride + c.cols + guard
					ns := c.srcOff + (c.rows-1)*c.srcStride + c.cols
					src := ck.in(ck.randn(ns, 1))
					dst := ck.acc(nd, true) // random everywhere: untouched elements must keep their values
					ck.g.CopyBlock(dst.g, c.dstOff, c.dstStride, src.g, c.srcOff, c.srcStride, c.rows, c.cols, accumulate)
					ck.c.CopyBlock(dst.c, c.dstOff, c.dstStride, src.c, c.srcOff, c.srcStride, c.rows, c.cols, accumulate)
					got, want := ck.g.Read(dst.g), ck.c.Read(dst.c)
					ck.close("dst", got, want, ck.fwdTol)
					for i := nd - guard; i < nd; i++ {
						if got[i] != dst.before[i] {
							t.Errorf("element [%d] past the block changed", i)
						}
					}
				})
			}
		}
	}
}

// permuteCases are TestGPUPermute's shapes: every path of Permute (a
// copy, rows of each length class, batches of transposes with 0 to 4
// batch dims and edges off the 32×32 tiles, and the one-thread-an-element
// kernel).
var permuteCases = []struct{ shape, perm []int }{
	{[]int{3, 5}, []int{1, 0}},
	{[]int{3, 5}, []int{0, 1}},
	{[]int{1, 7}, []int{1, 0}},
	{[]int{4, 128, 8, 64}, []int{0, 2, 1, 3}}, // (B, L, H, Dh) -> (B, H, L, Dh)
	{[]int{3, 33, 5, 24}, []int{0, 2, 1, 3}},  // rows of 24: 3 bf16 vectors
	{[]int{2, 9, 3, 300}, []int{0, 2, 1, 3}},  // rows longer than a block
	{[]int{1000, 999}, []int{1, 0}},
	{[]int{2, 100, 70}, []int{0, 2, 1}}, // (B, L, C) -> (B, C, L)
	{[]int{3, 70, 100}, []int{0, 2, 1}}, // and back
	{[]int{2, 3, 33, 65}, []int{1, 0, 3, 2}},
	{[]int{2, 2, 3, 2, 40, 31}, []int{3, 1, 0, 2, 5, 4}},
	{[]int{2, 3, 5, 4}, []int{3, 1, 0, 2}},
	{[]int{3, 2, 1, 4, 5, 2}, []int{5, 3, 1, 0, 2, 4}},
	{[]int{7, 1, 9, 1, 11, 3}, []int{4, 0, 5, 2, 1, 3}},
}

func TestGPUPermute(t *testing.T) {
	needGPU(t)
	for _, dt := range dtypes {
		for _, c := range permuteCases {
			for _, accumulate := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v_%v/acc%v", dt, c.shape, c.perm, accumulate), func(t *testing.T) {
					ck := newChecker(t, dt, "Permute", uint64(nn.NumElems(c.shape)))
					n := nn.NumElems(c.shape)
					x := ck.in(ck.randn(n, 1))
					var out pair
					if accumulate {
						out = ck.acc(n, false)
					} else {
						out = ck.out(n, false)
					}
					ck.g.Permute(out.g, x.g, c.shape, c.perm, accumulate)
					ck.c.Permute(out.c, x.c, c.shape, c.perm, accumulate)
					ck.fwd("out", out)
				})
			}
		}
	}
}

// In the bfloat16 build Permute moves the bits exactly and a sum rounds
// once, as cpu-bfloat16's does: the two agree bit for bit on every path.
func TestGPUPermuteBF16(t *testing.T) {
	needGPU(t)
	m, err := newBF16(gpu(t, nn.Float32))
	if err != nil {
		t.Fatal(err)
	}
	c := cpukernels.NewBF16()
	rng := rand.New(rand.NewPCG(8, 9))
	for _, pc := range permuteCases {
		for _, accumulate := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v_%v/acc%v", pc.shape, pc.perm, accumulate), func(t *testing.T) {
				n := nn.NumElems(pc.shape)
				vals, before := make([]float64, n), make([]float64, n)
				for i := range vals {
					vals[i], before[i] = rng.NormFloat64(), rng.NormFloat64()
				}
				run := func(b nn.MixedBackend) []float64 {
					x, out := b.AllocAs(n, nn.BFloat16), b.AllocAs(n, nn.BFloat16)
					defer b.Free(x)
					defer b.Free(out)
					b.Write(x, vals)
					b.Write(out, before)
					b.Permute(out, x, pc.shape, pc.perm, accumulate)
					return b.Read(out)
				}
				got, want := run(m), run(c)
				for i := range want {
					if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
						t.Fatalf("element %d: %v on the GPU, %v on the CPU", i, got[i], want[i])
					}
				}
			})
		}
	}
}

// TestGPUAllocator checks that freed blocks are reused, the counters, and
// that an impossible allocation panics with an *OOMError and leaves the
// backend usable.
func TestGPUAllocator(t *testing.T) {
	be := gpu(t, nn.Float32)
	before := be.MemStats()
	a := be.Alloc(1000)
	be.Free(a)
	b := be.Alloc(1001) // same size class
	s := be.MemStats()
	if s.Reuses <= before.Reuses {
		t.Errorf("Alloc after Free of the same class did not reuse the block: %+v -> %+v", before, s)
	}
	if s.InUse < before.InUse+4004 || s.Peak < s.InUse {
		t.Errorf("counters off after one live 4004-byte buffer: %+v -> %+v", before, s)
	}
	be.Free(b)
	expectPanic(t, "freed", func() { be.Free(b) })
	expectPanic(t, "holds 1000 elements, needs 1001", func() {
		x, y := be.Alloc(1001), be.Alloc(1000)
		defer be.Free(x)
		defer be.Free(y)
		be.Add(x, y, y)
	})

	for _, c := range []int64{1, 512, 513, 1000, 4096, 5000, 1 << 30, 1<<30 + 1} {
		if k := sizeClass(c); k < c || (c > minClass && float64(k) > 1.25*float64(c)+1) {
			t.Errorf("sizeClass(%d) = %d", c, k)
		}
	}

	var oom *OOMError
	func() {
		defer func() {
			r := recover()
			err, ok := r.(error)
			if !ok || !errors.As(err, &oom) {
				t.Errorf("Alloc(2^40) panicked with %v, want an *OOMError", r)
			}
		}()
		be.Alloc(1 << 40)
	}()
	if oom != nil {
		t.Logf("OOM message: %v", oom)
		if !strings.Contains(oom.Error(), "out of device memory (asked") {
			t.Errorf("OOM message %q", oom.Error())
		}
	}
	x := be.Alloc(10)
	be.Fill(x, 2)
	if got := be.Sum(x); got != 20 {
		t.Errorf("after the OOM, Sum = %v, want 20", got)
	}
	be.Free(x)
}

// TestGPUKernelCache checks the on-disk cubin cache: a second backend loads
// what the first compiled, and corrupt entries are compiled again.
func TestGPUKernelCache(t *testing.T) {
	gpu(t, nn.Float32) // skips without a GPU
	dir := t.TempDir()
	use := func() KernelStats {
		be, err := NewWithOptions(nn.Float32, Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		x := be.Alloc(5)
		be.Fill(x, 1)
		be.Scale(x, 3)
		if got := be.Sum(x); got != 15 {
			t.Errorf("Sum = %v, want 15", got)
		}
		return be.Stats()
	}
	if s := use(); s.Compiles != 2 || s.CacheHits != 0 {
		t.Errorf("fresh cache: %+v, want 2 compiles (elementwise, reduce)", s)
	}
	if s := use(); s.Compiles != 0 || s.CacheHits != 2 {
		t.Errorf("warm cache: %+v, want 2 hits", s)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.cubin"))
	if len(files) != 2 {
		t.Fatalf("cache holds %v, want 2 cubins", files)
	}
	for _, f := range files {
		os.WriteFile(f, []byte("not a cubin"), 0o644)
	}
	if s := use(); s.Compiles != 2 || s.CacheBad != 2 {
		t.Errorf("corrupt cache: %+v, want 2 bad entries compiled again", s)
	}
	if s := use(); s.CacheHits != 2 {
		t.Errorf("repaired cache: %+v, want 2 hits", s)
	}
}
