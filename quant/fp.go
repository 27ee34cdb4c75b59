package quant

import "math"

// e2m1Values are the magnitudes of the eight E2M1 codes without sign.
var e2m1Values = [8]float64{0, 0.5, 1, 1.5, 2, 3, 4, 6}

// E2M1ToFloat decodes a 4-bit E2M1 (FP4) code: bit 3 is the sign, bits 0-2
// index the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6.
func E2M1ToFloat(code uint8) float64 {
	v := e2m1Values[code&7]
	if code&8 != 0 {
		return -v
	}
	return v
}

// E4M3ToFloat decodes an FP8 E4M3 ("fn") code as MLX does: exponent bias 7,
// subnormals at exponent 0, and no NaN: 0x7f decodes to 480.
func E4M3ToFloat(code uint8) float64 {
	exp := int(code>>3) & 0xf
	mant := float64(code & 7)
	var v float64
	if exp == 0 {
		v = math.Ldexp(mant/8, -6)
	} else {
		v = math.Ldexp(1+mant/8, exp-7)
	}
	if code&0x80 != 0 {
		return -v
	}
	return v
}

// E8M0ToFloat decodes an E8M0 scale: 2^(s-127), with 255 decoding to +Inf.
// Zero decodes to 2^-127, as in MLX.
func E8M0ToFloat(s uint8) float64 {
	if s == 255 {
		return math.Inf(1)
	}
	return math.Ldexp(1, int(s)-127)
}

// FPGroup quantizes one group w into codes for a floating-point mode and
// returns the encoded group scale. As in MLX, the scale is amax/6 (FP4
// elements) or amax/448 (FP8 elements); mxfp4 and mxfp8 store it as E8M0
// rounded in the log domain, nvfp4 as E4M3. Each element becomes the nearest
// code to w/scale, ties going to the code with an even low bit.
func FPGroup(codes []uint8, w []float32, mode Mode) uint8 {
	var amax float64
	for _, v := range w {
		amax = max(amax, math.Abs(float64(v)))
	}
	decode, maxElem := E2M1ToFloat, 6.0
	ncodes := 16
	if mode == MXFP8 {
		decode, maxElem, ncodes = E4M3ToFloat, 448, 256
	}
	var scaleCode uint8
	var scale float64
	if mode == NVFP4 {
		scaleCode = nearestCode(amax/maxElem, E4M3ToFloat, 128)
		scale = E4M3ToFloat(scaleCode)
	} else {
		e := math.Round(math.Log2(amax / maxElem))
		e = min(max(e, -127), 127)
		scaleCode = uint8(e + 127)
		scale = E8M0ToFloat(scaleCode)
	}
	for i, v := range w {
		if scale == 0 {
			codes[i] = 0
			continue
		}
		codes[i] = nearestCode(float64(v)/scale, decode, ncodes)
	}
	return scaleCode
}

// nearestCode returns the code in [0, n) whose decoded value is nearest v,
// skipping E4M3's NaN encodings 0x7f and 0xff.
func nearestCode(v float64, decode func(uint8) float64, n int) uint8 {
	best, bestErr := uint8(0), math.Inf(1)
	for c := range n {
		if n > 16 && c&0x7f == 0x7f {
			continue
		}
		err := math.Abs(decode(uint8(c)) - v)
		if err < bestErr || (err == bestErr && c&1 == 0 && best&1 == 1) {
			best, bestErr = uint8(c), err
		}
	}
	return best
}
