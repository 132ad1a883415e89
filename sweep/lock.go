package sweep

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockFile is the file in a run folder that the process training the run
// holds an exclusive flock on.
const LockFile = ".lock"

// runLock is a process's exclusive hold on a run folder: two processes
// (two `seqbench run` or `sweep run` into one --out) never train one run
// at once. The lock is flock(2) on the open LockFile, so the kernel
// releases it when the file is closed, and so when its process exits or
// dies (SIGKILL, a crash, a node's OOM killer): a lock is never left stale
// behind a dead process and needs no cleanup. The file itself stays (a
// lock on a file that another process might just be removing would not
// exclude anyone); it names the last holder, for the message.
type runLock struct{ f *os.File }

// LockedError says another process holds a run folder's lock.
type LockedError struct {
	Dir    string
	Holder string // "pid 123 on host since 15:04:05", as the holder wrote it
}

func (e *LockedError) Error() string {
	holder := e.Holder
	if holder == "" {
		holder = "another process"
	}
	return fmt.Sprintf("%s is being trained by %s (locked)", e.Dir, holder)
}

// lockRun takes dir's lock without waiting: a *LockedError when another
// process (or another open file of this one) holds it.
func lockRun(dir string) (*runLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder, _ := os.ReadFile(path)
			return nil, &LockedError{Dir: dir, Holder: strings.TrimSpace(string(holder))}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	host, _ := os.Hostname()
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().Format(time.DateTime))), 0)
	}
	return &runLock{f}, nil
}

// release gives the lock up (closing the file releases the flock).
func (l *runLock) release() {
	if l != nil {
		l.f.Close()
	}
}
