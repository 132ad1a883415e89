package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// `data prepare --tokenizer gpt2` writes llm.c shards that an lm config
// (with the vocab the command prints) validates against.
func TestDataPrepareGPT2(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	require.NoError(t, os.MkdirAll(text, 0o755))
	for i, s := range []string{"Hello world. ", "The quick brown fox jumps over the lazy dog. "} {
		require.NoError(t, os.WriteFile(filepath.Join(text, string(rune('a'+i))+".txt"), []byte(strings.Repeat(s, 40)), 0o644))
	}
	code, stdout, stderr := runCLI(t, "data", "prepare", "--tokenizer", "gpt2", "--workers", "2", "--shard-tokens", "200",
		"--text", text, "--out", filepath.Join(dir, "c.bin"))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "c_train_*.bin")
	require.Contains(t, stdout, "vocab: 50257")
	require.Contains(t, stderr, "tokenized 2/2 files")
	shards, _ := filepath.Glob(filepath.Join(dir, "c_train_*.bin"))
	require.Greater(t, len(shards), 1)

	cfg := filepath.Join(dir, "lm.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("name: gpt2\ntask: {name: lm, train: "+filepath.Join(dir, "c_train_*.bin")+
		", val: "+filepath.Join(dir, "c_val_*.bin")+", vocab: 50257, seq_len: 16}\ntrain: {steps: 2, batch_size: 2}\n"+
		"models:\n  - {arch: lstm, d_model: 8, n_layers: 1}\n"), 0o644))
	code, _, stderr = runCLI(t, "run", cfg, "--dry-run", "--out", filepath.Join(dir, "results"))
	require.Equal(t, 0, code, stderr)

	code, _, stderr = runCLI(t, "data", "prepare", "--tokenizer", "bpe", "--text", text, "--out", filepath.Join(dir, "x.bin"))
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `--tokenizer "bpe" is not allowed`)
}
