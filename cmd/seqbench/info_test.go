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
