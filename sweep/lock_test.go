package sweep

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two open files of the lock in one process exclude each other as two
// processes would (flock locks belong to the open file); releasing lets
// the next one in.
func TestLockRunExcludes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	a, err := lockRun(dir)
	require.NoError(t, err)
	_, err = lockRun(dir)
	var le *LockedError
	require.ErrorAs(t, err, &le)
	require.Contains(t, le.Error(), fmt.Sprintf("pid %d on ", os.Getpid()))
	require.Contains(t, le.Error(), "is being trained by")
	a.release()
	b, err := lockRun(dir)
	require.NoError(t, err)
	b.release()
	fi, err := os.Stat(filepath.Join(dir, LockFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
}

// TestLockHelperProcess is the other process of TestLockRunAcrossProcesses:
// it takes the lock, says so and waits to be killed.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv("SEQBENCH_LOCK_HELPER")
	if dir == "" {
		t.Skip("the helper of TestLockRunAcrossProcesses")
	}
	if _, err := lockRun(dir); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(1)
}

// A lock held by another process excludes this one; once that process
// dies (SIGKILL: it releases nothing itself), the kernel has dropped its
// lock and the run can be taken: a dead holder never leaves a stale lock.
func TestLockRunAcrossProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "SEQBENCH_LOCK_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = lockRun(dir)
	var le *LockedError
	require.ErrorAs(t, err, &le)
	require.Contains(t, le.Holder, fmt.Sprintf("pid %d on ", cmd.Process.Pid))

	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
	l, err := lockRun(dir)
	require.NoError(t, err, "the dead process's lock was not released")
	l.release()
}
