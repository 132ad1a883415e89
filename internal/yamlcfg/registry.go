package yamlcfg

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Validator is a config block that checks its own fields.
type Validator interface{ Validate() error }

// Entry is one registered kind of block: its name, a one-line description,
// and a constructor of its config holding the defaults.
type Entry[C Validator] struct {
	Name string
	Doc  string
	New  func() C
}

// Registry maps names to the configs of one kind of block (architectures,
// tasks), filled from init functions.
type Registry[C Validator] struct {
	kind    string // "arch", "task": in "unknown arch"
	key     string // the field naming the entry: "arch", "name"
	field   string // the key as the user's file spells it: "arch", "task.name"
	block   string // "model", "task": in "model mamba1: ..."
	entries map[string]Entry[C]
}

// NewRegistry returns an empty registry; key is the field of a block that
// names its entry.
func NewRegistry[C Validator](kind, block, key, field string) *Registry[C] {
	return &Registry[C]{kind: kind, key: key, field: field, block: block, entries: map[string]Entry[C]{}}
}

// Add registers an entry; a name registered twice is a programming error.
func (r *Registry[C]) Add(e Entry[C]) {
	if _, dup := r.entries[e.Name]; dup {
		panic(r.kind + ": " + e.Name + " registered twice")
	}
	r.entries[e.Name] = e
}

// Names lists the registered names, sorted.
func (r *Registry[C]) Names() []string {
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup finds an entry; the error lists the known names.
func (r *Registry[C]) Lookup(name string) (Entry[C], error) {
	e, ok := r.entries[name]
	if !ok {
		return Entry[C]{}, fmt.Errorf("unknown %s %q (known: %s)", r.kind, name, strings.Join(r.Names(), ", "))
	}
	return e, nil
}

// Decode reads a block: it finds the entry named by the key field, decodes
// the whole block strictly (unknown fields are errors, listing the known
// ones) into that entry's config and validates it; errors carry the line
// of the field they name.
func (r *Registry[C]) Decode(node *yaml.Node) (C, error) {
	var zero C
	name := Value(node, r.key)
	if name == "" {
		return zero, fmt.Errorf("line %d: %s block has no `%s` field (known: %s)", node.Line, r.block, r.key, strings.Join(r.Names(), ", "))
	}
	e, err := r.Lookup(name)
	if err != nil {
		return zero, Locate(node, fmt.Errorf("field %s: %w", r.field, err))
	}
	cfg := e.New()
	if err := Strict(node, cfg); err != nil {
		return zero, fmt.Errorf("%s %s: %w", r.block, name, err)
	}
	if err := cfg.Validate(); err != nil {
		return zero, Locate(node, fmt.Errorf("%s %s: %w", r.block, name, err))
	}
	return cfg, nil
}
