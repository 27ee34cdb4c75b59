// Package msltest runs the Metal backend's kernel sources off a Mac, for
// tests only (nothing in the shipped backend imports it): Translate
// rewrites a Metal compile unit (metal.CompileUnit) so that the same MSL
// text compiles as CUDA (with cuda_prelude.h, for the CUDA backend's
// driver) or as plain C++ (with cpu_prelude.h and cpu_harness.h, which
// emulate threadgroups, SIMD groups and SIMD-group matrices with one OS
// thread per Metal thread).
//
// What the rewrite does to the kernel's signature, the one thing macros
// cannot: it drops the [[buffer(i)]] attributes, turns the parameter block
// argument into the CUDA backend's scalar arguments (M, N, K for matrix
// products; rows, cols for unpack) and rebuilds p from them (the flags from
// which pointers are null, as the CUDA backend passes absent buffers), and
// replaces each [[thread_position_in_grid]]-style argument and the
// threadgroup memory argument with a local computed from the target's
// indices (mlxq_id_<attribute>() and mlxq_threadgroup_memory() in the
// prelude). Everything else is left to the preludes' macros and types.
package msltest

import (
	"fmt"
	"regexp"
	"strings"
)

// Entry is the kernel's name in every unit.
const Entry = "mlxq_kernel"

// Kind is the argument list of a translated kernel.
type Kind int

const (
	// Matmul kernels take (x, w, scales, biases, bias, y, M, N, K).
	Matmul Kind = iota
	// Unpack takes (w, codes, rows, cols); embed and the gathered
	// products take their buffers and (N, K) the same way.
	Unpack
)

// ints is the number of int arguments that end the argument list.
func (k Kind) ints() int {
	if k == Matmul {
		return 3
	}
	return 2
}

var (
	reBuffer = regexp.MustCompile(`\s*\[\[\s*buffer\(\s*\d+\s*\)\s*\]\]`)
	reParams = regexp.MustCompile(`^constant\s+mlxq_params\s*&\s*(\w+)\s*$`)
	reID     = regexp.MustCompile(`^(\w+)\s+(\w+)\s*\[\[\s*(\w+)\s*\]\]$`)
	reTGMem  = regexp.MustCompile(`^threadgroup\s+(\w+)\s*\*\s*(\w+)\s+MLXQ_THREADGROUP_MEMORY$`)
)

// Translate rewrites the signature of the unit's kernel and returns the
// new source and the kernel's argument list.
func Translate(src string) (string, Kind, error) {
	head := "kernel void " + Entry + "("
	at := strings.Index(src, head)
	if at < 0 {
		return "", 0, fmt.Errorf("no %q in the unit", head)
	}
	open := at + len(head)
	end, err := closing(src, open)
	if err != nil {
		return "", 0, err
	}
	body := strings.Index(src[end:], "{")
	if body < 0 {
		return "", 0, fmt.Errorf("no body after the signature of %s", Entry)
	}
	body += end
	kind := Kind(-1)
	var args, prologue []string
	for _, raw := range splitTop(src[open:end]) {
		a := strings.Join(strings.Fields(raw), " ")
		switch {
		case strings.HasPrefix(a, "MLXQ_MATMUL_BUFFERS("):
			kind = Matmul
			args = append(args, a)
			prologue = append(prologue, "const mlxq_params p = {uint(mlxq_M), uint(mlxq_N), uint(mlxq_K), (biases ? MLXQ_HAS_BIASES : 0u) | (bias ? MLXQ_HAS_BIAS : 0u)};")
		case strings.Contains(a, "[[buffer("):
			a = strings.TrimSpace(reBuffer.ReplaceAllString(a, ""))
			if m := reParams.FindStringSubmatch(a); m != nil {
				kind = Unpack
				args = append(args, "int mlxq_rows", "int mlxq_cols")
				prologue = append(prologue, fmt.Sprintf("const mlxq_params %s = {0u, uint(mlxq_rows), uint(mlxq_cols), 0u};", m[1]))
				continue
			}
			args = append(args, a)
		default:
			if m := reTGMem.FindStringSubmatch(a); m != nil {
				prologue = append(prologue, fmt.Sprintf("%s* %s = (%s*)mlxq_threadgroup_memory();", m[1], m[2], m[1]))
				continue
			}
			m := reID.FindStringSubmatch(a)
			if m == nil {
				return "", 0, fmt.Errorf("kernel argument %q: not a buffer, the threadgroup memory or a thread index", a)
			}
			prologue = append(prologue, fmt.Sprintf("const %s %s = %s(mlxq_id_%s());", m[1], m[2], m[1], m[3]))
		}
	}
	if kind < 0 {
		return "", 0, fmt.Errorf("kernel %s has no parameter block", Entry)
	}
	var b strings.Builder
	b.WriteString(src[:at])
	b.WriteString("MLXQ_ENTRY void " + Entry + "(")
	b.WriteString(strings.Join(args, ", "))
	b.WriteString(") {\n")
	for _, s := range prologue {
		b.WriteString("    " + s + "\n")
	}
	b.WriteString(src[body+1:])
	return b.String(), kind, nil
}

// closing returns the index of the parenthesis that closes the one before
// open.
func closing(s string, open int) (int, error) {
	depth := 1
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("unbalanced parentheses in the signature of %s", Entry)
}

// splitTop splits s at commas outside parentheses and brackets.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		out = append(out, s[start:])
	}
	return out
}
