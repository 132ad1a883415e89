package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"seqbench/data"
)

// prepareGPT2 is `data prepare --tokenizer gpt2`: llm.c shards of GPT-2
// tokens, with a progress line on stderr.
func prepareGPT2(text []string, out string, val float64, workers, shardTokens int, stdout, stderr io.Writer) error {
	terminal := false
	if f, ok := stderr.(*os.File); ok {
		terminal = term.IsTerminal(int(f.Fd()))
	}
	p, err := data.PrepareShards(data.ShardOptions{
		Paths: text, Out: out, ValFraction: val, ShardTokens: shardTokens, Workers: workers,
		NewEncoder: func() data.Encoder { return data.NewGPT2() },
		Progress:   stderr, Terminal: terminal,
	})
	if err != nil {
		return usageError{"data prepare: " + err.Error()}
	}
	fmt.Fprintf(stdout, "GPT-2 corpus from %d files (%.1f MB): %s (%d shards, %d tokens), %s (%d shards, %d tokens)\n",
		p.Files, float64(p.Bytes)/1e6, p.Train, p.TrainShards, p.TrainTokens, p.Val, p.ValShards, p.ValTokens)
	fmt.Fprintf(stdout, "use it with:\n  task: {name: lm, train: %q, val: %q, vocab: %d, seq_len: 1024}\n", p.Train, p.Val, data.GPT2Vocab)
	return nil
}
