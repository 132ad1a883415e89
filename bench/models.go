package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/nn"
	"seqbench/trainstep"
)

// ModelOptions size the models of the train, generate and memory suites.
// Every other field of an architecture keeps its default (the transformer
// gets heads of 64 channels when d_model allows, as the papers' baselines).
type ModelOptions struct {
	DModel    int `json:"d_model"`
	NLayers   int `json:"n_layers"`
	Vocab     int `json:"vocab"`
	Prompt    int `json:"prompt,omitempty"`     // generate: prompt length
	NewTokens int `json:"new_tokens,omitempty"` // generate: tokens generated one at a time
	// Matched gives the Transformer half of NLayers, as the Mamba papers
	// match sizes (a Mamba block holds about half a Transformer block's
	// parameters: 24 Mamba layers against 12 at the 130M size).
	Matched bool `json:"matched,omitempty"`
	// Fp32State keeps generate's Mamba decode states in float32 under bf16;
	// by default they are bfloat16 there, as mamba_ssm keeps a bf16
	// model's inference cache (arch.Env.LowpState).
	Fp32State bool `json:"fp32_state,omitempty"`
}

// layers is the depth of arch: NLayers, or half of it for the
// Transformer with Matched.
func (m ModelOptions) layers(arch string) int {
	if m.Matched && arch == "transformer" {
		return max(1, m.NLayers/2)
	}
	return m.NLayers
}

// fill sets the defaults: on a GPU a ~130M-parameter model (d_model 768,
// 12 layers, GPT-NeoX's vocabulary) and Mamba's generation benchmark
// (prompt 2048, 128 new tokens); on the CPU a tiny one.
func (m *ModelOptions) fill(gpu bool, suite string) {
	if m.DModel <= 0 {
		m.DModel = pick(gpu, 768, 64)
	}
	if m.NLayers <= 0 {
		m.NLayers = pick(gpu, 12, 2)
	}
	if m.Vocab <= 0 {
		m.Vocab = pick(gpu, 50280, 256)
	}
	if suite == "generate" {
		if m.Prompt <= 0 {
			m.Prompt = pick(gpu, 2048, 128)
		}
		if m.NewTokens <= 0 {
			m.NewTokens = pick(gpu, 128, 16)
		}
	} else {
		m.Prompt, m.NewTokens = 0, 0
	}
}

func (m ModelOptions) check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"--d-model", m.DModel}, {"--n-layers", m.NLayers}, {"--vocab", m.Vocab}, {"--prompt", m.Prompt}, {"--new-tokens", m.NewTokens}} {
		if f.v < 0 {
			return fmt.Errorf("%s: %d is not allowed (≥ 1; 0 takes the default)", f.name, f.v)
		}
	}
	return nil
}

// modelGrid returns the default lengths and batch sizes of a model suite.
func modelGrid(suite string, gpu bool) (lengths, batches []int) {
	switch suite {
	case "train":
		return pick(gpu, []int{2048}, []int{256}), pick(gpu, []int{8}, []int{4})
	case "generate":
		return nil, pick(gpu, []int{1, 16, 64}, []int{1, 4})
	default: // memory
		return pick(gpu, []int{512, 1024, 2048, 4096, 8192}, []int{64, 128, 256}), []int{1}
	}
}

// model is one built architecture on a tracked backend: be computes
// (the tracker itself, or its mixed-precision face under bf16), tr counts.
type model struct {
	name   string
	m      arch.Model
	params []nn.Param
	count  int
	be     nn.Backend
	tr     *tracked
	freed  bool
}

// buildModel decodes {arch, d_model, n_layers} like a YAML model block and
// builds it.
func buildModel(d *Device, name string, mo ModelOptions, maxLen int, seed uint64, lowpState bool) (md *model, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("building: %v", p)
		}
	}()
	block := fmt.Sprintf("{arch: %s, d_model: %d, n_layers: %d", name, mo.DModel, mo.layers(name))
	if name == "transformer" && mo.DModel >= 128 && mo.DModel%64 == 0 {
		block += fmt.Sprintf(", n_heads: %d", mo.DModel/64)
	}
	var node yaml.Node
	if err := yaml.Load([]byte(block+"}"), &node); err != nil {
		return nil, err
	}
	cfg, err := arch.Decode(node.Content[0])
	if err != nil {
		return nil, err
	}
	tr := track(d.Backend)
	tb := tr.backend()
	m, err := cfg.Build(arch.Env{Backend: tb, Vocab: mo.Vocab, MaxLen: maxLen, RNG: rand.New(rand.NewPCG(seed, 3)),
		LowpState: lowpState})
	if err != nil {
		return nil, err
	}
	ps := m.Params()
	return &model{name: name, m: m, params: ps, count: nn.CountParams(ps), be: tb, tr: tr}, nil
}

