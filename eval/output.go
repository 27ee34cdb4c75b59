package eval

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Write writes the report files of the config's output formats into its
// output directory, creating it, and returns their paths.
func (r *Report) Write() ([]string, error) {
	out := r.Config.Output
	if len(out.Formats) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(out.Dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range out.Formats {
		p := filepath.Join(out.Dir, formatFiles[f])
		if slices.Contains(paths, p) {
			continue
		}
		data, err := r.encode(f)
		if err != nil {
			return paths, fmt.Errorf("%s: %w", p, err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// encode returns the report in one of the output formats.
func (r *Report) encode(format string) ([]byte, error) {
	switch format {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		return append(b, '\n'), err
	case "csv":
		return r.csv()
	case "markdown", "md":
		return r.markdown(), nil
	case "svg":
		return r.chart().svg(), nil
	case "png":
		return r.chart().png()
	}
	return nil, fmt.Errorf("unknown output format %q", format)
}

// csvColumns are the columns of report.csv, named as the JSON fields.
var csvColumns = []struct {
	name  string
	value func(c *Case) string
}{
	{"model", func(c *Case) string { return c.Model }},
	{"layer", func(c *Case) string { return c.Layer }},
	{"kind", func(c *Case) string { return c.Kind }},
	{"mode", func(c *Case) string { return c.Mode }},
	{"bits", func(c *Case) string { return strconv.Itoa(c.Bits) }},
	{"group_size", func(c *Case) string { return strconv.Itoa(c.GroupSize) }},
	{"scale_dtype", func(c *Case) string { return c.ScaleDType }},
	{"m", func(c *Case) string { return strconv.Itoa(c.M) }},
	{"n", func(c *Case) string { return strconv.Itoa(c.N) }},
	{"k", func(c *Case) string { return strconv.Itoa(c.K) }},
	{"top_k", func(c *Case) string { return strconv.Itoa(c.TopK) }},
	{"experts", func(c *Case) string { return strconv.Itoa(c.Experts) }},
	{"shards", func(c *Case) string { return strconv.Itoa(c.Shards) }},
	{"split", func(c *Case) string { return c.Split }},
	{"dtype", func(c *Case) string { return c.DType }},
	{"backend", func(c *Case) string { return c.Backend }},
	{"device", func(c *Case) string { return c.Device }},
	{"kernel", func(c *Case) string { return c.Kernel }},
	{"planned", func(c *Case) string { return strconv.FormatBool(c.Planned) }},
	{"precision", func(c *Case) string { return c.Precision }},
	{"warmup", func(c *Case) string { return strconv.Itoa(c.Warmup) }},
	{"repeat", func(c *Case) string { return strconv.Itoa(c.Repeat) }},
	{"median_us", func(c *Case) string { return formatFloat(c.MedianUS) }},
	{"min_us", func(c *Case) string { return formatFloat(c.MinUS) }},
	{"max_us", func(c *Case) string { return formatFloat(c.MaxUS) }},
	{"bytes", func(c *Case) string { return strconv.Itoa(c.Bytes) }},
	{"gb_per_s", func(c *Case) string { return formatFloat(c.GBps) }},
	{"copy_fraction", func(c *Case) string { return formatFloat(c.CopyFraction) }},
	{"gflop_per_s", func(c *Case) string { return formatFloat(c.GFLOPs) }},
	{"rel_err", func(c *Case) string { return c.RelErr.String() }},
	{"checked_rows", func(c *Case) string { return strconv.Itoa(c.CheckedRows) }},
	{"tolerance", func(c *Case) string { return formatFloat(c.Tolerance) }},
	{"pass", func(c *Case) string { return strconv.FormatBool(c.Pass) }},
	{"error", func(c *Case) string { return c.Error }},
}

// csv returns the cases as CSV: a header of column names, then one record
// per case.
func (r *Report) csv() ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	record := make([]string, len(csvColumns))
	for i, col := range csvColumns {
		record[i] = col.name
	}
	w.Write(record)
	for i := range r.Cases {
		for j, col := range csvColumns {
			record[j] = col.value(&r.Cases[i])
		}
		w.Write(record)
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
