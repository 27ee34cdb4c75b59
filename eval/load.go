package eval

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix starts the environment variables that override config keys:
// MLXQ_REPEAT overrides repeat, MLXQ_OUTPUT_DIR overrides output.dir.
const EnvPrefix = "MLXQ"

// Load reads the YAML config file at path, applies the environment
// (EnvPrefix variables, one per key that holds a value or a list of
// values) and then overrides, which map config keys such as "seq_lens" or
// "output.dir" to values given on the command line (lists as
// comma-separated strings). It returns the validated config. Every error
// wraps ErrConfig and names the file and the key.
func Load(path string, overrides map[string]string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	v := viper.NewWithOptions(viper.WithDecodeHook(mapstructure.ComposeDecodeHookFunc(strictHook, splitHook)))
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, &ConfigError{File: path, Msg: oneLine(err)}
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.SetDefault("name", strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	for key, value := range defaults {
		v.SetDefault(key, value)
	}
	for _, key := range EnvKeys() {
		if err := v.BindEnv(key); err != nil {
			return nil, err
		}
	}
	for key, value := range overrides {
		v.Set(key, value)
	}

	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		return nil, decodeError(path, err, overrides)
	}
	c.File = path
	if c.Output.Dir == "" {
		c.Output.Dir = filepath.Join("eval-out", c.Name)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// EnvKeys returns the config keys the environment may override: every key
// of a value or a list of values (not models and synthetic, lists of
// tables). The variable of a key is EnvVar(key).
func EnvKeys() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for f := range t.Fields() {
			tag := f.Tag.Get("mapstructure")
			switch {
			case tag == "-":
			case f.Type.Kind() == reflect.Struct:
				walk(prefix+tag+".", f.Type)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			default:
				keys = append(keys, prefix+tag)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return keys
}

// EnvVar returns the environment variable that overrides a config key:
// EnvVar("output.dir") is "MLXQ_OUTPUT_DIR".
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// strictHook refuses what weak typing would otherwise let through
// silently: a boolean where a number or a string is wanted, and a
// fraction where an integer is.
func strictHook(from, to reflect.Type, data any) (any, error) {
	switch {
	case from.Kind() == reflect.Bool && to.Kind() != reflect.Bool && to.Kind() != reflect.Interface:
		return nil, fmt.Errorf("got boolean %v, want %s", data, kindName(to))
	case isFloat(from.Kind()) && isInt(to.Kind()):
		if f := reflect.ValueOf(data).Float(); f != math.Trunc(f) || f < 0 && isUint(to.Kind()) {
			return nil, fmt.Errorf("got %v, want %s", data, kindName(to))
		}
	case isInt(from.Kind()) && !isUint(from.Kind()) && isUint(to.Kind()):
		if reflect.ValueOf(data).Int() < 0 {
			return nil, fmt.Errorf("got %v, want %s", data, kindName(to))
		}
	}
	return data, nil
}

// splitHook turns a comma-separated string (from the environment or a
// flag) into a list, trimming spaces around the items.
func splitHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	var items []string
	for item := range strings.SplitSeq(data.(string), ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items, nil
}

func isInt(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Uint64
}

func isUint(k reflect.Kind) bool {
	return k >= reflect.Uint && k <= reflect.Uint64
}

func isFloat(k reflect.Kind) bool {
	return k == reflect.Float32 || k == reflect.Float64
}

// kindName names the type a key wants, in words.
func kindName(t reflect.Type) string {
	switch k := t.Kind(); {
	case isUint(k):
		return "an integer ≥ 0"
	case isInt(k):
		return "an integer"
	case isFloat(k):
		return "a number"
	case k == reflect.Bool:
		return "true or false"
	case k == reflect.String:
		return "a string"
	case k == reflect.Slice:
		return "a list"
	case k == reflect.Struct:
		return "a table of keys"
	}
	return t.String()
}

// decodeError rewrites mapstructure's errors into ConfigErrors that name
// the key, say what was wanted and where a wrong value came from.
func decodeError(file string, err error, overrides map[string]string) error {
	var errs []error
	for _, de := range decodeErrors(err) {
		key, cause := de.Name(), de.Unwrap()
		msg := strings.TrimPrefix(cause.Error(), "error decoding '"+key+"': ")
		if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			for k := range strings.SplitSeq(keys, ", ") {
				errs = append(errs, unknownKey(file, joinKey(key, k)))
			}
			continue
		}
		var unconvertible *mapstructure.UnconvertibleTypeError
		var parse *mapstructure.ParseError
		switch {
		case errors.As(cause, &unconvertible):
			msg = fmt.Sprintf("got %s, want %s", describe(unconvertible.Value), kindName(unconvertible.Expected.Type()))
		case errors.As(cause, &parse):
			msg = fmt.Sprintf("got %s, want %s", describe(parse.Value), kindName(parse.Expected.Type()))
		case strings.HasPrefix(msg, "expected a map or struct, got "):
			kind := strings.Trim(strings.TrimPrefix(msg, "expected a map or struct, got "), `"'`)
			msg = fmt.Sprintf("got %s, want a table of keys", cmp.Or(kindWords[kind], kind))
		}
		if _, ok := overrides[baseKey(key)]; ok {
			msg += " (from the command line)"
		} else if os.Getenv(EnvVar(baseKey(key))) != "" && slices.Contains(EnvKeys(), baseKey(key)) {
			msg += " (from " + EnvVar(baseKey(key)) + ")"
		}
		errs = append(errs, &ConfigError{File: file, Key: key, Msg: msg})
	}
	if len(errs) == 0 {
		return &ConfigError{File: file, Msg: oneLine(err)}
	}
	return errors.Join(errs...)
}

// kindWords describes the kinds of value a YAML file holds.
var kindWords = map[string]string{
	"int": "a number", "float64": "a number", "string": "a string", "bool": "a boolean", "slice": "a list",
}

// decodeErrors returns the leaves of mapstructure's tree of joined errors.
func decodeErrors(err error) []*mapstructure.DecodeError {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*mapstructure.DecodeError
		for _, e := range joined.Unwrap() {
			out = append(out, decodeErrors(e)...)
		}
		return out
	}
	var de *mapstructure.DecodeError
	if !errors.As(err, &de) {
		return nil
	}
	if inner := decodeErrors(de.Unwrap()); len(inner) > 0 {
		return inner
	}
	return []*mapstructure.DecodeError{de}
}

// describe formats a value found in the config for a message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table of keys"
	}
	return fmt.Sprint(v)
}

