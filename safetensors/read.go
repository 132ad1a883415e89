package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"unicode/utf8"

	"seqbench/nn"
)

// ReadFile reads a safetensors file (see Read).
func ReadFile(path string) (map[string]Tensor, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	ts, meta, err := Read(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return ts, meta, nil
}

// Read decodes a whole safetensors file: its tensors by name and its
// __metadata__ (an empty map when absent). Every inconsistency is a
// *FormatError naming what is wrong; Read never panics on any input.
func Read(data []byte) (map[string]Tensor, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, errorf("file is %d bytes, too short for the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	rest := uint64(len(data) - 8)
	if n > MaxHeaderLen {
		return nil, nil, errorf("header length %d is absurd (at most %d bytes; not a safetensors file?)", n, MaxHeaderLen)
	}
	if n > rest {
		return nil, nil, errorf("header length %d is larger than the %d bytes that follow it (truncated file?)", n, rest)
	}
	entries, meta, err := parseHeader(data[8 : 8+n])
	if err != nil {
		return nil, nil, err
	}
	body := data[8+n:]
	if err := checkLayout(entries, len(body)); err != nil {
		return nil, nil, err
	}
	out := make(map[string]Tensor, len(entries))
	for _, e := range entries {
		out[e.name] = Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: decode(e.dtype, body[e.begin:e.end])}
	}
	return out, meta, nil
}

func errorf(format string, a ...any) *FormatError { return &FormatError{fmt.Sprintf(format, a...)} }

// entry is one tensor's header record, checked against itself.
type entry struct {
	name, dtype string
	shape       []int
	begin, end  int
}

// parseHeader decodes the JSON header. Go's encoding/json keeps the last of
// duplicate keys silently, so objects are walked token by token to reject
// them, as the format requires.
func parseHeader(h []byte) ([]entry, map[string]string, error) {
	if !utf8.Valid(h) {
		return nil, nil, errorf("header is not valid UTF-8")
	}
	if len(h) == 0 || h[0] != '{' {
		return nil, nil, errorf("header must start with '{', got %q", h[:min(len(h), 16)])
	}
	dec := json.NewDecoder(bytes.NewReader(h))
	var entries []entry
	meta := map[string]string{}
	err := walkObject(dec, "header", func(key string) error {
		if key == metadataKey {
			return parseMetadata(dec, meta)
		}
		e, err := parseEntry(dec, key)
		entries = append(entries, e)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	// The reference writer pads the header with spaces to a multiple of 8
	// bytes; anything else after the object is garbage.
	if tail := bytes.TrimLeft(h[dec.InputOffset():], " \t\r\n"); len(tail) > 0 {
		return nil, nil, errorf("header has %d bytes after its JSON object: %q", len(tail), tail[:min(len(tail), 16)])
	}
	return entries, meta, nil
}

// parseMetadata reads __metadata__ into meta: an object of strings, or null
// (which the reference implementation reads as absent).
func parseMetadata(dec *json.Decoder, meta map[string]string) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return errorf("%s is not valid JSON: %s", metadataKey, jsonReason(err, ""))
	}
	if string(raw) == "null" {
		return nil
	}
	inner := json.NewDecoder(bytes.NewReader(raw))
	return walkObject(inner, metadataKey, func(k string) error {
		var v *string
		if err := inner.Decode(&v); err != nil || v == nil {
			return errorf("%s[%s] must be a string: %s", metadataKey, quote(k), jsonReason(err, "got null"))
		}
		meta[k] = *v
		return nil
	})
}

// walkObject reads a JSON object from dec, calling fn for each key with dec
// positioned at the key's value (fn must consume it). Duplicate keys are
// errors.
func walkObject(dec *json.Decoder, what string, fn func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return errorf("%s is not valid JSON: %s", what, jsonReason(err, "truncated"))
	}
	if tok != json.Delim('{') {
		return errorf("%s must be a JSON object, got %v", what, describeToken(tok))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errorf("%s is not valid JSON: %s", what, jsonReason(err, "truncated"))
		}
		key, ok := tok.(string)
		if !ok {
			return errorf("%s is not valid JSON: key %v", what, describeToken(tok))
		}
		if seen[key] {
			return errorf("%s has the key %s twice", what, quote(key))
		}
		seen[key] = true
		if err := fn(key); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return errorf("%s is not valid JSON: %s", what, jsonReason(err, "truncated"))
	}
	return nil
}

