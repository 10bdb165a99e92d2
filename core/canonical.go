package core

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The canonical encoding, version 1. docs/message-format.md is the
// reference; this comment is its summary.
//
// Content ("TLOP", what op_hash covers):
//
//	"TLOP" 0x01                      5 bytes: magic and version
//	14 fields, each: u32 big-endian byte length, then the bytes:
//	  op_id, op_source, op_type, doid, do_prefix, do_repository, op_actor,
//	  producer_id, hash_alg, request_body_hash, response_body_hash,
//	  client_ip, server_ip                        (UTF-8 text, "" if unset)
//	  created_at                      8 bytes: i64 big-endian Unix microseconds (UTC)
//
// op_hash = SHA-256(content). Text fields are stored normalised (see Seal),
// so the same operation always has the same bytes.
//
// Sealed ("TLOS", the message payload and the ledger leaf):
//
//	"TLOS" 0x01, the same 14 fields, then 3 more fields:
//	  op_hash (32 raw bytes), signer (UTF-8), sign (raw signature bytes)
//
// A sealed encoding's content is "TLOP" 0x01 followed by the bytes of its
// first 14 fields, so a verifier recomputes op_hash without re-encoding.
const (
	// FormatVersion is the version byte of both encodings.
	FormatVersion = 1
	// ContentType is the MIME type of a sealed operation in messages.
	ContentType = "application/vnd.trustlog.op.v1"
)

var (
	contentMagic = []byte("TLOP\x01")
	sealedMagic  = []byte("TLOS\x01")
	signMagic    = []byte("TLSG\x01")
)

const contentFields, sealedFields = 14, 17

// ErrMalformed is wrapped by decoding errors of the canonical encodings.
var ErrMalformed = errors.New("trustlog: malformed encoding")

// AppendCanonical appends the canonical content encoding of op to b.
func (op *Operation) AppendCanonical(b []byte) []byte {
	b = append(b, contentMagic...)
	return op.appendFields(b)
}

// textFields are op's 13 text fields in encoding order.
func (op *Operation) textFields() [13]string {
	return [...]string{
		op.OpID, string(op.Source), op.Type, op.DOID, op.DOPrefix, op.DORepository,
		op.Actor, op.ProducerID, string(op.HashAlg), op.RequestBodyHash,
		op.ResponseBodyHash, op.ClientIP, op.ServerIP,
	}
}

func (op *Operation) appendFields(b []byte) []byte {
	for _, s := range op.textFields() {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(op.CreatedAt.UnixMicro()))
}

// sealedSize is the length of op's sealed encoding, so that encoding it
// allocates once.
func (op *Operation) sealedSize() int {
	n := len(sealedMagic) + 4*sealedFields + 8 + sha256.Size + len(op.Signer) + len(op.Sign)
	for _, s := range op.textFields() {
		n += len(s)
	}
	return n
}

// AppendSealed appends the sealed encoding of op (content, op_hash, signer,
// sign) to b. op.OpHash must be set (Seal does it).
func (op *Operation) AppendSealed(b []byte) ([]byte, error) {
	h, ok := decodeHash(op.OpHash)
	if !ok {
		return b, fmt.Errorf("%w: op_hash must be 64 hex digits", ErrMalformed)
	}
	b = slices.Grow(b, op.sealedSize())
	b = append(b, sealedMagic...)
	return op.appendSeal(op.appendFields(b), &h), nil
}

// appendSealedChecked appends op's sealed encoding to b, as AppendSealed,
// if op_hash is the SHA-256 of op's content, which it returns either way:
// the fields are encoded once, first behind the content magic to be
// hashed, then given the sealed magic. Unless ok, b is returned holding
// only what it held.
func (op *Operation) appendSealedChecked(b []byte) (out []byte, sum [sha256.Size]byte, ok bool) {
	start := len(b)
	b = slices.Grow(b, op.sealedSize())
	b = append(b, contentMagic...)
	b = op.appendFields(b)
	sum = sha256.Sum256(b[start:])
	if digits := hexDigits(sum); string(digits[:]) != op.OpHash { // Seal writes op_hash in lowercase, as hexDigits
		return b[:start], sum, false
	}
	copy(b[start:], sealedMagic)
	return op.appendSeal(b, &sum), sum, true
}

// appendSeal appends the sealed encoding's last three fields: op_hash
// (raw), signer and sign.
func (op *Operation) appendSeal(b []byte, h *[sha256.Size]byte) []byte {
	b = binary.BigEndian.AppendUint32(b, sha256.Size)
	b = append(b, h[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(op.Signer)))
	b = append(b, op.Signer...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(op.Sign)))
	return append(b, op.Sign...)
}

// ComputeHash returns the hex SHA-256 of op's canonical content, the value
// op_hash must have.
func (op *Operation) ComputeHash() string {
	return hexDigest(op.canonicalSum())
}

