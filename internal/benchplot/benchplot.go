// Package benchplot draws `trustlog bench` results as one PNG: commit →
// ack latency percentiles per wake-up mode, and drain rate against backlog
// size. Only the internal/tools/benchplot command links it (and with it
// the plotting library and its fonts): the trustlog binary does not.
package benchplot

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Latency is one latency distribution, in milliseconds.
type Latency struct {
	// Mode names the wake-up ("notify", "poll").
	Mode               string
	P50, P90, P99, Max float64
}

// Backlog is the drain rate at one backlog size.
type Backlog struct {
	Pending int
	Rate    float64 // the relay's operations per second
	RawRate float64 // the bare read+advance loop's, same backlog
	PeakMB  float64 // peak resident set during the drain
}

// Report is what a plot shows of the JSON that `trustlog bench --json`
// prints: the store, the latency and the backlog workloads.
type Report struct {
	// Store is the bench's store URL (redacted), e.g. "sqlite (temporary
	// file)" or "postgres://…"; its scheme titles the plot.
	Store string `json:"store"`
	// Latency holds the latency workload's distributions, in milliseconds.
	Latency []struct {
		Mode string  `json:"mode"`
		P50  float64 `json:"p50_ms"`
		P90  float64 `json:"p90_ms"`
		P99  float64 `json:"p99_ms"`
		Max  float64 `json:"max_ms"`
	} `json:"latency"`
	// Backlog holds the backlog workload's drain rates and peak memory.
	Backlog []struct {
		Pending int     `json:"pending"`
		RawRate float64 `json:"bare_loop_ops_per_s"`
		Rate    float64 `json:"relay_ops_per_s"`
		PeakMB  float64 `json:"relay_peak_rss_mb"`
	} `json:"backlog"`
}

// ErrNotReport: the file is not the JSON of `trustlog bench --json`.
var ErrNotReport = errors.New("not the JSON of trustlog bench --json")

// ReadReport reads a file that `trustlog bench --json` wrote. A file that
// is not JSON, or holds no store, fails with ErrNotReport naming it.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrNotReport, err)
	}
	if rep.Store == "" {
		return nil, fmt.Errorf("%s: %w: it names no store", path, ErrNotReport)
	}
	return &rep, nil
}

// WriteReport draws a report into a PNG file (see Write), titled by its
// store's scheme.
func WriteReport(path string, rep *Report) error {
	var lat []Latency
	for _, l := range rep.Latency {
		lat = append(lat, Latency{Mode: l.Mode, P50: l.P50, P90: l.P90, P99: l.P99, Max: l.Max})
	}
	var bl []Backlog
	for _, b := range rep.Backlog {
		bl = append(bl, Backlog{Pending: b.Pending, Rate: b.Rate, RawRate: b.RawRate, PeakMB: b.PeakMB})
	}
	title, _, _ := strings.Cut(rep.Store, ":")
	return Write(path, title, lat, bl)
}

// Write draws the two panels side by side into a PNG file. Either slice
// may be empty; its panel then says so.
func Write(path, title string, lat []Latency, backlog []Backlog) error {
	left, err := latencyPlot(title, lat)
	if err != nil {
		return err
	}
	right, err := backlogPlot(title, backlog)
	if err != nil {
		return err
	}
	const w, h = 12 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

func latencyPlot(title string, lat []Latency) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title + ": commit → sink ack"
	p.Y.Label.Text = "milliseconds (log scale)"
	p.Legend.Top = true
	p.Legend.Left = true
	labels := []string{"p50", "p90", "p99", "max"}
	if len(lat) == 0 {
		p.Title.Text += " (not measured)"
		return p, nil
	}
	p.Y.Scale = plot.LogScale{} // only with data: an empty log axis panics
	p.Y.Tick.Marker = msTicks{}
	for i, l := range lat {
		pts := plotter.XYs{{X: 0, Y: l.P50}, {X: 1, Y: l.P90}, {X: 2, Y: l.P99}, {X: 3, Y: l.Max}}
		for j := range pts {
			pts[j].Y = max(pts[j].Y, 0.01) // a log scale cannot show zero
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = palette[i%len(palette)], palette[i%len(palette)]
		p.Add(line, points)
		p.Legend.Add(l.Mode, line, points)
	}
	p.NominalX(labels...)
	return p, nil
}

func backlogPlot(title string, backlog []Backlog) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title + ": drain rate vs backlog"
	p.X.Label.Text = "pending operations at start (log scale)"
	p.Y.Label.Text = "operations per second"
	if len(backlog) == 0 {
		p.Title.Text += " (not measured)"
		return p, nil
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	pts := make(plotter.XYs, len(backlog))
	raw := make(plotter.XYs, len(backlog))
	labels := make([]string, len(backlog))
	for i, b := range backlog {
		pts[i].X, pts[i].Y = float64(b.Pending), b.Rate
		raw[i].X, raw[i].Y = float64(b.Pending), b.RawRate
		labels[i] = fmt.Sprintf("%.0f MB", b.PeakMB)
	}
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return nil, err
	}
	line.Color, points.Color = palette[0], palette[0]
	rline, rpoints, err := plotter.NewLinePoints(raw)
	if err != nil {
		return nil, err
	}
	rline.Color, rpoints.Color = palette[1], palette[1]
	rline.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(line, points, rline, rpoints)
	tl, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
	if err != nil {
		return nil, err
	}
	p.Add(tl)
	p.Legend.Add("relay process (labels: its peak RSS)", line, points)
	p.Legend.Add("bare SQL loop", rline, rpoints)
	p.Legend.Top = false
	p.Y.Min = 0
	return p, nil
}

// msTicks labels a logarithmic millisecond axis at 1-2-5 steps.
type msTicks struct{}

func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for mag := 0.01; mag <= hi*10; mag *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := m * mag
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return ticks
}
