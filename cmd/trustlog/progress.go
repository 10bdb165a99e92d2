package main

import (
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows counters for long commands: spinners with a count and a
// rate on a terminal (mpb), one log line per phase otherwise.
type progress struct {
	a    *app
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*mpb.Bar
}

func (a *app) newProgress() *progress {
	pr := &progress{a: a, bars: map[string]*mpb.Bar{}}
	if f, ok := a.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		pr.p = mpb.New(mpb.WithOutput(f), mpb.WithWidth(24))
	}
	return pr
}

// set reports that phase has reached n.
func (pr *progress) set(phase string, n int) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.p == nil {
		return
	}
	b := pr.bars[phase]
	if b == nil {
		b = pr.p.New(0, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name(phase, decor.WCSyncSpaceR), decor.CurrentNoUnit("%d", decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.AverageSpeed(nil, "%.0f/s"), decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)))
		pr.bars[phase] = b
	}
	b.SetCurrent(int64(n))
}

// done completes every bar (or logs the totals) and waits for rendering.
func (pr *progress) done(totals map[string]int) {
	pr.mu.Lock()
	bars := pr.bars
	pr.mu.Unlock()
	if pr.p == nil {
		for _, phase := range slices.Sorted(maps.Keys(totals)) {
			pr.a.log.Info("progress", "phase", phase, "done", totals[phase])
		}
		return
	}
	for phase, b := range bars {
		b.SetCurrent(int64(totals[phase]))
		b.SetTotal(-1, true)
	}
	pr.p.Wait()
}
