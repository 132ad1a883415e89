package gpukernels

import (
	"strings"
	"testing"

	"seqbench/cpukernels"
	"seqbench/nn"
)

// DeviceBuffer accepts only live buffers of its own backend, and says
// which buffer and why otherwise (no GPU needed: the buffers are never
// touched).
func TestDeviceBufferOwnership(t *testing.T) {
	be, other := &Backend{dtype: nn.Float32}, &Backend{dtype: nn.Float32}
	mine := &Buffer{be: be, n: 3, dt: nn.BFloat16, ptr: 0x1000}
	g, err := be.DeviceBuffer(mine, "AllReduce", "buf")
	if err != nil || g != mine || g.Ptr() != 0x1000 || g.Len() != 3 || g.DType() != nn.BFloat16 {
		t.Fatalf("own live buffer: %v, %v", g, err)
	}
	var nilBuf *Buffer
	for _, c := range []struct {
		b    nn.Buffer
		want string
	}{
		{&Buffer{be: other, n: 3}, "gpukernels.AllReduce: buf belongs to another backend"},
		{&Buffer{be: be, n: 3, freed: true}, "gpukernels.AllReduce: buf was freed"},
		{cpukernels.New[float32]().Alloc(3), "gpukernels.AllReduce: buf is a "},
		{nilBuf, "gpukernels.AllReduce: buf is a *gpukernels.Buffer, not a buffer of this backend"},
		{nil, "gpukernels.AllReduce: buf is a <nil>, not a buffer of this backend"},
	} {
		if _, err := be.DeviceBuffer(c.b, "AllReduce", "buf"); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("DeviceBuffer(%T) = %v, want %q", c.b, err, c.want)
		}
	}
}

// A closed backend runs no collective.
func TestCollectiveOnClosedBackend(t *testing.T) {
	ran := false
	err := (&Backend{closed: true}).Collective("AllReduce", func(uintptr) error { ran = true; return nil })
	if ran || err == nil || err.Error() != "gpukernels.AllReduce: backend is closed" {
		t.Fatalf("Collective on a closed backend: ran %v, err %v", ran, err)
	}
}
