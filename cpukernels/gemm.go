package cpukernels

import "seqbench/nn"

// Blocking of the packed GEMM. Go has no SIMD and its register allocator
// keeps at most 15 floats live (X15 is reserved), so the micro-kernel is
// 1×6: six accumulators saturate the two FP adders (6 independent chains of
// 3-cycle adds), one A value is broadcast, and B values are loaded once each.
// A KC×6 panel of B stays in L1 while the rows of an MC×KC block of A
// (in L2) stream past it.
const (
	gemmNR = 6
	// A row of KC elements fills 2 KiB, its 6-wide B panel 12 KiB of L1.
	gemmKCBytes = 2048
	gemmMC      = 128
	gemmNC      = 64 * gemmNR
	// Below this many multiply-adds the packed path costs more than it saves.
	gemmSmall = 16 * 16 * 16
	// Fewer multiply-adds than this per worker do not pay for a goroutine.
	gemmParallelMin = 1 << 18
)

// gemmOp is one validated nn.GemmArgs with its unwrapped buffers.
type gemmOp[T Float] struct {
	nn.GemmArgs
	a, b, c     []T
	alpha, beta T
	kc          int // the K slice length
}

// at returns op(A_p)[i, k].
func (g *gemmOp[T]) at(p, i, k int) T {
	if g.TransA {
		return g.a[p*g.StrideA+k*g.LDA+i]
	}
	return g.a[p*g.StrideA+i*g.LDA+k]
}

// bt returns op(B_p)[k, j].
func (g *gemmOp[T]) bt(p, k, j int) T {
	if g.TransB {
		return g.b[p*g.StrideB+j*g.LDB+k]
	}
	return g.b[p*g.StrideB+k*g.LDB+j]
}

// Gemm computes, for p < Batch, C_p = Alpha·op(A_p)·op(B_p) + Beta·C_p (see
// nn.GemmArgs). Its reference loop is
//
//	for p := 0; p < Batch; p++ {
//		for i := 0; i < M; i++ {
//			for j := 0; j < N; j++ {
//				var s T
//				for k := 0; k < K; k++ {
//					s += opA(p, i, k) * opB(p, k, j)
//				}
//				C[p*StrideC+i*LDC+j] = Alpha*s + Beta*C[p*StrideC+i*LDC+j] // Beta*C dropped when Beta == 0
//			}
//		}
//	}
//
// Larger products pack B into KC×6 panels and A into KC-long rows, run the
// 1×6 register kernel and split blocks of C among workers. Alpha = 0 reads
// neither A nor B (as BLAS). C must not overlap A or B.
func (be *Backend[T]) Gemm(a, b, c nn.Buffer, args nn.GemmArgs) {
	g := gemmOp[T]{GemmArgs: args, alpha: T(args.Alpha), beta: T(args.Beta), kc: gemmKCBytes / sizeOf[T]()}
	g.a, g.b, g.c = g.check(a, b, c)
	if g.M == 0 || g.N == 0 {
		return
	}
	if g.K == 0 || g.Alpha == 0 {
		for p := 0; p < g.Batch; p++ {
			g.scaleC(p, 0, g.M, 0, g.N)
		}
		return
	}
	// C_p overlap (StrideC = 0 sums the batch into one C): batches then run
	// in order, only blocks of one C_p in parallel.
	overlap := g.Batch > 1 && g.StrideC < (g.M-1)*g.LDC+g.N
	if mnk := g.M * g.N * g.K; mnk <= gemmSmall {
		if overlap {
			g.naive(0, g.Batch)
			return
		}
		be.parallelFor(g.Batch, (gemmParallelMin+mnk-1)/mnk, g.naive)
		return
	}

	// Blocks of C, balanced in size: ⌈M/MC⌉ row blocks, ⌈N/NC⌉ column
	// blocks of whole 6-wide panels.
	mb := (g.M + gemmMC - 1) / gemmMC
	mc := (g.M + mb - 1) / mb
	nb := (g.N + gemmNC - 1) / gemmNC
	nc := ((g.N+nb-1)/nb + gemmNR - 1) / gemmNR * gemmNR
	nb = (g.N + nc - 1) / nc
	if want := 4 * be.workers; g.Batch*mb*nb < want && be.workers > 1 {
		// Too few blocks to keep every worker busy: cut M finer (the
		// kernel is one row high, so any cut is free).
		mb = min(max(1, g.M/16), (want+g.Batch*nb-1)/(g.Batch*nb))
		mc = (g.M + mb - 1) / mb
		mb = (g.M + mc - 1) / mc
	}
	kc := min(g.K, g.kc)
	perBatch := mb * nb
	tasks := g.Batch * perBatch
	work := mc * nc * g.K
	grain := (gemmParallelMin + work - 1) / work

	run := func(lo, hi int) {
		bp := make([]T, kc*nc)
		ap := make([]T, mc*kc)
		for t := lo; t < hi; t++ {
			p, r := t/perBatch, t%perBatch
			i0, j0 := (r/nb)*mc, (r%nb)*nc
			g.block(p, i0, min(i0+mc, g.M), j0, min(j0+nc, g.N), ap, bp)
		}
	}
	if overlap {
		for p := 0; p < g.Batch; p++ {
			be.parallelFor(perBatch, grain, func(lo, hi int) { run(p*perBatch+lo, p*perBatch+hi) })
		}
		return
	}
	be.parallelFor(tasks, grain, run)
}

