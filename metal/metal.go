package metal

import "github.com/mlxq/mlxq/engine"

// Name is the backend's registered name.
const Name = "metal"

// Priority is the backend's priority in engine.Auto: above cuda's 10 and
// the CPU's 0. On other OSes than macOS the backend is registered too, and
// fails to open with engine.ErrUnavailable, so Auto moves on.
const Priority = 20

func init() {
	engine.Register(Name, Priority, openDriver)
}
