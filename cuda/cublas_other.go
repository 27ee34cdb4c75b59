//go:build !linux

package cuda

func loadCUBLAS() (*cublasAPI, error) { return nil, errNotLinux }