// canonicalSum is the SHA-256 of op's canonical content, encoded in a
// stack buffer.
func (op *Operation) canonicalSum() [sha256.Size]byte {
	var buf [canonicalBuf]byte
	return sha256.Sum256(op.AppendCanonical(buf[:0]))
}

// canonicalBuf is the size of the stack buffer the canonical encoding is
// hashed from: most operations encode in less, and then hashing one
// allocates nothing but its hex digits (the store checks every row it
// reads, the client seals every operation it records).
const canonicalBuf = 512

// hexDigest is sum in lowercase hex, in one allocation.
func hexDigest(sum [sha256.Size]byte) string {
	digits := hexDigits(sum)
	return string(digits[:])
}

// hexDigits is sum in lowercase hex, on the stack.
func hexDigits(sum [sha256.Size]byte) (digits [2 * sha256.Size]byte) {
	hex.Encode(digits[:], sum[:])
	return digits
}

// SignedMessage is what a signature covers: "TLSG" 0x01 followed by the 32
// raw bytes of op_hash. The prefix keeps an operation signature from being
// valid for any other message signed with the same key.
func SignedMessage(opHash []byte) []byte {
	return append(append(make([]byte, 0, len(signMagic)+len(opHash)), signMagic...), opHash...)
}

// DecodeCanonical decodes a content encoding ("TLOP").
func DecodeCanonical(b []byte) (*Operation, error) {
	fields, err := splitFields(b, contentMagic, contentFields)
	if err != nil {
		return nil, err
	}
	return opFromFields(fields)
}

// DecodeSealed decodes a sealed encoding ("TLOS") and checks that its
// op_hash is the SHA-256 of its content. It does not check the signature;
// see VerifyOperation.
func DecodeSealed(b []byte) (*Operation, error) {
	fields, err := splitFields(b, sealedMagic, sealedFields)
	if err != nil {
		return nil, err
	}
	op, err := opFromFields(fields[:contentFields])
	if err != nil {
		return nil, err
	}
	if len(fields[14]) != sha256.Size {
		return nil, fmt.Errorf("%w: op_hash is %d bytes, want 32", ErrMalformed, len(fields[14]))
	}
	// The content is the magic plus the bytes of the first 14 fields, which
	// end where field 15's length prefix starts.
	end := len(b) - 4*3 - len(fields[14]) - len(fields[15]) - len(fields[16])
	content := append(append([]byte(nil), contentMagic...), b[len(sealedMagic):end]...)
	sum := sha256.Sum256(content)
	if !bytes.Equal(sum[:], fields[14]) {
		return nil, fmt.Errorf("%w: op_hash does not match the content", ErrMalformed)
	}
	op.OpHash = hex.EncodeToString(fields[14])
	op.Signer = string(fields[15])
	if len(fields[16]) > 0 {
		op.Sign = append([]byte(nil), fields[16]...)
	}
	return op, nil
}

func splitFields(b, magic []byte, n int) ([][]byte, error) {
	if !bytes.HasPrefix(b, magic[:4]) {
		return nil, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if len(b) < 5 || b[4] != FormatVersion {
		return nil, fmt.Errorf("%w: unsupported version", ErrMalformed)
	}
	rest := b[5:]
	fields := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated at field %d", ErrMalformed, i+1)
		}
		l := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(l) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: field %d length %d exceeds the %d bytes left", ErrMalformed, i+1, l, len(rest))
		}
		fields = append(fields, rest[:l])
		rest = rest[l:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return fields, nil
}

func opFromFields(f [][]byte) (*Operation, error) {
	if len(f[13]) != 8 {
		return nil, fmt.Errorf("%w: created_at is %d bytes, want 8", ErrMalformed, len(f[13]))
	}
	return &Operation{
		OpID:             string(f[0]),
		Source:           Source(f[1]),
		Type:             string(f[2]),
		DOID:             string(f[3]),
		DOPrefix:         string(f[4]),
		DORepository:     string(f[5]),
		Actor:            string(f[6]),
		ProducerID:       string(f[7]),
		HashAlg:          HashAlg(f[8]),
		RequestBodyHash:  string(f[9]),
		ResponseBodyHash: string(f[10]),
		ClientIP:         string(f[11]),
		ServerIP:         string(f[12]),
		CreatedAt:        time.UnixMicro(int64(binary.BigEndian.Uint64(f[13]))).UTC(),
	}, nil
}

// decodeHash decodes op_hash's 64 hex digits (either case, as
// hex.DecodeString takes them) without allocating.
func decodeHash(s string) (h [sha256.Size]byte, ok bool) {
	var digits [2 * sha256.Size]byte
	if len(s) != len(digits) {
		return h, false
	}
	copy(digits[:], s)
	_, err := hex.Decode(h[:], digits[:])
	return h, err == nil
}
