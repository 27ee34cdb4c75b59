package engine

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Auto is the backend name that opens the best device available.
const Auto = "auto"

type backend struct {
	name     string
	priority int
	open     func() (Driver, error)
}

var (
	regMu    sync.Mutex
	backends []backend
)

// Register makes a backend available to Open under name. Auto tries
// backends by decreasing priority. Backends register from init functions;
// registering a name twice panics.
func Register(name string, priority int, open func() (Driver, error)) {
	regMu.Lock()
	defer regMu.Unlock()
	if name == Auto || slices.ContainsFunc(backends, func(b backend) bool { return b.name == name }) {
		panic("engine: Register called twice for backend " + name)
	}
	backends = append(backends, backend{name, priority, open})
	slices.SortStableFunc(backends, func(a, b backend) int { return cmp.Compare(b.priority, a.priority) })
}

// Backends returns the registered backend names, best first.
func Backends() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, len(backends))
	for i, b := range backends {
		names[i] = b.name
	}
	return names
}

// Open opens the device of the named backend, or with Auto the first
// backend, by priority, whose device opens. An unregistered name fails with
// ErrUnknownBackend; a device that cannot open here fails with
// ErrUnavailable.
func Open(name string) (*Device, error) {
	regMu.Lock()
	list := slices.Clone(backends)
	regMu.Unlock()
	if name != Auto {
		for _, b := range list {
			if b.name == name {
				return openBackend(b)
			}
		}
		return nil, fmt.Errorf("%w %q, want %s or one of %v", ErrUnknownBackend, name, Auto, Backends())
	}
	var errs []error
	for _, b := range list {
		d, err := openBackend(b)
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: no backend opens: %w", ErrUnavailable, errors.Join(errs...))
}

func openBackend(b backend) (*Device, error) {
	drv, err := b.open()
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, fmt.Errorf("backend %s: %w", b.name, err)
		}
		return nil, fmt.Errorf("backend %s: %w: %w", b.name, ErrUnavailable, err)
	}
	return NewDevice(b.name, drv), nil
}
