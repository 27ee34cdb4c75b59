//go:build !linux

package cuda

import (
	"errors"
	"runtime"
)

var errNotLinux = errors.New("the cuda backend runs on linux only, not " + runtime.GOOS)

func loadCUDA() (*cuAPI, error) { return nil, errNotLinux }

func loadNVRTC() (*nvrtcAPI, error) { return nil, errNotLinux }
