// Package hybrid is the mixed stack (registered as "hybrid"): one trunk
// (embedding, final norm, LM head) around layers of different kinds —
// mamba1, mamba2, attention, s4d, lstm, gru and mlp — named by a layer
// pattern, as in the Mamba-2 paper's hybrid (about 10 % attention layers),
// Jamba, Zamba, Samba and the MAD paper's hybrids. Every kind but mlp is
// the block of its own architecture, built by that package's BlockBuilder
// from its own config (a per-kind sub-block) and validated by it.
package hybrid

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"seqbench/arch"
	"seqbench/arch/attention"
	"seqbench/arch/mamba1"
	"seqbench/arch/mamba2"
	"seqbench/arch/rnn"
	"seqbench/arch/ssm"
	"seqbench/internal/yamlcfg"
	"seqbench/nn"
)

func init() {
	arch.Register(arch.Spec{
		Name: "hybrid",
		Doc:  "mixed stack: a layer pattern of mamba1 | mamba2 | attention | s4d | lstm | gru | mlp blocks, per-kind sub-blocks",
		New:  func() arch.Config { return DefaultConfig() },
	})
}

// Kinds are the layer kinds a pattern names.
var Kinds = []string{"mamba1", "mamba2", "attention", "s4d", "lstm", "gru", "mlp"}

// Config is hybrid's model block. The layers are the pattern repeated to
// n_layers, then every and attention_at override single layers.
type Config struct {
	Arch   string `yaml:"arch"`
	DModel int    `yaml:"d_model"`
	// NLayers is the number of layers; 0 is the pattern's length. The
	// pattern is a period: it repeats to n_layers, the last repeat cut
	// short (mamba2 attention at 3 layers is mamba2 attention mamba2).
	NLayers int     `yaml:"n_layers"`
	Pattern Pattern `yaml:"pattern"`
	// Every puts its block at layers k−1, 2k−1, … (every k-th layer,
	// counting from 1).
	Every *Every `yaml:"every,omitempty"`
	// AttentionAt puts attention at these layers (0-based).
	AttentionAt []int `yaml:"attention_at,omitempty"`
	// Norm is the final norm and the pre-norm of the mlp, lstm and gru
	// layers (LayerNorm with a bias); the other kinds keep their own
	// block's norm field (mamba2 is always RMSNorm).
	Norm          string  `yaml:"norm"`
	NormEps       float64 `yaml:"norm_eps"` // every norm of every layer
	TieEmbeddings bool    `yaml:"tie_embeddings"`

	// The per-kind sub-blocks: each kind's own config without the fields
	// the trunk sets (arch, d_model, n_layers, norm_eps, tie_embeddings,
	// head_bias). Nil until written; a kind in the layers without one
	// takes hybrid's defaults for it (those of its arch, attention with
	// mlp none: the MLP is a layer kind of its own). One written for a kind
	// the layers do not use is validated and otherwise unused.
	Mamba1    *mamba1.Config    `yaml:"mamba1,omitempty"`
	Mamba2    *mamba2.Config    `yaml:"mamba2,omitempty"`
	Attention *attention.Config `yaml:"attention,omitempty"`
	S4D       *ssm.Config       `yaml:"s4d,omitempty"`
	LSTM      *rnn.Config       `yaml:"lstm,omitempty"`
	GRU       *rnn.Config       `yaml:"gru,omitempty"`
	MLP       *MLPConfig        `yaml:"mlp,omitempty"`
}

// Every is the every-k-th-layer shorthand.
type Every struct {
	K     int    `yaml:"k"`
	Block string `yaml:"block"`
}

// MLPConfig is the mlp layer kind: x += mlp(norm(x)), the Transformer's
// MLP as a layer of its own (the Mamba-2 hybrid's interleaved MLPs).
type MLPConfig struct {
	MLP      string  `yaml:"mlp"`       // gelu | swiglu
	MLPRatio float64 `yaml:"mlp_ratio"` // hidden width round(mlp_ratio·d_model)
	Bias     bool    `yaml:"bias"`
}

