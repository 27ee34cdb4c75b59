package loader

import (
	"cmp"
	"slices"
	"strings"
)

// compareNames orders dotted names component by component, comparing
// components made of digits as numbers, so that "layers.2" sorts before
// "layers.10".
func compareNames(a, b string) int {
	for ra, rb := a, b; ra != "" && rb != ""; {
		var x, y string
		x, ra, _ = strings.Cut(ra, ".")
		y, rb, _ = strings.Cut(rb, ".")
		if c := compareComponents(x, y); c != 0 {
			return c
		}
	}
	return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b))
}

// compareComponents compares two name components, as numbers when both are
// made of digits.
func compareComponents(x, y string) int {
	if !isDigits(x) || !isDigits(y) {
		return cmp.Compare(x, y)
	}
	tx, ty := strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
	return cmp.Or(cmp.Compare(len(tx), len(ty)), cmp.Compare(tx, ty), cmp.Compare(x, y))
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// closest returns up to n candidates closest to name by edit distance, the
// closest first.
func closest(name string, candidates []string, n int) []string {
	type scored struct {
		name string
		d    int
	}
	s := make([]scored, len(candidates))
	for i, c := range candidates {
		s[i] = scored{c, distance(name, c)}
	}
	slices.SortFunc(s, func(a, b scored) int { return cmp.Or(cmp.Compare(a.d, b.d), compareNames(a.name, b.name)) })
	out := make([]string, 0, n)
	for _, c := range s[:min(n, len(s))] {
		out = append(out, c.name)
	}
	return out
}

// distance returns the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := range len(a) {
		prev := row[0]
		row[0] = i + 1
		for j := range len(b) {
			cost := 1
			if a[i] == b[j] {
				cost = 0
			}
			prev, row[j+1] = row[j+1], min(row[j+1]+1, row[j]+1, prev+cost)
		}
	}
	return row[len(b)]
}
