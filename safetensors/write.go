package safetensors

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"seqbench/internal/atomicfile"
	"seqbench/nn"
)

// WriteFile writes tensors to path atomically: into a temporary file in the
// same folder, synced, then renamed over path, so a reader never sees a
// half-written file. See Write for the arguments.
func WriteFile(path string, tensors []Tensor, dtype string, meta map[string]string) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, tensors, dtype, meta) })
}

// Write encodes tensors as a safetensors file, as the reference
// implementation lays it out: tensors sorted by decreasing dtype size, then
// by name, packed one after the other; the JSON header has __metadata__
// first (omitted when meta is empty) and is padded with spaces to a
// multiple of 8 bytes, so every F64 tensor starts 8-byte aligned in the
// file. dtype (BF16, F32 or F64) converts every tensor to it; "" keeps
// each tensor's own DType. Values are rounded to F32 as float32(v) does,
// and to BF16 once, to nearest with ties to even (nn.BF16FromFloat64).
func Write(w io.Writer, tensors []Tensor, dtype string, meta map[string]string) error {
	ts, err := prepare(tensors, dtype, meta)
	if err != nil {
		return err
	}
	header := encodeHeader(ts, meta)
	bw := bufio.NewWriterSize(w, 1<<16)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	bw.Write(n[:])
	bw.Write(header)
	var buf [8]byte
	for _, t := range ts {
		for _, v := range t.Data {
			switch t.DType {
			case BF16:
				binary.LittleEndian.PutUint16(buf[:], nn.BF16FromFloat64(v))
				bw.Write(buf[:2])
			case F32:
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(float32(v)))
				bw.Write(buf[:4])
			default:
				binary.LittleEndian.PutUint64(buf[:], math.Float64bits(v))
				bw.Write(buf[:])
			}
		}
	}
	return bw.Flush() // a bufio.Writer keeps its first error
}

// prepare checks tensors and returns copies with their final dtype, in file
// order.
func prepare(tensors []Tensor, dtype string, meta map[string]string) ([]Tensor, error) {
	if dtype != "" {
		if _, ok := elemSize(dtype); !ok {
			return nil, dtypeError("Write", dtype)
		}
	}
	for k, v := range meta {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, errorf("metadata %q: %q is not valid UTF-8", k, v)
		}
	}
	ts := make([]Tensor, len(tensors))
	seen := map[string]bool{}
	for i, t := range tensors {
		what := "tensor " + quote(t.Name)
		switch {
		case t.Name == metadataKey:
			return nil, errorf("a tensor cannot be named %s (the metadata key)", metadataKey)
		case !utf8.ValidString(t.Name):
			return nil, errorf("tensor name %q is not valid UTF-8", t.Name)
		case seen[t.Name]:
			return nil, errorf("two tensors are named %s", quote(t.Name))
		}
		seen[t.Name] = true
		if dtype != "" {
			t.DType = dtype
		} else if _, ok := elemSize(t.DType); !ok {
			return nil, dtypeError(what, t.DType)
		}
		if n, ok := numElems(t.Shape, math.MaxInt/8); !ok || n != len(t.Data) {
			return nil, errorf("%s: shape %v does not hold its %d values", what, t.Shape, len(t.Data))
		}
		ts[i] = t
	}
	slices.SortFunc(ts, func(a, b Tensor) int {
		sa, _ := elemSize(a.DType)
		sb, _ := elemSize(b.DType)
		return cmp.Or(cmp.Compare(sb, sa), strings.Compare(a.Name, b.Name))
	})
	return ts, nil
}

// encodeHeader writes the compact JSON header of ts (in file order) padded
// with spaces to a multiple of 8 bytes.
func encodeHeader(ts []Tensor, meta map[string]string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	if len(meta) > 0 {
		writeJSONString(&b, metadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(meta)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, meta[k])
		}
		b.WriteByte('}')
	}
	offset := 0
	for i, t := range ts {
		if i > 0 || len(meta) > 0 {
			b.WriteByte(',')
		}
		size, _ := elemSize(t.DType)
		end := offset + size*len(t.Data)
		writeJSONString(&b, t.Name)
		b.WriteString(`:{"dtype":"` + t.DType + `","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return []byte(b.String())
}

// writeJSONString writes s as a JSON string. Unlike encoding/json it does
// not escape <, > and & (as serde_json, the reference writer).
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
