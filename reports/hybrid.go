package reports

import (
	"strconv"

	"go.yaml.in/yaml/v4"

	"seqbench/arch/hybrid"
)

// Settings reports derive for hybrid runs from their model block:
// layersKey is the resolved layer list in the pattern's compact form
// ("mamba2*3 attention mamba2*4"), whichever of pattern, n_layers, every
// and attention_at wrote it; attentionFractionKey is the share of those
// layers that are attention (0 for a pure Mamba stack, 1 for pure
// attention). Hybrids group by their layers, not by how they were written,
// and a sweep over patterns that is a sweep over the attention fraction
// plots as one curve against it.
const (
	layersKey            = "model.layers"
	attentionFractionKey = "model.attention_fraction"
)

// patternKeys are the settings layersKey sums up.
var patternKeys = map[string]bool{"model.pattern": true, "model.every.k": true, "model.every.block": true, "model.attention_at": true}

// addHybridSettings adds layersKey and attentionFractionKey to the
// flattened config of a hybrid run, from its model block (config.yaml's
// data); other runs, and a block that does not decode, are left as they
// are.
func addHybridSettings(data []byte, cfg map[string]string) {
	if cfg[archKey] != "hybrid" {
		return
	}
	var doc struct {
		Model yaml.Node `yaml:"model"`
	}
	c := hybrid.DefaultConfig()
	if yaml.Unmarshal(data, &doc) != nil || doc.Model.Load(c) != nil || c.Validate() != nil {
		return
	}
	layers := c.Layers()
	n := 0
	for _, k := range layers {
		if k == "attention" {
			n++
		}
	}
	cfg[layersKey] = hybrid.Pattern(layers).String()
	cfg[attentionFractionKey] = strconv.FormatFloat(float64(n)/float64(len(layers)), 'g', 4, 64)
}

// groupHybrids rewrites the series keys of hybrid runs: the settings that
// write the layers give way to the layers themselves, and the layers to
// the attention fraction where one determines the other.
func groupHybrids(runs []*Run, series map[string]bool) {
	if !series[layersKey] {
		return
	}
	for k := range patternKeys {
		delete(series, k)
	}
	if series[attentionFractionKey] && lockstepWith(runs, layersKey, []string{attentionFractionKey}) != "" {
		delete(series, layersKey)
	}
}