// sizeOf is the size of T in bytes.
func sizeOf[T Float]() int {
	var z T
	if _, ok := any(z).(float32); ok {
		return 4
	}
	return 8
}

// check validates the arguments and returns the buffers.
func (g *gemmOp[T]) check(a, b, c nn.Buffer) (ad, bd, cd []T) {
	na, nb, nc, err := g.Lens()
	check("Gemm", err)
	ad, bd, cd = data[T](a, na, "Gemm", "a"), data[T](b, nb, "Gemm", "b"), data[T](c, nc, "Gemm", "c")
	// The offsets start the matrices (empty ones need no elements).
	return ad[min(g.OffA, len(ad)):], bd[min(g.OffB, len(bd)):], cd[min(g.OffC, len(cd)):]
}

// scaleC sets C_p[i0:i1, j0:j1] *= Beta, writing zeros when Beta is 0.
func (g *gemmOp[T]) scaleC(p, i0, i1, j0, j1 int) {
	if g.Beta == 1 {
		return
	}
	for i := i0; i < i1; i++ {
		row := g.c[p*g.StrideC+i*g.LDC+j0 : p*g.StrideC+i*g.LDC+j1]
		if g.Beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= g.beta
		}
	}
}

// naive is the reference loop over batches [p0, p1), used for products too
// small to pack.
func (g *gemmOp[T]) naive(p0, p1 int) {
	for p := p0; p < p1; p++ {
		for i := 0; i < g.M; i++ {
			row := g.c[p*g.StrideC+i*g.LDC:][:g.N]
			for j := range row {
				var s T
				for k := 0; k < g.K; k++ {
					s += g.at(p, i, k) * g.bt(p, k, j)
				}
				if g.Beta == 0 {
					row[j] = g.alpha * s
				} else {
					row[j] = g.alpha*s + g.beta*row[j]
				}
			}
		}
	}
}

// block computes C_p[i0:i1, j0:j1] over all of K, one KC slice at a time,
// packing into ap (MC×KC elements) and bp (KC×NC).
func (g *gemmOp[T]) block(p, i0, i1, j0, j1 int, ap, bp []T) {
	panels := (j1 - j0 + gemmNR - 1) / gemmNR
	for pc := 0; pc < g.K; pc += g.kc {
		kb := min(g.kc, g.K-pc)
		g.packB(bp, p, pc, kb, j0, j1)
		g.packA(ap, p, pc, kb, i0, i1)
		first := pc == 0
		for jp := 0; jp < panels; jp++ {
			panel := bp[jp*kb*gemmNR : (jp+1)*kb*gemmNR]
			j := j0 + jp*gemmNR
			w := min(gemmNR, j1-j)
			for i := i0; i < i1; i++ {
				arow := ap[(i-i0)*kb : (i-i0+1)*kb]
				var acc [gemmNR]T
				kernel1x6(arow, panel, &acc)
				g.store(g.c[p*g.StrideC+i*g.LDC+j:][:w], &acc, first)
			}
		}
	}
}

// store writes Alpha·acc into a row of C: on the first K slice it applies
// Beta (overwriting when Beta is 0), afterwards it accumulates.
func (g *gemmOp[T]) store(crow []T, acc *[gemmNR]T, first bool) {
	switch {
	case !first || g.Beta == 1:
		for x := range crow {
			crow[x] += g.alpha * acc[x]
		}
	case g.Beta == 0:
		for x := range crow {
			crow[x] = g.alpha * acc[x]
		}
	default:
		for x := range crow {
			crow[x] = g.alpha*acc[x] + g.beta*crow[x]
		}
	}
}

