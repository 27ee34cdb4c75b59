package engine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ordinals holds the openers of backends with several devices, by
// backend name; guarded by regMu.
var ordinals = map[string]func(ordinal int) (Driver, error){}

// RegisterOrdinals lets OpenDevice open the devices of backend name by
// ordinal ("cuda:1"). Backends call it from init functions, after
// Register; registering a name twice panics.
func RegisterOrdinals(name string, open func(ordinal int) (Driver, error)) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, ok := ordinals[name]; ok {
		panic("engine: RegisterOrdinals called twice for backend " + name)
	}
	ordinals[name] = open
}

// OpenDevice opens the device named by spec: a backend name (or Auto), as
// Open takes, or a backend name and a device ordinal, "cuda:1". Each call
// opens a device of its own: the CPU backend opens a new in-process device
// for every ordinal, so that several stand in for GPUs. A backend without
// ordinals opens at ordinal 0 only.
func OpenDevice(spec string) (*Device, error) {
	name, num, ok := strings.Cut(strings.TrimSpace(spec), ":")
	if !ok {
		return Open(name)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%w: device %q, want backend:ordinal with an ordinal >= 0", ErrArgs, spec)
	}
	regMu.Lock()
	open, has := ordinals[name]
	regMu.Unlock()
	switch {
	case name == Auto:
		return nil, fmt.Errorf("%w: device %q: %s takes no ordinal", ErrArgs, spec, Auto)
	case !slices.Contains(Backends(), name):
		return nil, fmt.Errorf("%w %q, want one of %v", ErrUnknownBackend, name, Backends())
	case has:
		drv, err := open(n)
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				return nil, fmt.Errorf("backend %s device %d: %w", name, n, err)
			}
			return nil, fmt.Errorf("backend %s device %d: %w: %w", name, n, ErrUnavailable, err)
		}
		return NewDevice(name, drv), nil
	case n == 0:
		return Open(name)
	}
	return nil, fmt.Errorf("%w: device %q: backend %s opens device 0 only", ErrUnavailable, spec, name)
}

// OpenDevices opens the devices of a comma-separated list of OpenDevice
// specs, "cuda:0,cuda:1". On failure it closes those it opened.
func OpenDevices(list string) ([]*Device, error) {
	var devs []*Device
	for spec := range strings.SplitSeq(list, ",") {
		d, err := OpenDevice(spec)
		if err != nil {
			for _, o := range devs {
				o.Close()
			}
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}
