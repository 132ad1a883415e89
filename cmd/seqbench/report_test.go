package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// `run` ends with the experiment's report; `report` renders any results
// folder and prints its tables.
func TestRunWritesReportAndReportCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, goodConfig)
	out := filepath.Join(dir, "results")
	code, stdout, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "report in")
	for _, f := range []string{"report.md", "index.html", filepath.Join("plots", "tiny-curves.png"), filepath.Join("plots", "tiny-curves.svg")} {
		_, err := os.Stat(filepath.Join(out, "tiny", f))
		require.NoError(t, err, f)
	}

	code, stdout, stderr = runCLI(t, "report", out, "--dpi", "40")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "experiment tiny")
	require.Contains(t, stdout, "transformer")
	_, err := os.Stat(filepath.Join(out, "report.md"))
	require.NoError(t, err)
}

func TestReportOnEmptyOrMissingFolder(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, "report", dir)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "no results in")
	require.Contains(t, stderr, "<experiment>/<run>")
	code, _, stderr = runCLI(t, "report", filepath.Join(dir, "missing"))
	require.Equal(t, 2, code, "a missing folder is a usage error")
	require.Contains(t, stderr, "missing is not a folder")
	code, _, _ = runCLI(t, "report", dir, "other")
	require.Equal(t, 2, code)
}
