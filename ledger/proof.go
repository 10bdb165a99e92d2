package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
)

// proofHeader is the first line of a C2SP tlog-proof.
const proofHeader = "c2sp.org/tlog-proof@v1"

// Proof is a self-contained, offline-verifiable proof that an operation is
// in the log, in the C2SP tlog-proof format: the leaf's index, the
// inclusion proof up to a signed checkpoint, and the checkpoint. The
// operation itself travels in the format's "extra" line: it is not trusted
// on its own, but its hash is the leaf the inclusion proof proves.
type Proof struct {
	Index      int64
	Leaf       []byte
	Hashes     tlog.RecordProof
	Checkpoint []byte
}

// Marshal returns the proof in tlog-proof text.
func (p *Proof) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(proofHeader + "\n")
	b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Leaf) + "\n")
	b.WriteString("index " + strconv.FormatInt(p.Index, 10) + "\n")
	writeProofTail(&b, p.Hashes, p.Checkpoint)
	return b.Bytes()
}

// writeProofTail ends a proof's text, inclusion or consistency: one
// base64 hash per line, a blank line, the signed checkpoint.
func writeProofTail(b *bytes.Buffer, hashes []tlog.Hash, checkpoint []byte) {
	for _, h := range hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(checkpoint)
}

// parseHashLines parses a proof's hash lines: at most 63 (a tree of up to
// 2^63 leaves), each one hash in canonical base64.
func parseHashLines(lines []string) ([]tlog.Hash, error) {
	if len(lines) > 63 {
		return nil, fmt.Errorf("%d proof hashes (at most 63)", len(lines))
	}
	var hashes []tlog.Hash
	for _, l := range lines {
		h, err := decodeBase64(l)
		if err != nil || len(h) != tlog.HashSize {
			return nil, fmt.Errorf("proof line %q is not a canonical base64 hash", l)
		}
		hashes = append(hashes, tlog.Hash(h))
	}
	return hashes, nil
}

// ParseProof parses tlog-proof text. It checks the form only; Verify
// checks the content.
func ParseProof(text []byte) (*Proof, error) {
	bad := func(format string, args ...any) (*Proof, error) {
		return nil, fmt.Errorf("ledger: malformed proof: "+format, args...)
	}
	head, cp, ok := strings.Cut(string(text), "\n\n")
	if !ok {
		return bad("no blank line before the checkpoint")
	}
	lines := strings.Split(head, "\n")
	if len(lines) < 2 || lines[0] != proofHeader {
		return bad("first line is not %q", proofHeader)
	}
	p := &Proof{Checkpoint: []byte(cp)}
	lines = lines[1:]
	if extra, ok := strings.CutPrefix(lines[0], "extra "); ok {
		leaf, err := decodeBase64(extra)
		if err != nil {
			return bad("extra is not canonical base64")
		}
		p.Leaf = leaf
		lines = lines[1:]
	}
	if len(lines) == 0 {
		return bad("no index line")
	}
	idx, ok := strings.CutPrefix(lines[0], "index ")
	n, err := strconv.ParseInt(idx, 10, 64)
	if !ok || err != nil || n < 0 || strconv.FormatInt(n, 10) != idx {
		return bad("index line %q", lines[0])
	}
	p.Index = n
	if p.Hashes, err = parseHashLines(lines[1:]); err != nil {
		return bad("%v", err)
	}
	return p, nil
}

// decodeBase64 decodes standard, padded base64 in its one canonical form,
// as the C2SP formats require: padding bits zero (base64.StdEncoding.Strict)
// and no line breaks, which even strict decoding skips. So each proof and
// checkpoint has exactly one accepted encoding.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("base64 is not in canonical form")
	}
	return b, nil
}

// Prove builds the proof of the operation op_id against the latest signed
// checkpoint. It fails with ErrNotSequenced if the operation is not yet in
// a checkpointed tree.
func Prove(ctx context.Context, store core.Store, opID string) (*Proof, error) {
	st, err := storageOf(store)
	if err != nil {
		return nil, err
	}
	rec, err := st.Get(ctx, opID)
	if err != nil {
		return nil, err
	}
	if rec.LeafIndex < 0 {
		return nil, fmt.Errorf("%w: operation %s has no leaf yet", ErrNotSequenced, opID)
	}
	cp, err := latest(ctx, st)
	if err != nil {
		return nil, err
	}
	if cp == nil || cp.Size <= rec.LeafIndex {
		return nil, fmt.Errorf("%w: no checkpoint covers leaf %d yet", ErrNotSequenced, rec.LeafIndex)
	}
	leaf, err := LeafData(&rec.Op)
	if err != nil {
		return nil, err
	}
	hashes, err := tlog.ProveRecord(cp.Size, rec.LeafIndex, newHashReader(ctx, st))
	if err != nil {
		return nil, err
	}
	return &Proof{Index: rec.LeafIndex, Leaf: leaf, Hashes: hashes, Checkpoint: cp.Note}, nil
}

// Verify checks a proof offline: the checkpoint's signature by the log's
// key, the inclusion of the leaf in the checkpointed tree, and the
// operation inside the leaf (its op_hash, and its signature when
// verifiers are given or requireSig is set). It returns the operation
// and the checkpoint. An operation whose content does not match its
// op_hash fails with ErrTampered, one whose signature is missing or
// fails with core.ErrBadSignature (OperationProblem names which).
func (p *Proof) Verify(log note.Verifier, requireSig bool, opVerifiers ...core.Verifier) (*core.Operation, Checkpoint, error) {
	cp, err := OpenCheckpoint(p.Checkpoint, log)
	if err != nil {
		return nil, cp, err
	}
	if p.Index >= cp.Size {
		return nil, cp, fmt.Errorf("%w: index %d is outside the checkpointed tree of %d", ErrTampered, p.Index, cp.Size)
	}
	if err := tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
		return nil, cp, fmt.Errorf("%w: inclusion proof: %v", ErrTampered, err)
	}
	op, err := core.DecodeSealed(p.Leaf)
	if err != nil {
		return nil, cp, fmt.Errorf("%w: leaf: %v", ErrTampered, err)
	}
	if p := OperationProblem(op, requireSig, opVerifiers...); p != "" {
		if op.ComputeHash() != op.OpHash {
			return op, cp, fmt.Errorf("%w: %s", ErrTampered, p)
		}
		return op, cp, fmt.Errorf("%w: %s", core.ErrBadSignature, p)
	}
	return op, cp, nil
}
