package eval

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/png"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// png draws the chart as a PNG image, its text in the 7x13 bitmap font.
func (ch *chart) png() ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, ch.width, ch.height))
	fill := func(r image.Rectangle, hex string) {
		draw.Draw(img, r, image.NewUniform(parseHex(hex)), image.Point{}, draw.Src)
	}
	text := func(x, y int, s string) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(parseHex(textColour)), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	width := func(s string) int { return font.MeasureString(basicfont.Face7x13, s).Round() }
	dashed := func(x int, hex string) {
		for y := chartTop - 2; y <= ch.axisY; y++ {
			if (y-chartTop)%7 < 4 {
				img.Set(x, y, parseHex(hex))
			}
		}
	}

	fill(img.Bounds(), "#ffffff")
	text(8, 18, ch.title)
	fill(image.Rect(8, 28, 18, 38), passColour)
	text(22, 37, "passed")
	fill(image.Rect(80, 28, 90, 38), failColour)
	text(94, 37, "failed")
	if ch.legendCeilings != "" {
		for x := 152; x < 172; x++ {
			if (x-152)%7 < 4 {
				img.Set(x, 33, parseHex(ceilingColour))
			}
		}
		text(178, 37, ch.legendCeilings)
	}
	for _, t := range ch.ticks {
		fill(image.Rect(t.x, chartTop-2, t.x+1, ch.axisY), gridColour)
		text(t.x-width(t.label)/2, ch.axisY+14, t.label)
	}
	for _, r := range ch.bars {
		colour := passColour
		if r.fail {
			colour = failColour
		}
		text(ch.left-6-width(r.label), r.y+11, r.label)
		fill(image.Rect(ch.left, r.y+2, ch.left+r.length, r.y+2+barH), colour)
		text(ch.left+r.length+4, r.y+11, r.value)
	}
	for _, c := range ch.ceilings {
		dashed(c.x, ceilingColour)
	}
	var b bytes.Buffer
	err := png.Encode(&b, img)
	return b.Bytes(), err
}

// parseHex parses a colour written "#rrggbb".
func parseHex(s string) color.RGBA {
	v := func(i int) uint8 {
		h := func(c byte) uint8 {
			if c >= 'a' {
				return c - 'a' + 10
			}
			return c - '0'
		}
		return h(s[i])<<4 | h(s[i+1])
	}
	return color.RGBA{v(1), v(3), v(5), 0xff}
}
