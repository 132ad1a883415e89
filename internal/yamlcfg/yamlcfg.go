// Package yamlcfg holds what the registries share to read config blocks:
// strict decoding of a YAML mapping and errors that point at the line of the
// field they name.
package yamlcfg

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Value returns the scalar value of name in a mapping node ("" if absent).
func Value(n *yaml.Node, name string) string {
	if k := key(n, name); k != nil {
		return k.value.Value
	}
	return ""
}

type keyValue struct{ key, value *yaml.Node }

// key finds name in a mapping node (nil if absent).
func key(n *yaml.Node, name string) *keyValue {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return &keyValue{n.Content[i], n.Content[i+1]}
		}
	}
	return nil
}

// The yaml library reports every problem of a Load in one error,
// "yaml: construct errors: line 2: field foo not found in type arch.Config;
// line 3: ...". Strict drops the prefix and rewrites each unknown field as
// "unknown field foo (known: ...)", naming the fields that are allowed.
var (
	prefixRE  = regexp.MustCompile(`^yaml: construct errors:\s*`)
	unknownRE = regexp.MustCompile(`field (\S+) not found in type [^\s;]+`)
)

// Strict decodes a mapping node into v (a pointer to a struct with yaml
// tags), rejecting unknown fields; such an error lists the known ones.
func Strict(n *yaml.Node, v any) error {
	err := n.Load(v, yaml.WithKnownFields())
	if err == nil {
		return nil
	}
	msg := prefixRE.ReplaceAllString(err.Error(), "")
	msg = unknownRE.ReplaceAllString(msg, "unknown field $1 (known: "+strings.Join(fieldNames(v), ", ")+")")
	return errors.New(msg)
}

// fieldNames lists the yaml names of a struct's fields.
func fieldNames(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	if t.Kind() != reflect.Struct {
		return names
	}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

var fieldRE = regexp.MustCompile(`field (?:[a-z_]+\.)*([A-Za-z0-9_]+):`)

// Locate prefixes a validation error with the line of the field it names
// ("field d_model: ..." or "field task.seq_len: ..."), or of the block when
// the field is not written in it (a default).
func Locate(n *yaml.Node, err error) error {
	if err == nil {
		return nil
	}
	line := n.Line
	if m := fieldRE.FindStringSubmatch(err.Error()); m != nil {
		if k := key(n, m[1]); k != nil {
			line = k.value.Line
		}
	}
	return fmt.Errorf("line %d: %w", line, err)
}
