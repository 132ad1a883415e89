package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

// NCCL, NVIDIA's collective communication library (libnccl.so.2), bound
// at run time for data-parallel training (package dist). It is not part
// of the CUDA toolkit: on the GPU hosts it ships inside PyTorch's Python
// environment (the nvidia-nccl wheel), so besides the loader's path it is
// looked for in the site-packages of the usual Python installations.

// NCCLLibEnv names the NCCL library file, or a folder holding
// libnccl.so.2; LoadNCCL tries it first.
const NCCLLibEnv = "SEQBENCH_NCCL_LIB"

const ncclSoname = "libnccl.so.2"

// NVLSEnv is NCCL's switch for NVLink SHARP (multicast) collectives.
// LoadNCCL sets it to 0 unless the user set it: on the shared GPU hosts
// multicast setup has taken GPUs out of service.
const NVLSEnv = "NCCL_NVLS_ENABLE"

// NCCLUniqueIDBytes is the size of an ncclUniqueId
// (NCCL_UNIQUE_ID_BYTES).
const NCCLUniqueIDBytes = 128

// NCCLDataType is an ncclDataType_t, NCCLRedOp an ncclRedOp_t. The values
// are those of NCCL's public header, src/nccl.h.in in github.com/NVIDIA/nccl
// (read at commit 021e8045ff77a8a9fba909617a0129d3c3d44def): ncclFloat32 = 7,
// ncclFloat64 = 8, ncclBfloat16 = 9; ncclSum = 0, ncclAvg = 4. ncclBfloat16
// and ncclAvg exist from NCCL 2.10 on (NCCLVersion210).
type (
	NCCLDataType int32
	NCCLRedOp    int32
)

const (
	NCCLFloat32  NCCLDataType = 7
	NCCLFloat64  NCCLDataType = 8
	NCCLBfloat16 NCCLDataType = 9

	NCCLSum NCCLRedOp = 0
	NCCLAvg NCCLRedOp = 4

	// NCCLVersion210 is NCCL 2.10.0's version code, the first with
	// bfloat16 and the average.
	NCCLVersion210 = 21000
)

// ncclResultNames are the ncclResult_t values (nccl.h.in, as above).
var ncclResultNames = map[int32]string{
	0: "ncclSuccess", 1: "ncclUnhandledCudaError", 2: "ncclSystemError", 3: "ncclInternalError",
	4: "ncclInvalidArgument", 5: "ncclInvalidUsage", 6: "ncclRemoteError", 7: "ncclInProgress", 8: "ncclTimeout",
}

// ncclUniqueID is ncclUniqueId as C passes it: by value, 128 bytes.
type ncclUniqueID struct{ internal [NCCLUniqueIDBytes]byte }

// NCCL is libnccl, bound at run time.
type NCCL struct {
	Path string
	// Version is NCCL_VERSION_CODE, e.g. 22105 for 2.21.5.
	Version int

	ncclGetVersion        func(v *int32) int32
	ncclGetUniqueId       func(id *ncclUniqueID) int32
	ncclCommInitRank      func(comm *uintptr, nranks int32, id ncclUniqueID, rank int32) int32
	ncclCommDestroy       func(comm uintptr) int32
	ncclCommAbort         func(comm uintptr) int32 // optional
	ncclCommGetAsyncError func(comm uintptr, r *int32) int32
	ncclCommCount         func(comm uintptr, n *int32) int32
	ncclCommUserRank      func(comm uintptr, r *int32) int32
	ncclGetErrorString    func(r int32) *byte
	ncclGetLastError      func(comm uintptr) *byte // optional (NCCL ≥ 2.13)
	ncclAllReduce         func(send, recv uint64, count uint64, dt NCCLDataType, op NCCLRedOp, comm, stream uintptr) int32
	ncclBroadcast         func(send, recv uint64, count uint64, dt NCCLDataType, root int32, comm, stream uintptr) int32
	ncclAllGather         func(send, recv uint64, sendCount uint64, dt NCCLDataType, comm, stream uintptr) int32
	ncclReduceScatter     func(send, recv uint64, recvCount uint64, dt NCCLDataType, op NCCLRedOp, comm, stream uintptr) int32
	ncclGroupStart        func() int32
	ncclGroupEnd          func() int32
}

