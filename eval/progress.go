package eval

import (
	"fmt"
	"io"
	"strings"
)

// barWidth is the width of the bar in characters; nameWidth the most
// characters of the next case's name shown after it.
const (
	barWidth  = 30
	nameWidth = 60
)

// A Bar draws a progress bar on one terminal line, redrawn in place:
//
//	[=========>                    ]  12/40  model.layers.0.mlp.up_proj M=16 cpu simd4
//
// Its Update method is a Progress; the last call clears the line.
type Bar struct {
	w io.Writer
}

// NewBar returns a bar that draws on w, a terminal.
func NewBar(w io.Writer) *Bar { return &Bar{w: w} }

// Update draws the bar for done cases out of total, with the next case's
// name; an empty name clears the line.
func (b *Bar) Update(done, total int, name string) {
	if name == "" {
		fmt.Fprint(b.w, "\r\033[K")
		return
	}
	filled := 0
	if total > 0 {
		filled = done * barWidth / total
	}
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	if r := []rune(name); len(r) > nameWidth {
		name = string(r[:nameWidth-1]) + "…"
	}
	fmt.Fprintf(b.w, "\r\033[K[%s] %*d/%d  %s", bar, len(fmt.Sprint(total)), done, total, name)
}
