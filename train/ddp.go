package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"

	"seqbench/arch"
	"seqbench/cpukernels"
	"seqbench/dist"
	"seqbench/nn"
	"seqbench/tasks"
)

// ddp is one rank's side of data-parallel training (issue #23): every rank
// holds the whole model and optimizer, trains on its slice of each global
// batch, and averages its gradients with the others' before the clip and
// the update, so that all ranks take the same update and stay equal. Rank
// 0 alone evaluates and writes the run's files; the others follow its
// decisions (see verdict).
type ddp struct {
	comm    dist.Comm
	lo, hi  int // this rank's sequences of each global batch
	buckets []gradBucket
	stats   nn.Buffer // the per-step reduction of loss, accuracy and interruption
	scratch nn.Buffer // verdicts and the resume header
}

// gradBucket is one all-reduce of the gradients: a single gradient is
// reduced in place; several are packed into buf, reduced, and unpacked.
type gradBucket struct {
	grads []nn.Buffer
	buf   nn.Buffer
}

// bucketBytes is the size of the gradient buckets (tests make it small).
var bucketBytes int64 = dist.DefaultBucketBytes

// newDDP plans rank comm.Rank()'s share of training: its rows of the
// global batch and the gradient buckets, over the optimizer's distinct
// parameters.
func newDDP(comm dist.Comm, be nn.Backend, optim *nn.AdamW, batchSize int) (*ddp, error) {
	lo, hi, err := dist.Rows(batchSize, comm.Size(), comm.Rank())
	if err != nil {
		return nil, err
	}
	d := &ddp{comm: comm, lo: lo, hi: hi, stats: be.Alloc(3), scratch: be.Alloc(4)}
	slots := optim.Slots()
	lens := make([]int, len(slots))
	for i, s := range slots {
		lens[i] = s.Param.T.Len()
	}
	for _, b := range dist.PlanBuckets(lens, be.DType().Size(), bucketBytes) {
		gb := gradBucket{}
		for _, i := range b.Params {
			gb.grads = append(gb.grads, slots[i].Param.T.Grad())
		}
		if len(gb.grads) > 1 {
			gb.buf = be.Alloc(b.Len)
		}
		d.buckets = append(d.buckets, gb)
	}
	return d, nil
}

func (d *ddp) free(be nn.Backend) {
	nn.FreeBuffers(be, d.stats, d.scratch)
	for _, b := range d.buckets {
		nn.FreeBuffers(be, b.buf)
	}
}

// The resume header packs step counts into pieces below 2^20, exact in
// any buffer type a rank may have.
const headerPiece = 1 << 20

// syncStart makes every rank start where rank 0 does: rank 0's step (after
// a resume, the checkpoint's), its optimizer step count, its parameters
// and, after a resume, its moments. Rank 0 passes its firstStep; every
// rank gets it back.
func (d *ddp) syncStart(be nn.Backend, optim *nn.AdamW, firstStep int) (int, error) {
	be.Write(d.scratch, []float64{
		float64(firstStep / headerPiece), float64(firstStep % headerPiece),
		float64(optim.Steps / headerPiece), float64(optim.Steps % headerPiece)})
	if err := d.comm.Broadcast(be, d.scratch, 0); err != nil {
		return 0, err
	}
	h := be.Read(d.scratch)
	firstStep = int(h[0])*headerPiece + int(h[1])
	optim.Steps = int(h[2])*headerPiece + int(h[3])
	for _, s := range optim.Slots() {
		bufs := []nn.Buffer{s.Param.T.Data}
		if firstStep > 1 {
			bufs = append(bufs, s.M, s.V)
		}
		for _, b := range bufs {
			if err := d.comm.Broadcast(be, b, 0); err != nil {
				return 0, err
			}
		}
	}
	return firstStep, nil
}

// agreeToStart tells every rank whether all of them could start: err is
// this rank's failure (nil: ready), and the result is err, or an error
// saying that another rank failed (its own reason is its own to report).
func agreeToStart(comm dist.Comm, be nn.Backend, err error) error {
	flag := be.Alloc(1)
	defer be.Free(flag)
	if err != nil {
		be.Write(flag, []float64{1})
	}
	if cerr := comm.AllReduce(be, flag, dist.Sum); cerr != nil {
		if err != nil {
			return err
		}
		return fmt.Errorf("starting the ranks: %w", cerr)
	}
	if err != nil {
		return err
	}
	if failed := be.Read(flag)[0]; failed > 0 {
		return fmt.Errorf("%s: %v of the %d ranks could not start", rankNotStarted, failed, comm.Size())
	}
	return nil
}

