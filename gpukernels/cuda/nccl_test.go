package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ebitengine/purego"
)

// touch creates an empty file at path, with its folders.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o755); err != nil {
		t.Fatal(err)
	}
}

// fakeTree lays out libnccl.so.2 the way the nvidia-nccl wheel does in
// several Python installations under root, plus decoys that must not
// match, and returns the library paths in the order LoadNCCL tries them.
func fakeTree(t *testing.T, root string) (s ncclSearch, want []string) {
	lib := func(parts ...string) string {
		return filepath.Join(append(append([]string{root}, parts...), "nvidia", "nccl", "lib", ncclSoname)...)
	}
	usrDist := lib("usr", "lib", "python3", "dist-packages")
	usrLocal11 := lib("usr", "local", "lib", "python3.11", "site-packages")
	usrLocal12 := lib("usr", "local", "lib", "python3.12", "site-packages")
	usrLocal64 := lib("usr", "local", "lib64", "python3.9", "site-packages")
	home := lib("home", ".local", "lib", "python3.10", "site-packages")
	venv := lib("venv", "lib", "python3.12", "site-packages")
	for _, p := range []string{usrDist, usrLocal11, usrLocal12, usrLocal64, home, venv} {
		touch(t, p)
	}
	touch(t, filepath.Join(root, "venv", "bin", "python3"))
	// Decoys: a Python 2 tree, a library of another name, a PATH folder
	// without python3 whose parent has the layout.
	touch(t, lib("usr", "lib", "python2.7", "site-packages"))
	touch(t, filepath.Join(root, "usr", "lib", "python3.11", "site-packages", "nvidia", "nccl", "lib", "libnccl.so"))
	touch(t, lib("tools", "lib", "python3.12", "site-packages"))
	if err := os.MkdirAll(filepath.Join(root, "tools", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := strings.Join([]string{filepath.Join(root, "tools", "bin"), filepath.Join(root, "venv", "bin")}, string(os.PathListSeparator))
	s = ncclSearch{prefixes: append([]string{filepath.Join(root, "usr"), filepath.Join(root, "usr", "local"),
		filepath.Join(root, "opt", "conda"), filepath.Join(root, "home", ".local")}, pythonPrefixes(path)...)}
	return s, []string{ncclSoname, usrDist, usrLocal11, usrLocal12, usrLocal64, home, venv}
}

func TestNCCLSearchOrder(t *testing.T) {
	root := t.TempDir()
	s, want := fakeTree(t, root)
	if got := s.prefixes[len(s.prefixes)-1]; got != filepath.Join(root, "venv") {
		t.Fatalf("prefix of the python3 on PATH = %q, want %q (and none for a PATH folder without python3)", got, filepath.Join(root, "venv"))
	}
	if got := s.candidates(); !slices.Equal(got, want) {
		t.Fatalf("candidates:\n got %q\nwant %q", got, want)
	}

	// SEQBENCH_NCCL_LIB comes first, as a folder or as the file itself.
	dir := filepath.Join(root, "custom")
	touch(t, filepath.Join(dir, ncclSoname))
	s.env = dir
	if got := s.candidates(); !slices.Equal(got, append([]string{filepath.Join(dir, ncclSoname)}, want...)) {
		t.Fatalf("with %s a folder: %q", NCCLLibEnv, got)
	}
	s.env = filepath.Join(dir, "libnccl.so.2.21.5")
	if got := s.candidates(); !slices.Equal(got, append([]string{s.env}, want...)) {
		t.Fatalf("with %s a file: %q", NCCLLibEnv, got)
	}
	// A path given twice is tried once.
	s.env = want[2]
	if got := s.candidates(); len(got) != len(want) || got[0] != want[2] {
		t.Fatalf("with %s one of the found paths: %q", NCCLLibEnv, got)
	}
}

// When nothing loads, the error names every path tried with the loader's
// reason, the Python prefixes searched and the variable to set.
func TestNCCLLoadErrorSaysWhereItLooked(t *testing.T) {
	root := t.TempDir()
	s, want := fakeTree(t, root) // the fake libraries are empty files: dlopen refuses them
	s.env = filepath.Join(root, "nowhere")
	n, err := loadNCCL(s)
	if err == nil {
		t.Skipf("a real %s loads from the loader's path (%s)", ncclSoname, n.Path)
	}
	msg := err.Error()
	for _, p := range append(want, s.env, NCCLLibEnv, filepath.Join(root, "opt", "conda"), filepath.Join(root, "venv")) {
		if !strings.Contains(msg, p) {
			t.Errorf("error does not name %q:\n%s", p, msg)
		}
	}
}

func TestNCCLVersionString(t *testing.T) {
	for code, want := range map[int]string{2708: "2.7.8", 2804: "2.8.4", 21003: "2.10.3", 22105: "2.21.5", 22707: "2.27.7"} {
		if got := NCCLVersionString(code); got != want {
			t.Errorf("NCCLVersionString(%d) = %q, want %q", code, got, want)
		}
	}
}

// cGetenv is the C library's getenv: what NCCL sees.
func cGetenv(t *testing.T, name string) string {
	t.Helper()
	h, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		t.Skipf("no libc.so.6 to read the C environment: %v", err)
	}
	var getenv func(name string) *byte
	purego.RegisterLibFunc(&getenv, h, "getenv")
	return cString(getenv(name))
}

// NCCL_NVLS_ENABLE=0 is set for NCCL unless the user chose a value, and
// NCCL (C getenv) sees what Go set.
func TestNVLSOffUnlessSet(t *testing.T) {
	t.Setenv(NVLSEnv, "1") // restores the variable after the test
	keepNVLSOff()
	if os.Getenv(NVLSEnv) != "1" || cGetenv(t, NVLSEnv) != "1" {
		t.Fatalf("a user's %s=1 was changed: Go %q, C %q", NVLSEnv, os.Getenv(NVLSEnv), cGetenv(t, NVLSEnv))
	}
	os.Unsetenv(NVLSEnv)
	if cGetenv(t, NVLSEnv) != "" {
		t.Fatalf("os.Unsetenv(%s) did not reach the C environment", NVLSEnv)
	}
	keepNVLSOff()
	if os.Getenv(NVLSEnv) != "0" || cGetenv(t, NVLSEnv) != "0" {
		t.Fatalf("%s unset: after keepNVLSOff Go sees %q, C sees %q; want 0", NVLSEnv, os.Getenv(NVLSEnv), cGetenv(t, NVLSEnv))
	}
}

// purego accepts the Go signature of every NCCL call (it panics at
// registration on one it cannot pass, which without a GPU host would
// first show there). Registering calls nothing: any address will do.
func TestNCCLSignaturesRegister(t *testing.T) {
	h, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		t.Skipf("no libc.so.6: %v", err)
	}
	addr, err := purego.Dlsym(h, "abs")
	if err != nil {
		t.Fatal(err)
	}
	var n NCCL
	for _, s := range n.symbols() {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: purego refuses the signature %T: %v", s.names[0], s.fptr, r)
				}
			}()
			purego.RegisterFunc(s.fptr, addr)
		}()
	}
}

