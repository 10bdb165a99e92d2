package memory

import (
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// kept is what a sink stored, in order, in chunks of a fixed size. A
// single slice would copy every message it held each time it grew (a
// sink a relay drains 200,000 operations into copied some 60 MB, an
// eighth of the relay's CPU in BENCHMARKS.md's drains); chunks are
// filled once and never moved.
type kept struct {
	chunks [][]entry
	n      int
}

// entry is one stored message and when Publish accepted it.
type entry struct {
	msg core.Message
	at  time.Time
}

// chunkSize is the number of entries in a chunk (about 200 KB).
const chunkSize = 1024

// add stores m, accepted at t.
func (k *kept) add(m core.Message, t time.Time) {
	if k.n%chunkSize == 0 {
		k.chunks = append(k.chunks, make([]entry, 0, chunkSize))
	}
	last := &k.chunks[len(k.chunks)-1]
	*last = append(*last, entry{msg: m, at: t})
	k.n++
}

// len returns how many entries are stored.
func (k *kept) len() int { return k.n }

// each calls f with every entry, in order.
func (k *kept) each(f func(e *entry)) {
	for _, c := range k.chunks {
		for i := range c {
			f(&c[i])
		}
	}
}

// messages returns a copy of the stored messages, in order.
func (k *kept) messages() []core.Message {
	out := make([]core.Message, 0, k.n)
	k.each(func(e *entry) { out = append(out, e.msg) })
	return out
}

// entries returns a copy of the stored entries, in order.
func (k *kept) entries() []entry {
	out := make([]entry, 0, k.n)
	for _, c := range k.chunks {
		out = append(out, c...)
	}
	return out
}

// clone2 copies a and b into one allocation (a message's payload and
// signature), each nil where it was nil.
func clone2(a, b []byte) ([]byte, []byte) {
	buf := make([]byte, len(a)+len(b))
	ca, cb := buf[:len(a):len(a)], buf[len(a):]
	copy(ca, a)
	copy(cb, b)
	if a == nil {
		ca = nil
	}
	if b == nil {
		cb = nil
	}
	return ca, cb
}
