package gpukernels

// PeakBytes is the most device memory the allocator has had in use since
// the last ResetPeak (bench's and train's memory meter).
func (be *Backend) PeakBytes() int64 { return be.MemStats().Peak }

// DeviceName is the GPU's name, as the driver reports it.
func (be *Backend) DeviceName() string { return be.dev.Name }

// OutOfMemory marks the error as a device out-of-memory condition, which
// the training loop reports as the reason a run failed (no stack trace).
func (e *OOMError) OutOfMemory() bool { return true }
