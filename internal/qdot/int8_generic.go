package qdot

import (
	"sync"

	"github.com/mlxq/mlxq/quant"
)

// The portable integer path: each weight row is unpacked to one byte per
// code, then every activation row takes its products group by group in
// int32, adding s·d·Σq·xq + b·Σx + s·e to one float32 running sum per row.

// rowScratch holds a weight row unpacked by the portable path.
var rowScratch = sync.Pool{New: func() any { return new([]uint8) }}

func matInt8Generic(y []float32, ldy int, w []byte, bits int, s, b []float32, a *Int8Acts, n int) {
	k, gs := a.k, a.gs
	ng := k / gs
	rb := len(w) / n
	p := rowScratch.Get().(*[]uint8)
	*p = grow(*p, k)
	q := *p
	tp := dotScratch.Get().(*[]int32)
	if cap(*tp) < ng {
		*tp = make([]int32, ng)
	}
	dots, sums := (*tp)[:ng], int8DotsFor(a.impl)
	for j := range n {
		quant.Unpack(q, w[j*rb:(j+1)*rb], bits)
		sj, bj := s[j*ng:(j+1)*ng], b[j*ng:(j+1)*ng]
		for i := range a.m {
			sums(dots, q, a.q[i*a.ld:(i+1)*a.ld], gs, a.layout.wide)
			d, sum, rest := a.d[i*ng:(i+1)*ng], a.sum[i*ng:(i+1)*ng], a.rest[i*ng:(i+1)*ng]
			var acc float32
			for g, t := range dots {
				acc += sj[g]*d[g]*float32(t) + bj[g]*sum[g] + sj[g]*rest[g]
			}
			y[i*ldy+j] = acc
		}
	}
	dotScratch.Put(tp)
	rowScratch.Put(p)
}

// dotScratch holds the integer group sums of one pair of rows.
var dotScratch = sync.Pool{New: func() any { return new([]int32) }}

// int8Dots writes into dots[g] the integer sum of group g of gs codes q
// (one per byte) with the quantized activations xq, int16 if wide.
type int8Dots func(dots []int32, q, xq []uint8, gs int, wide bool)

// int8DotsGo is the portable int8Dots.
func int8DotsGo(dots []int32, q, xq []uint8, gs int, wide bool) {
	for g := range dots {
		if wide {
			dots[g] = dotInt16(q[g*gs:(g+1)*gs], xq[2*g*gs:2*(g+1)*gs])
		} else {
			dots[g] = dotInt8(q[g*gs:(g+1)*gs], xq[g*gs:(g+1)*gs])
		}
	}
}

// dotInt8 returns Σ q[i]·int8(x[i]), exactly.
func dotInt8(q, x []uint8) int32 {
	x = x[:len(q)]
	var t0, t1, t2, t3 int32
	i := 0
	for ; i+4 <= len(q); i += 4 {
		t0 += int32(q[i]) * int32(int8(x[i]))
		t1 += int32(q[i+1]) * int32(int8(x[i+1]))
		t2 += int32(q[i+2]) * int32(int8(x[i+2]))
		t3 += int32(q[i+3]) * int32(int8(x[i+3]))
	}
	for ; i < len(q); i++ {
		t0 += int32(q[i]) * int32(int8(x[i]))
	}
	return (t0 + t1) + (t2 + t3)
}

// dotInt16 returns Σ q[i]·x_i for the little-endian int16 values x_i of x,
// exactly.
func dotInt16(q, x []uint8) int32 {
	x = x[:2*len(q)]
	var t0, t1 int32
	i := 0
	for ; i+2 <= len(q); i += 2 {
		t0 += int32(q[i]) * int32(int16(uint16(x[2*i])|uint16(x[2*i+1])<<8))
		t1 += int32(q[i+1]) * int32(int16(uint16(x[2*i+2])|uint16(x[2*i+3])<<8))
	}
	return t0 + t1
}
