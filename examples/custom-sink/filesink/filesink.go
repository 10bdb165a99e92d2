// Package filesink is a third-party trustlog sink, written the way a sink
// author would write one for their own broker: it appends every message as
// one JSON line to a file (fsynced before Publish returns), registers the
// "jsonl" URL scheme in init, can read the file back (core.Replayer, which
// `trustlog verify-sink` uses), and proves itself with the exported
// conformance suite in its test.
//
//	import _ "github.com/go-trustlog/trustlog/examples/custom-sink/filesink"
//
//	jsonl:///var/lib/app/attestations.jsonl
//	jsonl:attestations.jsonl
package filesink

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

func init() {
	core.RegisterSink("jsonl", core.SinkDriverFunc(func(_ context.Context, url string) (core.Sink, error) {
		return Open(url)
	}))
}

// Line is one message in the file.
type Line struct {
	Key     string            `json:"key"`
	ID      string            `json:"id"`
	Payload []byte            `json:"payload"` // base64 in JSON
	Headers map[string]string `json:"headers"`
	Time    time.Time         `json:"time"`
}

// Sink appends messages to a file. It is safe for concurrent use.
type Sink struct {
	path   string
	mu     sync.Mutex
	f      *os.File
	closed bool
}

// Open parses "jsonl:PATH" or "jsonl://PATH" (no options: any is an
// error) and opens the file for appending, creating it if needed.
func Open(rawURL string) (*Sink, error) {
	path, ok := strings.CutPrefix(rawURL, "jsonl:")
	path = strings.TrimPrefix(path, "//")
	if !ok || path == "" {
		return nil, fmt.Errorf("%w: jsonl URL %q: want jsonl:PATH", core.ErrInvalidURL, rawURL)
	}
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("%w: jsonl URL %q: the jsonl sink takes no options", core.ErrInvalidURL, rawURL)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("filesink: %w", err)
	}
	return &Sink{path: path, f: f}, nil
}

// Publish appends msgs in order and syncs the file: one result per
// message, all nil or all the same error (a file write is all or nothing
// for us: a failed batch is retried whole, and consumers deduplicate by
// the op_id header as with any sink).
func (s *Sink) Publish(_ context.Context, msgs []core.Message) []error {
	if len(msgs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return core.FailAll(len(msgs), core.Unavailable(core.ErrClosed))
	}
	var buf []byte
	now := time.Now().UTC()
	for i := range msgs {
		m := &msgs[i]
		h := map[string]string{}
		for _, kv := range m.Headers() {
			h[kv[0]] = kv[1]
		}
		line, err := json.Marshal(Line{Key: m.Key, ID: m.ID, Payload: m.Payload, Headers: h, Time: now})
		if err != nil {
			return core.FailAll(len(msgs), core.Permanent(err))
		}
		buf = append(append(buf, line...), '\n')
	}
	if _, err := s.f.Write(buf); err != nil {
		return core.FailAll(len(msgs), err)
	}
	if err := s.f.Sync(); err != nil {
		return core.FailAll(len(msgs), err)
	}
	return make([]error, len(msgs))
}

// Close closes the file; it is idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}

// Replay reads the file from the start, as a consumer of the broker
// would, and calls fn for each message stored at or after since.
func (s *Sink) Replay(ctx context.Context, since time.Time, fn func(core.Delivered) error) error {
	return Replay(ctx, s.path, since, fn)
}

// Replay reads a file a Sink wrote, independently of any Sink.
func Replay(ctx context.Context, path string, since time.Time, fn func(core.Delivered) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("filesink: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return nil // a partial last line is a write in progress
		}
		if err != nil {
			return fmt.Errorf("filesink: %w", err)
		}
		var l Line
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("filesink: %s line %d: %w", path, n, err)
		}
		if l.Time.Before(since) {
			continue
		}
		if err := fn(core.Delivered{Key: l.Key, ID: l.ID, Payload: l.Payload, Headers: l.Headers,
			Position: "line " + strconv.Itoa(n), Time: l.Time}); err != nil {
			return err
		}
	}
}

// Reader reads a file a Sink writes: the independent consumer a test
// harness reads through (conformance.ReadFrom).
type Reader struct{ Path string }

// Replay implements core.Replayer.
func (r Reader) Replay(ctx context.Context, since time.Time, fn func(core.Delivered) error) error {
	return Replay(ctx, r.Path, since, fn)
}