// The communicator id reaches C intact, by value, as ncclCommInitRank
// takes it: checked through the C library's snprintf, whose variadic
// arguments on amd64 (System V) sit where fixed ones would: ints in
// registers, the 128-byte struct in memory on the stack after them.
func TestUniqueIDPassedByValue(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the check reads the System V amd64 layout; this is %s", runtime.GOARCH)
	}
	h, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		t.Skipf("no libc.so.6: %v", err)
	}
	// As ncclCommInitRank(comm, nranks, id, rank): pointer-sized
	// arguments, the id, then an int after it.
	var snprintf func(buf *byte, size uint64, format string, id ncclUniqueID, rank int32) int32
	purego.RegisterLibFunc(&snprintf, h, "snprintf")
	var id ncclUniqueID
	for i := range id.internal {
		id.internal[i] = byte(3*i + 1)
	}
	// rank arrives in the next register (rcx); the two after it (r8, r9)
	// are unused; then the stack holds the id's 16 words.
	format := "%d %lx %lx" + strings.Repeat(" %lx", NCCLUniqueIDBytes/8)
	buf := make([]byte, 1024)
	n := snprintf(&buf[0], uint64(len(buf)), format, id, 12345)
	fields := strings.Fields(string(buf[:n]))
	if len(fields) != 3+NCCLUniqueIDBytes/8 || fields[0] != "12345" {
		t.Fatalf("snprintf wrote %q: want the int argument 12345 first", buf[:n])
	}
	var got [NCCLUniqueIDBytes]byte
	for i, f := range fields[3:] {
		w, err := strconv.ParseUint(f, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(got[8*i:], w)
	}
	if got != id.internal {
		t.Fatalf("C received the id\n%x\nwant\n%x", got, id.internal)
	}
}

