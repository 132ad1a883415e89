package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// archs --set reaches any model field: the 130M Mamba-2 of mamba_ssm
// (d_model 768, 24 layers, vocab 50280, tied, d_state 128, headdim 64) has
// 128,983,488 parameters.
func TestArchsSetMamba2_130m(t *testing.T) {
	code, stdout, stderr := runCLI(t, "archs", "--arch", "mamba2", "--d-model", "768", "--n-layers", "24",
		"--vocab", "50280", "--set", "d_state=128,headdim=64")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^mamba2\s+128983488\s`, stdout)
	require.NotContains(t, stdout, "transformer")
}

// --set values reach the config (a field one arch lacks is that arch's
// error, named), and malformed --set entries are usage errors naming them.
func TestArchsSet(t *testing.T) {
	code, stdout, stderr := runCLI(t, "archs", "--set", "d_state=8")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^transformer\s+.*d_state`, stdout)
	_, small, _ := runCLI(t, "archs", "--arch", "mamba1", "--set", "d_state=8")
	_, large, _ := runCLI(t, "archs", "--arch", "mamba1", "--set", "d_state=32")
	require.NotEqual(t, small, large)
	for _, bad := range []string{"d_state", "d_state=", "D-State=3", "d_model=32", "norm={a: b}"} {
		code, _, stderr := runCLI(t, "archs", "--set", bad)
		require.Equal(t, 2, code, bad)
		require.Contains(t, stderr, "--set", bad)
	}
	code, _, stderr = runCLI(t, "archs", "--arch", "mamba3")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "mamba3")
}

// archs lists hybrid at its default pattern (mamba2 attention) and takes
// a pattern, shorthands and sub-block fields through --set (block.field).
// Hand count at d_model 8, vocab 16: layers mamba2 attention mamba2 mlp
// (the pattern tiled to 4, every 4th layer mlp): embed 16·8 = 128; each
// mamba2 (d_state 4, headdim 4: E 16, 4 heads, conv channels 24) norm 8 +
// in_proj 8·44 + conv 24·5 + 3·4 + gated norm 16 + out_proj 16·8 = 636;
// attention (2 heads, no MLP) norm 8 + 4·8² = 264; mlp (SwiGLU, h 32)
// norm 8 + 3·8·32 = 776; final norm 8: 128 + 2·636 + 264 + 776 + 8 = 2448.
func TestArchsHybrid(t *testing.T) {
	code, stdout, stderr := runCLI(t, "archs")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^hybrid\s+\d+\s`, stdout)
	code, stdout, stderr = runCLI(t, "archs", "--arch", "hybrid", "--d-model", "8", "--n-layers", "4",
		"--set", "pattern=mamba2 attention,mamba2.d_state=4,mamba2.headdim=4,attention.n_heads=2,every.k=4,every.block=mlp")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `(?m)^hybrid\s+2448\s`, stdout)
	code, _, stderr = runCLI(t, "archs", "--set", "attention.=2")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `"attention." is not a field name`)
}
