package sqlstore

import (
	"database/sql"
	"encoding/hex"
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

type rowScanner interface{ Scan(dest ...any) error }

// scanRecord scans a row of Columns, followed by a held column if held is
// set.
func scanRecord(rows rowScanner, r *core.Record, held bool) error {
	var (
		clientIP, serverIP, lastErr sql.NullString
		source, hashAlg, sign       string
		created, due, updated       flexTime
		state                       int16
		leaf                        sql.NullInt64
		isHeld                      sql.NullBool
	)
	op := &r.Op
	dest := []any{&r.Seq, &op.OpID, &source, &op.Type, &op.DOID, &op.DOPrefix, &op.DORepository,
		&op.Actor, &op.ProducerID, &hashAlg, &op.RequestBodyHash, &op.ResponseBodyHash, &clientIP, &serverIP,
		&created, &op.OpHash, &op.Signer, &sign, &state, &r.Attempts, &lastErr, &due, &updated, &leaf, &r.Part}
	if held {
		dest = append(dest, &isHeld)
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	op.Source, op.HashAlg = core.Source(source), core.HashAlg(hashAlg)
	op.ClientIP, op.ServerIP = clientIP.String, serverIP.String
	op.CreatedAt = created.t
	if sign != "" {
		b, err := hex.DecodeString(sign)
		if err != nil {
			return fmt.Errorf("operation %s: sign is not hex: %w", op.OpID, err)
		}
		op.Sign = b
	}
	r.State, r.LastError = core.State(state), lastErr.String
	r.DueAt, r.UpdatedAt = due.t, updated.t
	r.Held = isHeld.Bool
	r.LeafIndex = -1
	if leaf.Valid {
		r.LeafIndex = leaf.Int64
	}
	return nil
}
