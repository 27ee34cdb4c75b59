package eval

import "errors"

// ErrConfig reports a config that cannot be run: a file that does not
// parse, an unknown key, a value of the wrong type or out of range, or a
// selection that matches nothing. Every error of Load and Open for such a
// config wraps it; test with errors.Is.
var ErrConfig = errors.New("invalid eval config")

// A ConfigError is a problem with one key of a config file.
type ConfigError struct {
	// File is the config file.
	File string
	// Key is the dotted path of the key, with list indices
	// ("models[0].layers[1]"); it is empty when the problem is not one
	// key's or when Msg names the key itself.
	Key string
	// Msg says what is wrong: what was found and what was wanted.
	Msg string
}

// Error formats e as "file: key: problem".
func (e *ConfigError) Error() string {
	s := e.File + ": "
	if e.Key != "" {
		s += e.Key + ": "
	}
	return s + e.Msg
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }
