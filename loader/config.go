package loader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/mlxq/mlxq/quant"
)

// Config is the quantization section of a model's config.json.
type Config struct {
	// Key is where the section was found: "quantization",
	// "quantization_config", "text_config.quantization" or
	// "text_config.quantization_config". It is empty when config.json has
	// no quantization section.
	Key string
	// Quantized reports whether a global format applies: config.json has a
	// quantization section, or the model was opened with WithFormat.
	Quantized bool
	// Format is the global format, used by every layer that has a scales
	// tensor and no entry in Overrides. Missing bits and group size take the
	// defaults of the mode (quant.DefaultFormat); a missing mode is affine.
	Format quant.Format
	// Overrides maps module paths to their own format. A dict without
	// "mode" is affine, whatever the global mode, and its missing keys take
	// the defaults of its own mode, as in MLX. A path mapped to true takes
	// the global format.
	Overrides map[string]quant.Format
	// Unquantized holds the module paths that config.json maps to false.
	Unquantized map[string]bool
	// QuantizeActivations is the section's "quantize_activations" flag.
	QuantizeActivations bool
	// Method is the Hugging Face "quant_method" the section was mapped
	// from ("mxfp4"), or empty for a section written by MLX.
	Method string
}

// configFile is the name used in errors about config.json.
const configFile = "config.json"

// ParseConfig parses the quantization section of config.json. A config
// with no quantization section is valid and describes an unquantized model.
// Errors wrap ErrConfig (and quant.ErrFormat for an unsupported format) and
// name the offending key.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errorf(ErrConfig, "%s: invalid JSON: %w", configFile, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf(ErrConfig, "%s: invalid JSON: data after the top-level value", configFile)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(ErrConfig, "%s: found %s, want a JSON object", configFile, describe(v))
	}
	c := &Config{
		Overrides:   map[string]quant.Format{},
		Unquantized: map[string]bool{},
	}
	section, key, err := findSection(top)
	if err != nil {
		return nil, err
	}
	if section != nil {
		c.Key, c.Quantized = key, true
		if err := c.parseSection(section); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// findSection returns the quantization section of a config and its key.
func findSection(top map[string]any) (map[string]any, string, error) {
	keys := []string{"quantization", "quantization_config"}
	for _, k := range keys {
		if s, err := object(top, k, k); s != nil || err != nil {
			return s, k, err
		}
	}
	text, err := object(top, "text_config", "text_config")
	if text == nil || err != nil {
		return nil, "", err
	}
	for _, k := range keys {
		path := "text_config." + k
		if s, err := object(text, k, path); s != nil || err != nil {
			return s, path, err
		}
	}
	return nil, "", nil
}

// object returns obj[k] when it is an object, nil when it is missing or
// null, and an error naming path otherwise.
func object(obj map[string]any, k, path string) (map[string]any, error) {
	switch v := obj[k].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	default:
		return nil, errorf(ErrConfig, "%s: %s: found %s, want an object", configFile, path, describe(v))
	}
}

// parseSection reads the global format and the per-layer entries.
func (c *Config) parseSection(s map[string]any) error {
	if m, ok := s["quant_method"]; ok {
		return c.parseMethod(m)
	}
	f, err := parseFormat(s, c.Key)
	if err != nil {
		return err
	}
	c.Format = f
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := fmt.Sprintf("%s[%q]", c.Key, k)
		switch v := s[k].(type) {
		case json.Number, string:
			if formatKeys[k] {
				continue
			}
		case nil:
			// mlx-lm's predicate treats null like false.
			if !formatKeys[k] && k != "quantize_activations" {
				c.Unquantized[k] = true
			}
			continue
		case bool:
			if k == "quantize_activations" {
				c.QuantizeActivations = v
			} else if v {
				c.Overrides[k] = c.Format
			} else {
				c.Unquantized[k] = true
			}
			continue
		case map[string]any:
			f, err := parseFormat(v, path)
			if err != nil {
				return err
			}
			c.Overrides[k] = f
			continue
		}
		if k == "quantize_activations" {
			return errorf(ErrConfig, "%s: %s.quantize_activations: found %s, want true or false",
				configFile, c.Key, describe(s[k]))
		}
		return errorf(ErrConfig, "%s: %s: found %s, want an object (the layer's format) or false",
			configFile, path, describe(s[k]))
	}
	return nil
}

// formatKeys are the keys of a quantization dict that are not module paths.
var formatKeys = map[string]bool{"group_size": true, "bits": true, "mode": true}

// parseMethod maps a Hugging Face quant_method as mlx-lm does. Only mxfp4
// stores weights in MLX's layout; other methods are rejected.
func (c *Config) parseMethod(m any) error {
	name, ok := m.(string)
	if !ok {
		return errorf(ErrConfig, "%s: %s.quant_method: found %s, want a string", configFile, c.Key, describe(m))
	}
	if name != "mxfp4" {
		return errorf(ErrConfig,
			"%s: %s.quant_method: %q is a Hugging Face quantization that mlxq does not read, want an MLX config (convert the model with mlx_lm.convert)",
			configFile, c.Key, name)
	}
	c.Method = name
	c.Format = quant.DefaultFormat(quant.MXFP4)
	return nil
}

// parseFormat reads group_size, bits and mode from a quantization dict at
// path: a missing mode is affine, missing bits and group size take the
// mode's defaults, and null counts as missing.
func parseFormat(d map[string]any, path string) (quant.Format, error) {
	mode := quant.Affine
	switch v := d["mode"].(type) {
	case nil:
	case string:
		m, err := quant.ParseMode(v)
		if err != nil {
			return quant.Format{}, withKind(fmt.Errorf("%s: %s.mode: %w", configFile, path, err), ErrConfig)
		}
		mode = m
	default:
		return quant.Format{}, errorf(ErrConfig, "%s: %s.mode: found %s, want a string", configFile, path, describe(v))
	}
	f := quant.DefaultFormat(mode)
	for _, p := range []struct {
		key string
		dst *int
	}{{"bits", &f.Bits}, {"group_size", &f.GroupSize}} {
		if v, ok := d[p.key]; ok && v != nil {
			n, err := integer(v)
			if err != nil {
				return quant.Format{}, errorf(ErrConfig, "%s: %s.%s: %w", configFile, path, p.key, err)
			}
			*p.dst = n
		}
	}
	if err := f.Validate(); err != nil {
		return quant.Format{}, withKind(fmt.Errorf("%s: %s: %w", configFile, path, err), ErrConfig)
	}
	return f, nil
}

// integer returns the JSON value v as an int.
func integer(v any) (int, error) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("found %s, want an integer", describe(v))
	}
	n, err := strconv.Atoi(num.String())
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("found %s, out of range", num)
	}
	if err != nil {
		return 0, fmt.Errorf("found %s, want an integer", num)
	}
	return n, nil
}

// describe names the JSON type of v for error messages, with its value when
// it is short.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case json.Number:
		return "number " + v.String()
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("string %q", v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
