package sqlstore

import (
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// flexTime scans a time column whatever the database hands back: a
// time.Time (PostgreSQL, MySQL with parseTime), Unix microseconds (SQLite,
// where trustlog stores times as integers) or text.
type flexTime struct{ t time.Time }

func (f *flexTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		f.t = time.Time{}
	case time.Time:
		f.t = x.UTC()
	case int64:
		f.t = time.UnixMicro(x).UTC()
	case []byte:
		return f.parse(string(x))
	case string:
		return f.parse(x)
	default:
		return fmt.Errorf("cannot scan %T into a time", v)
	}
	return nil
}

func (f *flexTime) parse(s string) error {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			f.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("cannot parse time %q", s)
}

// MicrosTime is the TimeArg of dialects that store times as Unix
// microseconds.
func MicrosTime(t time.Time) any { return t.UnixMicro() }

// NativeTime is the TimeArg of dialects with a time type of microsecond
// precision.
func NativeTime(t time.Time) any { return t.UTC() }

// RowScanner is a row being read: database/sql's *sql.Rows, or a
// driver's own (Dialect.QueryRaw).
type RowScanner interface{ Scan(dest ...any) error }

// ErrNoRawQuery is what a Dialect.QueryRaw returns when the connection is
// not its driver's (a handle the application opened with another
// driver): the store reads through database/sql from then on.
var ErrNoRawQuery = errors.New("sqlstore: the connection is not the dialect's driver")

// recordScanner scans rows of Columns (followed by a held column if
// held) into records. One serves a whole query: its destinations and
// temporaries are made once, not for every row, and each row is scanned
// straight into its record (the relay decodes every operation twice,
// once to sequence it and once to publish it, and on a machine whose
// cores are full that decoding is what it pays for).
type recordScanner struct {
	clientIP, serverIP, lastErr sql.NullString
	source, hashAlg, sign       string
	created, due, updated       flexTime
	state                       int16
	leaf                        sql.NullInt64
	isHeld                      sql.NullBool
	held                        bool
	dest                        []any // reused: its array is allocated once
}

func newRecordScanner(held bool) *recordScanner {
	return &recordScanner{held: held}
}

// scan scans the current row into r.
func (sc *recordScanner) scan(rows RowScanner, r *core.Record) error {
	op := &r.Op
	// Columns, in order: r's own fields and the scanner's temporaries.
	d := append(sc.dest[:0], &r.Seq, &op.OpID, &sc.source, &op.Type, &op.DOID, &op.DOPrefix, &op.DORepository,
		&op.Actor, &op.ProducerID, &sc.hashAlg, &op.RequestBodyHash, &op.ResponseBodyHash, &sc.clientIP, &sc.serverIP,
		&sc.created, &op.OpHash, &op.Signer, &sc.sign, &sc.state, &r.Attempts, &sc.lastErr, &sc.due, &sc.updated, &sc.leaf, &r.Part)
	if sc.held {
		d = append(d, &sc.isHeld)
	}
	sc.dest = d
	if err := rows.Scan(d...); err != nil {
		return err
	}
	op.Source, op.HashAlg = core.Source(sc.source), core.HashAlg(sc.hashAlg)
	op.ClientIP, op.ServerIP = sc.clientIP.String, sc.serverIP.String
	op.CreatedAt = sc.created.t
	op.Sign = nil
	if sc.sign != "" {
		b, err := hex.DecodeString(sc.sign)
		if err != nil {
			return fmt.Errorf("operation %s: sign is not hex: %w", op.OpID, err)
		}
		op.Sign = b
	}
	r.State, r.LastError = core.State(sc.state), sc.lastErr.String
	r.DueAt, r.UpdatedAt = sc.due.t, sc.updated.t
	r.Held = sc.isHeld.Bool
	r.LeafIndex = -1
	if sc.leaf.Valid {
		r.LeafIndex = sc.leaf.Int64
	}
	return nil
}
