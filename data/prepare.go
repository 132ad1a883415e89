package data

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Prepared names the two files a byte-level corpus is split into.
type Prepared struct {
	Train, Val             string
	TrainTokens, ValTokens int
}

// PrepareBytes makes a byte-level corpus from text files and folders
// (folders are walked; hidden files and folders are skipped): every file's
// bytes in sorted path order, one token per byte, the last valFraction of
// each file going to the validation split so both splits see every
// document's style. out "DIR/NAME.bin" gives DIR/NAME_train.bin and
// DIR/NAME_val.bin.
func PrepareBytes(paths []string, out string, valFraction float64) (Prepared, error) {
	if !(valFraction > 0 && valFraction < 1) {
		return Prepared{}, fmt.Errorf("--val-fraction %v is not allowed (must be in (0, 1))", valFraction)
	}
	files, err := textFiles(paths)
	if err != nil {
		return Prepared{}, err
	}
	var train, val []uint16
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return Prepared{}, err
		}
		cut := len(b) - int(float64(len(b))*valFraction)
		for i, c := range b {
			if i < cut {
				train = append(train, uint16(c))
			} else {
				val = append(val, uint16(c))
			}
		}
	}
	if len(train) < 2 || len(val) < 2 {
		return Prepared{}, fmt.Errorf("the text is too short to split (%d train and %d validation bytes from %d files)", len(train), len(val), len(files))
	}
	base := strings.TrimSuffix(out, ".bin")
	p := Prepared{Train: base + "_train.bin", Val: base + "_val.bin", TrainTokens: len(train), ValTokens: len(val)}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Prepared{}, err
	}
	if err := WriteShard(p.Train, train, 256, KindBytes); err != nil {
		return Prepared{}, err
	}
	return p, WriteShard(p.Val, val, 256, KindBytes)
}

// textFiles expands files and folders into a sorted list of regular files.
func textFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no --text given (files or folders of text)")
	}
	var files []string
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no files under %s", strings.Join(paths, ", "))
	}
	sort.Strings(files)
	return files, nil
}
