package arch

import "seqbench/nn"

// Logits is the output end every language model here shares: the final
// norm (none when norm is nil) and the LM head, or, when head is nil (tied),
// the token embedding's table.
func Logits(tp *nn.Tape, x *nn.Tensor, norm nn.Layer, head *nn.Linear, embed *nn.Embedding) *nn.Tensor {
	if norm != nil {
		x = norm.Forward(tp, x)
	}
	if head != nil {
		return head.Forward(tp, x)
	}
	return tp.Linear(x, embed.W, nil)
}

// HeadParams lists the weights of Logits' norm as norm_f.* and of an untied
// head as lm_head.* (a tied head is the embedding's, listed with it).
func HeadParams(norm nn.Layer, head *nn.Linear) []nn.Param {
	var ps []nn.Param
	if norm != nil {
		ps = norm.Params("norm_f")
	}
	if head != nil {
		ps = append(ps, head.Params("lm_head")...)
	}
	return ps
}
