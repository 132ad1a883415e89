package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goldenDir holds the golden vectors, written by PyTorch's safetensors
// (testdata/testvectors/README.md says how).
const goldenDir = "../testdata/testvectors"

// goldenFiles lists the golden vectors; none is a failure, since they are
// part of the repository.
func goldenFiles(t testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.safetensors"))
	if len(files) == 0 {
		t.Fatalf("no golden vectors in %s", goldenDir)
	}
	return files
}

// file assembles a safetensors file from a header and a data buffer.
func file(header string, body []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), body...)
}

func f64s(xs ...float64) []byte {
	var b []byte
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

// The nine golden files read, their tensors are F64 of the declared shapes,
// their metadata names the op of the file name, and they survive a write
// and a read unchanged (bit for bit in F64, rounded to float32 in F32).
func TestReadGoldenVectors(t *testing.T) {
	files := goldenFiles(t)
	require.Len(t, files, 9)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			ts, meta, err := ReadFile(path)
			require.NoError(t, err)
			require.Contains(t, filepath.Base(path), meta["op"])
			require.Contains(t, meta, "flags")
			require.Contains(t, ts, "out")
			require.Equal(t, ts["out"].Shape, ts["dout"].Shape)
			var list []Tensor
			for name, x := range ts {
				require.Equal(t, name, x.Name)
				require.Equal(t, F64, x.DType)
				require.Len(t, x.Data, NumElems(x.Shape))
				for _, v := range x.Data {
					require.False(t, math.IsNaN(v) || math.IsInf(v, 0), "%s holds %v", name, v)
				}
				list = append(list, x)
			}

			var buf bytes.Buffer
			require.NoError(t, Write(&buf, list, "", meta))
			back, meta2, err := Read(buf.Bytes())
			require.NoError(t, err)
			require.Equal(t, meta, meta2)
			require.Equal(t, ts, back)

			buf.Reset()
			require.NoError(t, Write(&buf, list, F32, nil))
			back, meta2, err = Read(buf.Bytes())
			require.NoError(t, err)
			require.Empty(t, meta2)
			for name, x := range ts {
				require.Equal(t, F32, back[name].DType)
				require.Equal(t, x.Shape, back[name].Shape)
				for i, v := range x.Data {
					require.Equal(t, float64(float32(v)), back[name].Data[i])
				}
			}
		})
	}
}

