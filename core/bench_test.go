package core_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/benchkit"
)

// The per-operation CPU cost of the write path (Seal) and of the relay's
// per-row work (NewMessage, ComputeHash), with allocation counts; the
// database round trips they sit between are measured by `trustlog bench`.
//
//	go test ./core -run '^$' -bench 'Seal|Message|ComputeHash' -benchmem

func benchOps(n int) []*core.Operation {
	ops := make([]*core.Operation, n)
	for i := range ops {
		ops[i] = benchkit.Op(i, 5000)
	}
	return ops
}

// BenchmarkSeal is what RecordTx adds per operation before its INSERT:
// op_id, normalisation, validation and op_hash.
func BenchmarkSeal(b *testing.B) {
	ops := benchOps(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := ops[i].Seal(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealSigned adds an Ed25519 signature per operation.
func BenchmarkSealSigned(b *testing.B) {
	skey, _, err := core.GenerateEd25519("bench.example/log")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := core.NewEd25519Signer(skey)
	if err != nil {
		b.Fatal(err)
	}
	ops := benchOps(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := ops[i].Seal(signer); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewMessage is the relay's encoding of one row it read.
func BenchmarkNewMessage(b *testing.B) {
	op := benchkit.Op(1, 5000)
	if err := op.Seal(nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := range b.N {
		if _, err := core.NewMessage(op, int64(i), int64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkComputeHash is the tamper check a store runs on every row it
// reads back (guarantee 7).
func BenchmarkComputeHash(b *testing.B) {
	op := benchkit.Op(1, 5000)
	if err := op.Seal(nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for range b.N {
		if op.ComputeHash() != op.OpHash {
			b.Fatal("hash changed")
		}
	}
}