// cText is a NUL-terminated copy of s, as a C function returns strings.
func cText(s string) *byte { return &append([]byte(s), 0)[0] }

// The Go side of the bindings against Go stand-ins for NCCL's functions:
// arguments pass through unchanged, and a failed call becomes an *Error
// naming the call, the result and NCCL's explanation.
func TestNCCLCallsAndErrors(t *testing.T) {
	var calls []string
	n := &NCCL{
		ncclGetErrorString: func(r int32) *byte { return cText(fmt.Sprintf("explanation of %d", r)) },
		ncclGetLastError:   func(comm uintptr) *byte { return cText(fmt.Sprintf("last error of comm %#x", comm)) },
		ncclAllReduce: func(send, recv uint64, count uint64, dt NCCLDataType, op NCCLRedOp, comm, stream uintptr) int32 {
			calls = append(calls, fmt.Sprintf("AllReduce %#x %#x %d %d %d %#x %#x", send, recv, count, dt, op, comm, stream))
			return 0
		},
		ncclReduceScatter: func(send, recv uint64, count uint64, dt NCCLDataType, op NCCLRedOp, comm, stream uintptr) int32 {
			return 4 // ncclInvalidArgument
		},
		ncclCommGetAsyncError: func(comm uintptr, r *int32) int32 { *r = 6; return 0 }, // ncclRemoteError
		ncclCommDestroy:       func(comm uintptr) int32 { calls = append(calls, "Destroy"); return 0 },
		ncclGroupEnd:          func() int32 { return 42 },
	}
	c := &NCCLComm{n: n, c: 0xc0}
	if err := c.AllReduce(0x1000, 0x2000, 5, NCCLBfloat16, NCCLAvg, 0x5); err != nil {
		t.Fatal(err)
	}
	if want := "AllReduce 0x1000 0x2000 5 9 4 0xc0 0x5"; calls[0] != want {
		t.Errorf("ncclAllReduce got %q, want %q", calls[0], want)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{c.ReduceScatter(1, 2, 3, NCCLFloat32, NCCLSum, 4),
			"ncclReduceScatter failed: ncclInvalidArgument (4): explanation of 4: last error of comm 0xc0"},
		{c.AsyncError(), "ncclCommGetAsyncError (asynchronous error) failed: ncclRemoteError (6): explanation of 6: last error of comm 0xc0"},
		{n.GroupEnd(), "ncclGroupEnd failed: ncclResult 42 (42): explanation of 42: last error of comm 0x0"},
	} {
		var ce *Error
		if !errors.As(tc.err, &ce) || tc.err.Error() != tc.want {
			t.Errorf("got %v, want the *Error %q", tc.err, tc.want)
		}
	}
	// Without ncclCommAbort (an old NCCL), Abort destroys.
	if err := c.Abort(); err != nil || calls[len(calls)-1] != "Destroy" {
		t.Errorf("Abort without ncclCommAbort: %v, calls %q", err, calls)
	}
	// Without ncclGetLastError (before 2.13), the explanation alone.
	n.ncclGetLastError = nil
	if err := c.ReduceScatter(1, 2, 3, NCCLFloat32, NCCLSum, 4); err == nil || err.Error() != "ncclReduceScatter failed: ncclInvalidArgument (4): explanation of 4" {
		t.Errorf("without ncclGetLastError: %v", err)
	}
}