var (
	ncclOnce sync.Once
	ncclVal  *NCCL
	ncclErr  error
)

// LoadNCCL dlopens libnccl.so.2 from the first place that has it (see
// ncclSearch) and binds it, once per process. It sets NCCL_NVLS_ENABLE=0
// first unless the environment has it (see NVLSEnv).
func LoadNCCL() (*NCCL, error) {
	ncclOnce.Do(func() {
		keepNVLSOff()
		ncclVal, ncclErr = loadNCCL(defaultNCCLSearch())
	})
	return ncclVal, ncclErr
}

// keepNVLSOff sets NCCL_NVLS_ENABLE=0 unless it is set. NCCL reads it
// with getenv: os.Setenv reaches the C environment through purego's
// runtime hooks (a test checks it).
func keepNVLSOff() {
	if _, ok := os.LookupEnv(NVLSEnv); !ok {
		os.Setenv(NVLSEnv, "0")
	}
}

// ncclSearch is where libnccl.so.2 is looked for, in order:
//
//  1. $SEQBENCH_NCCL_LIB: the library itself, or a folder holding it;
//  2. "libnccl.so.2", through the loader's path (LD_LIBRARY_PATH, ld.so.cache);
//  3. PREFIX/lib{,64}/python3*/{site,dist}-packages/nvidia/nccl/lib/libnccl.so.2
//     for each Python prefix: /usr, /usr/local, /opt/conda, ~/.local, then
//     the parent of every folder of $PATH that holds a python3 (an
//     activated virtual environment or conda environment).
type ncclSearch struct {
	env      string   // $SEQBENCH_NCCL_LIB
	prefixes []string // Python prefixes
}

func defaultNCCLSearch() ncclSearch {
	s := ncclSearch{env: os.Getenv(NCCLLibEnv), prefixes: []string{"/usr", "/usr/local", "/opt/conda"}}
	if home, err := os.UserHomeDir(); err == nil {
		s.prefixes = append(s.prefixes, filepath.Join(home, ".local"))
	}
	for _, p := range pythonPrefixes(os.Getenv("PATH")) {
		if !slices.Contains(s.prefixes, p) {
			s.prefixes = append(s.prefixes, p)
		}
	}
	return s
}

// pythonPrefixes returns the parent of each folder of path (a $PATH)
// that holds a python3, in order. A symbolic link is not followed: a
// virtual environment's bin/python3 links to the system's, and its
// packages are under the environment's own prefix.
func pythonPrefixes(path string) []string {
	var out []string
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "python3")); err == nil {
			out = append(out, filepath.Dir(filepath.Clean(dir)))
		}
	}
	return out
}

// patterns are the glob patterns of step 3.
func (s ncclSearch) patterns() []string {
	var out []string
	for _, p := range s.prefixes {
		for _, lib := range []string{"lib", "lib64"} {
			for _, pk := range []string{"site-packages", "dist-packages"} {
				out = append(out, filepath.Join(p, lib, "python3*", pk, "nvidia", "nccl", "lib", ncclSoname))
			}
		}
	}
	return out
}

// candidates are the paths to try with dlopen, in order, each once.
func (s ncclSearch) candidates() []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if s.env != "" {
		if st, err := os.Stat(s.env); err == nil && st.IsDir() {
			add(filepath.Join(s.env, ncclSoname))
		} else {
			add(s.env)
		}
	}
	add(ncclSoname)
	for _, pat := range s.patterns() {
		matches, _ := filepath.Glob(pat)
		for _, m := range matches {
			add(m)
		}
	}
	return out
}

// open dlopens the first candidate that loads. Its error lists every path
// tried with the loader's reason, and the Python prefixes searched.
func (s ncclSearch) open() (uintptr, string, error) {
	var tried []string
	for _, path := range s.candidates() {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, path, nil
		}
		tried = append(tried, fmt.Sprintf("%s (%v)", path, err))
	}
	return 0, "", fmt.Errorf("NCCL (%s) did not load. Tried: %s. Python environments searched for "+
		"lib{,64}/python3*/{site,dist}-packages/nvidia/nccl/lib/%s: %s. Set %s to the library or its folder",
		ncclSoname, strings.Join(tried, "; "), ncclSoname, strings.Join(s.prefixes, ", "), NCCLLibEnv)
}