// packB copies op(B_p)[pc:pc+kb, j0:j1] into 6-column panels, each kb×6
// row-major, the last padded with zeros:
//
//	bp[(j/6)*kb*6 + k*6 + j%6] = op(B_p)[pc+k, j0+j]
func (g *gemmOp[T]) packB(bp []T, p, pc, kb, j0, j1 int) {
	panels := (j1 - j0 + gemmNR - 1) / gemmNR
	for jp := 0; jp < panels; jp++ {
		dst := bp[jp*kb*gemmNR : (jp+1)*kb*gemmNR]
		j := j0 + jp*gemmNR
		w := min(gemmNR, j1-j)
		if w < gemmNR {
			clear(dst)
		}
		if g.TransB {
			// Column x of the panel is a contiguous run of row j+x of B.
			for x := 0; x < w; x++ {
				src := g.b[p*g.StrideB+(j+x)*g.LDB+pc:][:kb]
				for k, v := range src {
					dst[k*gemmNR+x] = v
				}
			}
			continue
		}
		base := p*g.StrideB + pc*g.LDB + j
		if w == gemmNR {
			for k := 0; k < kb; k++ {
				*(*[gemmNR]T)(dst[k*gemmNR:]) = *(*[gemmNR]T)(g.b[base+k*g.LDB:])
			}
			continue
		}
		for k := 0; k < kb; k++ {
			copy(dst[k*gemmNR:k*gemmNR+w], g.b[base+k*g.LDB:][:w])
		}
	}
}

// packA copies op(A_p)[i0:i1, pc:pc+kb] into contiguous rows, so that the
// kernel streams them without the 4 KiB aliasing of a long leading
// dimension:
//
//	ap[i*kb + k] = op(A_p)[i0+i, pc+k]
func (g *gemmOp[T]) packA(ap []T, p, pc, kb, i0, i1 int) {
	rows := i1 - i0
	if !g.TransA {
		for i := 0; i < rows; i++ {
			copy(ap[i*kb:(i+1)*kb], g.a[p*g.StrideA+(i0+i)*g.LDA+pc:][:kb])
		}
		return
	}
	for k := 0; k < kb; k++ {
		src := g.a[p*g.StrideA+(pc+k)*g.LDA+i0:][:rows]
		for i, v := range src {
			ap[i*kb+k] = v
		}
	}
}

// kernel1x6 is the micro-kernel, with kc = len(a) and b a packed kc×6 panel:
//
//	for k := range a {
//		for x := 0; x < 6; x++ {
//			acc[x] += a[k] * b[k*6+x]
//		}
//	}
//
// Unrolled four times over k. Each step's products are added in source
// order, so the compiler's scheduler needs one temporary register; array
// pointer conversions leave one bounds check per four steps.
func kernel1x6[T Float](a, b []T, acc *[gemmNR]T) {
	var c0, c1, c2, c3, c4, c5 T
	b = b[:len(a)*gemmNR]
	for len(a) >= 4 {
		aa := (*[4]T)(a)
		bk := (*[4 * gemmNR]T)(b)
		a0 := aa[0]
		c0 += a0 * bk[0]
		c1 += a0 * bk[1]
		c2 += a0 * bk[2]
		c3 += a0 * bk[3]
		c4 += a0 * bk[4]
		c5 += a0 * bk[5]
		a1 := aa[1]
		c0 += a1 * bk[6]
		c1 += a1 * bk[7]
		c2 += a1 * bk[8]
		c3 += a1 * bk[9]
		c4 += a1 * bk[10]
		c5 += a1 * bk[11]
		a2 := aa[2]
		c0 += a2 * bk[12]
		c1 += a2 * bk[13]
		c2 += a2 * bk[14]
		c3 += a2 * bk[15]
		c4 += a2 * bk[16]
		c5 += a2 * bk[17]
		a3 := aa[3]
		c0 += a3 * bk[18]
		c1 += a3 * bk[19]
		c2 += a3 * bk[20]
		c3 += a3 * bk[21]
		c4 += a3 * bk[22]
		c5 += a3 * bk[23]
		a, b = a[4:], b[4*gemmNR:]
	}
	for k, a0 := range a {
		bk := (*[gemmNR]T)(b[k*gemmNR:])
		c0 += a0 * bk[0]
		c1 += a0 * bk[1]
		c2 += a0 * bk[2]
		c3 += a0 * bk[3]
		c4 += a0 * bk[4]
		c5 += a0 * bk[5]
	}
	*acc = [gemmNR]T{c0, c1, c2, c3, c4, c5}
}