// DefaultConfig holds the defaults a model block starts from: d_model 64,
// the pattern "mamba2 attention" (two layers, one of each).
func DefaultConfig() *Config {
	return &Config{Arch: "hybrid", DModel: 64, Pattern: Pattern{"mamba2", "attention"}, Norm: "rmsnorm",
		NormEps: 1e-5, TieEmbeddings: true}
}

// defaultSub returns hybrid's default config of a kind.
func defaultSub(kind string) any {
	switch kind {
	case "mamba1":
		return mamba1.DefaultConfig()
	case "mamba2":
		return mamba2.DefaultConfig()
	case "attention":
		c := attention.DefaultConfig()
		c.MLP = "none"
		return c
	case "s4d":
		return ssm.DefaultConfig()
	case "lstm", "gru":
		return rnn.DefaultConfig(kind)
	default:
		return &MLPConfig{MLP: "swiglu", MLPRatio: 4}
	}
}

// trunkFields are the fields a sub-block may not set: the trunk's, shared
// by every layer. kindFields are those a kind's own arch has but a hybrid
// layer of it cannot use.
var (
	trunkFields = []string{"arch", "d_model", "n_layers", "norm_eps", "tie_embeddings", "head_bias"}
	kindFields  = map[string][]string{
		"attention": {"dropout", "embed_dropout", "attn_dropout"},
		"lstm":      {"norm"},
		"gru":       {"norm"},
	}
)

// UnmarshalYAML decodes the block strictly, each written sub-block
// starting from hybrid's defaults for its kind, and rejects a sub-block
// field the trunk sets.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			kind, v := n.Content[i].Value, n.Content[i+1]
			if !slices.Contains(Kinds, kind) {
				continue
			}
			if v.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(v.Content); j += 2 {
					f := v.Content[j].Value
					switch {
					case slices.Contains(trunkFields, f):
						return fmt.Errorf("field %s.%s: not allowed in a sub-block (the trunk's field, shared by every layer: set it at the top level)", kind, f)
					case slices.Contains(kindFields[kind], f):
						return fmt.Errorf("field %s.%s: not allowed in a hybrid (a %s layer has no %s)", kind, f, kind, f)
					}
				}
			}
			sub := defaultSub(kind)
			if err := yamlcfg.Strict(v, sub); err != nil {
				return fmt.Errorf("field %s: %s", kind, linePrefix.ReplaceAllString(err.Error(), ""))
			}
			c.setSub(kind, sub)
		}
	}
	type plain Config // without this method: the sub-blocks decode again, into the same configs
	if err := yamlcfg.Strict(n, (*plain)(c)); err != nil {
		return errors.New(linePrefix.ReplaceAllString(err.Error(), ""))
	}
	return nil
}

// linePrefix is the "line N: " the YAML decoder puts before an error; it
// puts one again (the block's line) before the error UnmarshalYAML returns.
var linePrefix = regexp.MustCompile(`^line \d+: `)

func (c *Config) setSub(kind string, v any) {
	switch kind {
	case "mamba1":
		c.Mamba1 = v.(*mamba1.Config)
	case "mamba2":
		c.Mamba2 = v.(*mamba2.Config)
	case "attention":
		c.Attention = v.(*attention.Config)
	case "s4d":
		c.S4D = v.(*ssm.Config)
	case "lstm":
		c.LSTM = v.(*rnn.Config)
	case "gru":
		c.GRU = v.(*rnn.Config)
	case "mlp":
		c.MLP = v.(*MLPConfig)
	}
}

