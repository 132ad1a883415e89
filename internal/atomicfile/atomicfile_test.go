package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileNewAndReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.md")
	require.NoError(t, WriteFile(path, []byte("first\n")))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, Perm, st.Mode().Perm(), "a new file is 0644, not CreateTemp's 0600")

	require.NoError(t, WriteFile(path, []byte("second\n")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "second\n", string(got))
	require.Equal(t, []string{"report.md"}, entries(t, dir))
}

// An existing file keeps its permission bits across a rewrite.
func TestWriteKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.json")
	require.NoError(t, os.WriteFile(path, []byte("{}"), 0o600))
	require.NoError(t, os.Chmod(path, 0o640))
	require.NoError(t, WriteFile(path, []byte(`{"a":1}`)))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm())
}

// A write that fails midway (the writer's error, as a full disk gives)
// leaves the previous file whole and no temporary file behind.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plot.png")
	require.NoError(t, WriteFile(path, []byte("good old plot")))
	full := errors.New("no space left on device")
	err := Write(path, func(w io.Writer) error {
		// More than the buffer, so part of it reaches the temporary file.
		if _, err := w.Write([]byte(strings.Repeat("x", 1<<17))); err != nil {
			return err
		}
		return full
	})
	require.ErrorIs(t, err, full)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "good old plot", string(got))
	require.Equal(t, []string{"plot.png"}, entries(t, dir), "the temporary file was removed")
}

// A rename that fails (path is a non-empty folder) removes the temporary
// file; a missing folder is an error, not a created one.
func TestWriteRenameFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	require.NoError(t, os.MkdirAll(filepath.Join(path, "x"), 0o755))
	require.Error(t, WriteFile(path, []byte("data")))
	require.Equal(t, []string{"out"}, entries(t, dir))

	require.ErrorIs(t, WriteFile(filepath.Join(dir, "no", "such", "file"), nil), os.ErrNotExist)
	require.Equal(t, []string{"out"}, entries(t, dir))
}

// Create's file is invisible under path until Commit (a header written
// last with WriteAt included), and Abort leaves path as it was.
func TestCreateCommitAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shard.bin")
	require.NoError(t, WriteFile(path, []byte("old")))
	f, err := Create(path)
	require.NoError(t, err)
	_, err = f.Write([]byte("..body"))
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("HD"), 0)
	require.NoError(t, err)
	got, _ := os.ReadFile(path)
	require.Equal(t, "old", string(got))
	require.NoError(t, f.Commit())
	got, _ = os.ReadFile(path)
	require.Equal(t, "HDbody", string(got))
	require.Equal(t, []string{"shard.bin"}, entries(t, dir))

	f, err = Create(path)
	require.NoError(t, err)
	_, _ = f.Write([]byte("partial"))
	f.Abort()
	got, _ = os.ReadFile(path)
	require.Equal(t, "HDbody", string(got))
	require.Equal(t, []string{"shard.bin"}, entries(t, dir))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, Perm, st.Mode().Perm())
}
