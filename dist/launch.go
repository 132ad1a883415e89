package dist

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"seqbench/internal/atomicfile"
)

// Launch is where one process stands among the ranks of a run: its rank,
// the world size, its rank on its host (which GPU it takes), and the
// launch it belongs to (so that a rendezvous left by an earlier launch in
// the same run folder is not mistaken for this one's).
type Launch struct {
	Rank, Size, LocalRank int
	ID                    string
}

// The variables `seqbench run` sets for the rank processes it starts
// itself (one host), as torchrun's RANK, WORLD_SIZE and LOCAL_RANK.
const (
	EnvRank      = "SEQBENCH_RANK"
	EnvSize      = "SEQBENCH_WORLD_SIZE"
	EnvLocalRank = "SEQBENCH_LOCAL_RANK"
	EnvLaunch    = "SEQBENCH_LAUNCH"
)

// LaunchFromEnv reads the process's place from the environment (getenv,
// as os.Getenv): seqbench's own variables (EnvRank, EnvSize, EnvLocalRank,
// EnvLaunch) when EnvRank is set, else Slurm's when srun started the
// process (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the launch is the
// job step, SLURM_JOB_ID.SLURM_STEP_ID). ok is false when neither is set:
// a process of its own. A missing or impossible value is an error naming
// the variable and its value.
func LaunchFromEnv(getenv func(string) string) (l Launch, ok bool, err error) {
	names := [4]string{EnvRank, EnvSize, EnvLocalRank, EnvLaunch}
	if getenv(EnvRank) == "" {
		if getenv("SLURM_PROCID") == "" {
			return Launch{}, false, nil
		}
		names = [4]string{"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", ""}
	}
	num := func(name string) (int, error) {
		v := getenv(name)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("environment variable %s: %q is not allowed (a whole number ≥ 0)", name, v)
		}
		return n, nil
	}
	if l.Rank, err = num(names[0]); err != nil {
		return l, false, err
	}
	if l.Size, err = num(names[1]); err != nil {
		return l, false, err
	}
	if l.LocalRank, err = num(names[2]); err != nil {
		return l, false, err
	}
	switch {
	case l.Size < 1:
		return l, false, fmt.Errorf("environment variable %s: %d is not allowed (at least 1 rank)", names[1], l.Size)
	case l.Rank >= l.Size:
		return l, false, fmt.Errorf("environment variable %s: %d is not allowed (below %s = %d)", names[0], l.Rank, names[1], l.Size)
	case l.LocalRank > l.Rank:
		return l, false, fmt.Errorf("environment variable %s: %d is not allowed (at most %s = %d: a host's ranks are among the run's)", names[2], l.LocalRank, names[0], l.Rank)
	}
	if names[3] != "" {
		l.ID = getenv(names[3])
		if l.ID == "" {
			return l, false, fmt.Errorf("environment variable %s is not set (the launch's id, set with %s)", EnvLaunch, EnvRank)
		}
	} else {
		job, step := getenv("SLURM_JOB_ID"), getenv("SLURM_STEP_ID")
		if job == "" {
			return l, false, errors.New("environment variable SLURM_JOB_ID is not set (SLURM_PROCID is: srun sets both)")
		}
		l.ID = "slurm-" + job + "." + step
	}
	return l, true, nil
}

// RankEnv is the environment of rank's process in a launch of size ranks
// on one host, which LaunchFromEnv reads back.
func RankEnv(id string, rank, size int) []string {
	return []string{
		EnvRank + "=" + strconv.Itoa(rank), EnvSize + "=" + strconv.Itoa(size),
		EnvLocalRank + "=" + strconv.Itoa(rank), EnvLaunch + "=" + id,
	}
}

// RendezvousFile is the file in a run folder through which rank 0 hands
// the other ranks the communicator's id (NCCL's unique id), as torchrun's
// rendezvous does.
const RendezvousFile = "rendezvous.json"

type rendezvous struct {
	Launch string `json:"launch"`
	ID     string `json:"id"` // hex
}

// WriteRendezvous publishes id for launch in dir (rank 0), atomically:
// a reader sees the whole file or none.
func WriteRendezvous(dir, launch string, id []byte) error {
	data, err := json.Marshal(rendezvous{Launch: launch, ID: hex.EncodeToString(id)})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, RendezvousFile), append(data, '\n'))
}

// ReadRendezvous waits for rank 0's id for launch in dir, looking every
// poll, and gives up after timeout (or when ctx ends) with an error that
// says what it found. A file of another launch (an earlier one) is waited
// past; a file that is not a rendezvous is an error.
func ReadRendezvous(ctx context.Context, dir, launch string, timeout, poll time.Duration) ([]byte, error) {
	path := filepath.Join(dir, RendezvousFile)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	found := "no file"
	for {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			var r rendezvous
			if err := json.Unmarshal(data, &r); err != nil {
				return nil, fmt.Errorf("%s: not a rendezvous file: %w", path, err)
			}
			if r.Launch == launch {
				id, err := hex.DecodeString(r.ID)
				if err != nil {
					return nil, fmt.Errorf("%s: id %q is not hex: %w", path, r.ID, err)
				}
				return id, nil
			}
			found = fmt.Sprintf("launch %q's file", r.Launch)
		case !os.IsNotExist(err):
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("no id from rank 0 for launch %q in %s after %v (found %s): did rank 0 start?", launch, path, timeout, found)
		case <-tick.C:
		}
	}
}

// Connect makes l's communicator, meeting the launch's other ranks through
// dir: rank 0 draws the id (newID: NCCL's ncclGetUniqueId) and publishes
// it with WriteRendezvous; every other rank waits for it with
// ReadRendezvous (up to timeout); then each rank opens its handle (open:
// ncclCommInitRank with the id, its rank and the size).
func Connect(ctx context.Context, l Launch, dir string, timeout time.Duration,
	newID func() ([]byte, error), open func(id []byte, rank, size int) (Comm, error)) (Comm, error) {
	var id []byte
	var err error
	if l.Rank == 0 {
		if id, err = newID(); err != nil {
			return nil, fmt.Errorf("rank 0: drawing the communicator id: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := WriteRendezvous(dir, l.ID, id); err != nil {
			return nil, fmt.Errorf("rank 0: publishing the communicator id: %w", err)
		}
	} else if id, err = ReadRendezvous(ctx, dir, l.ID, timeout, rendezvousPoll); err != nil {
		return nil, fmt.Errorf("rank %d: %w", l.Rank, err)
	}
	c, err := open(id, l.Rank, l.Size)
	if err != nil {
		return nil, fmt.Errorf("rank %d of %d: opening the communicator: %w", l.Rank, l.Size, err)
	}
	if c.Rank() != l.Rank || c.Size() != l.Size {
		c.Close()
		return nil, fmt.Errorf("rank %d of %d: the communicator opened as rank %d of %d", l.Rank, l.Size, c.Rank(), c.Size())
	}
	return c, nil
}

// rendezvousPoll is how often a rank looks for rank 0's id.
const rendezvousPoll = 50 * time.Millisecond
