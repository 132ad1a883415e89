// Package configs holds the shipped experiments, embedded so the binary runs
// them (`seqbench run` with no file runs quickstart.yaml) from anywhere.
package configs

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.yaml
var files embed.FS

// Quickstart is the experiment `seqbench run` runs when given no file.
func Quickstart() []byte {
	data, err := files.ReadFile("quickstart.yaml")
	if err != nil {
		panic(err) // embedded at build time
	}
	return data
}

// Names lists the shipped experiment files.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}
