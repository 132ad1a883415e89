package gpukernels

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"

	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

// The Go↔CUDA contract of each kernel family is declared on the Go side
// only, in the family's .go file (defineContract): the constants both sides
// use (block sizes, items per thread) and the parameter structs of the
// kernels that take one. kernelSource emits them into the family's source
// as #defines and C structs ahead of the .cu file, so the .cu never states
// a constant or a layout of its own and the two sides cannot drift apart.

// devPtr is a device address inside a params struct (nil buffer: 0). Its C
// type is the field's `cu` tag.
type devPtr uint64

// ptr is the devPtr of b (0 when b is nil).
func ptr(b *Buffer) devPtr { return devPtr(pArg(b)) }

// contract is what a family declares to its .cu: constants, which may
// depend on the element type, and params structs by their C names. Each
// family's .go file registers its own (defineContract), so a new kernel
// touches its .cu and its .go file only.
type contract struct {
	consts  func(dt nn.DType) map[string]int
	structs []cStruct
}

type cStruct struct {
	name string
	v    any
}

var contracts = map[string]contract{}

// defineContract registers family's contract; it returns nothing useful
// and is called as `var _ = defineContract(...)` at package level.
func defineContract(family string, c contract) struct{} {
	if _, dup := contracts[family]; dup {
		panic("gpukernels: two contracts for family " + family)
	}
	contracts[family] = c
	return struct{}{}
}

// familyConstants returns the #defines of family for element type dt.
func familyConstants(family string, dt nn.DType) map[string]int {
	if c := contracts[family]; c.consts != nil {
		return c.consts(dt)
	}
	return nil
}

// structName is the C name of params struct type t.
func structName(t reflect.Type) string {
	for _, c := range contracts {
		for _, s := range c.structs {
			if reflect.TypeOf(s.v) == t {
				return s.name
			}
		}
	}
	panic(fmt.Sprintf("gpukernels: %s is not a params struct of any family's contract", t))
}

// contractSource is the C text of family's constants and structs: sorted
// #defines, then each struct with a static_assert of its size, which NVRTC
// checks against Go's at compile time. Every field is 8 bytes at offset
// 8·i (structLayout checks that on the Go side), so equal sizes mean equal
// layouts.
func contractSource(family string, dt nn.DType) string {
	var b strings.Builder
	consts := familyConstants(family, dt)
	names := make([]string, 0, len(consts))
	for k := range consts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "#define %s %d\n", k, consts[k])
	}
	for _, s := range contracts[family].structs {
		b.WriteString(structSource(s.name, reflect.TypeOf(s.v)))
	}
	return b.String()
}

// structField is one field of a params struct as both sides see it.
type structField struct {
	goName, cType string
	offset        uintptr
	kind          reflect.Kind
}

var layouts sync.Map // reflect.Type → []structField

// structLayout returns t's fields; it panics on a field type that has no
// 8-byte C counterpart, so a bad struct fails the first test that loads it.
func structLayout(t reflect.Type) []structField {
	if l, ok := layouts.Load(t); ok {
		return l.([]structField)
	}
	var fs []structField
	for i := range t.NumField() {
		f := t.Field(i)
		sf := structField{goName: f.Name, offset: f.Offset, kind: f.Type.Kind()}
		switch {
		case f.Type == reflect.TypeOf(devPtr(0)):
			sf.cType = f.Tag.Get("cu")
			if !strings.HasSuffix(sf.cType, "*") {
				panic(fmt.Sprintf("gpukernels: %s.%s: a devPtr needs a `cu` tag naming its C pointer type", t.Name(), f.Name))
			}
		case f.Type.Kind() == reflect.Int64:
			sf.cType = "i64"
		case f.Type.Kind() == reflect.Float64:
			sf.cType = "double"
		default:
			panic(fmt.Sprintf("gpukernels: %s.%s: type %s has no 8-byte C counterpart (devPtr, int64, float64)", t.Name(), f.Name, f.Type))
		}
		if sf.offset != uintptr(8*i) {
			panic(fmt.Sprintf("gpukernels: %s.%s is at offset %d, not %d", t.Name(), f.Name, sf.offset, 8*i))
		}
		fs = append(fs, sf)
	}
	layouts.Store(t, fs)
	return fs
}

func structSource(name string, t reflect.Type) string {
	var b strings.Builder
	fmt.Fprintf(&b, "struct %s {\n", name)
	for _, f := range structLayout(t) {
		fmt.Fprintf(&b, "    %s %s;\n", f.cType, f.goName)
	}
	fmt.Fprintf(&b, "};\nstatic_assert(sizeof(%s) == %d, \"%s: size differs from Go's\");\n", name, t.Size(), name)
	return b.String()
}

// packStruct returns v's fields as the 8-byte words of its C layout.
func packStruct(v any) []uint64 {
	rv := reflect.ValueOf(v)
	fs := structLayout(rv.Type())
	words := make([]uint64, len(fs))
	for i, f := range fs {
		fv := rv.Field(i)
		switch f.kind {
		case reflect.Float64:
			words[i] = math.Float64bits(fv.Float())
		case reflect.Int64:
			words[i] = uint64(fv.Int())
		default:
			words[i] = fv.Uint()
		}
	}
	return words
}

// launchStruct launches k with one by-value argument, the params struct p.
func (be *Backend) launchStruct(op string, k *kernel, grid, block cuda.Dim3, smem int, p any) {
	checkArgs(op, k, 1)
	if name := structName(reflect.TypeOf(p)); len(k.params) == 1 && !strings.Contains(k.params[0], name+" ") {
		panic(fmt.Sprintf("gpukernels.%s: kernel %s takes (%s), the launch passes a %s", op, k.name, k.params[0], name))
	}
	be.allowSmem(op, k, smem)
	if grid.X == 0 || grid.Y == 0 || grid.Z == 0 {
		return
	}
	be.profStart(op)
	be.checkLaunch(op, k, be.drv.LaunchPacked(k.f, grid, block, uint32(smem), be.stream, packStruct(p)))
}
