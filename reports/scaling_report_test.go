package reports

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// An lm experiment with two archs at five sizes is a scaling study: the
// report has the fit table (each arch's exponent, from losses made to
// follow a known power law of C), the table of every run, and the figure
// with the fitted laws and the compute-optimal frontier, as PNG and SVG.
func TestScalingStudyReport(t *testing.T) {
	root := t.TempDir()
	exp := filepath.Join(root, "scaling")
	for _, a := range []struct {
		arch  string
		a, al float64
	}{{"transformer", 5, 0.05}, {"lstm", 6, 0.04}} {
		for k := range 5 {
			params := 100_000 << (2 * k)
			flops := 2 * float64(params)
			steps := 100 * (k + 1) // as tokens_per_param derives them: more for larger models
			C := 3 * flops * float64(steps*1000)
			loss := a.a * math.Pow(C, -a.al)
			writeRun(t, exp, "scaling", synthRun{arch: a.arch, params: params, flops: flops, steps: steps, evalEvery: 50, batchTok: 1000,
				task:  map[string]any{"name": "lm", "seq_len": 64},
				train: map[string]any{"steps": steps, "tokens_per_param": 20, "lr": 1e-3},
				model: map[string]any{"d_model": 32 << k},
				curve: func(int) (float64, float64) { return loss, 0 }})
		}
	}
	res, err := Load(root)
	require.NoError(t, err)
	rep, err := Write(res, root, Options{DPI: 40})
	if d := os.Getenv("SCALING_KEEP"); d != "" {
		rep, err = Write(res, d, Options{})
	}
	require.NoError(t, err)
	md, err := os.ReadFile(rep.Markdown)
	require.NoError(t, err)
	report := string(md)
	for _, want := range []string{"### Scaling fits", "### Every run of the study", "L = 5·C^−0.050", "L = 6·C^−0.040", "95% CI of α: 0.050 to 0.050", "perplexity"} {
		require.Contains(t, report, want)
	}
	var svg string
	for _, p := range rep.Plots {
		if strings.HasSuffix(p, "scaling-scaling.svg") {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			svg = string(b)
		}
	}
	require.NotEmpty(t, svg, "no scaling figure in %v", rep.Plots)
	// Steps that vary with the size are each size's recipe, not facets:
	// one learning-curve figure, and every size in the fit.
	for _, p := range rep.Plots {
		require.NotContains(t, filepath.Base(p), "steps", "a figure per step count")
	}
	require.Regexp(t, `\| transformer +\| +5 \|`, report)
	require.Contains(t, svg, "compute-optimal frontier")
	require.Contains(t, svg, "transformer: α_C 0.050 [0.050, 0.050]")
}

// Models a few parameters apart (a sweep over the attention fraction at
// equal parameters) are not a scaling study: no fit is drawn through them.
func TestEqualSizesAreNoScalingStudy(t *testing.T) {
	root := t.TempDir()
	exp := filepath.Join(root, "mix")
	for k, params := range []int{259_328, 259_280, 259_136} {
		writeRun(t, exp, "mix", synthRun{arch: "hybrid", params: params, flops: 2 * float64(params), steps: 100, evalEvery: 50,
			batchTok: 1000, task: map[string]any{"name": "lm", "seq_len": 64}, train: map[string]any{"steps": 100},
			model: map[string]any{"attention_fraction": []float64{0, 0.125, 1}[k]},
			curve: func(int) (float64, float64) { return 1.6 + 0.01*float64(k), 0 }})
	}
	res, err := Load(root)
	require.NoError(t, err)
	rep, err := Write(res, root, Options{DPI: 40})
	require.NoError(t, err)
	md, err := os.ReadFile(rep.Markdown)
	require.NoError(t, err)
	require.NotContains(t, string(md), "Scaling fits")
	require.NotContains(t, string(md), "N^−")
	for _, p := range rep.Plots {
		require.NotContains(t, filepath.Base(p), "scaling", "a scaling figure of one size")
	}
}
