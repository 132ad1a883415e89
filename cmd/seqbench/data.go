package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"seqbench/data"
)

// listFlag collects a repeated flag (--text a --text b) or a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, strings.Split(v, ",")...)
	return nil
}

func cmdData(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: seqbench data prepare --text PATH [--text PATH...] --out FILE.bin [--val-fraction F] [--tokenizer bytes|gpt2] [--workers N] [--shard-tokens N]"
	if err := subcommandHelp(args, usage, stderr); err != nil {
		return err
	}
	if len(args) == 0 || args[0] != "prepare" {
		return usageError{usage}
	}
	fs := flag.NewFlagSet("data prepare", flag.ContinueOnError)
	var text listFlag
	fs.Var(&text, "text", "text file or folder (repeatable); folders are read recursively")
	out := fs.String("out", "", "output FILE.bin: writes FILE_train.bin and FILE_val.bin")
	val := fs.Float64("val-fraction", 0.1, "fraction of each file (its end) that goes to the validation split")
	tok := fs.String("tokenizer", "bytes", "bytes (one token per byte) or gpt2 (GPT-2's BPE, llm.c shards)")
	workers := fs.Int("workers", 0, "gpt2: files tokenized in parallel (0: one per CPU)")
	shardTokens := fs.Int("shard-tokens", data.DefaultShardTokens, "gpt2: most tokens per shard file")
	pos, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	text = append(text, pos...) // paths may also come as arguments
	if *out == "" {
		return usageError{"data prepare: --out FILE.bin is required"}
	}
	switch *tok {
	case "bytes":
	case "gpt2":
		return prepareGPT2(text, *out, *val, *workers, *shardTokens, stdout, stderr)
	default:
		return usageError{fmt.Sprintf("data prepare: --tokenizer %q is not allowed (bytes or gpt2)", *tok)}
	}
	p, err := data.PrepareBytes(text, *out, *val)
	if err != nil {
		return usageError{"data prepare: " + err.Error()}
	}
	skipped := ""
	if len(p.Skipped) > 0 {
		skipped = fmt.Sprintf(", skipped %d not text (NUL bytes or not UTF-8: %s)", len(p.Skipped), data.SkippedList(p.Skipped))
	}
	fmt.Fprintf(stdout, "byte-level corpus from %d text files%s: %s (%d tokens), %s (%d tokens)\n",
		p.Files, skipped, p.Train, p.TrainTokens, p.Val, p.ValTokens)
	fmt.Fprintf(stdout, "use it with:\n  task: {name: lm, train: %s, val: %s, seq_len: 256}\n", p.Train, p.Val)
	return nil
}
