package yamlcfg

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v4"
)

type testConfig struct {
	DModel int    `yaml:"d_model"`
	Name   string `yaml:"name,omitempty"`
	Hidden int    `yaml:"-"`
}

// mapping parses src and returns its top mapping node.
func mapping(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

// Strict on the yaml library's own errors: the prefix goes, every unknown
// field names the known ones, other errors keep their line.
func TestStrict(t *testing.T) {
	var ok testConfig
	if err := Strict(mapping(t, "d_model: 4\nname: x\n"), &ok); err != nil || ok.DModel != 4 || ok.Name != "x" {
		t.Fatalf("Strict = %v, %+v", err, ok)
	}
	cases := map[string]string{
		"d_model: 4\nfoo: 1\n":         "line 2: unknown field foo (known: d_model, name)",
		"{d_model: 4, foo: 1}":         "line 1: unknown field foo (known: d_model, name)",
		"d_model: 4\nfoo: 1\nbar: 2\n": "line 2: unknown field foo (known: d_model, name); line 3: unknown field bar (known: d_model, name)",
		"d_model: x\nfoo: 1\n":         "line 1: cannot construct !!str `x` into int; line 2: unknown field foo (known: d_model, name)",
		"d_model: x\n":                 "line 1: cannot construct !!str `x` into int",
	}
	for src, want := range cases {
		var c testConfig
		if err := Strict(mapping(t, src), &c); err == nil || err.Error() != want {
			t.Errorf("Strict(%q) = %v, want %q", src, err, want)
		}
	}
}

func TestLocate(t *testing.T) {
	n := mapping(t, "name: x\nseq_len: 8\nd_model: 0\n")
	cases := []struct {
		err  error
		want string
	}{
		{errors.New("field d_model: 0, must be ≥ 1"), "line 3: field d_model: 0, must be ≥ 1"},
		{errors.New("field task.seq_len: 8 is too short"), "line 2: field task.seq_len: 8 is too short"},
		// A field not written in the block (its default is wrong): the
		// block's line.
		{errors.New("field n_layers: 0, must be ≥ 1"), "line 1: field n_layers: 0, must be ≥ 1"},
		{errors.New("no field named"), "line 1: no field named"},
	}
	for _, c := range cases {
		got := Locate(n, c.err)
		if got == nil || got.Error() != c.want || !errors.Is(got, c.err) {
			t.Errorf("Locate(%q) = %v, want %q wrapping it", c.err, got, c.want)
		}
	}
	if Locate(n, nil) != nil {
		t.Error("Locate(nil) is not nil")
	}
}

func TestValue(t *testing.T) {
	n := mapping(t, "arch: mamba1\nd_model: 64\n")
	if got := Value(n, "arch"); got != "mamba1" {
		t.Errorf("Value(arch) = %q", got)
	}
	if got := Value(n, "missing"); got != "" {
		t.Errorf("Value(missing) = %q", got)
	}
	if got := Value(nil, "arch"); got != "" {
		t.Errorf("Value on nil = %q", got)
	}
}
