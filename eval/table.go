package eval

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mlxq/mlxq/quant"
)

// tableHeader heads the summary and Markdown tables.
var tableHeader = []string{"MODEL", "LAYER", "N×K", "FORMAT", "M", "DTYPE", "SHARDS", "SPLIT", "BACKEND", "KERNEL", "µs", "GB/s", "COPY", "GFLOP/s", "REL ERR", "TOL", "RESULT"}

// row formats the case for the summary and Markdown tables.
func (c Case) row() []string {
	format := fmt.Sprintf("%s%d g%d %s", c.Mode, c.Bits, c.GroupSize, c.ScaleDType)
	if c.Mode != quant.Affine.String() {
		format = c.Mode
	}
	kernel := c.Kernel
	if c.Planned {
		kernel += " (plan)"
	}
	copyPct := "-"
	if c.CopyFraction > 0 {
		copyPct = fmt.Sprintf("%.0f%%", 100*c.CopyFraction)
	}
	split := c.Split
	if split == "" {
		split = "-"
	}
	row := []string{c.Model, c.Layer, fmt.Sprintf("%d×%d", c.N, c.K), format, strconv.Itoa(c.M), c.DType, strconv.Itoa(c.Shards), split, c.Backend, kernel}
	if c.Error != "" {
		return append(row, "-", "-", "-", "-", "-", fmt.Sprintf("%.0e", c.Tolerance), "ERROR")
	}
	return append(row, fmt.Sprintf("%.1f", c.MedianUS), fmt.Sprintf("%.2f", c.GBps), copyPct, fmt.Sprintf("%.1f", c.GFLOPs),
		fmt.Sprintf("%.2e", float64(c.RelErr)), fmt.Sprintf("%.0e", c.Tolerance), c.result())
}

// result says whether the case passed.
func (c Case) result() string {
	switch {
	case c.Error != "":
		return "ERROR"
	case c.Pass:
		return "ok"
	}
	return "FAIL"
}

// WriteSummary writes the report as a table with a line of totals, then
// the errors of the cases that could not run.
func (r *Report) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, c := range r.Cases {
		fmt.Fprintln(tw, strings.Join(c.row(), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n", r.totals())
	for _, n := range r.Notes {
		fmt.Fprintf(w, "%s\n", n)
	}
	for _, d := range r.Devices {
		fmt.Fprintf(w, "%s\n", d.describe())
	}
	for _, c := range r.Cases {
		if c.Error != "" {
			fmt.Fprintf(w, "error: %s M=%d %s %s: %s\n", c.Layer, c.M, c.Backend, c.Kernel, c.Error)
		}
	}
	_, err := fmt.Fprintln(w, r.checkNote())
	return err
}

// totals sums up the run in one line.
func (r *Report) totals() string {
	s := fmt.Sprintf("%d cases: %d passed, %d failed", len(r.Cases), r.Passed, r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(" (%d skipped: kernels that do not take the layer)", r.Skipped)
	}
	if r.Interrupted {
		s += fmt.Sprintf("; interrupted after %d of %d cases", len(r.Cases), r.Total)
	}
	return s + fmt.Sprintf("; %.1f s", r.Seconds)
}

// describe says which device it is and its copy bandwidth.
func (d Device) describe() string {
	s := fmt.Sprintf("%s: %s", d.Backend, d.Name)
	if d.CopyGBps > 0 {
		s += fmt.Sprintf("; measured copy bandwidth %.1f GB/s (read + write); COPY is GB/s of weights as a share of it", d.CopyGBps)
	}
	return s
}

// checkNote says how the cases were checked.
func (r *Report) checkNote() string {
	s := "REL ERR is ‖y − ref‖ / ‖ref‖ against the float64 reference (quant.Reference)"
	if n := r.Config.CheckRows; n > 0 {
		s += fmt.Sprintf(", on at most %d rows of y per case, spread over M", n)
	}
	return s + "."
}

// markdown returns the report as a Markdown page: a heading, notes and a
// table with one row per case.
func (r *Report) markdown() []byte {
	w := new(bytes.Buffer)
	fmt.Fprintf(w, "# eval: %s\n\n", r.Name)
	fmt.Fprintf(w, "Config `%s`, run %s with %s on %s/%s.\n\n", r.Config.File, r.Started.Format("2006-01-02 15:04 MST"), r.GoVersion, r.OS, r.Arch)
	fmt.Fprintf(w, "%s.\n\n", r.totals())
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	for _, d := range r.Devices {
		fmt.Fprintf(w, "- %s\n", d.describe())
	}
	fmt.Fprintf(w, "- %s\n\n", r.checkNote())
	fmt.Fprintf(w, "| %s |\n", strings.Join(tableHeader, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(tableHeader)))
	for _, c := range r.Cases {
		cells := c.row()
		for i, s := range cells {
			cells[i] = strings.ReplaceAll(s, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	var errs []string
	for _, c := range r.Cases {
		if c.Error != "" {
			errs = append(errs, fmt.Sprintf("- `%s` M=%d %s %s: %s\n", c.Layer, c.M, c.Backend, c.Kernel, c.Error))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nErrors:\n\n%s", strings.Join(errs, ""))
	}
	return w.Bytes()
}
