package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"seqbench/train"
)

// A byte-level corpus from a folder of text, then an lm run: validation
// bits per byte must fall below the corpus's unigram entropy, i.e. the model
// learned more than byte frequencies.
func TestDataPrepareThenLM(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	require.NoError(t, os.MkdirAll(text, 0o755))
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "house"}
	var all strings.Builder
	for f := range 3 {
		var b strings.Builder
		for range 3000 {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(" \n"[rng.IntN(8)/7])
		}
		all.WriteString(b.String())
		require.NoError(t, os.WriteFile(filepath.Join(text, fmt.Sprintf("doc%d.txt", f)), []byte(b.String()), 0o644))
	}
	code, stdout, stderr := runCLI(t, "data", "prepare", "--text", text, "--out", filepath.Join(dir, "corpus.bin"))
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "corpus_train.bin")

	counts := map[byte]int{}
	s := all.String()
	for i := range len(s) {
		counts[s[i]]++
	}
	entropy := 0.0
	for _, c := range counts {
		p := float64(c) / float64(len(s))
		entropy -= p * math.Log2(p)
	}

	cfg := filepath.Join(dir, "lm.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`name: lm
task: {name: lm, train: %s, val: %s, seq_len: 32}
train: {steps: 100, batch_size: 16, lr: 1.0e-2, warmup: 10, eval_every: 50, eval_batches: 2}
models:
  - {arch: transformer, d_model: 32, n_layers: 1, n_heads: 2}
`, filepath.Join(dir, "corpus_train.bin"), filepath.Join(dir, "corpus_val.bin"))), 0o644))
	out := filepath.Join(dir, "results")
	code, _, stderr = runCLI(t, "run", cfg, "--out", out, "--device", "cpu")
	require.Equal(t, 0, code, stderr)
	runs, _ := filepath.Glob(filepath.Join(out, "lm", "transformer-*"))
	require.Len(t, runs, 1)
	sum, err := train.ReadSummary(runs[0])
	require.NoError(t, err)
	bpb := float64(sum.FinalLoss) / math.Ln2
	t.Logf("unigram entropy %.3f bits/byte, model %.3f bits/byte", entropy, bpb)
	require.Less(t, bpb, entropy)
}

func TestDataPrepareErrors(t *testing.T) {
	code, _, stderr := runCLI(t, "data", "prepare", "--out", filepath.Join(t.TempDir(), "x.bin"))
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--text")
	code, _, _ = runCLI(t, "data")
	require.Equal(t, 2, code)
}

// Binary files (an image, the corpus's own earlier .bin outputs) are
// skipped and counted; only the text is read.
func TestDataPrepareSkipsBinary(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	require.NoError(t, os.MkdirAll(text, 0o755))
	doc := strings.Repeat("the cat sat on the mat — déjà vu\n", 20)
	require.NoError(t, os.WriteFile(filepath.Join(text, "a.txt"), []byte(doc), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(text, "b.md"), []byte(doc), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(text, "plot.png"), []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), 0o644))
	out := filepath.Join(text, "corpus.bin") // inside the text folder: a rerun meets its own outputs
	code, stdout, stderr := runCLI(t, "data", "prepare", "--text", text, "--out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "from 2 text files, skipped 1 not text (NUL bytes or not UTF-8: "+filepath.Join(text, "plot.png")+")")
	first, err := os.ReadFile(filepath.Join(text, "corpus_train.bin"))
	require.NoError(t, err)

	code, stdout, stderr = runCLI(t, "data", "prepare", "--text", text, "--out", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "from 2 text files, skipped 3 not text")
	again, err := os.ReadFile(filepath.Join(text, "corpus_train.bin"))
	require.NoError(t, err)
	require.Equal(t, first, again, "the earlier outputs were not read as text")
	require.Contains(t, stdout, fmt.Sprintf("(%d tokens)", 2*len(doc)-2*int(float64(len(doc))*0.1)))

	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "x.dat"), []byte{1, 0, 2}, 0o644))
	code, _, stderr = runCLI(t, "data", "prepare", "--text", bin, "--out", filepath.Join(dir, "c.bin"))
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "no text files under "+bin+" (skipped 1 that are not text: "+filepath.Join(bin, "x.dat")+")")
}

// A path given twice (however spelled, or through a link), or inside
// another one given, is refused before anything is written.
func TestDataPrepareRefusesDuplicates(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	require.NoError(t, os.MkdirAll(filepath.Join(text, "sub"), 0o755))
	a := filepath.Join(text, "sub", "a.txt")
	require.NoError(t, os.WriteFile(a, []byte(strings.Repeat("hello world\n", 50)), 0o644))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(text, link))
	out := filepath.Join(dir, "c.bin")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--text", a, "--text", a}, "are the same path"},
		{[]string{"--text", text, "--text", text + "/./"}, "are the same path"},
		{[]string{"--text", text + "," + link}, "are the same path"},
		{[]string{"--text", text, a}, "--text " + a + " is inside --text " + text},
		{[]string{"--text", filepath.Join(text, "sub"), "--text", link}, "is inside --text " + link},
	} {
		code, _, stderr := runCLI(t, append([]string{"data", "prepare", "--out", out}, c.args...)...)
		require.Equal(t, 2, code, c.args)
		require.Contains(t, stderr, c.want, c.args)
		require.Contains(t, stderr, "its files would be read twice")
		_, err := os.Stat(filepath.Join(dir, "c_train.bin"))
		require.True(t, os.IsNotExist(err), "a corpus was written")
	}
}
