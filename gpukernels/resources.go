package gpukernels

import (
	"seqbench/gpukernels/cuda"
)

// KernelResources lists every kernel loaded so far, as "family/name", with
// the registers a thread of it uses and its local memory bytes a thread
// (registers spilled), read from the driver: what its occupancy and spills
// come from. `seqbench bench` records them after the kernels suite has
// loaded every kernel it times. A kernel whose attributes cannot be read
// is left out.
func (be *Backend) KernelResources() map[string][2]int {
	be.enter("KernelResources")
	defer be.exit()
	out := map[string][2]int{}
	for family, m := range be.mods {
		for name, k := range m.funcs {
			regs, err1 := be.drv.FuncGetAttribute(k.f, cuda.FuncAttrNumRegs)
			local, err2 := be.drv.FuncGetAttribute(k.f, cuda.FuncAttrLocalSizeBytes)
			if err1 == nil && err2 == nil {
				out[family+"/"+name] = [2]int{regs, local}
			}
		}
	}
	return out
}
