package gpukernels

import (
	"seqbench/gpukernels/cuda"
	"seqbench/nn"
)

// KernelResources lists every kernel loaded so far, as "family/name" (the
// bfloat16 build as "family@bf16/name"), with
// the registers a thread of it uses and its local memory bytes a thread
// (registers spilled), read from the driver: what its occupancy and spills
// come from. `seqbench bench` records them after the kernels suite has
// loaded every kernel it times. A kernel whose attributes cannot be read
// is left out.
func (be *Backend) KernelResources() map[string][2]int {
	be.enter("KernelResources")
	defer be.exit()
	out := map[string][2]int{}
	for key, m := range be.mods {
		family := key.family
		if key.act == nn.BFloat16 {
			family += "@bf16"
		}
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
