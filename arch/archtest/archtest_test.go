package archtest_test

import (
	"fmt"
	"strings"
	"testing"

	"seqbench/arch"
	"seqbench/arch/archtest"
	"seqbench/arch/rnn"
	"seqbench/cpukernels"
	"seqbench/nn"
)

// The suite must fail a broken model, not only pass a good one: each test
// here runs a check on a tiny LSTM, which must pass, and on the same model
// with one deliberate defect, which must fail with the message named.

// recorder is a testing.TB that collects failures instead of reporting
// them; Fatal stops the check by a panic that failures recovers.
type recorder struct {
	testing.TB
	errs []string
}

type fatal struct{}

func (r *recorder) Helper()             {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(fatal{})
}

// failures runs check and returns what it reported.
func failures(t *testing.T, check func(tb testing.TB)) (errs []string) {
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(fatal); !ok {
				panic(p)
			}
		}
		errs = r.errs
	}()
	check(r)
	return r.errs
}

// mutant builds its config's model and hands it to wrap.
type mutant struct {
	arch.Config
	wrap func(arch.Stepper) arch.Model
}

func (c mutant) Build(env arch.Env) (arch.Model, error) {
	m, err := c.Config.Build(env)
	if err != nil {
		return nil, err
	}
	return c.wrap(m.(arch.Stepper)), nil
}

func lstm() *rnn.Config {
	c := rnn.DefaultConfig("lstm")
	c.DModel, c.NLayers = 6, 2
	return c
}

// expect checks that check passes on the sound model and fails on the
// mutant with a message containing want.
func expect(t *testing.T, want string, wrap func(arch.Stepper) arch.Model, check func(tb testing.TB, c archtest.Case)) {
	t.Helper()
	if errs := failures(t, func(tb testing.TB) { check(tb, archtest.Case{Name: "sound", Config: lstm()}) }); len(errs) != 0 {
		t.Errorf("the sound model failed: %s", strings.Join(errs, "; "))
	}
	errs := failures(t, func(tb testing.TB) { check(tb, archtest.Case{Name: "mutant", Config: mutant{lstm(), wrap}}) })
	if len(errs) == 0 {
		t.Fatalf("the mutant passed")
	}
	t.Logf("the mutant fails: %s", errs[0])
	if !strings.Contains(strings.Join(errs, "\n"), want) {
		t.Errorf("the mutant failed, but not saying %q: %s", want, strings.Join(errs, "; "))
	}
}

// forgetful drops the carried state at every Step.
type forgetful struct{ arch.Stepper }

func (m forgetful) Step(tp *nn.Tape, st arch.State, ids []int32, B, T int) *nn.Tensor {
	st.Free()
	return m.Stepper.Step(tp, st, ids, B, T)
}

func TestStepCatchesLostCarry(t *testing.T) {
	b := cpukernels.New[float64]()
	wrap := func(m arch.Stepper) arch.Model { return forgetful{m} }
	expect(t, "step logits differ from Forward", wrap, func(tb testing.TB, c archtest.Case) {
		archtest.CheckStepMatchesForward(tb, b, []archtest.Case{c}, archtest.StepOptions{
			Vocab: 7, B: 2, L: 5, Chunks: [][]int{{1, 1, 1, 1, 1}}, Err: archtest.Rel(1), Tol: 1e-12,
		})
	})
	expect(t, "did not see the carried state", wrap, func(tb testing.TB, c archtest.Case) {
		archtest.CheckStepContract(tb, b, c, archtest.FreedRestarts)
	})
}

// peeking lets position t see token t+1.
type peeking struct{ arch.Stepper }

func (m peeking) Forward(tp *nn.Tape, ids []int32, B, L int) *nn.Tensor {
	ahead := append([]int32(nil), ids...)
	for i := range ahead {
		if i%L < L-1 {
			ahead[i] = ids[i+1]
		}
	}
	return m.Stepper.Forward(tp, ahead, B, L)
}

func TestCausalCatchesLookAhead(t *testing.T) {
	b := cpukernels.New[float64]()
	expect(t, "changed logits of sequence 0 position", func(m arch.Stepper) arch.Model { return peeking{m} },
		func(tb testing.TB, c archtest.Case) {
			archtest.CheckCausal(tb, b, []archtest.Case{c}, archtest.CausalOptions{Vocab: 7, B: 2, L: 4})
		})
}

// detached adds to the logits a function of the first weight that the tape
// does not see, so its gradient is wrong.
type detached struct {
	arch.Stepper
	b nn.Backend
}

func (m detached) Forward(tp *nn.Tape, ids []int32, B, L int) *nn.Tensor {
	logits := m.Stepper.Forward(tp, ids, B, L)
	w := m.b.Read(m.Params()[0].T.Data)[0]
	vocab := logits.Dim(1)
	shift := make([]float64, logits.Len())
	for i := range shift {
		shift[i] = 0.1 * w * w * float64(i%vocab) // not a constant per row: softmax would ignore that
	}
	return tp.Add(logits, nn.NewConst(m.b, shift, logits.Shape...))
}

func TestGradientsCatchUntrackedPath(t *testing.T) {
	b := cpukernels.New[float64]()
	expect(t, "gradient check failed", func(m arch.Stepper) arch.Model { return detached{m, b} },
		func(tb testing.TB, c archtest.Case) {
			archtest.CheckGradients(tb, b, []archtest.Case{c}, archtest.GradOptions{Vocab: 7, B: 2, L: 4, H: 1e-3, Tol: 1e-6})
		})
}

// hiding leaves a parameter out of Params.
type hiding struct{ arch.Stepper }

