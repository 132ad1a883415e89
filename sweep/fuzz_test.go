package sweep_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "seqbench/arch/attention" // every arch the shipped configs name
	_ "seqbench/arch/mamba1"
	_ "seqbench/arch/mamba2"
	_ "seqbench/arch/rnn"
	_ "seqbench/arch/ssm"
	"seqbench/sweep"
)

// malformedExperiments are experiment files Parse must reject with a
// ConfigError: seeds of FuzzParse.
var malformedExperiments = []string{
	``,
	`{}`,
	`[]`,
	`name: x`,
	base + "bogus: 1\n", // unknown top-level field
	strings.Replace(base, "batch_size", "batchsize", 1),               // misspelled field
	strings.Replace(base, "steps: 10", "steps: -1", 1),                // impossible value
	strings.Replace(base, "lr: 1.0e-3", "lr: .nan", 1),                // not a number
	strings.Replace(base, "n_heads: 2", "n_heads: 3", 1),              // heads do not divide d_model
	strings.Replace(base, "arch: transformer", "arch: transformr", 1), // unknown arch
	strings.Replace(base, "seq_len: 32", "seq_len: 1e999", 1),         // overflow
	base + "sweep:\n  task.seqlen: [1, 2]\n",                          // a sweep path typo
	base + "sweep:\n  task.seq_len: []\n",
	base + "sweep:\n  zip: [{train.lr: [1, 2], train.seed: [1]}]\n",
	base + "sweep:\n  seed: [1, 2]\n  train.seed: [3]\n",
	"name: a\nkind: mad\n",
	"name: a\nkind: nope\n" + base[1:],
	"a: &a [1, 2]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n", // aliases
	"name: [\n",
	"name: \"\\xff\"\n",
}

// hugeExperiments pass Parse with sizes no machine can hold (the run
// itself must refuse them): Parse must not allocate by them.
var hugeExperiments = []string{
	strings.Replace(base, "seq_len: 32", "seq_len: 0x7fffffffffffffff", 1),
	strings.Replace(base, "batch_size: 4", "batch_size: 1000000000", 1),
	strings.Replace(base, "vocab: 8", "vocab: 1000000000", 1),
}

// FuzzParse: an experiment file never panics Parse; what fails is a
// ConfigError with a message, and what parses has runs, each with an id and
// the folder name <arch>-<id>, the same on a second parse.
func FuzzParse(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no shipped configs: %v", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		// Grids of hundreds of runs take most of a second to expand: as
		// seeds they would leave the fuzzer few inputs a second.
		if exp, err := sweep.Parse(data); err == nil && len(exp.Runs) <= 100 {
			f.Add(string(data))
		}
	}
	f.Add(base)
	for _, s := range append(malformedExperiments, hugeExperiments...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		exp, err := sweep.Parse([]byte(data))
		if err != nil {
			var ce *sweep.ConfigError
			if exp != nil || err.Error() == "" || !errors.As(err, &ce) {
				t.Fatalf("error %q (%T) with an experiment, empty, or not a ConfigError", err, err)
			}
			return
		}
		if len(exp.Runs) == 0 {
			t.Fatal("an experiment without runs")
		}
		again, err := sweep.Parse([]byte(data))
		if err != nil {
			t.Fatalf("second parse: %v", err)
		}
		for i, r := range exp.Runs {
			if r.ID == "" || r.Name != r.Arch+"-"+r.ID || again.Runs[i].ID != r.ID {
				t.Fatalf("run %d: id %q, name %q (arch %q), second parse %q", i, r.ID, r.Name, r.Arch, again.Runs[i].ID)
			}
		}
	})
}

// The malformed seeds are rejected (so that the fuzzer starts from errors,
// not from files it happens to accept).
func TestMalformedExperimentsRejected(t *testing.T) {
	for i, s := range malformedExperiments {
		if _, err := sweep.Parse([]byte(s)); err == nil {
			t.Errorf("case %d accepted:\n%s", i, s)
		}
	}
}
