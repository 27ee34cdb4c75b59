package loader

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxq/mlxq/quant"
)

func TestParseConfig(t *testing.T) {
	mx := quant.DefaultFormat
	cases := []struct {
		name string
		json string
		want Config
	}{
		{"no quantization", `{"model_type": "llama"}`, Config{}},
		{"null quantization", `{"quantization": null}`, Config{}},
		{"global", `{"quantization": {"group_size": 32, "bits": 4, "mode": "affine"}}`,
			Config{Key: "quantization", Quantized: true, Format: affine(4, 32)}},
		{"defaults", `{"quantization": {}}`, Config{Key: "quantization", Quantized: true, Format: affine(4, 64)}},
		{"null keys take defaults", `{"quantization": {"bits": null, "group_size": null, "mode": null}}`,
			Config{Key: "quantization", Quantized: true, Format: affine(4, 64)}},
		{"mode defaults", `{"quantization": {"mode": "nvfp4"}}`, Config{Key: "quantization", Quantized: true, Format: mx(quant.NVFP4)}},
		{"quantization wins", `{"quantization": {"bits": 8}, "quantization_config": {"bits": 2}}`,
			Config{Key: "quantization", Quantized: true, Format: affine(8, 64)}},
		{"quantization_config", `{"quantization_config": {"bits": 2}}`,
			Config{Key: "quantization_config", Quantized: true, Format: affine(2, 64)}},
		{"text_config", `{"text_config": {"quantization": {"bits": 3}, "quantization_config": {"bits": 2}}}`,
			Config{Key: "text_config.quantization", Quantized: true, Format: affine(3, 64)}},
		{"text_config.quantization_config", `{"text_config": {"quantization_config": {"bits": 5}}}`,
			Config{Key: "text_config.quantization_config", Quantized: true, Format: affine(5, 64)}},
		{"overrides", `{"quantization": {"mode": "mxfp4", "a": {"bits": 8}, "b": {"mode": "mxfp8"}, "c": false, "d": true, "e": null,
			"f": {"bits": 6, "group_size": 128, "mode": "affine", "quantize_input": false}, "quantize_activations": true}}`,
			Config{Key: "quantization", Quantized: true, Format: mx(quant.MXFP4),
				Overrides:           map[string]quant.Format{"a": affine(8, 64), "b": mx(quant.MXFP8), "d": mx(quant.MXFP4), "f": affine(6, 128)},
				Unquantized:         map[string]bool{"c": true, "e": true},
				QuantizeActivations: true}},
		{"HF mxfp4", `{"quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]}}`,
			Config{Key: "quantization_config", Quantized: true, Format: mx(quant.MXFP4), Method: "mxfp4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(c.json))
			require.NoError(t, err)
			if c.want.Overrides == nil {
				c.want.Overrides = map[string]quant.Format{}
			}
			if c.want.Unquantized == nil {
				c.want.Unquantized = map[string]bool{}
			}
			assert.Equal(t, &c.want, got)
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name   string
		json   string
		format bool // also wraps quant.ErrFormat
		want   string
	}{
		{"empty", ``, false, "config.json: invalid JSON: EOF"},
		{"syntax", `{"quantization": {"bits": 4,}}`, false, "config.json: invalid JSON: invalid character '}'"},
		{"trailing data", `{} {}`, false, "config.json: invalid JSON: data after the top-level value"},
		{"array", `[1, 2]`, false, "config.json: found an array, want a JSON object"},
		{"quantization not an object", `{"quantization": "4bit"}`, false, `config.json: quantization: found string "4bit", want an object`},
		{"text_config not an object", `{"text_config": 3}`, false, "config.json: text_config: found number 3, want an object"},
		{"bits string", `{"quantization": {"bits": "4"}}`, false, `config.json: quantization.bits: found string "4", want an integer`},
		{"bits float", `{"quantization": {"bits": 4.5}}`, false, "config.json: quantization.bits: found 4.5, want an integer"},
		{"bits exponent", `{"quantization": {"bits": 4e0}}`, false, "config.json: quantization.bits: found 4e0, want an integer"},
		{"bits huge", `{"quantization": {"bits": 99999999999999999999}}`, false, "quantization.bits: found 99999999999999999999, out of range"},
		{"bits 7", `{"quantization": {"bits": 7}}`, true, "config.json: quantization: unsupported quantization format: affine bits 7, want 2, 3, 4, 5, 6 or 8"},
		{"bits 0", `{"quantization": {"bits": 0}}`, true, "affine bits 0"},
		{"group size 48", `{"quantization": {"group_size": 48}}`, true, "affine group size 48, want 32, 64 or 128"},
		{"mxfp4 group size 64", `{"quantization": {"mode": "mxfp4", "group_size": 64}}`, true, "mxfp4 takes bits 4 and group size 32, got 4 and 64"},
		{"unknown mode", `{"quantization": {"mode": "int4"}}`, true, `config.json: quantization.mode: unsupported quantization format: mode "int4"`},
		{"mode not a string", `{"quantization": {"mode": 4}}`, false, "config.json: quantization.mode: found number 4, want a string"},
		{"layer number", `{"quantization": {"lm_head": 8}}`, false, `config.json: quantization["lm_head"]: found number 8, want an object (the layer's format) or false`},
		{"layer string", `{"quantization": {"lm_head": "q4"}}`, false, `quantization["lm_head"]: found string "q4"`},
		{"layer bits 7", `{"quantization": {"lm_head": {"bits": 7}}}`, true, `config.json: quantization["lm_head"]: unsupported quantization format: affine bits 7`},
		{"layer bits float", `{"quantization": {"lm_head": {"group_size": 64.0}}}`, false, `config.json: quantization["lm_head"].group_size: found 64.0, want an integer`},
		{"layer unknown mode", `{"quantization": {"lm_head": {"mode": "q8_0"}}}`, true, `quantization["lm_head"].mode: unsupported quantization format: mode "q8_0"`},
		{"quantize_activations", `{"quantization": {"quantize_activations": "yes"}}`, false, `quantization.quantize_activations: found string "yes", want true or false`},
		{"HF awq", `{"quantization_config": {"quant_method": "awq", "bits": 4}}`, false, `config.json: quantization_config.quant_method: "awq" is a Hugging Face quantization`},
		{"HF method not a string", `{"quantization_config": {"quant_method": 1}}`, false, "quantization_config.quant_method: found number 1, want a string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(c.json))
			require.Error(t, err)
			assert.Nil(t, got)
			assert.ErrorIs(t, err, ErrConfig)
			if c.format {
				assert.ErrorIs(t, err, quant.ErrFormat)
			} else {
				assert.NotErrorIs(t, err, quant.ErrFormat)
			}
			assert.Contains(t, err.Error(), c.want)
		})
	}
}
