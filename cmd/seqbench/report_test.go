package main

import (
	"os"
	"path/filepath"
	"strings"
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

// After `steps` is edited and the experiment rerun into the same --out, the
// report shows the runs of the current file and lists the earlier one
// apart; --all puts it back among them.
func TestReportSeparatesEarlierConfig(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	cfg := writeConfig(t, dir, goodConfig)
	code, _, stderr := runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	cfg = writeConfig(t, dir, strings.Replace(goodConfig, "steps: 6", "steps: 8", 1))
	code, _, stderr = runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	runs, err := filepath.Glob(filepath.Join(out, "tiny", "transformer-*"))
	require.NoError(t, err)
	require.Len(t, runs, 2, "two configs, two run folders")

	code, stdout, stderr := runCLI(t, "report", filepath.Join(out, "tiny"), "--dpi", "40")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "1 run in ")
	require.Contains(t, stdout, "train.steps=6 (now 8)")
	md, err := os.ReadFile(filepath.Join(out, "tiny", "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "1 run of transformer on selective_copy")
	require.NotContains(t, string(md), "varying steps")
	require.Contains(t, string(md), "Runs of earlier versions of the experiment file")
	require.Contains(t, string(md), "train.steps=6 (now 8)")

	code, stdout, stderr = runCLI(t, "report", filepath.Join(out, "tiny"), "--dpi", "40", "--all")
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stdout, "(now 8)")
	md, err = os.ReadFile(filepath.Join(out, "tiny", "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "2 runs of transformer on selective_copy")
	require.Contains(t, string(md), "varying steps")
}