// Write lays files out byte for byte as the reference implementation does
// (the expected bytes are from huggingface/safetensors' own tests).
func TestWriteMatchesReference(t *testing.T) {
	f32 := []float64{0, 1, 2, 3, 4, 5}
	data := []byte{0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64}
	cases := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    []byte
	}{
		{"one tensor", []Tensor{{Name: "attn.0", Shape: []int{1, 2, 3}, Data: f32}}, nil,
			file(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, data)},
		{"padded to 8 bytes", []Tensor{{Name: "attn0", Shape: []int{1, 1, 2, 3}, Data: f32}}, nil,
			file(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       `, data)},
		{"empty", nil, nil, file(`{}      `, nil)},
		{"metadata only", nil, map[string]string{"framework": "pt"},
			file(`{"__metadata__":{"framework":"pt"}}     `, nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, Write(&buf, c.tensors, F32, c.meta))
			require.Equal(t, c.want, buf.Bytes())
		})
	}
}

// Tensors are ordered F64 before F32, then by name; metadata keys sorted;
// nothing is HTML-escaped; scalars and empty tensors round-trip.
func TestWriteOrderAndRoundTrip(t *testing.T) {
	in := []Tensor{
		{Name: "b<&>", DType: F32, Shape: []int{2}, Data: []float64{1.5, -2}},
		{Name: "a", DType: F32, Shape: []int{}, Data: []float64{3}},
		{Name: "z", DType: F64, Shape: []int{1, 2}, Data: []float64{math.Pi, math.Inf(-1)}},
		{Name: "empty", DType: F64, Shape: []int{3, 0}, Data: nil},
		{Name: "quote\"\n\x01é", DType: F64, Shape: []int{1}, Data: []float64{7}},
	}
	meta := map[string]string{"op": "x", "flags": "--causal"}
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, in, "", meta))
	raw := buf.Bytes()
	n := binary.LittleEndian.Uint64(raw)
	require.Zero(t, n%8)
	header := string(raw[8 : 8+n])
	require.True(t, strings.HasPrefix(header, `{"__metadata__":{"flags":"--causal","op":"x"},"empty":{"dtype":"F64","shape":[3,0],"data_offsets":[0,0]},"quote\"\n\u0001é":`), header)
	require.Contains(t, header, `"z":{"dtype":"F64","shape":[1,2],"data_offsets":[8,24]},"a":{"dtype":"F32","shape":[],"data_offsets":[24,28]},"b<&>":`)

	ts, meta2, err := Read(raw)
	require.NoError(t, err)
	require.Equal(t, meta, meta2)
	require.Len(t, ts, len(in))
	for _, x := range in {
		got := ts[x.Name]
		require.Equal(t, x.DType, got.DType, x.Name)
		require.Equal(t, x.Shape, got.Shape, x.Name)
		require.Equal(t, len(x.Data), len(got.Data), x.Name)
		for i := range x.Data {
			require.Equal(t, x.Data[i], got.Data[i], x.Name)
		}
	}
}

// malformedCase is a malformed file and what its error must say.
type malformedCase struct {
	name string
	data []byte
	want string
}

// malformedFiles are the malformed files Read must reject: the cases of
// TestReadErrors and seeds of FuzzRead.
func malformedFiles() []malformedCase {
	one := `"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}`
	two := f64s(1, 2)
	return []malformedCase{
		{"empty file", nil, "too short"},
		{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "too short"},
		{"absurd header length", binary.LittleEndian.AppendUint64(nil, 1<<62), "absurd"},
		{"header longer than file", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "larger than the 2 bytes"},
		{"empty header", file("", nil), "must start with '{'"},
		{"header not an object", file(`[1]`, nil), "must start with '{'"},
		{"leading space", file(` {}`, nil), "must start with '{'"},
		{"not UTF-8", file("{\"\xff\":1}", nil), "UTF-8"},
		{"invalid JSON", file(`{"x":}`, nil), "not valid JSON"},
		{"truncated JSON", file(`{"x":{"dtype":"F64"`, nil), "truncated"},
		{"garbage after the object", file(`{}x`, nil), "after its JSON object"},
		{"second object", file(`{} {}`, nil), "after its JSON object"},
		{"entry not an object", file(`{"x":5}`, nil), `tensor "x" must be a JSON object`},
		{"unknown dtype", file(`{"x":{"dtype":"F99","shape":[2],"data_offsets":[0,16]}}`, two), `unknown dtype "F99" (supported: BF16, F32, F64)`},
		{"unsupported dtype", file(`{"x":{"dtype":"F16","shape":[8],"data_offsets":[0,16]}}`, two), `dtype "F16" is not supported (supported: BF16, F32, F64)`},
		{"dtype not a string", file(`{"x":{"dtype":64,"shape":[2],"data_offsets":[0,16]}}`, two), "dtype: got a JSON number"},
		{"null shape", file(`{"x":{"dtype":"F64","shape":null,"data_offsets":[0,16]}}`, two), "shape: is null"},
		{"missing dtype", file(`{"x":{"shape":[2],"data_offsets":[0,16]}}`, two), "missing dtype"},
		{"missing shape", file(`{"x":{"dtype":"F64","data_offsets":[0,16]}}`, two), "missing shape"},
		{"missing offsets", file(`{"x":{"dtype":"F64","shape":[2]}}`, two), "missing data_offsets"},
		{"unknown field", file(`{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16],"strides":[1]}}`, two), `unknown field "strides"`},
		{"duplicate field", file(`{"x":{"dtype":"F64","dtype":"F64","shape":[2],"data_offsets":[0,16]}}`, two), `the key "dtype" twice`},
		{"duplicate tensor", file(`{`+one+`,`+one+`}`, two), `the key "x" twice`},
		{"duplicate metadata", file(`{"__metadata__":{"a":"1","a":"2"}}`, nil), `the key "a" twice`},
		{"metadata not strings", file(`{"__metadata__":{"a":1}}`, nil), `__metadata__["a"] must be a string`},
		{"metadata not an object", file(`{"__metadata__":[]}`, nil), "__metadata__ must be a JSON object"},
		{"fractional dim", file(`{"x":{"dtype":"F64","shape":[2.5],"data_offsets":[0,16]}}`, two), "shape: got a JSON number 2.5"},
		{"negative dim", file(`{"x":{"dtype":"F64","shape":[-2],"data_offsets":[0,16]}}`, two), "negative dimension"},
		{"overflowing shape", file(`{"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,16]}}`, two), "overflows"},
		{"three offsets", file(`{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,8,16]}}`, two), "must be two numbers"},
		{"end before begin", file(`{"x":{"dtype":"F64","shape":[0],"data_offsets":[16,0]}}`, two), "not a byte range"},
		{"negative offset", file(`{"x":{"dtype":"F64","shape":[2],"data_offsets":[-16,0]}}`, two), "not a byte range"},
		{"size mismatch", file(`{"x":{"dtype":"F64","shape":[3],"data_offsets":[0,16]}}`, two), "shape [3] of F64 needs 24 bytes, but data_offsets [0, 16] hold 16"},
		{"F32 size mismatch", file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}`, two), "needs 8 bytes"},
		{"offsets past the end", file(`{"x":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}}`, two), "run past the end of the 16-byte data buffer"},
		{"overlap", file(`{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"y":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}`, two), `tensors "x" and "y" overlap`},
		{"same range twice", file(`{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"y":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}`, two), "overlap"},
		{"hole", file(`{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}}`, f64s(1, 2, 3)), `bytes [8, 16) of the data buffer, between "x" and tensor "y", belong to no tensor`},
		{"hole at the start", file(`{"y":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}}`, two), "between the start and tensor"},
		{"trailing garbage", file(`{`+one+`}`, f64s(1, 2, 3)), "8 bytes of trailing data"},
		{"data without tensors", file(`{}`, []byte{1}), "1 bytes of trailing data"},
	}
}

// Every malformed file is an error that says what is wrong.
func TestReadErrors(t *testing.T) {
	for i, c := range malformedFiles() {
		t.Run(c.name, func(t *testing.T) {
			ts, meta, err := Read(c.data)
			require.Error(t, err, "case %d", i)
			require.Nil(t, ts)
			require.Nil(t, meta)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

// What the format allows: empty and scalar tensors, null metadata, any
// order of entries in the header, whitespace padding, non-finite values.
func TestReadAccepts(t *testing.T) {
	data := file(`{"b":{"dtype":"F32","shape":[],"data_offsets":[8,12]} ,"__metadata__":null,`+
		"\n"+`"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"e":{"dtype":"F64","shape":[0,5],"data_offsets":[12,12]}}  `,
		append(f64s(math.NaN()), 0, 0, 0x80, 0x7f))
	ts, meta, err := Read(data)
	require.NoError(t, err)
	require.Empty(t, meta)
	require.True(t, math.IsNaN(ts["a"].Data[0]))
	require.True(t, math.IsInf(ts["b"].Data[0], 1))
	require.Equal(t, []int{}, ts["b"].Shape)
	require.Equal(t, []int{0, 5}, ts["e"].Shape)
	require.Empty(t, ts["e"].Data)
}

func TestWriteErrors(t *testing.T) {
	ok := Tensor{Name: "x", DType: F32, Shape: []int{2}, Data: []float64{1, 2}}
	cases := []struct {
		name    string
		tensors []Tensor
		dtype   string
		meta    map[string]string
		want    string
	}{
		{"bad dtype argument", []Tensor{ok}, "F16", nil, `dtype "F16" is not supported`},
		{"bad tensor dtype", []Tensor{{Name: "y", DType: "float32", Shape: []int{1}, Data: []float64{1}}}, "", nil, `tensor "y": unknown dtype "float32"`},
		{"duplicate names", []Tensor{ok, ok}, F32, nil, `two tensors are named "x"`},
		{"metadata name", []Tensor{{Name: "__metadata__", Shape: []int{}, Data: []float64{1}}}, F32, nil, "cannot be named __metadata__"},
		{"shape and data differ", []Tensor{{Name: "y", Shape: []int{3}, Data: []float64{1}}}, F64, nil, "shape [3] does not hold its 1 values"},
		{"negative dim", []Tensor{{Name: "y", Shape: []int{-1}, Data: nil}}, F64, nil, "does not hold"},
		{"invalid UTF-8 name", []Tensor{{Name: "\xff", Shape: []int{}, Data: []float64{1}}}, F64, nil, "UTF-8"},
		{"invalid UTF-8 metadata", []Tensor{ok}, F64, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, c.tensors, c.dtype, c.meta)
			require.ErrorContains(t, err, c.want)
			require.Zero(t, buf.Len(), "nothing is written on an error")
		})
	}
}

