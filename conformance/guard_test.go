package conformance

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/go-trustlog/trustlog/core"
)

// scriptedSink accepts every message except those whose op_id it was
// told to refuse, and can hold a Publish call until released.
type scriptedSink struct {
	refuse  map[string]bool
	entered chan struct{}
	release chan struct{}
}

func (s *scriptedSink) Publish(_ context.Context, msgs []core.Message) []error {
	if s.entered != nil {
		s.entered <- struct{}{}
		<-s.release
	}
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		if s.refuse[m.ID] {
			errs[i] = errors.New("refused")
		}
	}
	return errs
}

func (s *scriptedSink) Close() error { return nil }

func msg(id, stream string, pos int64, retry bool) core.Message {
	return core.Message{Kind: core.KindOperation, ID: id, Key: "k", Stream: stream, Position: pos, Retry: retry}
}

// TestGuardPositions: the guard flags a first send below a position its
// stream already holds, unless it re-sends that very position, and never
// a retry or another stream.
func TestGuardPositions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		calls  [][]core.Message
		refuse []string
		flag   int
	}{
		{"in order", [][]core.Message{{msg("a", "s", 0, false), msg("b", "s", 2, false)}, {msg("c", "s", 5, false)}}, nil, 0},
		{"a lower position in a later call", [][]core.Message{{msg("a", "s", 0, false), msg("c", "s", 2, false)}, {msg("b", "s", 1, false)}}, nil, 1},
		{"a lower position in the same call", [][]core.Message{{msg("c", "s", 2, false), msg("b", "s", 1, false)}}, nil, 1},
		{"a re-send of what the sink holds", [][]core.Message{{msg("a", "s", 0, false), msg("b", "s", 1, false)}, {msg("a", "s", 0, false), msg("b", "s", 1, false), msg("c", "s", 2, false)}}, nil, 0},
		{"a retry below", [][]core.Message{{msg("a", "s", 0, false), msg("b", "s", 1, false), msg("c", "s", 2, false)}, {msg("b", "s", 1, true)}}, []string{"b"}, 0},
		{"a refused position sent again as a first send", [][]core.Message{{msg("a", "s", 0, false), msg("b", "s", 1, false), msg("c", "s", 2, false)}, {msg("b", "s", 1, false)}}, []string{"b"}, 1},
		{"another stream", [][]core.Message{{msg("a", "s", 5, false)}, {msg("b", "t", 1, false)}}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inner := &scriptedSink{refuse: map[string]bool{}}
			g := newGuardSink(inner)
			for i, call := range tc.calls {
				if i == 1 {
					clear(inner.refuse)
				} else {
					for _, id := range tc.refuse {
						inner.refuse[id] = true
					}
				}
				g.Publish(ctx, call)
			}
			assert.Len(t, g.violations, tc.flag, "%v", g.violations)
		})
	}
}

// TestGuardConcurrentStream: two calls publishing one stream at once are
// flagged; calls on different streams are not.
func TestGuardConcurrentStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := &scriptedSink{entered: make(chan struct{}), release: make(chan struct{})}
	g := newGuardSink(inner)
	var wg sync.WaitGroup
	// Retries, so that the order the calls finish in does not matter.
	for _, m := range []core.Message{msg("a", "s", 0, true), msg("b", "t", 0, true), msg("c", "s", 1, true)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Publish(ctx, []core.Message{m})
		}()
		<-inner.entered
	}
	close(inner.release)
	wg.Wait()
	assert.Len(t, g.violations, 1)
	assert.True(t, slices.ContainsFunc(g.violations, func(v string) bool { return strings.Contains(v, "stream s: two Publish calls at once") }), "%v", g.violations)
}
