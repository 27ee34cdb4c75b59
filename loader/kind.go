package loader

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is what a quantized layer is in the model, as MLX builds it.
type Kind uint8

const (
	// Linear is a QuantizedLinear: a 2-D weight [Out, In].
	Linear Kind = iota
	// Embedding is a QuantizedEmbedding: a 2-D weight [Vocab, Dims] of a
	// module named as a token embedding (see EmbeddingNames).
	Embedding
	// SwitchLinear is a QuantizedSwitchLinear: stacked experts
	// [Experts, Out, In].
	SwitchLinear
)

var kindNames = [...]string{Linear: "linear", Embedding: "embedding", SwitchLinear: "switch_linear"}

// String returns the kind's name: linear, embedding or switch_linear.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// EmbeddingNames are the last components of the module paths mlx-lm's
// models give their token embeddings (model.embed_tokens, transformer.wte,
// ...).
var EmbeddingNames = []string{"embed_tokens", "wte", "tok_embeddings", "word_embeddings", "embed_in"}

// Kind returns the layer's kind: SwitchLinear for stacked experts,
// Embedding for a 2-D layer whose name ends in one of EmbeddingNames,
// Linear otherwise.
func (l *Layer) Kind() Kind {
	switch {
	case l.Experts > 0:
		return SwitchLinear
	case slices.Contains(EmbeddingNames, l.Name[strings.LastIndexByte(l.Name, '.')+1:]):
		return Embedding
	}
	return Linear
}
