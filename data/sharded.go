package data

import (
	"seqbench/internal/atomicfile"

	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// ShardOptions configure PrepareShards.
type ShardOptions struct {
	Paths       []string // text files and folders, as for PrepareBytes
	Out         string   // "DIR/NAME.bin" gives DIR/NAME_train_000000.bin, ... and DIR/NAME_val_000000.bin, ...
	ValFraction float64  // the last fraction of each document's tokens goes to validation
	// ShardTokens is the most tokens per shard file (llm.c writes 100M).
	ShardTokens int
	// Workers encode files in parallel (0: one per CPU). The shards do not
	// depend on it.
	Workers int
	// NewEncoder makes one encoder per worker.
	NewEncoder func() Encoder
	// Progress, when not nil, receives a progress line about once a
	// second and a last one at the end; Terminal rewrites one line with \r.
	Progress io.Writer
	Terminal bool
}

// ShardsPrepared describes what PrepareShards wrote.
type ShardsPrepared struct {
	Train, Val             string // globs matching the shards of each split
	TrainShards, ValShards int
	TrainTokens, ValTokens int64
	Files                  int
	Bytes                  int64
}

// DefaultShardTokens is llm.c's shard size.
const DefaultShardTokens = 100_000_000

// PrepareShards tokenizes text files into llm.c `.bin` shards: a header of
// 256 int32 (magic 20240520, version 1, token count, the rest 0, exactly as
// llm.c writes them) then uint16 tokens. Files are encoded in parallel but
// written in sorted path order, so the shards are byte-identical whatever
// the number of workers; each file's last ValFraction of tokens goes to the
// validation split, as PrepareBytes does with bytes. Shards of an earlier
// preparation under the same name beyond the ones written are removed, so
// the globs match only this corpus.
func PrepareShards(o ShardOptions) (ShardsPrepared, error) {
	if !(o.ValFraction > 0 && o.ValFraction < 1) {
		return ShardsPrepared{}, fmt.Errorf("--val-fraction %v is not allowed (must be in (0, 1))", o.ValFraction)
	}
	if o.ShardTokens < 2 || o.ShardTokens > 1<<31-1 {
		return ShardsPrepared{}, fmt.Errorf("--shard-tokens %d is not allowed (must be in [2, %d], the int32 count of a shard header)", o.ShardTokens, 1<<31-1)
	}
	if o.Workers < 0 {
		return ShardsPrepared{}, fmt.Errorf("--workers %d is not allowed (0 for one per CPU, or more)", o.Workers)
	}
	if o.NewEncoder == nil {
		return ShardsPrepared{}, fmt.Errorf("no tokenizer given")
	}
	files, err := textFiles(o.Paths)
	if err != nil {
		return ShardsPrepared{}, err
	}
	workers := o.Workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	workers = min(workers, len(files))
	base := strings.TrimSuffix(o.Out, ".bin")
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return ShardsPrepared{}, err
	}
	train := &shardWriter{base: base + "_train", max: int64(o.ShardTokens)}
	val := &shardWriter{base: base + "_val", max: int64(o.ShardTokens)}
	complete := false
	defer func() {
		if !complete { // no partial corpus under a complete one's names
			train.discard()
			val.discard()
		}
	}()

	type result struct {
		tokens []uint16
		size   int64
		err    error
	}
	// Files go out in order to the workers; results come back in any order
	// and are written in file order. At most 4 files per worker are in
	// flight, which bounds memory to a few documents per worker.
	results := make([]chan result, len(files))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	jobs := make(chan int)
	window := make(chan struct{}, 4*workers)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(jobs)
		for i := range files {
			select {
			case window <- struct{}{}:
			case <-done:
				return
			}
			select {
			case jobs <- i:
			case <-done:
				return
			}
		}
	}()
	for range workers {
		go func() {
			enc := o.NewEncoder()
			for i := range jobs {
				b, err := os.ReadFile(files[i])
				if err != nil {
					results[i] <- result{err: err}
					continue
				}
				toks, err := enc.Encode(b)
				if err != nil {
					err = fmt.Errorf("%s: %w", files[i], err)
				}
				results[i] <- result{tokens: toks, size: int64(len(b)), err: err}
			}
		}()
	}

	p := ShardsPrepared{Train: base + "_train_*.bin", Val: base + "_val_*.bin", Files: len(files)}
	prog := progress{w: o.Progress, terminal: o.Terminal, total: len(files), start: time.Now()}
	for i := range files {
		r := <-results[i]
		<-window
		if r.err != nil {
			return ShardsPrepared{}, r.err
		}
		cut := len(r.tokens) - int(float64(len(r.tokens))*o.ValFraction)
		if err := train.write(r.tokens[:cut]); err != nil {
			return ShardsPrepared{}, err
		}
		if err := val.write(r.tokens[cut:]); err != nil {
			return ShardsPrepared{}, err
		}
		p.Bytes += r.size
		prog.update(i+1, p.Bytes, train.total+val.total)
	}
	prog.finish(len(files), p.Bytes, train.total+val.total)
	if train.total < 2 || val.total < 2 {
		return ShardsPrepared{}, fmt.Errorf("the text is too short to split (%d train and %d validation tokens from %d files)", train.total, val.total, len(files))
	}
	for _, w := range []*shardWriter{train, val} {
		if err := w.close(); err != nil {
			return ShardsPrepared{}, err
		}
	}
	complete = true
	p.TrainShards, p.ValShards = len(train.written), len(val.written)
	p.TrainTokens, p.ValTokens = train.total, val.total
	return p, nil
}

