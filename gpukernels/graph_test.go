package gpukernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/nn"
)

// graphBackend is a float32 backend of the test's own: the shared test
// backends synchronise every launch, which a capture refuses.
func graphBackend(t *testing.T) *Backend {
	t.Helper()
	needGPU(t)
	be, err := NewWithOptions(nn.Float32, Options{CacheDir: testCacheDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := be.Close(); err != nil {
			t.Error(err)
		}
	})
	return be
}

// A captured graph replays its ops with the host ids as they are at each
// Launch, bit for bit as the same ops run eagerly; a Launch queues the
// captured operations as one; its memory stays reserved until Free; ids
// outside the table are refused at Launch, naming the op.
func TestGPUGraph(t *testing.T) {
	be := graphBackend(t)
	const V, d, n = 50, 64, 7
	rng := rand.New(rand.NewPCG(11, 12))
	vals := make([]float64, V*d)
	for i := range vals {
		vals[i] = rng.NormFloat64()
	}
	table := be.Alloc(V * d)
	be.Write(table, vals)
	ids := make([]int32, n)
	newIDs := func() {
		for i := range ids {
			ids[i] = int32(rng.IntN(V))
		}
	}
	// out = 3·table[ids], through an intermediate freed inside.
	ops := func(out nn.Buffer) {
		e := be.Alloc(n * d)
		be.Embedding(e, table, ids, d)
		be.Add(out, e, e)
		be.Axpy(1, e, out)
		be.Free(e)
	}
	eager := func() []float64 {
		out := be.Alloc(n * d)
		defer be.Free(out)
		ops(out)
		return be.Read(out)
	}

	newIDs()
	before := be.MemStats()
	var out nn.Buffer
	g, err := be.Capture(func() {
		out = be.Alloc(n * d)
		ops(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	if g.Ops() < 5 {
		t.Errorf("the graph holds %d operations, want at least the 2 memsets, the upload and 3 kernels", g.Ops())
	}
	if s := be.MemStats(); s.InUse < before.InUse+2*n*d*4 {
		t.Errorf("after the capture %d bytes in use, want both of its buffers reserved over %d", s.InUse, before.InUse)
	}
	for round := range 3 {
		newIDs()
		want := eager()
		ops0, _ := be.StreamCounts()
		if err := g.Launch(); err != nil {
			t.Fatal(err)
		}
		if ops1, _ := be.StreamCounts(); ops1-ops0 != int64(g.Ops()) {
			t.Errorf("a Launch counted %d operations, the graph holds %d", ops1-ops0, g.Ops())
		}
		got := be.Read(out)
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("round %d: element %d is %v, eagerly %v", round, i, got[i], want[i])
			}
		}
	}

	ids[3] = V
	if err := g.Launch(); err == nil || !strings.Contains(err.Error(), "Embedding") || !strings.Contains(err.Error(), "outside") {
		t.Errorf("Launch with id %d of a %d-row table: %v, want an error naming Embedding and the id", V, V, err)
	}
	ids[3] = 0
	if err := g.Free(); err != nil {
		t.Fatal(err)
	}
	be.Free(out)
	if s := be.MemStats(); s.InUse != before.InUse {
		t.Errorf("after the graph and its output are freed %d bytes are in use, before it %d", s.InUse, before.InUse)
	}
	if err := g.Launch(); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("Launch after Free: %v", err)
	}
}

// A capture fails, naming the op, where it would wait for the device or
// replay an upload the host derived from values, and where it cannot
// start; the backend works on afterwards.
func TestGPUGraphRefuses(t *testing.T) {
	be := graphBackend(t)
	x := be.Alloc(8)
	defer be.Free(x)
	for _, c := range []struct {
		name, want string
		fn         func()
	}{
		{"read", "gpukernels.Read: waits for the device", func() { be.Fill(x, 1); be.Read(x) }},
		{"sum", "gpukernels.Sum", func() { be.Sum(x) }},
		{"write", "gpukernels.Write", func() { be.Write(x, []float64{1}) }},
		{"embedding backward", "derived on the host", func() {
			dt := be.Alloc(4 * 8)
			be.EmbeddingBackward(dt, x, []int32{1}, 8)
		}},
		{"nested", "already running", func() {
			if _, err := be.Capture(func() {}); err != nil {
				panic(err.Error())
			}
		}},
		{"attention dropout", "dropout mask's seed", func() {
			q := be.Alloc(2 * 4 * 8)
			be.AttentionDropout(be.Alloc(2*4*8), be.Alloc(2*4), q, q, q, 1, 2, 4, 4, 8, 0.35, true, nn.AttnDrop{P: 0.1, Seed: 7})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := be.Capture(c.fn)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Capture: %v, want an error containing %q", err, c.want)
			}
			be.Fill(x, 2)
			if got := be.Sum(x); got != 16 {
				t.Errorf("after the failed capture, Sum = %v, want 16", got)
			}
		})
	}
	if _, err := gpu(t, nn.Float32).Capture(func() {}); err == nil || !strings.Contains(err.Error(), "SyncEachLaunch") {
		t.Errorf("Capture on a backend synchronising every launch: %v", err)
	}
}

