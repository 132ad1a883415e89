// Package atomicfile writes a file so that a reader, a crash or a full disk
// sees either the previous file or the whole new one, never a part: every
// file seqbench writes in place (reports, plots, summaries, checkpoints,
// data shards, bench files, the kernel cache) goes through it.
package atomicfile

import (
	"bufio"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Perm is the mode of a new file: results are readable by everyone. A file
// that already exists keeps its own permission bits.
const Perm fs.FileMode = 0o644

// WriteFile writes data to path atomically (see Write).
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write creates path with what fill writes: into a temporary file in the
// same folder (so the rename cannot cross file systems), synced to disk,
// then renamed over path. When fill or any step fails, the temporary file
// is removed and path is left as it was. The folder must exist.
func Write(path string, fill func(w io.Writer) error) (err error) {
	perm := Perm
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		perm = st.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := fill(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil { // CreateTemp makes it 0600
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes the rename itself durable where the system allows it; a
// folder that cannot be synced (some file systems refuse) is not an error,
// since the file is already complete under its name.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}

// File is a file written in place of path for callers that must write
// out of order (a header known only at the end: WriteAt): it is the
// temporary file of Write, Commit moves it into place as Write does, and
// Abort removes it. Write is simpler where the content streams in order.
type File struct {
	*os.File
	path string
}

// Create opens the temporary file of a new version of path (the folder
// must exist).
func Create(path string) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs the file, gives it path's mode (Perm for a new path) and
// renames it over path; on failure the temporary file is removed and path
// is left as it was.
func (f *File) Commit() (err error) {
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	perm := Perm
	if st, err := os.Stat(f.path); err == nil && st.Mode().IsRegular() {
		perm = st.Mode().Perm()
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.File.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), f.path); err != nil {
		return err
	}
	syncDir(filepath.Dir(f.path))
	return nil
}

// Abort closes and removes the temporary file; path is untouched.
func (f *File) Abort() {
	f.File.Close()
	os.Remove(f.Name())
}
