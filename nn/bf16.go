package nn

import "math"

// The conversions between float32/float64 and bfloat16, the one place that
// rounds to bfloat16. A bfloat16 is the top half of a float32 (sign, 8
// exponent bits, 7 stored fraction bits), so it covers float32's range with
// 8 significant bits; its unit roundoff is 2⁻⁸.

// BF16UnitRoundoff bounds the relative error of rounding a value in the
// normal range to bfloat16: |round(x) − x| ≤ 2⁻⁸·|x|.
const BF16UnitRoundoff = 1.0 / 256

// bf16NaN is the NaN every NaN rounds to, as PyTorch's c10::BFloat16.
const bf16NaN = 0x7FC0

// BF16FromFloat32 returns the bits of f rounded to the nearest bfloat16,
// ties to even, exactly as PyTorch's float → bfloat16 conversion: values
// past the largest bfloat16 (by half an ulp or more) become ±Inf,
// subnormals round like any other value, and NaN becomes the quiet NaN
// 0x7FC0.
func BF16FromFloat32(f float32) uint16 {
	if f != f {
		return bf16NaN
	}
	u := math.Float32bits(f)
	// Adding 0x7FFF, plus one when the kept part is odd, carries into the
	// kept half exactly when the dropped half is above the tie, or at the
	// tie with an odd kept half. Bit patterns are ordered like magnitudes,
	// so the carry also steps from the largest finite value to Inf.
	return uint16((u + 0x7FFF + (u>>16)&1) >> 16)
}

// BF16FromFloat64 returns the bits of x rounded to the nearest bfloat16,
// ties to even, in one rounding. (PyTorch converts a double through float
// first; the two differ only when x lies within float32's rounding of a
// bfloat16 tie, e.g. 1 + 2⁻⁸ + 2⁻⁴⁰, which rounds up here.)
func BF16FromFloat64(x float64) uint16 {
	if x != x {
		return bf16NaN
	}
	// Round to float32 by round-to-odd (truncate, then set the last bit
	// when inexact): a second rounding to a format at least two bits
	// narrower is then the correct rounding of x.
	f := float32(x)
	if float64(f) != x {
		u := math.Float32bits(f)
		if math.Abs(float64(f)) > math.Abs(x) {
			u-- // f rounded away from zero (to Inf included): truncate
		}
		f = math.Float32frombits(u | 1)
	}
	return BF16FromFloat32(f)
}

// BF16ToFloat32 returns the value of bfloat16 bits h (exact).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// RoundBF16 is f rounded to bfloat16, as a float32 (exact).
func RoundBF16(f float32) float32 { return BF16ToFloat32(BF16FromFloat32(f)) }

// RoundBF16From64 is x rounded to bfloat16 in one rounding, as a float64.
func RoundBF16From64(x float64) float64 { return float64(BF16ToFloat32(BF16FromFloat64(x))) }

// RoundBF16Slice rounds every element of s to bfloat16 in place.
func RoundBF16Slice(s []float32) {
	for i, f := range s {
		s[i] = RoundBF16(f)
	}
}

// IsBF16 reports whether f is a bfloat16 value (NaN counts as one).
func IsBF16(f float32) bool { return f != f || math.Float32bits(f)&0xFFFF == 0 }