// recovered is f's error, or the panic that ended it as one.
func recovered(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New(panicReason(p))
		}
	}()
	return f()
}

// rankNotStarted begins the reason of a rank that was ready when another
// was not.
const rankNotStarted = "another rank failed"

// slice is this rank's part of the global batch b. Every rank generates
// the whole global batch (a pure function of its index) and keeps its own
// rows: a task makes whole batches only, and each rank needs the whole
// batch's count of scored targets to weigh its loss (see distStep).
func (d *ddp) slice(b tasks.Batch) tasks.Batch {
	L := b.L
	return tasks.Batch{B: d.hi - d.lo, L: L, Inputs: b.Inputs[d.lo*L : d.hi*L], Targets: b.Targets[d.lo*L : d.hi*L]}
}

// scored counts the targets a loss is averaged over.
func scored(targets []int32) int {
	n := 0
	for _, t := range targets {
		if t != tasks.Ignore {
			n++
		}
	}
	return n
}

// reduceStats sums the ranks' parts of the global batch's loss and
// accuracy (each already weighted by its share of the scored targets) and
// tells whether any rank was interrupted, so that all stop at the same
// step.
func (d *ddp) reduceStats(be nn.Backend, loss, acc float64, interrupted bool) (float64, float64, bool, error) {
	flag := 0.0
	if interrupted {
		flag = 1
	}
	be.Write(d.stats, []float64{loss, acc, flag})
	if err := d.comm.AllReduce(be, d.stats, dist.Sum); err != nil {
		return 0, 0, false, err
	}
	s := be.Read(d.stats)
	return s[0], s[1], s[2] > 0, nil
}

// reduceGrads averages the gradients over the ranks, bucket by bucket.
// scale, applied first, corrects a rank's gradient for its share of the
// scored targets (1 when all ranks score as many).
func (d *ddp) reduceGrads(be nn.Backend, scale float64) error {
	for _, b := range d.buckets {
		if scale != 1 {
			for _, g := range b.grads {
				be.Scale(g, scale)
			}
		}
		if b.buf == nil {
			if err := d.comm.AllReduce(be, b.grads[0], dist.Avg); err != nil {
				return err
			}
			continue
		}
		off := 0
		for _, g := range b.grads {
			be.CopyBlock(b.buf, off, g.Len(), g, 0, g.Len(), 1, g.Len(), false)
			off += g.Len()
		}
		if err := d.comm.AllReduce(be, b.buf, dist.Avg); err != nil {
			return err
		}
		off = 0
		for _, g := range b.grads {
			be.CopyBlock(g, 0, g.Len(), b.buf, off, g.Len(), 1, g.Len(), false)
			off += g.Len()
		}
	}
	return nil
}

// What rank 0 tells the others after a step at which it logged, evaluated
// or checkpointed.
const (
	verdictGoOn = iota
	verdictStop // the target accuracy is reached: finish normally
	verdictEnd  // rank 0 ended the run (a failure or an interruption)
)

// verdict broadcasts rank 0's code.
func (d *ddp) verdict(be nn.Backend, code int) (int, error) {
	be.Write(d.scratch, []float64{float64(code), 0, 0, 0})
	if err := d.comm.Broadcast(be, d.scratch, 0); err != nil {
		return 0, err
	}
	return int(be.Read(d.scratch)[0]), nil
}

// distStep is trainStep for one rank of several: the forward and backward
// on the rank's slice b of the global batch, whose scored targets number
// total; the loss, the accuracy and the gradients averaged over the ranks;
// then the clip and the update as on one rank. Every rank returns the same
// loss, accuracy, norm and decisions. stop reports that some rank was
// interrupted (nothing was updated).
func (r *runner) distStep(b tasks.Batch, total int, lr float64, step int, withAcc, interrupted bool) (loss, acc, gnorm float64, div *divergence, stop bool, err error) {
	tp := r.optim.StepTape()
	defer tp.Release()
	var pred *nn.Argmax
	if withAcc {
		pred = &nn.Argmax{Host: make([]int32, len(b.Targets))}
	}
	lossT, count := arch.LossAndArgmax(tp, r.model, b.Inputs, b.Targets, b.B, b.L, tasks.Ignore, pred)
	share := 0.0 // this rank's part of the global mean loss
	if total > 0 {
		share = float64(count) / float64(total)
	}
	local := r.be.Read(lossT.Data)[0]
	if withAcc {
		acc = hitRate(pred.Host, b.Targets) * share
	}
	loss, acc, stop, err = r.dist.reduceStats(r.be, local*share, acc, interrupted)
	if err != nil || stop {
		return loss, acc, 0, nil, stop, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, 0, 0, &divergence{fmt.Sprintf("loss is %v at step %d", loss, step)}, false, nil
	}
	nn.ZeroGrads(r.be, r.params)
	tp.Backward(lossT)
	if err := r.dist.reduceGrads(r.be, share*float64(r.dist.comm.Size())); err != nil {
		return loss, acc, 0, nil, false, err
	}
	gnorm, div = r.update(lr, step)
	return loss, acc, gnorm, div, false, nil
}

