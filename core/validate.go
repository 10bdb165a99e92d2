package core

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Validate checks every field against the rules below and returns the first
// violation as a *ValidationError naming the field. Fields the library fills
// (op_id, created_at, op_hash, signer, sign) may be empty.
//
//   - every string is valid UTF-8 and within its Max*Len limit (in bytes),
//     without control characters (C0 U+0000 to U+001F, DEL U+007F, C1
//     U+0080 to U+009F), line and paragraph separators (U+2028, U+2029) or
//     bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A
//     to U+202E, U+2066 to U+2069), which would let two identifiers that
//     differ in bytes look the same, or one look like another;
//   - op_id, when set, is a UUID other than the nil UUID;
//   - op_source is DOIP or IRP; op_type is set, and for IRP is a decimal op
//     code between 1 and 2^31-1;
//   - do_prefix is set and has no "/"; doid is "prefix/local" with a
//     non-empty local part and starts with do_prefix + "/";
//   - op_actor and producer_id are set;
//   - hash_alg is empty or known, and the body hashes are empty or hex of
//     exactly that algorithm's length;
//   - client_ip and server_ip are empty or IPv4/IPv6 addresses without zone;
//   - op_hash is empty or 64 hex digits; sign needs signer.
func (op *Operation) Validate() error {
	return op.validate(0)
}

func (op *Operation) validate(index int) error {
	fail := func(field, reason string) error {
		return &ValidationError{Index: index, OpID: printable(op.OpID), Field: field, Reason: reason}
	}
	if op.OpID != "" {
		if err := checkOpID(op.OpID); err != "" {
			return fail("op_id", err)
		}
	}
	switch op.Source {
	case SourceDOIP, SourceIRP:
	case "":
		return fail("op_source", "is required (DOIP or IRP)")
	default:
		return fail("op_source", "must be DOIP or IRP")
	}
	if err := required(op.Type, MaxTypeLen); err != "" {
		return fail("op_type", err)
	}
	if op.Source == SourceIRP {
		code, err := strconv.ParseInt(op.Type, 10, 32)
		if err != nil || code < 1 || strconv.FormatInt(code, 10) != op.Type {
			return fail("op_type", "must be a decimal Handle op code between 1 and 2147483647 for IRP")
		}
	} else if strings.ContainsAny(op.Type, " \t") {
		return fail("op_type", "must not contain spaces")
	}
	if err := required(op.DOPrefix, MaxDOPrefixLen); err != "" {
		return fail("do_prefix", err)
	}
	if strings.Contains(op.DOPrefix, "/") {
		return fail("do_prefix", `must not contain "/"`)
	}
	if err := required(op.DOID, MaxDOIDLen); err != "" {
		return fail("doid", err)
	}
	if !strings.Contains(op.DOID, "/") {
		return fail("doid", `must be "prefix/local"`)
	}
	if !strings.HasPrefix(op.DOID, op.DOPrefix+"/") {
		return fail("doid", `must start with do_prefix + "/"`)
	}
	if len(op.DOID) == len(op.DOPrefix)+1 {
		return fail("doid", "has an empty local part")
	}
	if err := checkText(op.DORepository, MaxRepositoryLen); err != "" {
		return fail("do_repository", err)
	}
	if err := required(op.Actor, MaxActorLen); err != "" {
		return fail("op_actor", err)
	}
	if err := required(op.ProducerID, MaxProducerIDLen); err != "" {
		return fail("producer_id", err)
	}
	alg := op.HashAlg
	if alg == "" {
		alg = HashSHA256
	}
	if alg.HexLen() == 0 {
		return fail("hash_alg", "must be one of sha256, sha384, sha512, sm3")
	}
	if err := checkHex(op.RequestBodyHash, alg.HexLen()); err != "" {
		return fail("request_body_hash", err+" for "+string(alg))
	}
	if err := checkHex(op.ResponseBodyHash, alg.HexLen()); err != "" {
		return fail("response_body_hash", err+" for "+string(alg))
	}
	if err := checkIP(op.ClientIP); err != "" {
		return fail("client_ip", err)
	}
	if err := checkIP(op.ServerIP); err != "" {
		return fail("server_ip", err)
	}
	if err := checkHex(op.OpHash, 64); err != "" {
		return fail("op_hash", err+" (SHA-256)")
	}
	if err := checkText(op.Signer, MaxSignerLen); err != "" {
		return fail("signer", err)
	}
	if len(op.Sign) > MaxSignLen {
		return fail("sign", "longer than "+strconv.Itoa(MaxSignLen)+" bytes")
	}
	if len(op.Sign) > 0 && op.Signer == "" {
		return fail("signer", "is required when sign is set")
	}
	// The range is of the UTC year, the one Seal checks after converting:
	// the year in the time's own location may differ at the ends.
	if y := op.CreatedAt.UTC().Year(); !op.CreatedAt.IsZero() && (y < 1970 || y > 9999) {
		return fail("created_at", "must be between 1970 and 9999 (UTC)")
	}
	return nil
}