func loadNCCL(s ncclSearch) (*NCCL, error) {
	h, path, err := s.open()
	if err != nil {
		return nil, err
	}
	n := &NCCL{Path: path}
	if _, err := bindAll(h, path, n.symbols()); err != nil {
		return nil, err
	}
	var v int32
	if err := n.check("ncclGetVersion", 0, n.ncclGetVersion(&v)); err != nil {
		return nil, err
	}
	n.Version = int(v)
	return n, nil
}

// symbols are the calls bound.
func (n *NCCL) symbols() []symbol {
	return []symbol{
		sym(&n.ncclGetVersion, "ncclGetVersion"),
		sym(&n.ncclGetUniqueId, "ncclGetUniqueId"),
		sym(&n.ncclCommInitRank, "ncclCommInitRank"),
		sym(&n.ncclCommDestroy, "ncclCommDestroy"),
		optSym(&n.ncclCommAbort, "ncclCommAbort"),
		sym(&n.ncclCommGetAsyncError, "ncclCommGetAsyncError"),
		sym(&n.ncclCommCount, "ncclCommCount"),
		sym(&n.ncclCommUserRank, "ncclCommUserRank"),
		sym(&n.ncclGetErrorString, "ncclGetErrorString"),
		optSym(&n.ncclGetLastError, "ncclGetLastError"),
		sym(&n.ncclAllReduce, "ncclAllReduce"),
		sym(&n.ncclBroadcast, "ncclBroadcast"),
		sym(&n.ncclAllGather, "ncclAllGather"),
		sym(&n.ncclReduceScatter, "ncclReduceScatter"),
		sym(&n.ncclGroupStart, "ncclGroupStart"),
		sym(&n.ncclGroupEnd, "ncclGroupEnd"),
	}
}

// NCCLVersionString writes a version code as "major.minor.patch" (codes
// before 2.9 are major·1000 + minor·100 + patch, later ones
// major·10000 + minor·100 + patch).
func NCCLVersionString(code int) string {
	if code < 20900 {
		return fmt.Sprintf("%d.%d.%d", code/1000, code%1000/100, code%100)
	}
	return fmt.Sprintf("%d.%d.%d", code/10000, code%10000/100, code%100)
}

// check turns an ncclResult_t into an *Error naming the call, the
// result and NCCL's description of it (and of comm's last error where
// NCCL keeps one).
func (n *NCCL) check(call string, comm uintptr, r int32) error {
	if r == 0 {
		return nil
	}
	name, ok := ncclResultNames[r]
	if !ok {
		name = fmt.Sprintf("ncclResult %d", r)
	}
	e := &Error{Call: call, Code: int(r), Name: name, Detail: cString(n.ncclGetErrorString(r))}
	if n.ncclGetLastError != nil {
		if last := cString(n.ncclGetLastError(comm)); last != "" {
			e.Detail += ": " + last
		}
	}
	return e
}

// UniqueID makes the id of a new communicator (ncclGetUniqueId). The
// calling process hosts NCCL's bootstrap root, which the ranks contact
// while they initialise: it must keep running until all have.
func (n *NCCL) UniqueID() ([NCCLUniqueIDBytes]byte, error) {
	var id ncclUniqueID
	err := n.check("ncclGetUniqueId", 0, n.ncclGetUniqueId(&id))
	return id.internal, err
}

// GroupStart and GroupEnd bracket NCCL calls that NCCL is to issue
// together (ncclGroupStart/ncclGroupEnd): one thread driving several
// devices' communicators, or several collectives fused into one launch.
func (n *NCCL) GroupStart() error { return n.check("ncclGroupStart", 0, n.ncclGroupStart()) }

func (n *NCCL) GroupEnd() error { return n.check("ncclGroupEnd", 0, n.ncclGroupEnd()) }

