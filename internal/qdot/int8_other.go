//go:build (!amd64 && !arm64) || purego

package qdot

// int8Layout: the portable path reads the values in their natural order.
func int8Layout(_ implKind, c Codes) actLayout {
	return actLayout{perm: &natural, wide: wideActs(c), scale: 1}
}

// int8KernelsFor: only the portable path exists here.
func int8KernelsFor(implKind, Codes) *int8Tiles { return nil }

// int8DotsFor: the portable group sums.
func int8DotsFor(implKind) int8Dots { return int8DotsGo }
