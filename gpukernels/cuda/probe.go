// Package cuda binds the CUDA driver API, NVRTC and cuBLAS at run time
// through purego (no cgo), so one CGO_ENABLED=0 binary runs everywhere and
// finds the GPU when a driver is installed.
package cuda

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/ebitengine/purego"
)

// LibDirEnv names a folder searched first for the CUDA libraries.
const LibDirEnv = "SEQBENCH_CUDA_LIB_DIR"

// candidates lists where a library is looked for: $SEQBENCH_CUDA_LIB_DIR,
// the loader path (plain name), then the toolkit's usual folder and the one
// where container runtimes mount the driver.
func candidates(name string) []string {
	var c []string
	if dir := os.Getenv(LibDirEnv); dir != "" {
		c = append(c, filepath.Join(dir, name))
	}
	return append(c, name, filepath.Join("/usr/local/cuda/lib64", name), filepath.Join("/usr/local/nvidia/lib64", name))
}

// Open dlopens the first loadable candidate of a library and returns its
// handle and the path that loaded.
func Open(name string) (uintptr, string, error) {
	var errs []error
	for _, path := range candidates(name) {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, path, nil
		}
		errs = append(errs, err)
	}
	return 0, "", errors.Join(errs...)
}

// ProbeDriver reports whether the CUDA driver library (libcuda.so.1) loads
// on this machine, and from where.
func ProbeDriver() (string, error) {
	h, path, err := Open("libcuda.so.1")
	if err != nil {
		return "", err
	}
	purego.Dlclose(h)
	return path, nil
}