// NCCLComm is one rank's communicator. Its calls expect the context of
// the rank's device to be current (Device.Lock).
type NCCLComm struct {
	n *NCCL
	c uintptr
}

// InitRank joins communicator id as rank of nranks
// (ncclCommInitRank): it returns once all nranks ranks have joined, so
// each rank calls it from its own thread or process (or between
// GroupStart and GroupEnd).
func (n *NCCL) InitRank(nranks, rank int, id [NCCLUniqueIDBytes]byte) (*NCCLComm, error) {
	var c uintptr
	if err := n.check("ncclCommInitRank", 0, n.ncclCommInitRank(&c, int32(nranks), ncclUniqueID{id}, int32(rank))); err != nil {
		return nil, err
	}
	return &NCCLComm{n: n, c: c}, nil
}

// Destroy frees the communicator after its queued work
// (ncclCommDestroy).
func (c *NCCLComm) Destroy() error { return c.n.check("ncclCommDestroy", 0, c.n.ncclCommDestroy(c.c)) }

// Abort frees the communicator, abandoning its work (ncclCommAbort), for
// a communicator that reported an asynchronous error; where the library
// lacks ncclCommAbort it is Destroy.
func (c *NCCLComm) Abort() error {
	if c.n.ncclCommAbort == nil {
		return c.Destroy()
	}
	return c.n.check("ncclCommAbort", 0, c.n.ncclCommAbort(c.c))
}

// AsyncError is the error NCCL recorded on the communicator while its
// work ran (a peer gone, a network failure), or nil
// (ncclCommGetAsyncError).
func (c *NCCLComm) AsyncError() error {
	var r int32
	if err := c.n.check("ncclCommGetAsyncError", c.c, c.n.ncclCommGetAsyncError(c.c, &r)); err != nil {
		return err
	}
	if err := c.n.check("ncclCommGetAsyncError (asynchronous error)", c.c, r); err != nil {
		return err
	}
	return nil
}

// Count is the number of ranks (ncclCommCount).
func (c *NCCLComm) Count() (int, error) {
	var v int32
	err := c.n.check("ncclCommCount", c.c, c.n.ncclCommCount(c.c, &v))
	return int(v), err
}

// UserRank is this rank (ncclCommUserRank).
func (c *NCCLComm) UserRank() (int, error) {
	var v int32
	err := c.n.check("ncclCommUserRank", c.c, c.n.ncclCommUserRank(c.c, &v))
	return int(v), err
}

// The collectives queue their work on stream and return; send and recv
// are device addresses, counts are elements of type dt.

// AllReduce reduces count elements of send over the ranks into recv
// (send == recv: in place).
func (c *NCCLComm) AllReduce(send, recv uint64, count int, dt NCCLDataType, op NCCLRedOp, stream uintptr) error {
	return c.n.check("ncclAllReduce", c.c, c.n.ncclAllReduce(send, recv, uint64(count), dt, op, c.c, stream))
}

// Broadcast copies root's count elements of send into every rank's recv.
func (c *NCCLComm) Broadcast(send, recv uint64, count int, dt NCCLDataType, root int, stream uintptr) error {
	return c.n.check("ncclBroadcast", c.c, c.n.ncclBroadcast(send, recv, uint64(count), dt, int32(root), c.c, stream))
}

// AllGather puts rank r's sendCount elements of send at element
// r·sendCount of every rank's recv.
func (c *NCCLComm) AllGather(send, recv uint64, sendCount int, dt NCCLDataType, stream uintptr) error {
	return c.n.check("ncclAllGather", c.c, c.n.ncclAllGather(send, recv, uint64(sendCount), dt, c.c, stream))
}

// ReduceScatter reduces send (nranks·recvCount elements) over the ranks
// and leaves block r of the result in rank r's recv.
func (c *NCCLComm) ReduceScatter(send, recv uint64, recvCount int, dt NCCLDataType, op NCCLRedOp, stream uintptr) error {
	return c.n.check("ncclReduceScatter", c.c, c.n.ncclReduceScatter(send, recv, uint64(recvCount), dt, op, c.c, stream))
}
