package engine

import "errors"

// Errors returned by the engine, wrapped with details; test with errors.Is.
var (
	// ErrArgs reports a dispatch or allocation whose arguments fail a
	// host-side check.
	ErrArgs = errors.New("invalid arguments")
	// ErrUnsupported reports a kernel the device does not implement.
	ErrUnsupported = errors.New("not supported by device")
	// ErrUnknownBackend reports a backend name that is not registered.
	ErrUnknownBackend = errors.New("unknown backend")
	// ErrUnavailable reports a registered backend whose device cannot be
	// opened on this machine (no GPU, no driver library).
	ErrUnavailable = errors.New("backend not available")
	// ErrClosed reports use of a freed buffer, a closed device or a
	// committed encoder.
	ErrClosed = errors.New("use after close")
)
