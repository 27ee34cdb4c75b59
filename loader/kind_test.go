package loader

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKind(t *testing.T) {
	tests := []struct {
		name    string
		experts int
		want    Kind
	}{
		{"model.embed_tokens", 0, Embedding},
		{"transformer.wte", 0, Embedding},
		{"model.tok_embeddings", 0, Embedding},
		{"embed_tokens", 0, Embedding},
		{"model.layers.0.mlp.up_proj", 0, Linear},
		{"lm_head", 0, Linear},
		{"model.embed_tokens_norm", 0, Linear},
		{"model.layers.1.mlp.switch_mlp.gate_proj", 8, SwitchLinear},
		{"model.embed_tokens", 4, SwitchLinear},
	}
	for _, tt := range tests {
		l := &Layer{Name: tt.name, Experts: tt.experts}
		assert.Equal(t, tt.want, l.Kind(), tt.name)
	}
	assert.Equal(t, "linear embedding switch_linear Kind(9)", Linear.String()+" "+Embedding.String()+" "+SwitchLinear.String()+" "+Kind(9).String())
}
