package arch

// NonEmbeddingParams is the N of the scaling laws (Kaplan et al. 2020): the
// parameters other than the token embedding, an untied LM head and learned
// positions, i.e. those that grow with width and depth rather than with the
// vocabulary. With GPT-2's 50,257 tokens the embedding is most of a small
// model, so sizes and token budgets are stated in this N.
func NonEmbeddingParams(c Config) int { return c.NumParams(0, 0) }

// TrainingFLOPs is the compute of training m on tokens tokens in sequences
// of length seqLen: a forward and a backward pass, the backward costing
// twice the forward (each matmul's backward is two matmuls of its size, and
// the fused scans' backward kernels do about twice their forward's work):
//
//	C = 3 · FLOPsPerToken(L) · D
//
// FLOPsPerToken counts every matmul weight (2 FLOPs per weight per token,
// the LM head included) plus each arch's own terms (attention's QKᵀ and
// A·V, the selective scan, SSD's chunks, S4D's FFT convolution), so C is
// Kaplan's 6·N·D plus 3·D times those terms; docs/SCALING.md writes it out
// per arch.
func TrainingFLOPs(m Model, seqLen int, tokens float64) float64 {
	return 3 * m.FLOPsPerToken(seqLen) * tokens
}