// ranks is the number of ranks of the run.
func (r *runner) ranks() int {
	if r.opt.Comm == nil {
		return 1
	}
	return r.opt.Comm.Size()
}

// cpuRanks are the options of n in-process ranks of a run given opt: rank
// 0 keeps opt, every other rank gets a CPU backend of its own of the same
// type. ok is false when opt's backend is not the CPU's.
func cpuRanks(opt Options, n int) (opts []Options, ok bool) {
	switch opt.Backend.(type) {
	case *cpukernels.Backend[float32], *cpukernels.Backend[float64]:
	default:
		return nil, false
	}
	opts = make([]Options, n)
	for i := range opts {
		opts[i] = opt
		if i > 0 {
			opts[i].Backend = cpukernels.ForDType(opt.Backend.DType())
		}
	}
	return opts, true
}

// CheckRanks says, before anything trains, whether be can run every
// spec's ranks: runs of train.gpus > 1 run them in-process on the CPU; on
// other backends each rank is a process of its own, which nothing starts
// yet (issue #23). It changes nothing on be.
func CheckRanks(be nn.Backend, specs []Spec) error {
	for _, s := range specs {
		if s.Train.GPUs <= 1 {
			continue
		}
		if _, ok := cpuRanks(Options{Backend: be}, s.Train.GPUs); !ok {
			return fmt.Errorf("run %s: field train.gpus: %d is not supported on %s yet (the CPU runs the ranks in-process; one process per GPU over NCCL is not wired)", s.Name, s.Train.GPUs, be.Name())
		}
	}
	return nil
}

// RunRanks trains spec into dir on len(opts) ranks, each a goroutine with
// its own backend (opts[i].Backend, which no other rank may share) joined
// by an in-process communicator (dist.NewLocal): data-parallel training
// on one machine without NCCL, as tests and CPU runs of train.gpus > 1 do
// it. opts[0] is rank 0's, the rank that logs and writes; the others'
// Log is ignored. It returns rank 0's summary; when another rank failed
// first, its reason is added to that summary (and to summary.json).
func RunRanks(ctx context.Context, spec Spec, dir string, opts []Options) Summary {
	comms := dist.NewLocal(len(opts))
	sums := make([]Summary, len(opts))
	var wg sync.WaitGroup
	for i, c := range comms {
		o := opts[i]
		o.Comm = c
		if i > 0 {
			o.Log, o.Interactive = nil, false
		}
		wg.Go(func() {
			sums[i] = Run(ctx, spec, dir, o)
			// Leaving frees the ranks waiting in a collective this
			// rank will never join (an error ended it).
			c.Close()
		})
	}
	wg.Wait()
	sum := sums[0]
	var others []string
	for i, s := range sums[1:] {
		if s.Status == StatusFailed && !strings.Contains(s.Reason, dist.ErrClosed.Error()) && s.Reason != rankZeroEnded && !strings.HasPrefix(s.Reason, rankNotStarted) {
			others = append(others, fmt.Sprintf("rank %d: %s", i+1, s.Reason))
		}
	}
	if len(others) > 0 && sum.Status != StatusOK {
		sum.Status = StatusFailed
		sum.Reason = strings.Join(append([]string{sum.Reason}, others...), "; ")
		if err := writeJSON(filepath.Join(dir, "summary.json"), sum); err != nil {
			sum.Reason += "; writing summary.json: " + err.Error()
		}
	}
	return sum
}

// rankZeroEnded is the reason of the other ranks when rank 0 ends a run.
const rankZeroEnded = "rank 0 ended the run"
