//go:build !darwin

package metal

import (
	"errors"
	"fmt"

	"github.com/mlxq/mlxq/engine"
)

// errNeedsMac is why the backend does not open here.
var errNeedsMac = errors.New("metal: needs macOS")

// Driver is the Metal backend's engine.Driver; it exists only on macOS.
type Driver struct{ _ struct{} }

// Open fails on every OS but macOS with an error wrapping
// engine.ErrUnavailable.
func Open() (*Driver, error) {
	return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, errNeedsMac)
}

func openDriver() (engine.Driver, error) {
	_, err := Open()
	return nil, err
}