// Decoding by replaying one captured Step gives every replayable
// architecture, hybrids included, the logits of eager decoding bit for
// bit, in float32 and bfloat16, token after token (the Transformer's
// position, cache rows and key count read on the device at each replay).
func TestGPUGraphDecode(t *testing.T) {
	be := graphBackend(t)
	bf, err := newBF16(be)
	if err != nil {
		t.Fatal(err)
	}
	const V, B, P, T = 40, 3, 9, 6
	for _, block := range []string{
		"{arch: mamba1, d_model: 32, n_layers: 2}",
		"{arch: mamba2, d_model: 64, n_layers: 2, headdim: 16, d_state: 16}",
		"{arch: s4d, d_model: 32, n_layers: 2}",
		"{arch: lstm, d_model: 32, n_layers: 2}",
		"{arch: gru, d_model: 32, n_layers: 2}",
		"{arch: transformer, d_model: 64, n_layers: 2, n_heads: 1}", // Dh 64: the tensor-core path in bf16
		archtest.ZooSource("hybrid of every kind"),
		archtest.ZooSource("hybrid mamba2 mlp attention mlp"),
	} {
		for _, b := range []nn.Backend{be, bf} {
			t.Run(fmt.Sprintf("%s/%s", block, b.Name()), func(t *testing.T) {
				cfg, err := archtest.Decode(t, block)
				if err != nil {
					t.Fatal(err)
				}
				m, err := cfg.Build(arch.Env{Backend: b, Vocab: V, MaxLen: P + T, RNG: rand.New(rand.NewPCG(3, 4))})
				if err != nil {
					t.Fatal(err)
				}
				sm := m.(interface {
					arch.ReplayStepper
					arch.LastStepper
				})
				if !sm.StepReplayable() {
					t.Fatal("not replayable")
				}
				rng := rand.New(rand.NewPCG(5, 6))
				prompt := make([]int32, B*P)
				for i := range prompt {
					prompt[i] = int32(rng.IntN(V))
				}
				casts := nn.NewCasts(b)
				defer casts.Free()
				tape := func() *nn.Tape { return nn.NewTape(b, false).ShareCasts(casts) }
				// decode returns the logits of T tokens after the prompt, each
				// step fed the argmax of the last, by step (eager or graph).
				decode := func(step func(st arch.State, ids []int32) ([]float64, func())) [][]float64 {
					st := sm.NewState(B)
					defer st.Free()
					tp := tape()
					next := b.ArgmaxRows(sm.StepLast(tp, st, prompt, B, P).Data, B, V)
					tp.Release()
					ids := make([]int32, B)
					var all [][]float64
					for range T {
						copy(ids, next)
						logits, done := step(st, ids)
						all = append(all, logits)
						next = argmax(logits, B, V)
						done()
					}
					return all
				}
				want := decode(func(st arch.State, ids []int32) ([]float64, func()) {
					tp := tape()
					return b.Read(sm.Step(tp, st, ids, B, 1).Data), tp.Release
				})
				var g nn.Graph
				var logits *nn.Tensor
				var gtp *nn.Tape
				got := decode(func(st arch.State, ids []int32) ([]float64, func()) {
					if g == nil {
						gtp = tape()
						if g, err = be.Capture(func() { logits = sm.Step(gtp, st, ids, B, 1) }); err != nil {
							t.Fatal(err)
						}
					}
					if err := g.Launch(); err != nil {
						t.Fatal(err)
					}
					return b.Read(logits.Data), func() {}
				})
				if err := g.Free(); err != nil {
					t.Fatal(err)
				}
				gtp.Release()
				for tok := range want {
					for i := range want[tok] {
						if math.Float64bits(got[tok][i]) != math.Float64bits(want[tok][i]) {
							t.Fatalf("token %d: logit %d is %v by the graph, %v eagerly", tok, i, got[tok][i], want[tok][i])
						}
					}
				}
			})
		}
	}
}

// argmax is ArgmaxRows on the host (the first largest value of each row).
func argmax(x []float64, rows, cols int) []int32 {
	out := make([]int32, rows)
	for r := range rows {
		row := x[r*cols : (r+1)*cols]
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		out[r] = int32(best)
	}
	return out
}
