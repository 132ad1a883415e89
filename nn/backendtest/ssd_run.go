package backendtest

import (
	"testing"

	"seqbench/nn"
)

// RunSSD runs Run's SSD cases alone (SSD, SSDChunkInvariance, SSDPieces):
// a backend with more than one SSD path runs each path through them.
func RunSSD(t *testing.T, b nn.Backend) {
	t.Run("SSD", func(t *testing.T) { testSSD(t, b) })
	t.Run("SSDChunkInvariance", func(t *testing.T) { testSSDChunkInvariance(t, b) })
	t.Run("SSDPieces", func(t *testing.T) { testSSDPieces(t, b) })
}

// RunBF16SSD runs RunBF16's SSD cases alone (SSD, SSDStates).
func RunBF16SSD(t *testing.T, b nn.MixedBackend) {
	t.Run("SSD", func(t *testing.T) { testBF16SSD(t, b) })
	t.Run("SSDStates", func(t *testing.T) { RunBF16SSDStates(t, b) })
}