// WriteFile replaces a file atomically and leaves no temporary behind, even
// when it fails.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	x := []Tensor{{Name: "x", Shape: []int{2}, Data: []float64{1, 2}}}
	require.NoError(t, WriteFile(path, x, F64, map[string]string{"k": "v"}))
	ts, meta, err := ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, []float64{1, 2}, ts["x"].Data)
	require.Equal(t, "v", meta["k"])
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())

	require.Error(t, WriteFile(path, append(x, x...), F64, nil))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "a temporary file was left behind")
	ts, _, err = ReadFile(path)
	require.NoError(t, err, "a failed write damaged the old file")
	require.Len(t, ts, 1)

	require.Error(t, WriteFile(filepath.Join(dir, "no", "such", "dir.safetensors"), x, F64, nil))
	_, _, err = ReadFile(filepath.Join(dir, "missing.safetensors"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// FuzzRead: Read never panics, and whatever it accepts writes back and
// reads again to the same tensors and metadata (bit for bit), with the
// second encoding identical to the first.
func FuzzRead(f *testing.F) {
	for _, path := range goldenFiles(f) {
		if data, err := os.ReadFile(path); err == nil && len(data) < 16000 {
			f.Add(data)
		}
	}
	f.Add(file(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, make([]byte, 24)))
	f.Add(file(`{"__metadata__":{"a":"b"},"x":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}`, f64s(1)))
	f.Add(file(`{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}}`, f64s(1, 2, 3)))
	f.Add(file(`{"__metadata__":null}`, nil))
	f.Add([]byte{})
	for _, c := range malformedFiles() {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, meta, err := Read(data)
		if err != nil {
			var fe *FormatError
			if ts != nil || meta != nil || !errors.As(err, &fe) {
				t.Fatalf("error %v with results, or not a FormatError", err)
			}
			return
		}
		list := make([]Tensor, 0, len(ts))
		for _, x := range ts {
			list = append(list, x)
		}
		var first bytes.Buffer
		if err := Write(&first, list, "", meta); err != nil {
			t.Fatalf("Write of what Read accepted: %v", err)
		}
		ts2, meta2, err := Read(first.Bytes())
		if err != nil {
			t.Fatalf("Read of what Write wrote: %v", err)
		}
		if len(ts2) != len(ts) || len(meta2) != len(meta) {
			t.Fatalf("round trip: %d tensors and %d metadata, want %d and %d", len(ts2), len(meta2), len(ts), len(meta))
		}
		for k, v := range meta {
			if meta2[k] != v {
				t.Fatalf("metadata %q: %q, want %q", k, meta2[k], v)
			}
		}
		for name, x := range ts {
			y := ts2[name]
			if y.DType != x.DType || !slices.Equal(y.Shape, x.Shape) || len(y.Data) != len(x.Data) {
				t.Fatalf("tensor %q: %s %v, want %s %v", name, y.DType, y.Shape, x.DType, x.Shape)
			}
			for i := range x.Data {
				if math.Float64bits(x.Data[i]) != math.Float64bits(y.Data[i]) {
					t.Fatalf("tensor %q[%d]: %v, want %v", name, i, y.Data[i], x.Data[i])
				}
			}
		}
		list = list[:0]
		for _, y := range ts2 {
			list = append(list, y)
		}
		var second bytes.Buffer
		if err := Write(&second, list, "", meta2); err != nil || !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("second encoding differs (%v)", err)
		}
	})
}
