package tasks

import (
	"path/filepath"
	"strings"
	"testing"

	"seqbench/data"
)

// The lm task streams its files: batches are the windows of the split's
// shards read as one sequence (the same windows as reading them whole),
// for GPT-2 shards (which record no vocabulary) and byte-level files.
func TestLMStreamsShards(t *testing.T) {
	dir := t.TempDir()
	var train []uint16
	for i := range 3 {
		toks := make([]uint16, 40+i)
		for j := range toks {
			toks[j] = uint16((7*j + 13*i) % 50257)
		}
		train = append(train, toks...)
		if err := data.WriteShard(filepath.Join(dir, "c_train_00000"+string(rune('0'+i))+".bin"), toks, 0, data.KindUnknown); err != nil {
			t.Fatal(err)
		}
	}
	if err := data.WriteShard(filepath.Join(dir, "c_val_000000.bin"), []uint16{50256, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 0, data.KindUnknown); err != nil {
		t.Fatal(err)
	}
	cfg := &LMConfig{Name: "lm", Train: filepath.Join(dir, "c_train_*.bin"), Val: filepath.Join(dir, "c_val_*.bin"), SeqLen: 8}
	if _, err := cfg.Build(); err == nil || !strings.Contains(err.Error(), "vocab: 50257") {
		t.Fatalf("GPT-2 shards without a vocab: %v", err)
	}
	cfg.Vocab = 50000
	if _, err := cfg.Build(); err == nil || !strings.Contains(err.Error(), "token 50256") {
		t.Fatalf("a token past the vocab: %v", err)
	}
	cfg.Vocab = 50257
	task, err := cfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := task.(LossMetrics).LossMetrics(1)["perplexity"]; !ok {
		t.Error("GPT-2 tokens report no perplexity")
	}
	// A vocabulary of 50257 is GPT-2's: sequences show as text.
	ev := task.Batch(Eval, 1, 0, 1)
	if got := task.Decode(ev, 0); !strings.HasPrefix(got, "GPT-2 text: ") {
		t.Errorf("Decode: %s", got)
	}
	for index := range int64(20) {
		b := task.Batch(Train, 3, index, 4)
		for i := range 4 {
			off := seqRand(3, Train, index, i).IntN(len(train) - 8)
			for j := range 8 {
				if b.Inputs[i*8+j] != int32(train[off+j]) || b.Targets[i*8+j] != int32(train[off+j+1]) {
					t.Fatalf("batch %d sequence %d differs from the window at %d", index, i, off)
				}
			}
		}
	}

	// Byte-level files record their vocabulary and report bits per byte.
	if err := data.WriteShard(filepath.Join(dir, "b.bin"), []uint16{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'}, 256, data.KindBytes); err != nil {
		t.Fatal(err)
	}
	bt, err := (&LMConfig{Name: "lm", Train: filepath.Join(dir, "b.bin"), Val: filepath.Join(dir, "b.bin"), SeqLen: 4}).Build()
	if err != nil {
		t.Fatal(err)
	}
	if bt.Vocab() != 256 || !strings.HasPrefix(bt.Decode(bt.Batch(Eval, 1, 0, 1), 0), "text:") {
		t.Fatalf("byte-level task: vocab %d", bt.Vocab())
	}
}
