package loader

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps at least one
// of them (or quant.ErrFormat for an unsupported mode, bit width or group
// size); test for them with errors.Is.
var (
	// ErrNotFound reports a missing file, tensor or layer.
	ErrNotFound = errors.New("not found")
	// ErrConfig reports a config.json or index file that cannot be used:
	// malformed JSON, a key of the wrong type, or no quantization format
	// for a model that has quantized layers.
	ErrConfig = errors.New("invalid model config")
	// ErrFile reports a file that cannot be read or is not a well-formed
	// safetensors file.
	ErrFile = errors.New("invalid safetensors file")
	// ErrDType reports a tensor whose element type is unknown or does not
	// fit its role in a layer.
	ErrDType = errors.New("wrong tensor dtype")
	// ErrShape reports a tensor whose shape does not fit its layer, or a
	// tensor that the layer's format does not take.
	ErrShape = errors.New("wrong tensor shape")
)

// A TensorError records a problem with one tensor, or with a quantized layer
// as a whole when Tensor is empty.
type TensorError struct {
	// File is the safetensors file holding the tensor, relative to the
	// model path; it is empty when the tensor is missing from every file.
	File string
	// Layer is the quantized layer the tensor belongs to, if any.
	Layer string
	// Tensor is the full tensor name, e.g. "model.layers.0.mlp.up_proj.scales".
	Tensor string
	// Err is the problem. It wraps one of the package's sentinel errors.
	Err error
}

// Error formats e as "file: role of layer: problem", for example
// "model.safetensors: scales of model.layers.0.mlp.up_proj: shape [96 3],
// want [96 4] for group size 64".
func (e *TensorError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	switch role, ok := strings.CutPrefix(e.Tensor, e.Layer+"."); {
	case e.Layer != "" && ok:
		fmt.Fprintf(&b, "%s of %s", role, e.Layer)
	case e.Tensor != "":
		fmt.Fprintf(&b, "tensor %s", e.Tensor)
	default:
		fmt.Fprintf(&b, "layer %s", e.Layer)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *TensorError) Unwrap() error { return e.Err }

// kindError gives an error extra identities for errors.Is without changing
// its message.
type kindError struct {
	kinds []error
	err   error
}

func (e *kindError) Error() string { return e.err.Error() }

func (e *kindError) Unwrap() []error { return append(e.kinds[:len(e.kinds):len(e.kinds)], e.err) }

// errorf formats an error that matches kind (and, through %w, whatever the
// arguments wrap) without repeating the sentinel's text.
func errorf(kind error, format string, args ...any) error {
	return &kindError{[]error{kind}, fmt.Errorf(format, args...)}
}

// withKind adds kinds to err's identities without changing its message.
func withKind(err error, kinds ...error) error {
	return &kindError{kinds, err}
}