func (md *model) free() {
	if md.freed {
		return
	}
	md.freed = true
	seen := map[*nn.Tensor]bool{} // tied weights are listed twice
	for _, p := range md.params {
		if seen[p.T] {
			continue
		}
		seen[p.T] = true
		md.be.Free(p.T.Data)
		if g := p.T.Grad(); g != nil {
			md.be.Free(g)
		}
	}
}

func (o Options) archs() []string {
	if len(o.Archs) > 0 {
		return o.Archs
	}
	return arch.Names()
}

func (o Options) modelGrid(gpu bool) (lengths, batches []int) {
	lengths, batches = modelGrid(o.Suite, gpu)
	if len(o.Lengths) > 0 {
		lengths = o.Lengths
	}
	if len(o.Batches) > 0 {
		batches = o.Batches
	}
	return lengths, batches
}

// modelName is the Go benchmark name of a model benchmark:
// Bench/arch=A/d_model=D/n_layers=N[/dtype=bf16]/k=v... (no dtype
// component in fp32).
func modelName(bench, archName string, mo ModelOptions, precision string, kv ...any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/arch=%s/d_model=%d/n_layers=%d%s", bench, archName, mo.DModel, mo.layers(archName), dtypeName(precision))
	for i := 0; i < len(kv); i += 2 {
		fmt.Fprintf(&b, "/%s=%v", kv[i], kv[i+1])
	}
	return b.String()
}

// stateName is "/state=bf16" where the model keeps its recurrent decode
// states in bfloat16 (the Mamba blocks under bf16 without Fp32State), ""
// otherwise, so that the two are different benchmarks to the regression
// gate and an arch the option does not touch keeps its name.
func stateName(lowp bool) string {
	if lowp {
		return "/state=bf16"
	}
	return ""
}

// trainer runs full training steps of one model: forward, cross-entropy,
// backward, gradient clipping and AdamW, by train.Run's step
// (trainstep.Runner: a replayed graph where the backend captures them,
// unless the options ask for eager steps).
type trainer struct {
	md    *model
	opt   *nn.AdamW
	run   *trainstep.Runner
	B, L  int
	ids   [][]int32 // input sets, rotated
	tgts  [][]int32
	steps int
}

func newTrainer(d *Device, o Options, md *model, B, L, vocab int, rng *rand.Rand) *trainer {
	t := &trainer{md: md, opt: nn.NewAdamW(md.be, md.params, 0.1), B: B, L: L}
	so := trainstep.Options{GradClip: 1, Ignore: -1, Graph: !o.Eager}
	so.Capturer, _ = d.Backend.(nn.Capturer)
	t.run = trainstep.New(md.be, md.m, md.params, t.opt, so)
	for range 2 {
		ids, tg := make([]int32, B*L), make([]int32, B*L)
		for i := range ids {
			ids[i], tg[i] = int32(rng.IntN(vocab)), int32(rng.IntN(vocab))
		}
		t.ids, t.tgts = append(t.ids, ids), append(t.tgts, tg)
	}
	return t
}

func (t *trainer) step() { t.next(t.run.Step) }

// eagerStep is a step with its own launches (a profile's).
func (t *trainer) eagerStep() { t.next(t.run.StepEager) }

func (t *trainer) next(step func(trainstep.Batch, float64, bool) trainstep.Result) {
	i := t.steps % len(t.ids)
	t.steps++
	step(trainstep.Batch{Inputs: t.ids[i], Targets: t.tgts[i], B: t.B, L: t.L}, 1e-4, false)
}

func (t *trainer) free() {
	t.run.Free()
	t.opt.Free()
	t.md.free()
}

// runTrain times full training steps per architecture: tokens/s, FLOP/s
// against the GEMM ceiling (3× the forward FLOPs per token: the backward
// costs twice the forward) and peak memory.
func runTrain(ctx context.Context, d *Device, o Options, f *File) error {
	return runSteps(ctx, d, o, f, "TrainStep", "train_step", o.Repeat)
}

// runMemory measures the peak memory of a training step against L; it
// times the step too (fewer samples: memory does not vary between steps).
func runMemory(ctx context.Context, d *Device, o Options, f *File) error {
	return runSteps(ctx, d, o, f, "TrainMemory", "train_memory", min(o.Repeat, 3))
}

func runSteps(ctx context.Context, d *Device, o Options, f *File, bench, op string, repeat int) error {
	rng := rand.New(rand.NewPCG(o.Seed, 5))
	mo := o.Model
	lengths, batches := o.modelGrid(d.GPU)
	ro := o
	ro.Repeat = repeat
	for _, name := range o.archs() {
		for _, L := range lengths {
			for _, B := range batches {
				if stopped(ctx, f) {
					return nil
				}
				bname := modelName(bench, name, mo, o.Precision, "B", B, "L", L)
				md, err := buildModel(d, name, mo, L, o.Seed, false)
				if err != nil {
					f.Skipped = append(f.Skipped, Skip{bname, err.Error()})
					o.progress("%-56s skipped: %v\n", bname, err)
					continue
				}
				t := newTrainer(d, o, md, B, L, mo.Vocab, rng)
				meter := d.meter(md.tr)
				// The peak is of the steps after the first, which allocates
				// the optimizer's moments and warms up; the meter (a GPU's
				// allocator) is shared with the models measured before, so
				// its peak is reset before this model's first read.
				var peak int64
				samples, reps, err := d.measure(func() {
					if t.steps == 1 {
						meter.ResetPeak()
					}
					t.step()
					if t.steps > 1 {
						peak = max(peak, meter.PeakBytes())
					}
				}, ro)
				if err != nil {
					t.free()
					f.Skipped = append(f.Skipped, Skip{bname, err.Error()})
					o.progress("%-56s skipped: %v\n", bname, err)
					continue
				}
				r := Result{Name: bname, Suite: o.Suite, Op: op, Impl: implName(d.Backend, o.Precision), Pass: PassForwardBackward, L: L, Arch: name,
					Shape:   Shape{"d_model": mo.DModel, "n_layers": mo.layers(name), "vocab": mo.Vocab, "B": B, "L": L},
					Variant: fmt.Sprintf("%s B=%d", name, B), Reps: reps, Samples: samples,
					FLOPs: 3 * md.m.FLOPsPerToken(L) * float64(B*L), Params: md.count, Tokens: B * L, PeakBytes: peak}
				if d.Memory == nil {
					r.HeapBytes = heapInuse()
				}
				if t.run.Graphed() {
					r.Name += "/step=graph"
					r.Variant += " graph"
				}
				if d.Counter != nil {
					r.StreamOps, r.HostWaits = countStep(d.Counter, t.step)
				}
				if o.Profile {
					r.Profile = profileStep(d, o, bname, t.eagerStep)
				}
				t.free()
				r.derive(f.Ceilings)
				f.Results = append(f.Results, r)
				o.progress("%-56s %10s/step  %9.4g tokens/s  peak %s\n", bname, HumanSeconds(r.Median), r.TokensPerS, humanBytes(peak))
			}
		}
	}
	return nil
}

// countStep runs step once more and returns the device operations it
// queued and the host waits it made.
func countStep(c StreamCounter, step func()) (ops, waits int64) {
	o0, w0 := c.StreamCounts()
	step()
	o1, w1 := c.StreamCounts()
	return o1 - o0, w1 - w0
}

// profileStep runs step once more under d's profiler, or says why it
// cannot.
func profileStep(d *Device, o Options, name string, step func()) *nn.Profile {
	if d.Profiler == nil {
		o.progress("%-56s not profiled: backend %s cannot time its operations\n", name, d.Backend.Name())
		return nil
	}
	d.Profiler.StartProfile()
	step()
	p, err := d.Profiler.StopProfile()
	if err != nil {
		o.progress("%-56s not profiled: %v\n", name, err)
		return nil
	}
	return &p
}

