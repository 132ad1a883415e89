//go:build !(linux && (amd64 || arm64))

package cuda

// KeepGoSignalStacks is a no-op where the project does not run CUDA.
func KeepGoSignalStacks() []int { return nil }

func handlersWithoutOnStack() []int { return nil }
