package core

import (
	"strconv"
	"strings"
)

// runRecord is what the cursor trustlog.node.<name>.epoch says about a
// node's latest run: its current run number (epoch) and, for earlier
// numbers of the same run (the run renumbers itself when an ordered
// outcome cannot be recorded), up to which seq its ordered claims under
// that number were all handed to the ordered stream in order. A claim of
// the node carrying one of these numbers, at or below its mark (and at or
// below the broker's last sequence), is one the broker holds: the node's
// next run re-sends it as a redelivery, and a node taking it over re-sends
// it under the node's stream name, for the broker to drop.
//
// The value is "current" or "current number:upto number:upto ...".
type runRecord struct {
	current int64
	marks   []runMark
}

// runMark: claims under number epoch at or below upto were handed to the
// ordered stream in order.
type runMark struct{ epoch, upto int64 }

// maxRunMarks bounds the marks a record keeps (the oldest go first).
const maxRunMarks = 8

// parseRunRecord parses a cursor value; ok is false for anything else.
func parseRunRecord(v string) (r runRecord, ok bool) {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return r, false
	}
	n, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil || n < 0 || n > 0xff {
		return r, false
	}
	r.current = n
	for _, f := range fields[1:] {
		e, u, found := strings.Cut(f, ":")
		en, err1 := strconv.ParseInt(e, 10, 64)
		un, err2 := strconv.ParseInt(u, 10, 64)
		if !found || err1 != nil || err2 != nil || en < 0 || en > 0xff || un < 0 {
			return runRecord{}, false
		}
		r.marks = append(r.marks, runMark{en, un})
	}
	return r, true
}

func (r runRecord) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(r.current, 10))
	for _, m := range r.marks {
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(m.epoch, 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(m.upto, 10))
	}
	return b.String()
}

// covers reports whether a claim under number epoch of seq was handed to
// the ordered stream in order by the run this record describes (seq must
// also be at or below the broker's last sequence, which the caller
// checks).
func (r runRecord) covers(epoch, seq int64) bool {
	if epoch == r.current {
		return true
	}
	for _, m := range r.marks {
		if m.epoch == epoch && seq <= m.upto {
			return true
		}
	}
	return false
}

// renumbered returns the record after the run moved from its current
// number to the next, its claims under the old one handed over in order
// up to upto (none if upto <= 0).
func (r runRecord) renumbered(upto int64) runRecord {
	next := runRecord{current: (r.current + 1) & 0xff}
	for _, m := range r.marks {
		if m.epoch != next.current {
			next.marks = append(next.marks, m)
		}
	}
	if upto > 0 {
		next.marks = append(next.marks, runMark{r.current, upto})
	}
	if len(next.marks) > maxRunMarks {
		next.marks = next.marks[len(next.marks)-maxRunMarks:]
	}
	return next
}