// joinKey appends key k to the path of its parent table.
func joinKey(parent, k string) string {
	if parent == "" {
		return k
	}
	return parent + "." + k
}

// baseKey drops list indices from a key: "models[0].bits" becomes
// "models.bits".
func baseKey(key string) string {
	var b strings.Builder
	depth := 0
	for _, r := range key {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unknownKey reports a key the schema does not have, suggesting the
// closest one of its table.
func unknownKey(file, key string) error {
	e := &ConfigError{File: file, Msg: fmt.Sprintf("unknown key %q", key)}
	parent, name := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		parent, name = key[:i], key[i+1:]
	}
	if t, ok := tableType(baseKey(parent)); ok {
		var valid []string
		for f := range t.Fields() {
			if tag := f.Tag.Get("mapstructure"); tag != "-" {
				valid = append(valid, tag)
			}
		}
		if s := closest(name, valid); s != "" {
			e.Msg += fmt.Sprintf(" (did you mean %q?)", joinKey(parent, s))
		}
	}
	return e
}

// tableType returns the struct type that holds the keys of a table, given
// its dotted path without list indices ("" for the top level).
func tableType(path string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	if path == "" {
		return t, true
	}
	for name := range strings.SplitSeq(path, ".") {
		f, ok := fieldByTag(t, name)
		if !ok {
			return nil, false
		}
		t = f.Type
		if t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, false
		}
	}
	return t, true
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if f.Tag.Get("mapstructure") == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// closest returns the candidate nearest to s in edit distance, if it is
// near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		if d := editDistance(s, c); best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// oneLine joins the lines of an error message.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
