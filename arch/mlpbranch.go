package arch

import "seqbench/nn"

// MLPBranch is the second residual branch of a Mamba block with
// d_intermediate (mamba_ssm's Block with an MLP): x += mlp(norm2(x)). Both
// fields are nil without it. Mamba-1 and Mamba-2 blocks embed it.
type MLPBranch struct {
	Norm2 nn.Layer
	MLP   *nn.GatedMLP
}

// Forward returns x + mlp(norm2(x)), or x without the branch.
func (b *MLPBranch) Forward(tp *nn.Tape, x *nn.Tensor) *nn.Tensor {
	if b.MLP == nil {
		return x
	}
	return tp.Add(x, b.MLP.Forward(tp, b.Norm2.Forward(tp, x)))
}

// Params lists the branch's weights as mamba_ssm names them under the
// layer prefix p: p.norm2.*, p.mlp.*.
func (b *MLPBranch) Params(p string) []nn.Param {
	if b.MLP == nil {
		return nil
	}
	return append(b.Norm2.Params(p+".norm2"), b.MLP.Params(p+".mlp")...)
}

// MLPBranchParams counts the branch of a block of width d: its norm's
// norm parameters and the GatedMLP's fc1 (d → 2h) and fc2 (h → d), no
// biases; 0 without d_intermediate (h = 0).
func MLPBranchParams(norm, d, h int) int {
	if h == 0 {
		return 0
	}
	return norm + 3*h*d
}
