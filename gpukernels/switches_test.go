package gpukernels

import "testing"

// Each code path's environment switch: every one (the tensor-core
// attention, the tiled conv1d, the persistent RNN kernels, the chunked SSD
// and the scan's saved checkpoints) is on unless its switch is "0".
func TestEnvSwitches(t *testing.T) {
	on := map[string]bool{"": true, "0": false, "no": true, "false": true, "1": true}
	for _, s := range []struct {
		name string
		read func() bool
		want map[string]bool
	}{
		{"SEQBENCH_FLASH_ATTN", flashAttnFromEnv, on},
		{"SEQBENCH_CONV1D_TILED", conv1dTiledFromEnv, on},
		{"SEQBENCH_RNN_PERSISTENT", rnnPersistentFromEnv, on},
		{"SEQBENCH_SSD_CHUNKED", ssdChunkedFromEnv, on},
		{"SEQBENCH_SCAN_CKPT", scanCkptFromEnv, on},
	} {
		for v, want := range s.want {
			t.Setenv(s.name, v)
			if got := s.read(); got != want {
				t.Errorf("%s=%q: on %v, want %v", s.name, v, got, want)
			}
		}
	}
}