// runGenerate times step-mode generation per architecture and batch size:
// the prompt consumed in one Step, then NewTokens greedy steps of one
// token; a sample is the whole generation, with the prompt (prefill) and
// the new tokens (decode) also timed apart. The tokens of an architecture
// whose step is replayable are decoded by replaying one captured Step
// (decodeGraph) where the backend can capture, unless Options.Eager;
// the others decode eagerly.
func runGenerate(ctx context.Context, d *Device, o Options, f *File) error {
	rng := rand.New(rand.NewPCG(o.Seed, 9))
	mo := o.Model
	_, batches := o.modelGrid(d.GPU)
	for _, name := range o.archs() {
		for _, B := range batches {
			if stopped(ctx, f) {
				return nil
			}
			res, err := generate(d, o, name, B, rng)
			if err != nil {
				bname := modelName("Generate", name, mo, o.Precision, "B", B, "prompt", mo.Prompt, "new", mo.NewTokens)
				f.Skipped = append(f.Skipped, Skip{bname, err.Error()})
				o.progress("%-64s skipped: %v\n", bname, err)
				continue
			}
			res.derive(f.Ceilings)
			f.Results = append(f.Results, *res)
			o.progress("%-64s %10s  %9.4g tokens/s  state %s\n", res.Name, HumanSeconds(res.Median), res.TokensPerS, humanBytes(res.StateBytes))
		}
	}
	return nil
}

// decodeGraph is the decode of a generation by graph replay: the first
// token's Step is captured once the prompt is in the state, and every
// token replays it, fed the last token's ids through one host slice.
type decodeGraph struct {
	cp     nn.Capturer
	g      nn.Graph
	tp     *nn.Tape // the captured Step's tape: its logits are read after each launch
	logits *nn.Tensor
	ids    []int32
	ops    int // device operations a launch replays (Graph.Ops)
}

// capture records the one-token Step of st on a tape from newTape.
func (dg *decodeGraph) capture(sm arch.Stepper, st arch.State, newTape func() *nn.Tape, B int) error {
	dg.tp, dg.ids = newTape(), make([]int32, B)
	g, err := dg.cp.Capture(func() { dg.logits = sm.Step(dg.tp, st, dg.ids, B, 1) })
	if err != nil {
		return err
	}
	dg.g, dg.ops = g, g.Ops()
	return nil
}

// token decodes the next token of every sequence from next.
func (dg *decodeGraph) token(be nn.Backend, next []int32, B, V int) []int32 {
	copy(dg.ids, next)
	if err := dg.g.Launch(); err != nil {
		panic(err)
	}
	return be.ArgmaxRows(dg.logits.Data, B, V)
}

// free releases the graph, then its tape.
func (dg *decodeGraph) free() {
	if dg.g != nil {
		if err := dg.g.Free(); err != nil {
			panic(err)
		}
	}
	if dg.tp != nil {
		dg.tp.Release()
	}
	dg.g, dg.tp = nil, nil
}

// graphFor returns the graph decode of sm on d unless o decodes eagerly or
// the backend or the architecture's step cannot, else nil and why not (""
// when o decodes eagerly).
func graphFor(d *Device, o Options, sm arch.Stepper) (*decodeGraph, string) {
	if o.Eager {
		return nil, ""
	}
	cp, ok := d.Backend.(nn.Capturer)
	if !ok {
		return nil, fmt.Sprintf("backend %s cannot capture graphs", d.Backend.Name())
	}
	if rs, ok := sm.(arch.ReplayStepper); !ok || !rs.StepReplayable() {
		return nil, "its step depends on the position (an attention cache or learned positions)"
	}
	return &decodeGraph{cp: cp}, ""
}

