package ledger_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/ledger"
)

const sampleCheckpoint = "example.com/log\n12\n4pvJbBX3cMvoZX2HBXdHh4KcXXBoWrf+0HHjuJmI0m8=\n"

// FuzzParseCheckpoint: a checkpoint body parses or is refused; a parsed
// one formats back to the same first three lines.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(sampleCheckpoint))
	f.Add([]byte(sampleCheckpoint + "extension line\n"))
	f.Add([]byte("o\n-1\nAA==\n"))
	f.Add([]byte("o\n01\n\n"))
	f.Add([]byte("\xff\n1\nAA==\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ledger.ParseCheckpoint(b)
		if err != nil {
			return
		}
		again, err := ledger.ParseCheckpoint(c.Body())
		if err != nil || again != c {
			t.Fatalf("checkpoint %q does not round-trip: %v", b, err)
		}
	})
}

// FuzzParseProof: a proof file parses or is refused; a parsed one
// marshals and parses to the same proof.
func FuzzParseProof(f *testing.F) {
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra AAEC\nindex 4\n5u5L5v6m8gcQ3Fq5sNkp1MzIjN4ViX3t9yL1wKp7YjA=\n\n" + sampleCheckpoint + "\n— example.com/log AAAA\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n" + sampleCheckpoint))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 01\n\n"))
	f.Add([]byte("nope\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ledger.ParseProof(b)
		if err != nil {
			return
		}
		q, err := ledger.ParseProof(p.Marshal())
		if err != nil {
			t.Fatalf("a parsed proof does not re-parse: %v", err)
		}
		if q.Index != p.Index || len(q.Hashes) != len(p.Hashes) || string(q.Leaf) != string(p.Leaf) || string(q.Checkpoint) != string(p.Checkpoint) {
			t.Fatalf("proof does not round-trip")
		}
	})
}

// FuzzParseConsistencyProof: a consistency proof parses or is refused; a
// parsed one marshals back to the very same bytes (one encoding per proof).
func FuzzParseConsistencyProof(f *testing.F) {
	f.Add([]byte("old 7\n5u5L5v6m8gcQ3Fq5sNkp1MzIjN4ViX3t9yL1wKp7YjA=\n\n" + sampleCheckpoint + "\n— example.com/log AAAA\n"))
	f.Add([]byte("old 0\n\n" + sampleCheckpoint))
	f.Add([]byte("old 01\n\n"))
	f.Add([]byte("old -1\n\n"))
	f.Add([]byte("new 1\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ledger.ParseConsistencyProof(b)
		if err != nil {
			return
		}
		if got := p.Marshal(); string(got) != string(b) {
			t.Fatalf("consistency proof %q marshals to %q", b, got)
		}
	})
}
