package loader

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/mlxq/mlxq/quant"
)

// A Summary counts a model's quantized layers and bytes.
type Summary struct {
	// Formats has one entry per format, sorted by mode, bits and group size.
	Formats []FormatSummary
	// Layers is the number of quantized layers.
	Layers int
	// WeightBytes is the size of the packed weights of the quantized layers.
	WeightBytes int64
	// ScaleBytes is the size of their scales and biases.
	ScaleBytes int64
	// PlainTensors is the number of other tensors (norms, unquantized
	// layers, the Linear biases of quantized layers).
	PlainTensors int
	// PlainBytes is their size.
	PlainBytes int64
}

// A FormatSummary counts the quantized layers of one format.
type FormatSummary struct {
	quant.Format
	// Layers is the number of layers of this format.
	Layers int
	// WeightBytes is the size of their packed weights.
	WeightBytes int64
	// ScaleBytes is the size of their scales and biases.
	ScaleBytes int64
}

// Summary counts the model's layers by format and its bytes by kind.
func (m *Model) Summary() Summary {
	var s Summary
	byFormat := map[quant.Format]*FormatSummary{}
	quantized := map[*Tensor]bool{}
	for _, l := range m.order {
		fs := byFormat[l.Format]
		if fs == nil {
			fs = &FormatSummary{Format: l.Format}
			byFormat[l.Format] = fs
		}
		w, sb := int64(len(l.Weight.Data)), int64(len(l.Scales.Data))
		quantized[l.Weight], quantized[l.Scales] = true, true
		if l.Biases != nil {
			sb += int64(len(l.Biases.Data))
			quantized[l.Biases] = true
		}
		fs.Layers++
		fs.WeightBytes += w
		fs.ScaleBytes += sb
		s.Layers++
		s.WeightBytes += w
		s.ScaleBytes += sb
	}
	for _, fs := range byFormat {
		s.Formats = append(s.Formats, *fs)
	}
	slices.SortFunc(s.Formats, func(a, b FormatSummary) int {
		return cmp.Or(cmp.Compare(a.Mode, b.Mode), cmp.Compare(a.Bits, b.Bits), cmp.Compare(a.GroupSize, b.GroupSize))
	})
	for _, t := range m.tensors {
		if !quantized[t] {
			s.PlainTensors++
			s.PlainBytes += int64(len(t.Data))
		}
	}
	return s
}

// String formats s as a small table:
//
//	format                 layers  weights  scales+biases
//	affine 4-bit group 64       7  12.0 KiB        3.0 KiB
//	affine 8-bit group 64       1   4.0 KiB        512 B
//	total                       8  16.0 KiB        3.5 KiB
//	plain: 3 tensors, 1.5 KiB
func (s Summary) String() string {
	rows := [][4]string{{"format", "layers", "weights", "scales+biases"}}
	for _, f := range s.Formats {
		rows = append(rows, [4]string{f.Format.String(), fmt.Sprint(f.Layers), formatBytes(f.WeightBytes), formatBytes(f.ScaleBytes)})
	}
	rows = append(rows, [4]string{"total", fmt.Sprint(s.Layers), formatBytes(s.WeightBytes), formatBytes(s.ScaleBytes)})
	var width [4]int
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s  %*s  %*s  %*s\n", width[0], r[0], width[1], r[1], width[2], r[2], width[3], r[3])
	}
	noun := "tensors"
	if s.PlainTensors == 1 {
		noun = "tensor"
	}
	fmt.Fprintf(&b, "plain: %d %s, %s\n", s.PlainTensors, noun, formatBytes(s.PlainBytes))
	return b.String()
}

// formatBytes formats n as "512 B", "1.5 KiB", "2.0 MiB" and so on.
func formatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, 0
	for v >= 1024 && unit < 4 {
		v /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %s", v, [...]string{"KiB", "MiB", "GiB", "TiB", "PiB"}[unit])
}