func generate(d *Device, o Options, name string, B int, rng *rand.Rand) (res *Result, err error) {
	mo := o.Model
	P, T, V := mo.Prompt, mo.NewTokens, mo.Vocab
	md, err := buildModel(d, name, mo, P+T, o.Seed, !mo.Fp32State)
	if err != nil {
		return nil, err
	}
	defer md.free()
	sm, ok := md.m.(arch.LastStepper)
	if !ok {
		return nil, fmt.Errorf("%s has no step mode that returns the last logits (arch.LastStepper)", name)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	probe := sm.NewState(1)
	lp, _ := probe.(arch.LowPrecisionState)
	bname := modelName("Generate", name, mo, o.Precision, "B", B, "prompt", P, "new", T) + stateName(lp != nil && lp.LowPrecision())
	probe.Free()
	dg, why := graphFor(d, o, sm)
	if dg != nil {
		bname += "/decode=graph"
	} else if why != "" {
		o.progress("%-64s decodes eagerly: %s\n", bname, why)
	}
	be := md.be
	// The weights are fixed: the tapes copy them to the activation type
	// once between them (a bf16 model's weights), not once per token.
	casts := nn.NewCasts(be)
	defer casts.Free()
	newTape := func() *nn.Tape { return nn.NewTape(be, false).ShareCasts(casts) }
	prompts := make([][]int32, 2)
	for i := range prompts {
		prompts[i] = make([]int32, B*P)
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(V))
		}
	}
	var st arch.State
	var next []int32
	n := 0
	prefill := func() {
		tp := newTape()
		defer tp.Release()
		// Only each sequence's last logits: the prompt's (B·P, V) are never held.
		next = be.ArgmaxRows(sm.StepLast(tp, st, prompts[n%len(prompts)], B, P).Data, B, V)
	}
	token := func() { // one decoded token of every sequence
		if dg != nil {
			next = dg.token(be, next, B, V)
			return
		}
		tp := newTape()
		defer tp.Release()
		next = be.ArgmaxRows(sm.Step(tp, st, next, B, 1).Data, B, V)
	}
	decode := func() {
		for range T {
			token()
		}
	}
	// captureDecode records the one-token Step once the prompt is in the
	// state (its cache allocated, its position set), untimed, as a
	// generation library captures its graphs before it decodes; the
	// capture runs nothing. end frees that graph, then the state it runs on.
	captureDecode := func() error {
		if dg == nil {
			return nil
		}
		return dg.capture(sm, st, newTape, B)
	}
	end := func() {
		if dg != nil {
			dg.free()
		}
		st.Free()
	}
	timer := d.timer()
	meter := d.meter(md.tr)
	var total, pre, dec []float64
	var stateBytes, peak int64
	sample := func() error {
		st = sm.NewState(B)
		defer end()
		meter.ResetPeak()
		p, err := timer.Time(1, prefill)
		if err != nil {
			return err
		}
		if err := captureDecode(); err != nil {
			return err
		}
		q, err := timer.Time(1, decode)
		if err != nil {
			return err
		}
		stateBytes, peak = st.Bytes(), max(peak, meter.PeakBytes())
		n++
		total, pre, dec = append(total, (p+q)/1e3), append(pre, p/1e3), append(dec, q/1e3)
		return nil
	}
	// Warm up: whole generations until the warm-up time is spent (at
	// least one), then the samples.
	for spent := 0.0; len(total) == 0 || spent < o.Warmup.Seconds(); {
		if err := sample(); err != nil {
			return nil, err
		}
		spent += total[len(total)-1]
	}
	total, pre, dec, peak = nil, nil, nil, 0
	for range o.Repeat {
		if err := sample(); err != nil {
			return nil, err
		}
	}
	r := &Result{Name: bname, Suite: "generate", Op: "generate", Impl: implName(d.Backend, o.Precision), Pass: PassForward, L: P + T, Arch: name,
		Shape:   Shape{"d_model": mo.DModel, "n_layers": mo.layers(name), "vocab": V, "B": B, "prompt": P, "new": T},
		Variant: fmt.Sprintf("%s B=%d", name, B), Reps: 1, Samples: total,
		FLOPs:  float64(B) * (md.m.FLOPsPerToken(P)*float64(P) + md.m.FLOPsPerToken(P+T)*float64(T)),
		Params: md.count, Tokens: B * T, PeakBytes: peak, StateBytes: stateBytes,
		PrefillS: median(pre), DecodeS: median(dec), Graph: dg != nil}
	if dg != nil {
		r.Variant += " graph"
		r.GraphOps = int64(dg.ops)
	}
	if d.Counter != nil || o.Profile {
		// One more decoded token after a prompt, counted (launches and
		// host waits per token) and profiled: decode runs a token at a
		// time, so its budget is where per-launch costs show.
		st = sm.NewState(B)
		defer end()
		prefill()
		if err := captureDecode(); err != nil {
			return nil, err
		}
		if d.Counter != nil {
			r.StreamOps, r.HostWaits = countStep(d.Counter, token)
		}
		if o.Profile {
			r.Profile = profileStep(d, o, bname, token)
		}
	}
	return r, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return quantile(s, 0.5)
}

// humanBytes writes a size in KiB, MiB or GiB with 3 significant digits.
func humanBytes(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n < 1<<20:
		return fmt.Sprintf("%.3g KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.3g MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.3g GiB", float64(n)/(1<<30))
}