func (m hiding) Params() []nn.Param { return m.Stepper.Params()[1:] }

func TestParamsCatchesMissingParam(t *testing.T) {
	b := cpukernels.New[float64]()
	expect(t, "NumParams says", func(m arch.Stepper) arch.Model { return hiding{m} },
		func(tb testing.TB, c archtest.Case) {
			archtest.CheckParams(tb, b, []archtest.Case{c}, archtest.ParamOptions{
				Vocab:  7,
				Decays: func(p nn.Param) bool { return strings.Contains(p.Name, "weight_") || p.Name == "lm_head.weight" },
			})
		})
}

func TestReferenceCatchesDifference(t *testing.T) {
	b := cpukernels.New[float64]()
	// The reference here is the sound model's own Forward; the mutant
	// model reads its tokens one position ahead.
	expect(t, "differs from the reference", func(m arch.Stepper) arch.Model { return peeking{m} },
		func(tb testing.TB, c archtest.Case) {
			archtest.CheckReference(tb, b, []archtest.Case{c}, archtest.RefOptions{
				Vocab: 7, B: 2, L: 4, Seed: 1, Tol: 1e-12,
				Ref: func(m arch.Model, _ arch.Config, ids []int32, B, L int) []float64 {
					if p, ok := m.(peeking); ok {
						m = p.Stepper
					}
					return archtest.Logits(b, m, ids, B, L)
				},
			})
		})
}

func TestDecodeErrorsCatchesWrongMessage(t *testing.T) {
	for _, tc := range []struct {
		c    archtest.DecodeCase
		want string
	}{
		{archtest.DecodeCase{Src: "{arch: lstm, d_model: 0}", Want: []string{"n_layers"}}, `does not mention "n_layers"`},
		{archtest.DecodeCase{Src: "{arch: lstm, d_model: 0}"}, "unexpected error"},
		{archtest.DecodeCase{Src: "{arch: lstm}", Want: []string{"d_model"}}, "no error"},
	} {
		errs := failures(t, func(tb testing.TB) { archtest.CheckDecodeErrors(tb, []archtest.DecodeCase{tc.c}) })
		if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
			t.Errorf("%s: failures %q, want one saying %q", tc.c.Src, errs, tc.want)
		}
	}
}

func TestParamNamesCatchesDifference(t *testing.T) {
	b := cpukernels.New[float64]()
	ps := archtest.Build(t, b, archtest.Case{Name: "lstm", Config: lstm()}, 7, 0, 1).Params()
	const layers = "layers.weight_ih_l0[24 6] layers.weight_hh_l0[24 6] layers.bias_ih_l0[24] layers.bias_hh_l0[24] " +
		"layers.weight_ih_l1[24 6] layers.weight_hh_l1[24 6] layers.bias_ih_l1[24] layers.bias_hh_l1[24] "
	for _, tc := range []struct{ want, fails string }{
		{"embed.weight[7 6] " + layers + "norm_f.weight[6]", ""},
		{"embed.weight[7 6] ... norm_f.weight[6]", ""},
		{"embed.weight[7 6] layers.weight_ih_l0[24 6] ... layers.bias_hh_l1[24] norm_f.weight[6]", ""},
		{"embed.weight[6 7] ... norm_f.weight[6]", "names:"},
		{"embed.weight[7 6] ... lm_head.weight[7 6]", "last names:"},
		{"embed.weight[7 6] " + layers, "names:"}, // the whole list, one short
		{"embed.weight[7 6] " + layers + "... " + layers + "norm_f.weight[6]", "want at least"},
		{"embed.weight[7 6] ... norm_f.weight", "not a list"},
	} {
		errs := strings.Join(failures(t, func(tb testing.TB) { archtest.CheckParamNames(tb, ps, tc.want) }), "\n")
		if tc.fails == "" && errs != "" || !strings.Contains(errs, tc.fails) {
			t.Errorf("%s: failures %q, want %q", tc.want, errs, tc.fails)
		}
	}
}

// onBackend wraps the model only where it is built on the backend named.
type onBackend struct {
	arch.Config
	on   nn.Backend
	wrap func(arch.Stepper) arch.Model
}

func (c onBackend) Build(env arch.Env) (arch.Model, error) {
	m, err := c.Config.Build(env)
	if err != nil || env.Backend != c.on {
		return m, err
	}
	return c.wrap(m.(arch.Stepper)), nil
}

func TestBackendsAgreeCatchesDifference(t *testing.T) {
	ref, b := cpukernels.New[float64](), cpukernels.New[float32]()
	check := func(tb testing.TB, c arch.Config) {
		archtest.CheckBackendsAgree(tb, ref, b, []archtest.Case{{Name: "lstm", Config: c}},
			archtest.AgreeOptions{Vocab: 7, B: 2, L: 4, Tol: 1e-5})
	}
	if errs := failures(t, func(tb testing.TB) { check(tb, lstm()) }); len(errs) != 0 {
		t.Errorf("float32 against float64: %s", strings.Join(errs, "; "))
	}
	for _, tc := range []struct {
		name, want string
		wrap       func(arch.Stepper) arch.Model
	}{
		{"peeking", "cpu-float32 differs from cpu-float64", func(m arch.Stepper) arch.Model { return peeking{m} }},
		{"hiding", "parameters on", func(m arch.Stepper) arch.Model { return hiding{m} }},
	} {
		errs := failures(t, func(tb testing.TB) { check(tb, onBackend{lstm(), b, tc.wrap}) })
		if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
			t.Errorf("%s on float32 only: failures %q, want one naming %q", tc.name, errs, tc.want)
		}
	}
}
