package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/nn"
)

// bf16File assembles a safetensors file from a header and BF16 bit patterns.
func bf16File(header string, bits ...uint16) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	for _, h := range bits {
		b = binary.LittleEndian.AppendUint16(b, h)
	}
	return b
}

// BF16 tensors read exactly: each pattern is its float value.
func TestReadBF16(t *testing.T) {
	bits := []uint16{0x3F80, 0xC000, 0x7F80, 0x0001, 0x3EAB, 0x8000, 0x7FC0}
	ts, _, err := Read(bf16File(`{"x":{"dtype":"BF16","shape":[7],"data_offsets":[0,14]}}`, bits...))
	require.NoError(t, err)
	x := ts["x"]
	require.Equal(t, BF16, x.DType)
	require.Equal(t, []int{7}, x.Shape)
	want := []float64{1, -2, math.Inf(1), math.Ldexp(1, -133), float64(math.Float32frombits(0x3EAB0000)), math.Copysign(0, -1)}
	for i, w := range want {
		require.Equal(t, math.Float64bits(w), math.Float64bits(x.Data[i]), "element %d", i)
	}
	require.True(t, math.IsNaN(x.Data[6]))

	_, _, err = Read(bf16File(`{"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}`, 1, 2))
	require.ErrorContains(t, err, `shape [3] of BF16 needs 6 bytes, but data_offsets [0, 4] hold 4`)
}

// Writing BF16 rounds each value once, to nearest with ties to even, lays
// the tensor out after wider ones, and reads back as the rounded values.
func TestWriteBF16(t *testing.T) {
	vals := []float64{1, 1 + 1.0/256, 1 + 3.0/256, 1 + 1.0/256 + math.Ldexp(1, -40), -1e300, math.NaN(), 1.0 / 3}
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, []Tensor{
		{Name: "a", DType: BF16, Shape: []int{7}, Data: vals},
		{Name: "b", DType: F32, Shape: []int{1}, Data: []float64{0.5}},
	}, "", nil))
	ts, _, err := Read(buf.Bytes())
	require.NoError(t, err)
	got := ts["a"]
	require.Equal(t, BF16, got.DType)
	// 1+2⁻⁸ is a tie (to even: 1); 1+3·2⁻⁸ a tie (to even: 1+2⁻⁶); just
	// above the first tie rounds up, which rounding through float32 first
	// would not; -1e300 overflows to -Inf.
	want := []float64{1, 1, 1 + 1.0/64, 1 + 1.0/128, math.Inf(-1), math.NaN(), float64(math.Float32frombits(0x3EAB0000))}
	for i, w := range want {
		require.True(t, w == got.Data[i] || (math.IsNaN(w) && math.IsNaN(got.Data[i])), "element %d: got %v want %v", i, got.Data[i], w)
		require.True(t, same64(nn.RoundBF16From64(vals[i]), got.Data[i]), "element %d", i)
	}
	require.Equal(t, []float64{0.5}, ts["b"].Data)
	// The F32 tensor comes first (decreasing element size), so the BF16
	// one starts at byte 4.
	require.Contains(t, buf.String(), `"a":{"dtype":"BF16","shape":[7],"data_offsets":[4,18]}`)

	// Converting a whole file to BF16 on write.
	buf.Reset()
	require.NoError(t, Write(&buf, []Tensor{{Name: "c", DType: F64, Shape: []int{2}, Data: []float64{3, 1 + 1.0/256 + math.Ldexp(1, -40)}}}, BF16, nil))
	ts, _, err = Read(buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, BF16, ts["c"].DType)
	require.Equal(t, []float64{3, 1 + 1.0/128}, ts["c"].Data)
}

func same64(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
