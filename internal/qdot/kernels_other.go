//go:build (!amd64 && !arm64) || purego

package qdot

// detectImpl: no assembly on this target (or with the purego tag).
func detectImpl() implKind { return implGeneric }

// kernelsFor: only the generic path exists here.
func kernelsFor(implKind) *kernelSet { return nil }

// dot1 is never called without assembly kernels.
func dot1(k implKind, u8 bool, w *byte, s, b, x, xsum *float32, ng, cpg, c, kk int) float32 {
	panic("qdot: no assembly for " + k.String())
}

// blockFor: the portable block dot product.
func blockFor(implKind) blockDot { return dotBlock }
