// Package safetensors reads and writes the safetensors tensor file format
// (huggingface/safetensors) for the float tensors seqbench exchanges with
// PyTorch: op inputs and outputs, golden vectors, checkpoints.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
// header, then the tensors' raw little-endian bytes (row-major):
//
//	{"__metadata__": {"op": "attention"},
//	 "q": {"dtype": "F64", "shape": [1, 3, 55, 8], "data_offsets": [0, 10560]},
//	 "k": {"dtype": "F64", "shape": [1, 3, 55, 8], "data_offsets": [10560, 21120]}}
//
// data_offsets are [begin, end) byte ranges of the data buffer after the
// header. BF16, F32 and F64 tensors are supported; values are exchanged
// as float64 (exactly: every BF16 and F32 value is a float64 one), and
// written to BF16 or F32 rounded once to nearest, ties to even. The reader is strict as the format requires: the header must be
// an object of unique keys whose __metadata__ maps strings to strings; each
// tensor's shape × dtype size must equal its byte range; and the ranges
// must tile the data buffer exactly, without overlaps, holes or trailing
// bytes (the spec forbids holes so that a file cannot hide a second,
// polyglot payload).
package safetensors

import (
	"math"
	"slices"
	"strings"
)

// The dtypes this package converts.
const (
	BF16 = "BF16" // bfloat16, converted by nn's BF16 functions
	F32  = "F32"
	F64  = "F64"
)

// MaxHeaderLen is the largest header accepted, as in the reference
// implementation (100 MB): a larger length is a corrupt or hostile file.
const MaxHeaderLen = 100_000_000

// metadataKey is the header key of the free-form string map.
const metadataKey = "__metadata__"

// Tensor is one named tensor. Data is row-major with NumElems(Shape)
// elements; a shape of [] is a scalar (one element).
type Tensor struct {
	Name  string
	DType string // BF16, F32 or F64: as stored (Read), or as wanted (Write with dtype "")
	Shape []int
	Data  []float64
}

// FormatError says why bytes are not a valid safetensors file (or why
// tensors cannot be written as one).
type FormatError struct{ Msg string }

func (e *FormatError) Error() string { return "safetensors: " + e.Msg }

// elemSize is the size in bytes of a supported dtype's elements.
func elemSize(dtype string) (int, bool) {
	switch dtype {
	case BF16:
		return 2, true
	case F32:
		return 4, true
	case F64:
		return 8, true
	}
	return 0, false
}

// otherDTypes are the reference implementation's dtypes that this package
// recognises but does not convert.
var otherDTypes = []string{"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
	"I16", "U16", "F16", "I32", "U32", "I64", "U64", "C64"}

// dtypeError explains a dtype that is not BF16, F32 or F64.
func dtypeError(what, dtype string) *FormatError {
	if slices.Contains(otherDTypes, dtype) {
		return &FormatError{what + ": dtype " + quote(dtype) + " is not supported (supported: BF16, F32, F64)"}
	}
	return &FormatError{what + ": unknown dtype " + quote(dtype) + " (supported: BF16, F32, F64)"}
}

// numElems multiplies a shape's dimensions, reporting ok = false on a
// negative dimension or an overflow past limit.
func numElems(shape []int, limit int) (n int, ok bool) {
	n = 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > limit/d) {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// NumElems is the number of elements of a shape (1 for a scalar).
func NumElems(shape []int) int {
	n, _ := numElems(shape, math.MaxInt)
	return n
}

func quote(s string) string {
	var b strings.Builder
	writeJSONString(&b, s)
	return b.String()
}
