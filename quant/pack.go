package quant

// RowBytes returns the bytes that cols codes of the given width occupy in a
// packed row. MLX packs whole uint32 words; every supported group size makes
// cols*bits a multiple of 32, and RowBytes rounds up otherwise.
func RowBytes(cols, bits int) int {
	return (cols*bits + 31) / 32 * 4
}

// Pack writes codes as an LSB-first bitstream of the given width into dst,
// which must hold RowBytes(len(codes), bits) bytes. Bits of each code above
// the width are ignored. Trailing bits of the last word are zeroed.
func Pack(dst []byte, codes []uint8, bits int) {
	n := RowBytes(len(codes), bits)
	dst = dst[:n]
	clear(dst)
	mask := uint16(1)<<bits - 1
	for j, c := range codes {
		p := j * bits
		v := (uint16(c) & mask) << (p & 7)
		dst[p>>3] |= byte(v)
		if hi := byte(v >> 8); hi != 0 {
			dst[p>>3+1] |= hi
		}
	}
}

// Unpack reads len(dst) codes of the given width from the LSB-first
// bitstream src.
func Unpack(dst []uint8, src []byte, bits int) {
	switch bits {
	case 8:
		copy(dst, src)
		return
	case 4:
		for j := range dst {
			dst[j] = src[j>>1] >> (4 * (j & 1)) & 0xf
		}
		return
	}
	for j := range dst {
		dst[j] = CodeAt(src, bits, j)
	}
}

// CodeAt returns code j of the given width from the LSB-first bitstream row.
func CodeAt(row []byte, bits, j int) uint8 {
	p := j * bits
	v := uint16(row[p>>3])
	if p&7+bits > 8 {
		v |= uint16(row[p>>3+1]) << 8
	}
	return uint8(v>>(p&7)) & uint8(1<<bits-1)
}
