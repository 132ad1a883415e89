package nn

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// Every bfloat16 pattern converts to float32 and back unchanged; NaNs come
// back as NaN.
func TestBF16RoundTripAllPatterns(t *testing.T) {
	for h := range 1 << 16 {
		f := BF16ToFloat32(uint16(h))
		got := BF16FromFloat32(f)
		if f != f {
			if got != bf16NaN {
				t.Fatalf("NaN %#04x came back as %#04x", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("%#04x (%v) came back as %#04x", h, f, got)
		}
		if g64 := BF16FromFloat64(float64(f)); g64 != uint16(h) {
			t.Fatalf("%#04x (%v) via float64 came back as %#04x", h, f, g64)
		}
		if !IsBF16(f) {
			t.Fatalf("IsBF16(%v) = false", f)
		}
	}
}

// Between every pair of neighbouring bfloat16 values: just below the tie
// rounds down, the tie goes to the even one, just above rounds up (in
// magnitude, for both signs, through subnormals and up to the overflow
// into Inf).
func TestBF16Ties(t *testing.T) {
	for h := range uint32(0x7F80) { // every finite non-negative pattern
		for _, sign := range []uint32{0, 0x8000} {
			lo := (h | sign) << 16
			even := h | sign
			if h&1 == 1 {
				even = (h + 1) | sign
			}
			cases := []struct {
				bits uint32
				want uint32
			}{{lo | 0x7FFF, h | sign}, {lo | 0x8000, even}, {lo | 0x8001, (h + 1) | sign}}
			for _, c := range cases {
				f := math.Float32frombits(c.bits)
				if got := BF16FromFloat32(f); uint32(got) != c.want {
					t.Fatalf("float32 %#08x: got %#04x want %#04x", c.bits, got, c.want)
				}
				if got := BF16FromFloat64(float64(f)); uint32(got) != c.want {
					t.Fatalf("float64 of %#08x: got %#04x want %#04x", c.bits, got, c.want)
				}
			}
		}
	}
	// The largest finite bfloat16 and its tie with the next power of two.
	if got := BF16FromFloat32(math.MaxFloat32); got != 0x7F80 {
		t.Errorf("MaxFloat32 -> %#04x, want Inf 0x7f80", got)
	}
	if got := BF16FromFloat64(-1e300); got != 0xFF80 {
		t.Errorf("-1e300 -> %#04x, want -Inf 0xff80", got)
	}
}

func TestBF16Specials(t *testing.T) {
	nan := float32(math.NaN())
	negNaN := math.Float32frombits(0xFFC00001)
	for _, f := range []float32{nan, negNaN, math.Float32frombits(0x7F800001)} {
		if got := BF16FromFloat32(f); got != 0x7FC0 {
			t.Errorf("NaN %#08x -> %#04x, want 0x7fc0", math.Float32bits(f), got)
		}
	}
	if got := BF16FromFloat64(math.NaN()); got != 0x7FC0 {
		t.Errorf("float64 NaN -> %#04x", got)
	}
	for _, c := range []struct {
		x    float64
		want uint16
	}{
		{math.Inf(1), 0x7F80}, {math.Inf(-1), 0xFF80}, {0, 0}, {math.Copysign(0, -1), 0x8000},
		{1, 0x3F80}, {-2, 0xC000}, {1.0 / 3, 0x3EAB},
		{math.Ldexp(1, -133), 0x0001},                        // smallest subnormal
		{math.Ldexp(1, -134), 0x0000},                        // half of it: tie to even (zero)
		{math.Ldexp(1.5, -134), 0x0001},                      // above the tie
		{-math.Ldexp(3, -134), 0x8002},                       // tie between 1 and 2 ulps: even
		{math.Ldexp(1, -200), 0x0000},                        // far below float32's range
		{-math.Ldexp(1, -200), 0x8000},                       // keeps its sign
		{1 + math.Ldexp(1, -8) + math.Ldexp(1, -40), 0x3F81}, // one rounding, not two
	} {
		if got := BF16FromFloat64(c.x); got != c.want {
			t.Errorf("BF16FromFloat64(%g) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
	// PyTorch's double → float → bfloat16 would round the last case down:
	// the float32 rounding lands on the tie.
	if got := BF16FromFloat32(float32(1 + math.Ldexp(1, -8) + math.Ldexp(1, -40))); got != 0x3F80 {
		t.Errorf("through float32: %#04x, want 0x3f80", got)
	}
}

// Random float64 values over float32's normal range round as math/big
// rounds them to 8 significant bits.
func TestBF16FromFloat64MatchesBig(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		x := math.Ldexp(1+rng.Float64(), rng.IntN(250)-125)
		if rng.IntN(2) == 0 {
			x = -x
		}
		if rng.IntN(4) == 0 { // near a tie, on either side
			h := BF16FromFloat64(x)
			tie := float64(BF16ToFloat32(h)) + math.Copysign(math.Ldexp(1, math.Ilogb(x)-8), x)
			x = tie + math.Copysign(math.Ldexp(1, math.Ilogb(x)-52)*float64(rng.IntN(5)-2), x)
		}
		want, _ := new(big.Float).SetPrec(8).SetMode(big.ToNearestEven).SetFloat64(x).Float64()
		if got := RoundBF16From64(x); got != want {
			t.Fatalf("RoundBF16From64(%v) = %v, want %v", x, got, want)
		}
		if rel := math.Abs(want-x) / math.Abs(x); rel > BF16UnitRoundoff {
			t.Fatalf("rounding %v to %v: rel err %g above the unit roundoff", x, want, rel)
		}
	}
}