// parseEntry reads {"dtype": ..., "shape": [...], "data_offsets": [b, e]}
// and checks it on its own (the layout against the others comes later).
func parseEntry(dec *json.Decoder, name string) (entry, error) {
	what := "tensor " + quote(name)
	var dtype *string
	var shape, offsets *[]int
	err := walkObject(dec, what, func(key string) error {
		var err error
		isNull := false
		switch key {
		case "dtype":
			err = dec.Decode(&dtype)
			isNull = dtype == nil
		case "shape":
			err = dec.Decode(&shape)
			isNull = shape == nil
		case "data_offsets":
			err = dec.Decode(&offsets)
			isNull = offsets == nil
		default:
			return errorf("%s: unknown field %s (a tensor has dtype, shape and data_offsets)", what, quote(key))
		}
		if err != nil || isNull {
			return errorf("%s: %s: %s", what, key, jsonReason(err, "is null"))
		}
		return nil
	})
	e := entry{name: name}
	switch {
	case err != nil:
		return e, err
	case dtype == nil:
		return e, errorf("%s: missing dtype", what)
	case shape == nil:
		return e, errorf("%s: missing shape", what)
	case offsets == nil:
		return e, errorf("%s: missing data_offsets", what)
	}
	e.dtype, e.shape = *dtype, *shape
	if e.shape == nil {
		e.shape = []int{}
	}
	size, ok := elemSize(e.dtype)
	if !ok {
		return e, dtypeError(what, e.dtype)
	}
	if len(*offsets) != 2 {
		return e, errorf("%s: data_offsets %v must be two numbers [begin, end]", what, *offsets)
	}
	e.begin, e.end = (*offsets)[0], (*offsets)[1]
	if e.begin < 0 || e.end < e.begin {
		return e, errorf("%s: data_offsets [%d, %d] are not a byte range (need 0 ≤ begin ≤ end)", what, e.begin, e.end)
	}
	count, ok := numElems(e.shape, math.MaxInt/size)
	if !ok {
		return e, errorf("%s: shape %v has a negative dimension or overflows", what, e.shape)
	}
	if count*size != e.end-e.begin {
		return e, errorf("%s: shape %v of %s needs %d bytes, but data_offsets [%d, %d] hold %d",
			what, e.shape, e.dtype, count*size, e.begin, e.end, e.end-e.begin)
	}
	return e, nil
}

// checkLayout checks that the entries' byte ranges tile the data buffer of
// n bytes: in range, no overlaps, no holes, nothing after the last.
func checkLayout(entries []entry, n int) error {
	for _, e := range entries {
		if e.end > n {
			return errorf("tensor %s: data_offsets [%d, %d] run past the end of the %d-byte data buffer (truncated file?)",
				quote(e.name), e.begin, e.end, n)
		}
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.name, b.name))
	})
	pos, prev := 0, ""
	for _, e := range sorted {
		switch {
		case e.begin < pos:
			return errorf("tensors %s and %s overlap: data_offsets [%d, %d] start before %d, the end of %s",
				quote(prev), quote(e.name), e.begin, e.end, pos, quote(prev))
		case e.begin > pos:
			after := "the start"
			if prev != "" {
				after = quote(prev)
			}
			return errorf("bytes [%d, %d) of the data buffer, between %s and tensor %s, belong to no tensor (the format allows no holes)",
				pos, e.begin, after, quote(e.name))
		}
		pos, prev = e.end, e.name
	}
	if pos < n {
		return errorf("%d bytes of trailing data after the last tensor (the tensors cover %d of %d bytes)", n-pos, pos, n)
	}
	return nil
}

// decode converts little-endian BF16, F32 or F64 bytes to float64.
func decode(dtype string, b []byte) []float64 {
	if dtype == BF16 {
		x := make([]float64, len(b)/2)
		for i := range x {
			x[i] = float64(nn.BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:])))
		}
		return x
	}
	if dtype == F32 {
		x := make([]float64, len(b)/4)
		for i := range x {
			x[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return x
	}
	x := make([]float64, len(b)/8)
	for i := range x {
		x[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return x
}

// jsonReason turns a decoding error into a short reason; a nil error stands
// for a null value (or whatever ifNil says).
func jsonReason(err error, ifNil string) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return ifNil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case errors.As(err, &syn):
		return fmt.Sprintf("%v (at byte %d of the header)", syn, syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("got a JSON %s where a %v is needed", typ.Value, typ.Type)
	}
	return err.Error()
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return "'" + v.String() + "'"
	case string:
		return quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}