// Seal prepares op for recording: it fills op_id (UUIDv7) and created_at
// (now) when empty, normalises (lower-case hex and UUID, canonical IP text,
// UTC microseconds), validates, computes op_hash and, when signer is not
// nil, signs. A caller-supplied op_hash must equal the computed one.
func (op *Operation) Seal(signer Signer) error {
	return op.seal(0, time.Now(), signer)
}

func (op *Operation) seal(index int, now time.Time, signer Signer) error {
	if op.OpID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		op.OpID = id.String()
	} else if id, err := uuid.Parse(op.OpID); err == nil && len(op.OpID) == 36 {
		op.OpID = id.String()
	}
	if op.CreatedAt.IsZero() {
		op.CreatedAt = now
	}
	op.CreatedAt = op.CreatedAt.UTC().Truncate(time.Microsecond)
	if op.HashAlg == "" {
		op.HashAlg = HashSHA256
	}
	op.RequestBodyHash = strings.ToLower(op.RequestBodyHash)
	op.ResponseBodyHash = strings.ToLower(op.ResponseBodyHash)
	op.OpHash = strings.ToLower(op.OpHash)
	op.ClientIP = canonicalIP(op.ClientIP)
	op.ServerIP = canonicalIP(op.ServerIP)
	if err := op.validate(index); err != nil {
		return err
	}
	sum := op.canonicalSum()
	computed := hexDigest(sum)
	if op.OpHash != "" && op.OpHash != computed {
		return &ValidationError{Index: index, OpID: op.OpID, Field: "op_hash", Reason: "does not match the canonical hash of the operation"}
	}
	op.OpHash = computed
	if signer != nil {
		sig, err := signer.Sign(SignedMessage(sum[:]))
		if err != nil {
			return err
		}
		op.Signer, op.Sign = signer.KeyName(), sig
	}
	return nil
}

// CheckOpID reports whether id is an op_id an operation may have: a UUID
// in its 36-character text form, not the nil UUID. The error is a
// *ValidationError for the field op_id.
func CheckOpID(id string) error {
	if reason := checkOpID(id); reason != "" {
		return &ValidationError{Field: "op_id", Reason: reason}
	}
	return nil
}

func checkOpID(id string) string {
	if id == "" {
		return "is required"
	}
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "must be a UUID (8-4-4-4-12 hex digits)"
	}
	if u == uuid.Nil {
		return "must not be the nil UUID"
	}
	return ""
}

func required(s string, max int) string {
	if s == "" {
		return "is required"
	}
	return checkText(s, max)
}

func checkText(s string, max int) string {
	if len(s) > max {
		return "longer than " + strconv.Itoa(max) + " bytes"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == 0:
			return "contains a NUL byte"
		case r < 0x20 || 0x7f <= r && r <= 0x9f:
			return "contains a control character (" + codepoint(r) + ")"
		case r == 0x2028 || r == 0x2029:
			return "contains a line or paragraph separator (" + codepoint(r) + ")"
		case r == 0x061c || r == 0x200e || r == 0x200f || 0x202a <= r && r <= 0x202e || 0x2066 <= r && r <= 0x2069:
			return "contains a bidirectional formatting character (" + codepoint(r) + ")"
		}
	}
	return ""
}

// codepoint writes r as U+XXXX.
func codepoint(r rune) string {
	h := strings.ToUpper(strconv.FormatInt(int64(r), 16))
	return "U+" + strings.Repeat("0", max(0, 4-len(h))) + h
}

func checkHex(s string, n int) string {
	if s == "" {
		return ""
	}
	if len(s) != n {
		return "must be " + strconv.Itoa(n) + " hex digits, got " + strconv.Itoa(len(s)) + " characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "must be hex digits only"
		}
	}
	return ""
}

func checkIP(s string) string {
	if s == "" {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "is not an IPv4 or IPv6 address"
	}
	if a.Zone() != "" {
		return "must not have a zone"
	}
	return ""
}

func canonicalIP(s string) string {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		var buf [64]byte
		if b := a.AppendTo(buf[:0]); string(b) != s {
			return string(b)
		}
	}
	return s
}

// printable returns s if it is short valid text, for quoting in an error.
func printable(s string) string {
	if checkText(s, 64) != "" {
		return ""
	}
	return s
}