// sub is kind's config as its layers use it: the sub-block (or the
// defaults) with the trunk's fields filled in. n_layers is the whole
// stack's depth, which the archs' inits scale residual projections by.
func (c *Config) sub(kind string, nLayers int) any {
	switch kind {
	case "mamba1":
		s := *or(c.Mamba1, kind)
		s.Arch, s.DModel, s.NLayers, s.NormEps, s.TieEmbeddings, s.HeadBias = kind, c.DModel, nLayers, c.NormEps, true, false
		return &s
	case "mamba2":
		s := *or(c.Mamba2, kind)
		s.Arch, s.DModel, s.NLayers, s.NormEps, s.TieEmbeddings, s.HeadBias = kind, c.DModel, nLayers, c.NormEps, true, false
		return &s
	case "attention":
		s := *or(c.Attention, kind)
		s.Arch, s.DModel, s.NLayers, s.NormEps, s.TieEmbeddings, s.HeadBias = "transformer", c.DModel, nLayers, c.NormEps, true, false
		return &s
	case "s4d":
		s := *or(c.S4D, kind)
		s.Arch, s.DModel, s.NLayers, s.NormEps, s.TieEmbeddings = kind, c.DModel, nLayers, c.NormEps, true
		return &s
	case "lstm", "gru":
		p := c.LSTM
		if kind == "gru" {
			p = c.GRU
		}
		s := *or(p, kind)
		s.Arch, s.DModel, s.NLayers, s.NormEps, s.TieEmbeddings, s.Norm = kind, c.DModel, nLayers, c.NormEps, true, c.Norm
		return &s
	default:
		s := *or(c.MLP, kind)
		return &s
	}
}

// or is p, or kind's defaults when p is nil.
func or[T any](p *T, kind string) *T {
	if p != nil {
		return p
	}
	return defaultSub(kind).(*T)
}

// Layers resolves the pattern, n_layers, every and attention_at to each
// layer's kind. c must be valid.
func (c *Config) Layers() []string {
	n := c.depth()
	out := make([]string, n)
	for i := range out {
		out[i] = c.Pattern[i%len(c.Pattern)]
	}
	if c.Every != nil {
		for i := c.Every.K - 1; i < n; i += c.Every.K {
			out[i] = c.Every.Block
		}
	}
	for _, i := range c.AttentionAt {
		out[i] = "attention"
	}
	return out
}

// Validate checks every field; errors name the field, the value and what is
// allowed. A sub-block's errors name its field under the kind
// (attention.n_heads).
func (c *Config) Validate() error {
	if c.Arch != "" && c.Arch != "hybrid" {
		return arch.FieldError("arch", strconv.Quote(c.Arch), "this config is for hybrid")
	}
	if c.DModel < 1 || c.DModel > 1<<16 {
		return arch.FieldError("d_model", c.DModel, "must be in [1, 65536]")
	}
	if len(c.Pattern) == 0 {
		return arch.FieldError("pattern", `""`, "must name at least one layer: "+strings.Join(Kinds, ", "))
	}
	for _, k := range c.Pattern {
		if err := arch.OneOf("pattern", k, Kinds...); err != nil {
			return err
		}
	}
	if c.NLayers < 0 || c.NLayers > 1<<20 {
		return arch.FieldError("n_layers", c.NLayers, "must be in [0, 2^20] (0: the pattern's length)")
	}
	n := c.depth()
	if e := c.Every; e != nil {
		if e.K < 1 || e.K > n {
			return arch.FieldError("every.k", e.K, fmt.Sprintf("must be in [1, n_layers = %d]", n))
		}
		if err := arch.OneOf("every.block", e.Block, Kinds...); err != nil {
			return err
		}
	}
	for _, i := range c.AttentionAt {
		if i < 0 || i >= n {
			return arch.FieldError("attention_at", i, fmt.Sprintf("layers are 0 .. %d (n_layers = %d)", n-1, n))
		}
	}
	for _, err := range []error{
		arch.OneOf("norm", c.Norm, "rmsnorm", "layernorm"),
		arch.FinitePositive("norm_eps", c.NormEps),
	} {
		if err != nil {
			return err
		}
	}
	// A sub-block of a kind the layers do not use is checked too (it is
	// allowed, so that a sweep over patterns shares one model block).
	layers := c.Layers()
	for _, kind := range Kinds {
		if !slices.Contains(layers, kind) && !c.written(kind) {
			continue
		}
		if err := c.validateSub(kind, len(layers)); err != nil {
			return err
		}
	}
	return nil
}

