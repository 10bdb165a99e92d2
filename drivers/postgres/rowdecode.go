package postgres

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// rowDecoder scans pgx rows as pgx's own Scan does, with fewer
// allocations where the relay reads most: every text column of a row
// scanned into a *string or *sql.NullString becomes a part of one string
// made for the row (pgx makes one per column, seventeen for an
// operation), and integers, booleans and timestamps in binary format are
// decoded here without pgx's per-value plans. Any other column, and any
// value these paths do not take (a NULL into a plain string, an infinite
// timestamp), goes through pgx's type map, with pgx's conversions and
// errors. The strings of a row share its memory: a record kept alive
// keeps its row's text alive, a few hundred bytes.
type rowDecoder struct {
	rows pgx.Rows
	m    *pgtype.Map
	buf  []byte
}

// Scan implements sqlstore.RowScanner.
func (d *rowDecoder) Scan(dest ...any) error {
	fds := d.rows.FieldDescriptions()
	raw := d.rows.RawValues()
	if len(dest) != len(raw) {
		return fmt.Errorf("postgres: %d destinations for %d columns", len(dest), len(raw))
	}
	d.buf = d.buf[:0]
	for i, v := range dest {
		if raw[i] != nil && isText(fds[i].DataTypeOID) && textDest(v) {
			d.buf = append(d.buf, raw[i]...)
		}
	}
	text := string(d.buf)
	for i, v := range dest {
		fd, src := &fds[i], raw[i]
		if isText(fd.DataTypeOID) && textDest(v) {
			var s string
			if src != nil {
				s, text = text[:len(src)], text[len(src):]
			}
			switch v := v.(type) {
			case *string:
				if src != nil {
					*v = s
					continue
				}
			case *sql.NullString:
				*v = sql.NullString{String: s, Valid: src != nil}
				continue
			}
		} else if fd.Format == pgtype.BinaryFormatCode {
			done, err := decodeBinary(fd.DataTypeOID, src, v)
			if err != nil {
				return fmt.Errorf("postgres: column %d (%s): %w", i, fd.Name, err)
			}
			if done {
				continue
			}
		}
		if err := d.m.Scan(fd.DataTypeOID, fd.Format, src, v); err != nil {
			return fmt.Errorf("postgres: column %d (%s): %w", i, fd.Name, err)
		}
	}
	return nil
}

// isText reports whether a column of type oid holds text, the same bytes
// in text and binary format.
func isText(oid uint32) bool {
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		return true
	}
	return false
}

// textDest reports whether v is a destination the row's string serves.
func textDest(v any) bool {
	switch v.(type) {
	case *string, *sql.NullString:
		return true
	}
	return false
}

// y2kMicros is PostgreSQL's timestamp epoch, 2000-01-01 UTC, in Unix
// microseconds.
const y2kMicros = 946_684_800_000_000

// decodeBinary decodes src, a binary value of type oid, into v if v is a
// destination it knows for that type and src fits it, and reports
// whether it did; it writes nothing when it did not.
func decodeBinary(oid uint32, src []byte, v any) (bool, error) {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		if src == nil {
			if v, ok := v.(*sql.NullInt64); ok {
				*v = sql.NullInt64{}
				return true, nil
			}
			return false, nil
		}
		var n int64
		switch {
		case len(src) == 2 && oid == pgtype.Int2OID:
			n = int64(int16(binary.BigEndian.Uint16(src)))
		case len(src) == 4 && oid == pgtype.Int4OID:
			n = int64(int32(binary.BigEndian.Uint32(src)))
		case len(src) == 8 && oid == pgtype.Int8OID:
			n = int64(binary.BigEndian.Uint64(src))
		default:
			return false, nil
		}
		switch v := v.(type) {
		case *sql.NullInt64:
			*v = sql.NullInt64{Int64: n, Valid: true}
		case *int64:
			*v = n
		case *int:
			*v = int(n)
		case *int16:
			if n != int64(int16(n)) {
				return false, nil
			}
			*v = int16(n)
		default:
			return false, nil
		}
		return true, nil
	case pgtype.BoolOID:
		if v, ok := v.(*sql.NullBool); ok && len(src) <= 1 {
			*v = sql.NullBool{Bool: len(src) == 1 && src[0] == 1, Valid: src != nil}
			return true, nil
		}
	case pgtype.TimestamptzOID:
		s, ok := v.(sql.Scanner)
		switch {
		case !ok:
		case src == nil:
			return true, s.Scan(nil)
		case len(src) == 8:
			us := int64(binary.BigEndian.Uint64(src))
			if us == math.MaxInt64 || us == math.MinInt64 { // ±infinity: pgx's to say
				return false, nil
			}
			return true, s.Scan(time.UnixMicro(us + y2kMicros)) // local time, as pgx gives it
		}
	}
	return false, nil
}
