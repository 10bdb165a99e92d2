package main

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeOpLine: any line of `trustlog record` input (or, with
// --archive, of a prune archive) either decodes to an operation whose JSON
// round-trips, or is refused with an error; never a panic.
func FuzzDecodeOpLine(f *testing.F) {
	f.Add([]byte(opLine(1, "obj")))
	f.Add([]byte(`{"op_source":"IRP","op_type":"100","doid":"10.1/x","do_prefix":"10.1","op_actor":"a","producer_id":"p","client_ip":"::1"}`))
	f.Add([]byte(`{"op_source":"DOIP","created_at":"2026-11-23T12:00:00.123456Z","sign":"AAEC"}`))
	f.Add([]byte(`{"surprise":1}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`{"doid":"\u0000"}`))
	f.Add([]byte(`{"leaf_index":0,"seq":1,"published_at":"2026-12-01T10:00:00Z","op_id":"0190a000-0000-7000-8000-000000000001","op_source":"DOIP","op_type":"Op.Create","doid":"10.1000/x","do_prefix":"10.1000","op_actor":"a","producer_id":"p","created_at":"2026-11-23T12:00:00.123456Z","op_hash":"00"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		if a, err := decodeArchiveLine(line); err == nil {
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatalf("a decoded archive line does not encode: %v", err)
			}
			if _, err := decodeArchiveLine(b); err != nil {
				t.Fatalf("re-decoding archive line %s: %v", b, err)
			}
		}
		op, err := DecodeOpLine(line)
		if err != nil {
			return
		}
		b, err := json.Marshal(op)
		if err != nil {
			t.Fatalf("a decoded operation does not encode: %v", err)
		}
		again, err := DecodeOpLine(b)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		_ = op.Validate()
		_ = again.Validate()
	})
}
