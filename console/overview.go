package console

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
)

// overviewData is the overview page's content.
type overviewData struct {
	Counts     []stateCount
	Total      int64
	Oldest     time.Time // zero: nothing unpublished
	OldestAge  string
	TreeSize   int64
	MaxSeq     int64
	Checkpoint *ledger.StoredCheckpoint // nil: none signed
	CheckRoot  string
	Partitions []partitionRow
	Relays     []string
	RelaysFrom string // where the relay list came from
	Throughput chart
	Backlog    chart
	Now        time.Time
}

// stateCount is one state's count.
type stateCount struct {
	State string
	N     int64
}

// partitionRow is one partition in the overview.
type partitionRow struct {
	core.Partition
	Leased   bool
	LeaseEnd string
}

// overview renders GET /console/.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.storeCtx(r)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		c.internal(w, r, "reading the store's stats", err)
		return
	}
	now := c.now()
	d := overviewData{TreeSize: st.TreeSize, MaxSeq: st.MaxSeq, Oldest: st.OldestUnsettled, Now: now}
	for _, s := range []core.State{core.StatePending, core.StateRetrying, core.StateDead, core.StatePublished} {
		d.Counts = append(d.Counts, stateCount{s.String(), st.Counts[s]})
		d.Total += st.Counts[s]
	}
	if !d.Oldest.IsZero() {
		d.OldestAge = now.Sub(d.Oldest).Round(time.Second).String()
	}
	owners := map[string]bool{}
	for _, p := range st.Partitions {
		row := partitionRow{Partition: p, Leased: p.Owner != "" && p.Expires.After(now)}
		if row.Leased {
			owners[p.Owner] = true
			row.LeaseEnd = p.Expires.Sub(now).Round(100 * time.Millisecond).String()
		}
		d.Partitions = append(d.Partitions, row)
	}
	if c.inspect != nil {
		if d.Relays, err = c.inspect.Relays(ctx); err != nil {
			c.internal(w, r, "reading the live relays", err)
			return
		}
		d.RelaysFrom = "heartbeats"
	} else {
		for o := range owners {
			d.Relays = append(d.Relays, o)
		}
		slices.Sort(d.Relays)
		d.RelaysFrom = "partition owners"
	}
	if ls, ok := c.store.(ledger.Storage); ok {
		cs, err := ls.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
		if err != nil {
			c.internal(w, r, "reading the latest checkpoint", err)
			return
		}
		if len(cs) > 0 {
			d.Checkpoint = &cs[0]
			d.CheckRoot = base64.StdEncoding.EncodeToString(cs[0].Root[:])
		}
	}
	d.Throughput, d.Backlog = charts(c.history.points(), c.opts.Window, now)
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// chart is one SVG line chart, drawn in a chartW × chartH box.
type chart struct {
	Points string // the polyline's points
	Max    string // the top of the scale, as text
	Last   string // the latest value, as text
	N      int    // number of points
	Span   string // how far back the first point is
}

// The chart's drawing box, in SVG user units.
const (
	chartW = 600
	chartH = 120
)

// charts draws throughput (published operations per second between two
// samples) and backlog (pending and retrying operations) over window.
func charts(pts []point, window time.Duration, now time.Time) (tp, bl chart) {
	type xy struct {
		at time.Time
		v  float64
	}
	var rate, back []xy
	for i, p := range pts {
		back = append(back, xy{p.at, float64(p.backlog)})
		if i > 0 {
			dt := p.at.Sub(pts[i-1].at).Seconds()
			if dt > 0 {
				rate = append(rate, xy{p.at, max(0, float64(p.published-pts[i-1].published)/dt)})
			}
		}
	}
	draw := func(vals []xy, unit string) chart {
		ch := chart{N: len(vals)}
		if len(vals) == 0 {
			return ch
		}
		top := 0.0
		for _, v := range vals {
			top = max(top, v.v)
		}
		if top == 0 {
			top = 1
		}
		var b strings.Builder
		for _, v := range vals {
			x := chartW * (1 - now.Sub(v.at).Seconds()/window.Seconds())
			y := chartH * (1 - v.v/top)
			fmt.Fprintf(&b, "%.1f,%.1f ", max(0, x), y)
		}
		ch.Points = strings.TrimSpace(b.String())
		ch.Max = human(top) + unit
		ch.Last = human(vals[len(vals)-1].v) + unit
		ch.Span = now.Sub(vals[0].at).Round(time.Second).String()
		return ch
	}
	return draw(rate, "/s"), draw(back, "")
}

// human prints a chart value briefly.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 10 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}