// depth is the number of layers: n_layers, or the pattern's length.
func (c *Config) depth() int {
	if c.NLayers == 0 {
		return len(c.Pattern)
	}
	return c.NLayers
}

// used lists the kinds in layers, in Kinds' order.
func used(layers []string) []string {
	var out []string
	for _, k := range Kinds {
		if slices.Contains(layers, k) {
			out = append(out, k)
		}
	}
	return out
}

// written reports whether kind's sub-block was given.
func (c *Config) written(kind string) bool {
	switch kind {
	case "mamba1":
		return c.Mamba1 != nil
	case "mamba2":
		return c.Mamba2 != nil
	case "attention":
		return c.Attention != nil
	case "s4d":
		return c.S4D != nil
	case "lstm":
		return c.LSTM != nil
	case "gru":
		return c.GRU != nil
	default:
		return c.MLP != nil
	}
}

func (c *Config) validateSub(kind string, nLayers int) error {
	var err error
	switch s := c.sub(kind, nLayers).(type) {
	case *attention.Config:
		if s.Pos == "learned" {
			return arch.FieldError("attention.pos", `"learned"`, "rope or none: a hybrid has no learned positions")
		}
		err = s.Validate()
	case *MLPConfig:
		err = s.validate(c.DModel)
	case arch.Config:
		err = s.Validate()
	}
	var fe *arch.FieldErr
	if errors.As(err, &fe) {
		return arch.FieldError(kind+"."+fe.Field, fe.Value, fe.Allowed)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

func (m *MLPConfig) validate(d int) error {
	if err := arch.OneOf("mlp", m.MLP, "gelu", "swiglu"); err != nil {
		return err
	}
	if err := arch.FinitePositive("mlp_ratio", m.MLPRatio); err != nil {
		return err
	}
	if w := math.Round(m.MLPRatio * float64(d)); w < 1 || w > 1<<30 {
		return arch.FieldError("mlp_ratio", m.MLPRatio, fmt.Sprintf("round(mlp_ratio·d_model) must be in [1, 2^30], d_model = %d", d))
	}
	return nil
}

func (m *MLPConfig) hidden(d int) int { return int(math.Round(m.MLPRatio * float64(d))) }

// gates is the MLP's number of d×h matrices: 2 for GELU (fc, proj), 3 for
// SwiGLU (gate, up, down).
func (m *MLPConfig) gates() int {
	if m.MLP == "swiglu" {
		return 3
	}
	return 2
}

// normParams is the count of one norm of kind norm: d, and d more for
// LayerNorm's bias.
func normParams(norm string, d int) int {
	if norm == "layernorm" {
		return 2 * d
	}
	return d
}

// NumParams counts
//
//	V·d                     token embedding
//	Σ over the layers       each layer's count (below)
//	norm                    final norm (d, 2d for LayerNorm)
//	V·d                     LM head (untied)
//
// A layer of an arch's kind counts what one layer of that arch counts
// (its NumParams at one layer less its NumParams at none, both without
// a vocabulary); lstm and gru layers add their pre-norm; an mlp layer is
// norm + k·d·h (+ (k−1)·h + d biases), k = 2 GELU, 3 SwiGLU.
func (c *Config) NumParams(vocab, maxLen int) int {
	d := c.DModel
	layers := c.Layers()
	per := map[string]int{}
	for _, kind := range used(layers) {
		per[kind] = c.layerParams(kind)
	}
	n := vocab*d + normParams(c.Norm, d)
	for _, k := range layers {
		n += per[k]
	}
	if !c.TieEmbeddings {
		n += vocab * d
	}
	return n
}

func (c *Config) layerParams(kind string) int {
	d := c.DModel
	switch s := c.sub(kind, 1).(type) {
	case *MLPConfig:
		k, h := s.gates(), s.hidden(d)
		n := normParams(c.Norm, d) + k*d*h
		if s.Bias {
			n += (k-1)*h + d
		}
		return n
	case *rnn.Config:
		zero := *s
		zero.NLayers = 0
		return normParams(c.Norm, d) + s.NumParams(0, 0) - zero.NumParams(0, 0)
	case *mamba1.Config:
		zero := *s
		zero.NLayers = 0
		return s.NumParams(0, 0) - zero.NumParams(0, 0)
	case *mamba2.Config:
		zero := *s
		zero.NLayers = 0
		return s.NumParams(0, 0) - zero.NumParams(0, 0)
	case *attention.Config:
		zero := *s
		zero.NLayers = 0
		return s.NumParams(0, 0) - zero.NumParams(0, 0)
	case *ssm.Config:
		zero := *s
		zero.NLayers = 0
		return s.NumParams(0, 0) - zero.NumParams(0, 0)
	}
	panic("hybrid: layer kind " + kind)
}

// Build allocates and initializes the model on env.Backend: embedding,
// the layers in order (each drawn by its arch's BlockBuilder), final norm,
// head.
func (c *Config) Build(env arch.Env) (arch.Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := env.Check("hybrid"); err != nil {
		return nil, err
	}
	be, d, layers := env.Backend, c.DModel, c.Layers()
	norm := func() nn.Layer { return nn.NewNorm(be, nn.NormKind(c.Norm), d, c.NormEps, true) }
	builders := map[string]func(int) arch.Block{}
	for _, kind := range used(layers) {
		builders[kind] = c.builder(kind, len(layers), env, norm)
	}
	return arch.NewLM(env, arch.Trunk[arch.Block]{Name: "hybrid", DModel: d, NLayers: len(layers),
		Norm: norm, Tie: c.TieEmbeddings, HeadStd: 0, NewBlock: func(i int) arch.Block { return builders[layers[i]](i) }}), nil
}

// Model is the built hybrid: the shared trunk around blocks of several
// kinds.
type Model = arch.LM[arch.Block]

func (c *Config) builder(kind string, nLayers int, env arch.Env, norm func() nn.Layer) func(int) arch.Block {
	switch s := c.sub(kind, nLayers).(type) {
	case *mamba1.Config:
		f := s.BlockBuilder(env)
		return func(i int) arch.Block { return f(i) }
	case *mamba2.Config:
		f := s.BlockBuilder(env)
		return func(i int) arch.Block { return f(i) }
	case *attention.Config:
		f := s.BlockBuilder(env)
		return func(i int) arch.Block { return f(i) }
	case *ssm.Config:
		f := s.BlockBuilder(env)
		return func(i int) arch.Block { return f(i) }
	case *rnn.Config:
		f := s.BlockBuilder(env)
		return func(i int) arch.Block { return &Residual{Norm: norm(), Inner: f(i)} }
	case *MLPConfig:
		be, rng, d := env.Backend, env.RNG, c.DModel
		scale := 1 / math.Sqrt(float64(nLayers))
		return func(int) arch.Block {
			m := nn.NewMLP(be, nn.MLPKind(s.MLP), d, s.hidden(d), s.Bias, rng)
			be.Scale(m.Down.W.Data, scale)
			return &MLPBlock{Norm: norm(), MLP: m}
		}
	}
	panic("hybrid: layer kind " + kind)
}

// MarshalYAML writes the block as it decodes: the sub-blocks without the
// trunk's fields (which they may not hold), so that a resolved config
// decodes again to the same model.
func (c Config) MarshalYAML() (any, error) {
	type plain Config // without this method
	var n yaml.Node
	if err := n.Encode((*plain)(&c)); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kind, v := n.Content[i].Value, n.Content[i+1]
		if !slices.Contains(Kinds, kind) || v.Kind != yaml.MappingNode {
			continue
		}
		var kept []*yaml.Node
		for j := 0; j+1 < len(v.Content); j += 2 {
			f := v.Content[j].Value
			if !slices.Contains(trunkFields, f) && !slices.Contains(kindFields[kind], f) {
				kept = append(kept, v.Content[j], v.Content[j+1])
			}
		}
		v.Content = kept
	}
	return &n, nil
}
