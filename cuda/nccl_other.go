//go:build !linux

package cuda

func loadNCCL() (*ncclAPI, error) { return nil, errNotLinux }
