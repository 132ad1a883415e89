package gpukernels

import (
	"os"
	"strings"
	"testing"

	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

// TestGPUKernelSourcesCompile compiles every kernel family for sm_90 in
// both element types. It needs NVRTC only, no GPU or driver, so it also
// runs on a machine that has the NVRTC library without a GPU
// (scripts/nvrtc-local.sh). With SEQBENCH_PTXAS_VERBOSE=1 it logs ptxas'
// report of each kernel's registers, stack and spills.
func TestGPUKernelSourcesCompile(t *testing.T) {
	verbose := os.Getenv("SEQBENCH_PTXAS_VERBOSE") == "1"
	nv, err := cuda.LoadNVRTC()
	if err != nil {
		if os.Getenv("SEQBENCH_REQUIRE_GPU") == "1" {
			t.Fatalf("no NVRTC: %v", err)
		}
		t.Skipf("no NVRTC: %v", err)
	}
	t.Logf("NVRTC %s from %s", nv.Version(), nv.Path)
	for _, dt := range []nn.DType{nn.Float32, nn.Float64, nn.BFloat16} {
		for _, f := range families {
			t.Run(f+"/"+dt.String(), func(t *testing.T) {
				src, err := kernelSource(f, dt)
				if err != nil {
					t.Fatal(err)
				}
				opts := compileOptions("sm_90")
				if verbose {
					opts = append(opts, "--ptxas-options=-v")
				}
				cubin, log, err := nv.Compile(src, f+".cu", opts)
				if err != nil {
					t.Fatal(err)
				}
				if verbose {
					t.Log(log)
					return
				}
				if len(cubin) < 4 || string(cubin[1:4]) != "ELF" {
					t.Errorf("the cubin does not start with an ELF header")
				}
				if strings.TrimSpace(log) != "" {
					t.Errorf("compiler warnings:\n%s", log)
				}
			})
		}
	}
}

// TestGPUCompileErrorShowsLog checks that a failed compilation returns the
// compiler's log in the error.
func TestGPUCompileErrorShowsLog(t *testing.T) {
	nv, err := cuda.LoadNVRTC()
	if err != nil {
		t.Skipf("no NVRTC: %v", err)
	}
	_, _, err = nv.Compile("extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }", "bad.cu", compileOptions("sm_90"))
	if err == nil || !strings.Contains(err.Error(), "undefined_name") || !strings.Contains(err.Error(), "nvrtcCompileProgram") {
		t.Errorf("error %v, want the call and the compiler's log naming undefined_name", err)
	}
}
