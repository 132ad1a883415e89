package nccl

import (
	"math/rand/v2"
	"seqbench/dist"
	"strings"
	"testing"

	"seqbench/cpukernels"
	"seqbench/gpukernels"
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

// CPU tests of the NCCL communicator: everything decided in Go before
// NCCL is called. The GPU tests are in nccl_gpu_test.go.

func TestUniqueIDHexRoundTrip(t *testing.T) {
	var id [IDBytes]byte
	r := rand.New(rand.NewPCG(1, 2))
	for i := range id {
		id[i] = byte(r.UintN(256))
	}
	id[0], id[IDBytes-1] = 0, 0xff
	s := EncodeUniqueID(id)
	if len(s) != 2*IDBytes || strings.ToLower(s) != s || !strings.HasPrefix(s, "00") || !strings.HasSuffix(s, "ff") {
		t.Fatalf("EncodeUniqueID = %q: want %d lowercase hex digits, first byte 00, last ff", s, 2*IDBytes)
	}
	for _, text := range []string{s, s + "\n", "  " + strings.ToUpper(s) + "\r\n"} {
		got, err := DecodeUniqueID(text)
		if err != nil || got != id {
			t.Fatalf("DecodeUniqueID(%q...) = %v; want the id back", text[:8], err)
		}
	}
	for _, c := range []struct{ text, want string }{
		{s[:254], "dist: communicator id has 254 characters, must be 256 hexadecimal digits"},
		{s + "00", "dist: communicator id has 258 characters, must be 256 hexadecimal digits"},
		{"", "dist: communicator id has 0 characters, must be 256 hexadecimal digits"},
		{"zz" + s[2:], "dist: communicator id is not hexadecimal: encoding/hex: invalid byte: U+007A 'z'"},
	} {
		if _, err := DecodeUniqueID(c.text); err == nil || err.Error() != c.want {
			t.Errorf("DecodeUniqueID(%.10q...) = %v, want %q", c.text, err, c.want)
		}
	}
}

func TestNCCLTypeAndOpMapping(t *testing.T) {
	const v = 22105 // NCCL 2.21.5
	for dt, want := range map[nn.DType]cuda.NCCLDataType{nn.Float32: 7, nn.Float64: 8, nn.BFloat16: 9} {
		if got, err := ncclType(dt, v); got != want || err != nil {
			t.Errorf("ncclType(%v) = %d, %v; want %d", dt, got, err, want)
		}
	}
	for op, want := range map[dist.Op]cuda.NCCLRedOp{dist.Sum: 0, dist.Avg: 4} {
		if got, err := ncclOp(op, v); got != want || err != nil {
			t.Errorf("ncclOp(%d) = %d, %v; want %d", op, got, err, want)
		}
	}
	// Before 2.10 NCCL has float32 and the sum but neither bfloat16 nor
	// the average.
	if got, err := ncclType(nn.Float32, 2804); got != 7 || err != nil {
		t.Errorf("ncclType(float32) in NCCL 2.8.4 = %d, %v", got, err)
	}
	if _, err := ncclType(nn.BFloat16, 20903); err == nil || err.Error() != "bfloat16 needs NCCL 2.10 or later, this is 2.9.3" {
		t.Errorf("ncclType(bfloat16) in NCCL 2.9.3: %v", err)
	}
	if _, err := ncclOp(dist.Avg, 2804); err == nil || err.Error() != "op dist.Avg needs NCCL 2.10 or later, this is 2.8.4" {
		t.Errorf("ncclOp(dist.Avg) in NCCL 2.8.4: %v", err)
	}
	if _, err := ncclType(nn.DType(7), v); err == nil || err.Error() != "element type 7 has no NCCL type (allowed: float32, float64, bfloat16)" {
		t.Errorf("ncclType(7): %v", err)
	}
	if _, err := ncclOp(dist.Op(5), v); err == nil || err.Error() != "op 5: allowed dist.Sum (0), dist.Avg (1)" {
		t.Errorf("ncclOp(5): %v", err)
	}
}

func TestCheckPair(t *testing.T) {
	f32 := func(name string, n int) operand { return operand{name, n, nn.Float32} }
	for _, c := range []struct {
		call    string
		size    int
		out, in operand
		want    string
	}{
		{"AllGather", 3, f32("out", 6), f32("in", 2), ""},
		{"AllGather", 1, f32("out", 0), f32("in", 0), ""},
		{"ReduceScatter", 3, f32("out", 2), f32("in", 6), ""},
		{"AllGather", 3, f32("out", 5), f32("in", 2), "dist.AllGather: out holds 5 elements, must hold size·in.Len() = 3·2 = 6"},
		{"AllGather", 2, f32("out", 2), f32("in", 2), "dist.AllGather: out holds 2 elements, must hold size·in.Len() = 2·2 = 4"},
		{"ReduceScatter", 2, f32("out", 4), f32("in", 4), "dist.ReduceScatter: in holds 4 elements, must hold size·out.Len() = 2·4 = 8"},
		{"AllGather", 2, f32("out", 4), operand{"in", 2, nn.BFloat16}, "dist.AllGather: out is float32 but in is bfloat16: both must be of one type"},
		{"ReduceScatter", 2, operand{"out", 2, nn.Float64}, f32("in", 4), "dist.ReduceScatter: out is float64 but in is float32: both must be of one type"},
	} {
		err := checkPair(c.call, c.size, c.out, c.in)
		if got := errText(err); got != c.want {
			t.Errorf("checkPair(%s, size %d, out %v, in %v) = %q, want %q", c.call, c.size, c.out, c.in, got, c.want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Bad arguments to NewNCCL are refused before NCCL is loaded (there is
// none on the CPU machines: reaching it would fail differently).
func TestNewNCCLArguments(t *testing.T) {
	var id [IDBytes]byte
	for _, c := range []struct {
		rank, size int
		be         *gpukernels.Backend
		want       string
	}{
		{0, 0, &gpukernels.Backend{}, "dist.NewNCCL: size 0: must be at least 1"},
		{-1, 2, &gpukernels.Backend{}, "dist.NewNCCL: rank -1: must be in 0..1 (size 2)"},
		{2, 2, &gpukernels.Backend{}, "dist.NewNCCL: rank 2: must be in 0..1 (size 2)"},
		{0, 1, nil, "dist.NewNCCL: backend is nil"},
	} {
		if comm, err := NewNCCL(c.be, c.rank, c.size, id); comm != nil || errText(err) != c.want {
			t.Errorf("NewNCCL: %v, want %q", err, c.want)
		}
	}
}

// The collectives refuse another backend, foreign buffers, a bad root and
// a closed communicator before they call NCCL (the communicator here has
// no NCCL handle: a call would crash).
func TestNCCLCommRefusesBadArgumentsBeforeNCCL(t *testing.T) {
	be := &gpukernels.Backend{}
	c := &ncclComm{be: be, version: 22105, device: 3, rank: 1, size: 2}
	cpu := cpukernels.New[float32]()
	cb := cpu.Alloc(4)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"AllReduce on another backend", c.AllReduce(cpu, cb, dist.Sum),
			"dist.AllReduce: backend *cpukernels.Backend[float32] is not the CUDA backend of this communicator (rank 1, device 3)"},
		{"AllReduce on another CUDA backend", c.AllReduce(&gpukernels.Backend{}, cb, dist.Sum),
			"dist.AllReduce: backend *gpukernels.Backend is not the CUDA backend of this communicator (rank 1, device 3)"},
		{"AllReduce on a nil bfloat16 backend", c.AllReduce((*gpukernels.BF16Backend)(nil), cb, dist.Sum),
			"dist.AllReduce: backend *gpukernels.BF16Backend is not the CUDA backend of this communicator (rank 1, device 3)"},
		{"AllReduce of a CPU buffer", c.AllReduce(be, cb, dist.Sum), "dist.AllReduce: gpukernels.AllReduce: buf is a cpukernels.Buf[float32], not a buffer of this backend"},
		{"Broadcast from rank 2 of 2", c.Broadcast(be, cb, 2), "dist.Broadcast: root 2: must be a rank, 0..1"},
		{"Broadcast from rank -1", c.Broadcast(be, cb, -1), "dist.Broadcast: root -1: must be a rank, 0..1"},
		{"AllGather of a CPU buffer", c.AllGather(&gpukernels.BF16Backend{Backend: be}, cb, cb), "dist.AllGather: gpukernels.AllGather: out is a cpukernels.Buf[float32], not a buffer of this backend"},
		{"ReduceScatter of a CPU buffer", c.ReduceScatter(be, cb, cb, dist.Avg), "dist.ReduceScatter: gpukernels.ReduceScatter: out is a cpukernels.Buf[float32], not a buffer of this backend"},
	} {
		if !strings.HasPrefix(errText(tc.err), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.name, tc.err, tc.want)
		}
	}
	c.closed = true
	if err := c.AllReduce(be, cb, dist.Sum); errText(err) != "dist.AllReduce: communicator is closed" {
		t.Errorf("AllReduce after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
