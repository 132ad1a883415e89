package train

import (
	"strings"
	"testing"

	"seqbench/tasks"
)

func TestDeriveSteps(t *testing.T) {
	lm := &tasks.LMConfig{Name: "lm", SeqLen: 64}
	c := DefaultConfig()
	c.Steps, c.BatchSize, c.Warmup = 0, 8, 10
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.DeriveSteps(10_000, lm); err != nil {
		t.Fatal(err)
	}
	// 20 tokens per parameter: 200,000 tokens at 8·64 per step.
	if c.Steps != 391 {
		t.Fatalf("steps %d, want ⌈200000/512⌉ = 391", c.Steps)
	}
	c.Steps, c.TokensPerParam = 0, 5
	if err := c.DeriveSteps(10_000, lm); err != nil || c.Steps != 98 {
		t.Fatalf("tokens_per_param 5: steps %d, %v; want 98", c.Steps, err)
	}
	// Steps that are set stay, and the resolved config (the run id) does
	// not mention tokens_per_param.
	c = DefaultConfig()
	if err := c.DeriveSteps(10_000, lm); err != nil || c.Steps != 1000 {
		t.Fatalf("steps 1000 changed to %d, %v", c.Steps, err)
	}
	y, err := Spec{Task: lm, Train: c}.ResolvedYAML()
	if err != nil || strings.Contains(string(y), "tokens_per_param") || !strings.Contains(string(y), "steps: 1000") {
		t.Fatalf("resolved config:\n%s %v", y, err)
	}
}

func TestDeriveStepsErrors(t *testing.T) {
	lm := &tasks.LMConfig{Name: "lm", SeqLen: 64}
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Steps, c.TokensPerParam = 0, 0 }, "field train.tokens_per_param: 0 is not allowed (must be > 0 when steps is 0"},
		{func(c *Config) { c.TokensPerParam = 10 }, "field train.tokens_per_param: 10 is not allowed (only used with steps: 0, and steps is 1000)"},
		{func(c *Config) { c.TokensPerParam = -1 }, "field train.tokens_per_param: -1"},
		{func(c *Config) { c.Steps = -3 }, "field train.steps: -3"},
	} {
		cfg := DefaultConfig()
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Steps = 0
	spec, _ := tasks.Lookup("selective_copy")
	if err := cfg.DeriveSteps(1000, spec.New()); err == nil || !strings.Contains(err.Error(), "field train.steps") {
		t.Errorf("a task without one sequence length: %v", err)
	}
	cfg.Warmup = 500
	if err := cfg.DeriveSteps(1000, lm); err == nil || !strings.Contains(err.Error(), "field train.warmup: 500") {
		t.Errorf("warm-up past the derived steps: %v", err)
	}
}
