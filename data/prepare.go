package data

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Prepared names the two files a byte-level corpus is split into.
type Prepared struct {
	Train, Val             string
	TrainTokens, ValTokens int
	Files                  int      // the text files read
	Skipped                []string // files passed over as not text (IsText)
}

// PrepareBytes makes a byte-level corpus from text files and folders
// (folders are walked; hidden files and folders are skipped): every text
// file's bytes in sorted path order, one token per byte, the last
// valFraction of each file going to the validation split so both splits see
// every document's style. Files that are not text (IsText: images, archives,
// earlier .bin outputs) are skipped and listed in Prepared.Skipped; a path
// given twice, or inside another one given, is an error, since its files
// would be read twice. out "DIR/NAME.bin" gives DIR/NAME_train.bin and
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
	var p Prepared
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return Prepared{}, err
		}
		if !IsText(b) {
			p.Skipped = append(p.Skipped, f)
			continue
		}
		p.Files++
		cut := len(b) - int(float64(len(b))*valFraction)
		for i, c := range b {
			if i < cut {
				train = append(train, uint16(c))
			} else {
				val = append(val, uint16(c))
			}
		}
	}
	if p.Files == 0 {
		return Prepared{}, fmt.Errorf("no text files under %s (skipped %d that are not text: %s)",
			strings.Join(paths, ", "), len(p.Skipped), SkippedList(p.Skipped))
	}
	if len(train) < 2 || len(val) < 2 {
		return Prepared{}, fmt.Errorf("the text is too short to split (%d train and %d validation bytes from %d files)", len(train), len(val), p.Files)
	}
	base := strings.TrimSuffix(out, ".bin")
	p.Train, p.Val, p.TrainTokens, p.ValTokens = base+"_train.bin", base+"_val.bin", len(train), len(val)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return Prepared{}, err
	}
	if err := WriteShard(p.Train, train, 256, KindBytes); err != nil {
		return Prepared{}, err
	}
	return p, WriteShard(p.Val, val, 256, KindBytes)
}

// IsText reports whether b looks like text: valid UTF-8 with no NUL byte
// (as git and grep tell binary files, and a token shard's header is full
// of zeros).
func IsText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// SkippedList names the first few skipped files.
func SkippedList(files []string) string {
	const show = 5
	if len(files) <= show {
		return strings.Join(files, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(files[:show], ", "), len(files)-show)
}

// checkDistinct refuses a path given twice (however spelled, or through a
// link) and a path inside another one given.
func checkDistinct(paths []string) error {
	real := make([]string, len(paths))
	for i, p := range paths {
		abs, err := filepath.Abs(p)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return err
		}
		real[i] = abs
	}
	for i := range paths {
		for j := range i {
			switch {
			case real[i] == real[j]:
				return fmt.Errorf("--text %s and --text %s are the same path: its files would be read twice", paths[j], paths[i])
			case strings.HasPrefix(real[i], real[j]+string(filepath.Separator)) || real[j] == "/":
				return fmt.Errorf("--text %s is inside --text %s: its files would be read twice", paths[i], paths[j])
			case strings.HasPrefix(real[j], real[i]+string(filepath.Separator)) || real[i] == "/":
				return fmt.Errorf("--text %s is inside --text %s: its files would be read twice", paths[j], paths[i])
			}
		}
	}
	return nil
}

// textFiles expands files and folders into a sorted list of regular files.
func textFiles(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no --text given (files or folders of text)")
	}
	if err := checkDistinct(paths); err != nil {
		return nil, err
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
