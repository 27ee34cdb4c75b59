package eval

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The chart's geometry, in pixels. Text is monospace, about charW wide.
const (
	charW    = 7.5
	rowH     = 16
	barH     = 12
	chartTop = 52 // title and legend above the first bar
	barArea  = 560
	valueW   = 80 // room for the value right of the longest bar
)

// The chart's colours.
const (
	passColour    = "#4878a8"
	failColour    = "#c8423a"
	gridColour    = "#dddddd"
	ceilingColour = "#222222"
	textColour    = "#000000"
)

// chart is a horizontal bar chart of one quantity per case, laid out in
// pixels, ready to draw as SVG or PNG.
type chart struct {
	title          string
	width, height  int
	left           int // x of the bars' start; labels end left of it
	bars           []bar
	ticks          []tick
	ceilings       []tick
	axisY          int
	legendCeilings string
}

// bar is one case: its label, its bar's length and its value as text.
type bar struct {
	label, value string
	y, length    int
	fail         bool
}

// tick is a labelled x position: an axis tick or a ceiling line.
type tick struct {
	x     int
	label string
}

// chart lays out the report's chart of GB/s (with each device's measured
// copy bandwidth as a dashed line) or TFLOP/s, one bar per case.
func (r *Report) chart() *chart {
	unit, scale := "GB/s", 1.0
	value := func(c *Case) float64 { return c.GBps }
	what := "weight bytes read per second"
	if r.Config.Output.Chart == ChartTFLOPs {
		unit, scale, what = "TFLOP/s", 1e-3, "2·M·N·K per second"
		value = func(c *Case) float64 { return c.GFLOPs }
		if maxValue(r.Cases, value) < 100 {
			unit, scale = "GFLOP/s", 1
		}
	}
	var devices []string
	for _, d := range r.Devices {
		devices = append(devices, fmt.Sprintf("%s (%s)", d.Backend, d.Name))
	}
	ch := &chart{title: fmt.Sprintf("mlxq eval %s on %s: %s, %s, median of %d runs",
		r.Name, strings.Join(devices, ", "), unit, what, r.Config.Repeat)}
	top := maxValue(r.Cases, value) * scale
	var ceilings []Device
	if r.Config.Output.Chart == ChartGBps {
		for _, d := range r.Devices {
			if d.CopyGBps > 0 {
				ceilings = append(ceilings, d)
				top = max(top, d.CopyGBps)
			}
		}
	}
	step := niceStep(top / 5)
	axisMax := step * math.Max(1, math.Ceil(top/step))
	px := func(v float64) int { return int(math.Round(v / axisMax * barArea)) }

	longest := 0
	labels := caseLabels(r.Cases)
	for _, l := range labels {
		longest = max(longest, len([]rune(l)))
	}
	ch.left = 14 + int(math.Ceil(float64(longest)*charW))
	ch.width = max(ch.left+barArea+valueW, 16+int(math.Ceil(float64(len([]rune(ch.title)))*charW)))
	for i := range r.Cases {
		c := &r.Cases[i]
		b := bar{label: labels[i], y: chartTop + i*rowH, fail: !c.Pass, value: "error"}
		if c.Error == "" {
			v := value(c) * scale
			b.length, b.value = px(v), strconv.FormatFloat(v, 'f', decimals(v), 64)
		}
		ch.bars = append(ch.bars, b)
	}
	ch.axisY = chartTop + len(r.Cases)*rowH + 2
	ch.height = ch.axisY + 24
	for v := 0.0; v <= axisMax*1.0001; v += step {
		ch.ticks = append(ch.ticks, tick{ch.left + px(v), strconv.FormatFloat(v, 'f', max(0, -int(math.Floor(math.Log10(step)))), 64)})
	}
	var legend []string
	for _, d := range ceilings {
		label := fmt.Sprintf("%s measured copy bandwidth %.1f GB/s", d.Backend, d.CopyGBps)
		ch.ceilings = append(ch.ceilings, tick{ch.left + px(d.CopyGBps), label})
		legend = append(legend, label)
	}
	ch.legendCeilings = strings.Join(legend, "; ")
	return ch
}

// caseLabels names each case by its layer, M, kernel and shards (of a
// split layer), adding the model and the backend where the cases have
// several.
func caseLabels(cases []Case) []string {
	models, backends := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		models[c.Model], backends[c.Backend] = true, true
	}
	labels := make([]string, len(cases))
	for i, c := range cases {
		l := c.Layer
		if len(models) > 1 {
			l = c.Model + ": " + l
		}
		l += fmt.Sprintf(" M=%d %s", c.M, c.Kernel)
		if c.Shards > 1 {
			l += fmt.Sprintf(" %d×%s", c.Shards, c.Split)
		}
		if len(backends) > 1 {
			l += " " + c.Backend
		}
		labels[i] = l
	}
	return labels
}

func maxValue(cases []Case, value func(*Case) float64) float64 {
	m := 0.0
	for i := range cases {
		if v := value(&cases[i]); cases[i].Error == "" && v > m && !math.IsInf(v, 0) {
			m = v
		}
	}
	return m
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if !(v > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// decimals returns how many decimals show v to about three digits.
func decimals(v float64) int {
	switch {
	case v >= 100 || v == 0:
		return 0
	case v >= 10:
		return 1
	case v >= 1:
		return 2
	}
	return max(2, int(-math.Floor(math.Log10(v)))+1)
}

// svg draws the chart as an SVG document.
func (ch *chart) svg() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="monospace" font-size="12">`+"\n",
		ch.width, ch.height, ch.width, ch.height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="8" y="18" font-weight="bold">%s</text>`+"\n", html.EscapeString(ch.title))
	fmt.Fprintf(&b, `<rect x="8" y="28" width="10" height="10" fill="%s"/><text x="22" y="37">passed</text>`, passColour)
	fmt.Fprintf(&b, `<rect x="80" y="28" width="10" height="10" fill="%s"/><text x="94" y="37">failed</text>`+"\n", failColour)
	if ch.legendCeilings != "" {
		fmt.Fprintf(&b, `<line x1="152" y1="33" x2="172" y2="33" stroke="%s" stroke-dasharray="4 3"/><text x="178" y="37">%s</text>`+"\n",
			ceilingColour, html.EscapeString(ch.legendCeilings))
	}
	for _, t := range ch.ticks {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`, t.x, chartTop-2, t.x, ch.axisY, gridColour)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", t.x, ch.axisY+14, t.label)
	}
	for _, r := range ch.bars {
		colour := passColour
		if r.fail {
			colour = failColour
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, ch.left-6, r.y+11, html.EscapeString(r.label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, ch.left, r.y+2, r.length, barH, colour)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", ch.left+r.length+4, r.y+11, r.value)
	}
	for _, c := range ch.ceilings {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-dasharray="4 3"><title>%s</title></line>`+"\n",
			c.x, chartTop-2, c.x, ch.axisY, ceilingColour, html.EscapeString(c.label))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