// shardWriter streams tokens into numbered shards of at most max tokens:
// each is written to a temporary file whose header gets its count once the
// shard is full, then renamed into place.
type shardWriter struct {
	base    string
	max     int64
	total   int64
	f       *atomicfile.File
	buf     *bufio.Writer
	n       int64 // tokens in the open shard
	written []string
}

func (w *shardWriter) name(i int) string { return fmt.Sprintf("%s_%06d.bin", w.base, i) }

func (w *shardWriter) write(tokens []uint16) error {
	for len(tokens) > 0 {
		if w.f == nil {
			f, err := atomicfile.Create(w.name(len(w.written)))
			if err != nil {
				return err
			}
			w.f, w.buf, w.n = f, bufio.NewWriterSize(f, 1<<20), 0
			if _, err := w.buf.Write(make([]byte, HeaderBytes)); err != nil {
				return err
			}
		}
		k := min(int64(len(tokens)), w.max-w.n)
		var b [2]byte
		for _, t := range tokens[:k] {
			binary.LittleEndian.PutUint16(b[:], t)
			if _, err := w.buf.Write(b[:]); err != nil {
				return err
			}
		}
		w.n += k
		w.total += k
		tokens = tokens[k:]
		if w.n == w.max {
			if err := w.seal(); err != nil {
				return err
			}
		}
	}
	return nil
}

// seal writes the open shard's header and moves it into place.
func (w *shardWriter) seal() error {
	if err := w.buf.Flush(); err != nil {
		return err
	}
	header := make([]byte, 12)
	binary.LittleEndian.PutUint32(header[0:], Magic)
	binary.LittleEndian.PutUint32(header[4:], Version)
	binary.LittleEndian.PutUint32(header[8:], uint32(w.n))
	if _, err := w.f.WriteAt(header, 0); err != nil {
		return err
	}
	if err := w.f.Commit(); err != nil {
		w.f = nil
		return err
	}
	w.f = nil
	w.written = append(w.written, w.name(len(w.written)))
	return nil
}

// close seals the last shard and removes older shards of the same name
// past the last one written.
func (w *shardWriter) close() error {
	if w.f != nil {
		if err := w.seal(); err != nil {
			return err
		}
	}
	old, _ := filepath.Glob(w.base + "_[0-9][0-9][0-9][0-9][0-9][0-9].bin")
	for _, p := range old {
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(p, w.base+"_"), "%06d.bin", &i); err == nil && i >= len(w.written) {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// discard removes what an unfinished preparation wrote: the open shard
// and the sealed ones.
func (w *shardWriter) discard() {
	if w.f != nil {
		w.f.Abort()
		w.f = nil
	}
	for _, p := range w.written {
		os.Remove(p)
	}
	w.written = nil
}

// progress prints "files, MB, tokens, MB/s" about once a second.
type progress struct {
	w        io.Writer
	terminal bool
	total    int
	start    time.Time
	last     time.Time
}

func (p *progress) line(done int, bytes, tokens int64) string {
	secs := max(time.Since(p.start).Seconds(), 1e-9)
	return fmt.Sprintf("tokenized %d/%d files, %.1f MB, %d tokens, %.1f MB/s", done, p.total, float64(bytes)/1e6, tokens, float64(bytes)/1e6/secs)
}

func (p *progress) update(done int, bytes, tokens int64) {
	if p.w == nil || time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\033[K", p.line(done, bytes, tokens))
	} else {
		fmt.Fprintln(p.w, p.line(done, bytes, tokens))
	}
}

func (p *progress) finish(done int, bytes, tokens int64) {
	if p.w == nil {
		return
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\033[K\n", p.line(done, bytes, tokens))
		return
	}
	fmt.Fprintln(p.w, p.line(done, bytes, tokens))
}
