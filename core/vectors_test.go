package core

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/internal/testenv"
)

// The message-format test vectors: docs/message-format.md's rules as data
// another language can check itself against. The tables below are the
// source; the file is generated from them by running the real code
// (normalise, validate, encode, hash), so it cannot drift:
//
//	go test ./core -run '^TestMessageFormatVectors$' -update
//
// TestMessageFormatVectors fails when the file differs from what the
// tables and the code give, and checks every vector in the file against
// the code. TestMessageFormatVectorsPython runs the independent Python
// implementation of the page (scripts/vectors/check_vectors.py) on it.

var updateVectors = flag.Bool("update", false, "rewrite "+vectorsPath+" from the tables of vectors_test.go")

const (
	vectorsPath   = "testdata/vectors/message-format.json"
	pythonChecker = "../scripts/vectors/check_vectors.py"
	// vectorTime is how the file writes a normalised created_at.
	vectorTime = "2006-01-02T15:04:05.000000Z"
)

// vectorInput is an operation as an application gives it: text as given,
// created_at in RFC 3339 with its offset ("" = unset).
type vectorInput struct {
	OpID, Source, Type, DOID, DOPrefix, DORepository, Actor, ProducerID string
	HashAlg, RequestBodyHash, ResponseBodyHash, ClientIP, ServerIP      string
	CreatedAt                                                           string
	OpHash, Signer                                                      string
	Sign                                                                []byte
}

// vectorCase is one row of the tables.
type vectorCase struct {
	name, rule string
	// now is the time of recording, for a case whose created_at is unset.
	now string
	// field is the field a rejected case is refused for.
	field string
	edit  func(*vectorInput)
	// supplyOpHash makes the input carry the upper-cased op_hash of the
	// operation (an accepted case).
	supplyOpHash bool
}

// The file's layout. Every text field of "input" is present (empty when
// unset) unless its bytes are not valid UTF-8: JSON cannot carry those, so
// "input_hex" has them instead.
type vectorFile struct {
	Comment       []string          `json:"comment"`
	Spec          string            `json:"spec"`
	FormatVersion int               `json:"format_version"`
	Generator     string            `json:"generator"`
	Checkers      []string          `json:"checkers"`
	Accept        []acceptVector    `json:"accept"`
	Reject        []rejectVector    `json:"reject"`
	Malformed     []malformedVector `json:"malformed"`
}

type jsonInput struct {
	OpID             *string `json:"op_id,omitempty"`
	Source           *string `json:"op_source,omitempty"`
	Type             *string `json:"op_type,omitempty"`
	DOID             *string `json:"doid,omitempty"`
	DOPrefix         *string `json:"do_prefix,omitempty"`
	DORepository     *string `json:"do_repository,omitempty"`
	Actor            *string `json:"op_actor,omitempty"`
	ProducerID       *string `json:"producer_id,omitempty"`
	HashAlg          *string `json:"hash_alg,omitempty"`
	RequestBodyHash  *string `json:"request_body_hash,omitempty"`
	ResponseBodyHash *string `json:"response_body_hash,omitempty"`
	ClientIP         *string `json:"client_ip,omitempty"`
	ServerIP         *string `json:"server_ip,omitempty"`
	CreatedAt        *string `json:"created_at,omitempty"`
	OpHash           *string `json:"op_hash,omitempty"`
	Signer           *string `json:"signer,omitempty"`
	SignHex          *string `json:"sign_hex,omitempty"`
}

type normalisedFields struct {
	OpID             string `json:"op_id"`
	Source           string `json:"op_source"`
	Type             string `json:"op_type"`
	DOID             string `json:"doid"`
	DOPrefix         string `json:"do_prefix"`
	DORepository     string `json:"do_repository"`
	Actor            string `json:"op_actor"`
	ProducerID       string `json:"producer_id"`
	HashAlg          string `json:"hash_alg"`
	RequestBodyHash  string `json:"request_body_hash"`
	ResponseBodyHash string `json:"response_body_hash"`
	ClientIP         string `json:"client_ip"`
	ServerIP         string `json:"server_ip"`
	CreatedAt        string `json:"created_at"`
}

type acceptVector struct {
	Name            string           `json:"name"`
	Rule            string           `json:"rule"`
	Now             string           `json:"now,omitempty"`
	Input           jsonInput        `json:"input"`
	Normalised      normalisedFields `json:"normalised"`
	CreatedAtMicros int64            `json:"created_at_micros,string"`
	ContentHex      string           `json:"content_hex"`
	OpHash          string           `json:"op_hash"`
	SealedHex       string           `json:"sealed_hex"`
}

type rejectVector struct {
	Name     string            `json:"name"`
	Rule     string            `json:"rule"`
	Field    string            `json:"field"`
	Now      string            `json:"now,omitempty"`
	Input    jsonInput         `json:"input"`
	InputHex map[string]string `json:"input_hex,omitempty"`
}

type malformedVector struct {
	Name      string `json:"name"`
	Rule      string `json:"rule"`
	SealedHex string `json:"sealed_hex"`
}

// baseInput is the operation of the page's worked example; every case
// starts from it.
func baseInput() vectorInput {
	return vectorInput{
		OpID: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", Source: "DOIP", Type: "Op.Create",
		DOID: "10.1000/my-repo/object-001", DOPrefix: "10.1000", DORepository: "my-repo",
		Actor: "alice", ProducerID: "repo-service", HashAlg: "sha256",
		RequestBodyHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		ClientIP:        "192.0.2.1", CreatedAt: "2026-11-23T12:00:00.123456Z",
	}
}

func acceptCases() []vectorCase {
	hexOf := func(n int) string { return strings.Repeat("0123456789ABCDEFabcdef", n/22+1)[:n] }
	ip := func(client, server string) func(*vectorInput) {
		return func(v *vectorInput) { v.ClientIP, v.ServerIP = client, server }
	}
	at := func(s string) func(*vectorInput) { return func(v *vectorInput) { v.CreatedAt = s } }
	return []vectorCase{
		{name: "worked-example", rule: "the worked example of the page (core/testdata/golden-op-v1.hex)", edit: func(*vectorInput) {}},
		{name: "hash-alg-empty-means-sha256", rule: "hash_alg: empty becomes sha256, written in the content",
			edit: func(v *vectorInput) { v.HashAlg = "" }},
		{name: "hash-alg-empty-no-hashes", rule: "hash_alg: empty becomes sha256 even when both body hashes are empty",
			edit: func(v *vectorInput) { v.HashAlg, v.RequestBodyHash = "", "" }},
		{name: "hash-sha256-upper-case", rule: "body hashes: A-F lower-cased; sha256 is 64 hex digits",
			edit: func(v *vectorInput) {
				v.RequestBodyHash, v.ResponseBodyHash = strings.ToUpper(v.RequestBodyHash), hexOf(64)
			}},
		{name: "hash-sha384", rule: "body hashes: sha384 is 96 hex digits",
			edit: func(v *vectorInput) { v.HashAlg, v.RequestBodyHash, v.ResponseBodyHash = "sha384", hexOf(96), "" }},
		{name: "hash-sha512", rule: "body hashes: sha512 is 128 hex digits",
			edit: func(v *vectorInput) { v.HashAlg, v.RequestBodyHash, v.ResponseBodyHash = "sha512", "", hexOf(128) }},
		{name: "hash-sm3", rule: "body hashes: sm3 is 64 hex digits",
			edit: func(v *vectorInput) { v.HashAlg, v.RequestBodyHash, v.ResponseBodyHash = "sm3", hexOf(64), hexOf(64) }},
		{name: "hash-alg-without-hashes", rule: "hash_alg is kept when both body hashes are empty",
			edit: func(v *vectorInput) { v.HashAlg, v.RequestBodyHash = "sha512", "" }},
		{name: "op-id-upper-case", rule: "op_id: ASCII letters lower-cased",
			edit: func(v *vectorInput) { v.OpID = strings.ToUpper(v.OpID) }},
		{name: "op-id-version-not-checked", rule: "op_id: any UUID but the nil one; version and variant bits are not checked",
			edit: func(v *vectorInput) { v.OpID = "FFFFFFFF-ffff-FFFF-ffff-FFFFFFFFFFFF" }},
		{name: "op-id-one", rule: "op_id: any UUID but the nil one",
			edit: func(v *vectorInput) { v.OpID = "00000000-0000-0000-0000-000000000001" }},
		{name: "irp-op-code-min", rule: "op_type: IRP op code 1",
			edit: func(v *vectorInput) { v.Source, v.Type = "IRP", "1" }},
		{name: "irp-op-code-max", rule: "op_type: IRP op code 2^31-1",
			edit: func(v *vectorInput) { v.Source, v.Type = "IRP", "2147483647" }},
		{name: "irp-create-handle", rule: "op_type: IRP op code in decimal (100, CREATE_HANDLE)",
			edit: func(v *vectorInput) { v.Source, v.Type = "IRP", "100" }},
		{name: "doip-extended-operation", rule: "op_type: a DOIP operation is any text without spaces",
			edit: func(v *vectorInput) { v.Type = "20.5000.1234/Op.Custom" }},
		{name: "doid-local-part-with-slashes", rule: "doid: the local part may contain '/'; do_repository may be empty",
			edit: func(v *vectorInput) { v.DOID, v.DORepository = "10.1000/a/b//c/", "" }},
		{name: "ip-empty", rule: "client_ip and server_ip may be empty",
			edit: ip("", "")},
		{name: "ipv4-edges", rule: "IPv4: decimal, 0 and 255",
			edit: ip("0.0.0.0", "255.255.255.255")},
		{name: "ipv6-rfc5952-tie-and-trailing-run", rule: "IPv6: lower-case, no leading zeros, first of two equal zero runs becomes ::; a run at the end",
			edit: ip("2001:0DB8:0000:0000:0001:0000:0000:0001", "2001:db8:0:0:1:0:0:0")},
		{name: "ipv6-longest-run", rule: "IPv6: the longest run of zero groups becomes ::",
			edit: ip("1:0:0:2:0:0:0:3", "0:0:1:0:0:0:0:0")},
		{name: "ipv6-single-zero-group", rule: "IPv6: a single zero group is written 0, not ::",
			edit: ip("2001:db8:0:1:1:1:1:1", "1:2:3:4:5:6:7::")},
		{name: "ipv6-leading-single-zero", rule: "IPv6: :: standing for one group is written out",
			edit: ip("::1:2:3:4:5:6:7", "1:2:3:4:5::1.2.3.4")},
		{name: "ipv6-unspecified-and-loopback", rule: "IPv6: all zeros is ::, loopback ::1",
			edit: ip("0:0:0:0:0:0:0:0", "0:0:0:0:0:0:0:1")},
		{name: "ipv4-mapped-from-hex", rule: "IPv4-mapped IPv6 is written ::ffff: and a dotted quad",
			edit: ip("::FFFF:C000:0201", "0:0:0:0:0:ffff:c000:201")},
		{name: "ipv4-mapped-stays-ipv6", rule: "an IPv4-mapped address is not converted to IPv4",
			edit: ip("::ffff:192.0.2.1", "192.0.2.1")},
		{name: "ipv4-mapped-edges", rule: "IPv4-mapped: ::ffff:0:0 and ::ffff:ffff:ffff",
			edit: ip("::ffff:0:0", "::FFFF:255.255.255.255")},
		{name: "ipv4-embedded-not-mapped", rule: "IPv6 other than IPv4-mapped is all hex, even when given with a dotted quad",
			edit: ip("::192.0.2.1", "64:ff9b::192.0.2.1")},
		{name: "ipv6-almost-mapped", rule: "IPv6: only ::ffff:0:0/96 is IPv4-mapped",
			edit: ip("::ffff:0:c000:201", "::1:ffff:c000:201")},
		{name: "created-at-unset", rule: "created_at: unset becomes the time of recording, in UTC, truncated to the microsecond",
			now: "2026-03-04T13:06:07.123456789+08:00", edit: at("")},
		{name: "created-at-go-zero-time", rule: "created_at: the instant 0001-01-01T00:00:00Z is Go's unset value and becomes the time of recording",
			now: "2026-03-04T05:06:07.5Z", edit: at("0001-01-01T00:00:00Z")},
		{name: "created-at-offset-and-nanoseconds", rule: "created_at: converted to UTC and truncated to the microsecond",
			edit: at("2026-01-02T03:04:05.678901234+01:00")},
		{name: "created-at-truncated-not-rounded", rule: "created_at: truncated towards the past, never rounded up",
			edit: at("2026-11-23T12:00:00.999999999Z")},
		{name: "created-at-offset-changes-date", rule: "created_at: converting to UTC may change the date",
			edit: at("2026-01-01T00:30:00+05:30")},
		{name: "created-at-min", rule: "created_at: 1970-01-01T00:00:00Z is the first instant allowed (0 microseconds)",
			edit: at("1970-01-01T00:00:00Z")},
		{name: "created-at-min-via-offset", rule: "created_at: the range is checked on the UTC value (1969 local is 1970 UTC)",
			edit: at("1969-12-31T23:00:00-01:00")},
		{name: "created-at-max", rule: "created_at: 9999-12-31T23:59:59.999999Z is the last instant allowed; truncation brings the nanoseconds into range",
			edit: at("9999-12-31T23:59:59.999999999Z")},
		{name: "text-nfc", rule: "text: no Unicode normalisation (this is U+00EB; see text-nfd)",
			edit: func(v *vectorInput) { v.Actor = "Zo\u00eb" }},
		{name: "text-nfd", rule: "text: no Unicode normalisation (this is e U+0308; see text-nfc)",
			edit: func(v *vectorInput) { v.Actor = "Zoe\u0308" }},
		{name: "text-spaces-kept", rule: "text: white space is not trimmed or collapsed",
			edit: func(v *vectorInput) {
				v.Actor, v.ProducerID, v.DORepository = " alice  smith ", "repo service", "\u3000"
			}},
		{name: "text-multibyte", rule: "text: any UTF-8 outside the refused code points",
			edit: func(v *vectorInput) { v.Actor, v.ProducerID = "张三 <zhang@example.cn>", "\U0001F600-svc" }},
		{name: "text-invisible-characters-allowed", rule: "text: zero-width characters, U+FEFF, U+00A0, private use and noncharacters are not refused",
			edit: func(v *vectorInput) {
				v.Actor, v.DORepository = "a\u200bb\u200cc\u200dd\ufeffe\u00a0f", "\ue000\uffff\U0010FFFF"
			}},
		{name: "text-refused-range-boundaries", rule: "text: the code points next to each refused range are allowed",
			edit: func(v *vectorInput) {
				v.Actor = " ~\u00a0"
				v.DORepository = "\u061b\u061d\u200d\u2010\u2027\u202f\u2065\u206a"
			}},
		{name: "length-limits-at-max", rule: "lengths are bytes: op_type and do_prefix 128, doid 512, do_repository, op_actor and producer_id 256",
			edit: func(v *vectorInput) {
				v.Type = strings.Repeat("x", MaxTypeLen)
				v.DOPrefix = strings.Repeat("p", MaxDOPrefixLen)
				v.DOID = v.DOPrefix + "/" + strings.Repeat("d", MaxDOIDLen-MaxDOPrefixLen-1)
				v.DORepository = strings.Repeat("é", MaxRepositoryLen/2)
				v.Actor = strings.Repeat("é", MaxActorLen/2)
				v.ProducerID = strings.Repeat("张", MaxProducerIDLen/3) + "a"
			}},
		{name: "op-hash-supplied", rule: "op_hash: a supplied op_hash is lower-cased and must equal the computed one",
			supplyOpHash: true, edit: func(*vectorInput) {}},
	}
}

func rejectCases() []vectorCase {
	set := func(field string, f func(*vectorInput, string)) func(name, rule, value string) vectorCase {
		return func(name, rule, value string) vectorCase {
			return vectorCase{name: name, rule: rule, field: field, edit: func(v *vectorInput) { f(v, value) }}
		}
	}
	opID := set("op_id", func(v *vectorInput, s string) { v.OpID = s })
	source := set("op_source", func(v *vectorInput, s string) { v.Source = s })
	doipType := set("op_type", func(v *vectorInput, s string) { v.Type = s })
	irpType := set("op_type", func(v *vectorInput, s string) { v.Source, v.Type = "IRP", s })
	prefix := set("do_prefix", func(v *vectorInput, s string) { v.DOPrefix, v.DOID = s, s+"/x" })
	doid := set("doid", func(v *vectorInput, s string) { v.DOID = s })
	repo := set("do_repository", func(v *vectorInput, s string) { v.DORepository = s })
	actor := set("op_actor", func(v *vectorInput, s string) { v.Actor = s })
	producer := set("producer_id", func(v *vectorInput, s string) { v.ProducerID = s })
	alg := set("hash_alg", func(v *vectorInput, s string) { v.HashAlg = s })
	req := set("request_body_hash", func(v *vectorInput, s string) { v.RequestBodyHash = s })
	client := set("client_ip", func(v *vectorInput, s string) { v.ClientIP = s })
	server := set("server_ip", func(v *vectorInput, s string) { v.ServerIP = s })
	created := set("created_at", func(v *vectorInput, s string) { v.CreatedAt = s })
	opHash := set("op_hash", func(v *vectorInput, s string) { v.OpHash = s })
	signer := set("signer", func(v *vectorInput, s string) { v.Signer = s })
	hex64 := strings.Repeat("ab", 32)

	cases := []vectorCase{
		opID("op-id-braces", "op_id: only the 36-character form", "{0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b}"),
		opID("op-id-urn", "op_id: only the 36-character form", "urn:uuid:0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"),
		opID("op-id-no-hyphens", "op_id: only the 36-character form", "0190a1b2c3d47e5f8a6b7c8d9e0f1a2b"),
		opID("op-id-nil", "op_id: not the nil UUID", "00000000-0000-0000-0000-000000000000"),
		opID("op-id-not-hex", "op_id: hex digits", "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2g"),
		opID("op-id-hyphen-misplaced", "op_id: hyphens after 8, 12, 16 and 20 digits", "0190a1b-2c3d4-7e5f-8a6b-7c8d9e0f1a2b"),
		opID("op-id-trailing-space", "op_id: no white space", "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b "),
		opID("op-id-short", "op_id: 36 characters", "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2"),
		source("op-source-empty", "op_source: required", ""),
		source("op-source-lower-case", "op_source: exactly DOIP or IRP", "doip"),
		source("op-source-unknown", "op_source: exactly DOIP or IRP", "HTTP"),
		source("op-source-trailing-space", "op_source: exactly DOIP or IRP", "DOIP "),
		doipType("op-type-empty", "op_type: required", ""),
		doipType("op-type-too-long", "op_type: at most 128 bytes", strings.Repeat("x", MaxTypeLen+1)),
		doipType("op-type-too-long-bytes", "op_type: at most 128 bytes, counted in bytes (65 characters)", strings.Repeat("é", MaxTypeLen/2)+"x"),
		doipType("op-type-doip-space", "op_type: no space for DOIP", "Op. Create"),
		doipType("op-type-tab", "op_type: text (tab is a control character)", "Op.Create\t"),
		irpType("irp-zero", "op_type: IRP op code from 1", "0"),
		irpType("irp-leading-zero", "op_type: IRP op code without leading zeros, not rewritten", "0100"),
		irpType("irp-plus-sign", "op_type: IRP op code without sign", "+100"),
		irpType("irp-negative", "op_type: IRP op code from 1", "-1"),
		irpType("irp-overflow", "op_type: IRP op code up to 2^31-1", "2147483648"),
		irpType("irp-name", "op_type: IRP op code in decimal", "CREATE_HANDLE"),
		irpType("irp-leading-space", "op_type: IRP op code without spaces", " 100"),
		irpType("irp-exponent", "op_type: IRP op code in decimal digits", "1e2"),
		irpType("irp-fullwidth-digits", "op_type: IRP op code in ASCII digits", "\uff11\uff10\uff10"),
		prefix("do-prefix-empty", "do_prefix: required", ""),
		prefix("do-prefix-slash", "do_prefix: no '/'", "10.1000/x"),
		prefix("do-prefix-too-long", "do_prefix: at most 128 bytes", strings.Repeat("p", MaxDOPrefixLen+1)),
		doid("doid-empty", "doid: required", ""),
		doid("doid-no-slash", "doid: prefix/local", "10.1000"),
		doid("doid-no-prefix", "doid: starts with do_prefix + '/'", "object-001"),
		doid("doid-other-prefix", "doid: starts with do_prefix + '/'", "10.2000/object-001"),
		doid("doid-prefix-of-prefix", "doid: starts with do_prefix + '/'", "10.10001/object-001"),
		{name: "doid-prefix-case", rule: "doid: compared with do_prefix byte for byte", field: "doid",
			edit: func(v *vectorInput) { v.DOPrefix, v.DOID = "ABC.1000", "abc.1000/x" }},
		doid("doid-empty-local-part", "doid: non-empty local part", "10.1000/"),
		doid("doid-too-long-bytes", "doid: at most 512 bytes, counted in bytes (261 characters)", "10.1000/"+strings.Repeat("é", 252)+"a"),
		doid("doid-rlo", "doid: text (U+202E)", "10.1000/txt.\u202egpj"),
		doid("doid-invalid-utf8", "doid: valid UTF-8", "10.1000/\xff"),
		repo("do-repository-too-long", "do_repository: at most 256 bytes", strings.Repeat("é", MaxRepositoryLen/2)+"a"),
		repo("do-repository-tab", "do_repository: text", "my\trepo"),
		actor("op-actor-empty", "op_actor: required", ""),
		actor("op-actor-too-long-bytes", "op_actor: at most 256 bytes, counted in bytes (129 characters)", strings.Repeat("é", MaxActorLen/2+1)),
		producer("producer-id-empty", "producer_id: required", ""),
		producer("producer-id-too-long", "producer_id: at most 256 bytes", strings.Repeat("s", MaxProducerIDLen+1)),
		producer("producer-id-bidi-isolate", "producer_id: text (U+2066)", "svc\u2066x\u2069"),
		alg("hash-alg-upper-case", "hash_alg: case matters", "SHA256"),
		alg("hash-alg-unknown", "hash_alg: one of sha256, sha384, sha512, sm3", "md5"),
		alg("hash-alg-hyphen", "hash_alg: one of sha256, sha384, sha512, sm3", "sha-256"),
		alg("hash-alg-trailing-space", "hash_alg: one of sha256, sha384, sha512, sm3", "sha256 "),
		req("hash-short", "body hashes: exactly 64 hex digits for sha256", hex64[:63]),
		req("hash-long", "body hashes: exactly 64 hex digits for sha256", hex64+"ab"),
		req("hash-sha384-length-for-sha256", "body hashes: the length of hash_alg's digest", hex64+hex64[:32]),
		req("hash-0x-prefix", "body hashes: hex digits only", "0x"+hex64[:62]),
		req("hash-not-hex", "body hashes: hex digits only", hex64[:63]+"g"),
		req("hash-space", "body hashes: hex digits only", hex64[:31]+" "+hex64[:32]),
		{name: "hash-sha256-length-for-sha512", rule: "body hashes: the length of hash_alg's digest", field: "response_body_hash",
			edit: func(v *vectorInput) { v.HashAlg, v.RequestBodyHash, v.ResponseBodyHash = "sha512", "", hex64 }},
		{name: "hash-sha512-length-for-sm3", rule: "body hashes: the length of hash_alg's digest", field: "response_body_hash",
			edit: func(v *vectorInput) { v.HashAlg, v.RequestBodyHash, v.ResponseBodyHash = "sm3", "", hex64+hex64 }},
		client("ipv6-zone", "IP: no zone", "fe80::1%eth0"),
		client("ipv4-zero-padded-last", "IPv4: no leading zero, not rewritten", "192.0.2.01"),
		client("ipv4-zero-padded-middle", "IPv4: no leading zero, not rewritten", "192.000.2.1"),
		client("ipv4-zero-padded-first", "IPv4: no leading zero, not rewritten", "01.2.3.4"),
		client("ipv4-mapped-zero-padded", "IPv6: the embedded IPv4 follows the IPv4 rules", "::ffff:01.2.3.4"),
		client("ipv4-three-parts", "IPv4: four numbers", "1.2.3"),
		client("ipv4-five-parts", "IPv4: four numbers", "1.2.3.4.5"),
		client("ipv4-hex", "IPv4: decimal", "0xc0.0.2.1"),
		client("ipv4-one-number", "IPv4: four numbers", "3221225985"),
		client("ipv4-too-big", "IPv4: numbers up to 255", "256.0.0.1"),
		client("ipv4-arabic-digit", "IPv4: ASCII digits", "\u0661.2.3.4"),
		client("ip-host-name", "IP: no host names", "localhost"),
		client("ip-with-port", "IP: no port", "192.0.2.1:8080"),
		client("ip-brackets", "IP: no brackets", "[::1]"),
		client("ip-prefix-length", "IP: no prefix length", "192.0.2.0/24"),
		client("ip-leading-space", "IP: no white space", " 192.0.2.1"),
		client("ip-trailing-newline", "IP: no white space", "192.0.2.1\n"),
		client("ipv6-empty-ellipsis", "IPv6: :: stands for at least one group", "1:2:3:4:5:6:7:8::"),
		client("ipv6-two-ellipses", "IPv6: at most one ::", "1::2::3"),
		client("ipv6-five-digit-group", "IPv6: groups of 1 to 4 hex digits", "00001::"),
		client("ipv6-nine-groups", "IPv6: eight groups", "1:2:3:4:5:6:7:8:9"),
		client("ipv6-seven-groups", "IPv6: eight groups", "1:2:3:4:5:6:7"),
		client("ipv6-embedded-ipv4-too-late", "IPv6: an embedded IPv4 replaces the last two groups", "1:2:3:4:5:6:7:1.2.3.4"),
		client("ipv6-embedded-ipv4-not-last", "IPv6: an embedded IPv4 comes last", "::1.2.3.4:5"),
		client("ipv6-leading-colon", "IPv6: RFC 4291 text", ":1::"),
		server("ipv4-mapped-zone", "IP: no zone", "::ffff:192.0.2.1%1"),
		server("ipv4-zone", "IP: no zone", "192.0.2.1%eth0"),
		created("created-at-before-1970", "created_at: from 1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z"),
		created("created-at-1969-utc", "created_at: the range is checked on the UTC value (1970 local is 1969 UTC)", "1970-01-01T00:30:00+01:00"),
		created("created-at-after-9999-utc", "created_at: up to 9999-12-31T23:59:59.999999Z, checked on the UTC value", "9999-12-31T23:30:00-01:00"),
		created("created-at-year-1", "created_at: only the exact instant 0001-01-01T00:00:00Z means unset", "0001-01-01T00:00:01Z"),
		opHash("op-hash-mismatch", "op_hash: a supplied op_hash must equal the computed one", hex64),
		opHash("op-hash-short", "op_hash: 64 hex digits", "abcd"),
		opHash("op-hash-not-hex", "op_hash: 64 hex digits", hex64[:63]+"z"),
		signer("signer-too-long", "signer: at most 256 bytes", strings.Repeat("k", MaxSignerLen+1)),
		signer("signer-control", "signer: text", "example.com/log+01234567\n"),
		{name: "sign-without-signer", rule: "sign: needs a signer", field: "signer",
			edit: func(v *vectorInput) { v.Sign = []byte{1, 2, 3} }},
		{name: "sign-too-long", rule: "sign: at most 512 bytes", field: "sign",
			edit: func(v *vectorInput) {
				v.Signer, v.Sign = "example.com/log+01234567", bytes.Repeat([]byte{7}, MaxSignLen+1)
			}},
	}
	refused := []rune{0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x7f, 0x80, 0x85, 0x9b, 0x9f, 0x2028, 0x2029,
		0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069}
	for _, r := range refused {
		cases = append(cases, actor(fmt.Sprintf("text-refused-u%04x", r), "text: "+codepoint(r)+" is refused", "alice"+string(r)))
	}
	for _, c := range []struct{ name, bytes string }{
		{"continuation-byte", "\x80"},
		{"overlong", "\xc0\xaf"},
		{"surrogate", "\xed\xa0\x80"},
		{"above-10ffff", "\xf4\x90\x80\x80"},
		{"truncated", "\xe2\x82"},
		{"byte-ff", "\xff"},
		{"bad-continuation", "\xc3\x28"},
	} {
		cases = append(cases, actor("utf8-"+c.name, "text: valid UTF-8", "al"+c.bytes+"ice"))
	}
	return cases
}

// operation converts an input to an Operation.
func (in vectorInput) operation() (*Operation, error) {
	op := &Operation{
		OpID: in.OpID, Source: Source(in.Source), Type: in.Type, DOID: in.DOID, DOPrefix: in.DOPrefix,
		DORepository: in.DORepository, Actor: in.Actor, ProducerID: in.ProducerID, HashAlg: HashAlg(in.HashAlg),
		RequestBodyHash: in.RequestBodyHash, ResponseBodyHash: in.ResponseBodyHash,
		ClientIP: in.ClientIP, ServerIP: in.ServerIP, OpHash: in.OpHash, Signer: in.Signer, Sign: in.Sign,
	}
	if in.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, in.CreatedAt)
		if err != nil {
			return nil, err
		}
		op.CreatedAt = t
	}
	return op, nil
}

// textFields lists the input's text fields by JSON name.
func (in *vectorInput) textFields() []struct {
	name string
	p    *string
} {
	return []struct {
		name string
		p    *string
	}{
		{"op_id", &in.OpID}, {"op_source", &in.Source}, {"op_type", &in.Type}, {"doid", &in.DOID},
		{"do_prefix", &in.DOPrefix}, {"do_repository", &in.DORepository}, {"op_actor", &in.Actor},
		{"producer_id", &in.ProducerID}, {"hash_alg", &in.HashAlg}, {"request_body_hash", &in.RequestBodyHash},
		{"response_body_hash", &in.ResponseBodyHash}, {"client_ip", &in.ClientIP}, {"server_ip", &in.ServerIP},
		{"created_at", &in.CreatedAt}, {"op_hash", &in.OpHash}, {"signer", &in.Signer},
	}
}

// toJSON splits an input into its JSON form and the hex of the fields
// that are not valid UTF-8.
func (in vectorInput) toJSON() (jsonInput, map[string]string) {
	var j jsonInput
	ptrs := map[string]**string{
		"op_id": &j.OpID, "op_source": &j.Source, "op_type": &j.Type, "doid": &j.DOID, "do_prefix": &j.DOPrefix,
		"do_repository": &j.DORepository, "op_actor": &j.Actor, "producer_id": &j.ProducerID, "hash_alg": &j.HashAlg,
		"request_body_hash": &j.RequestBodyHash, "response_body_hash": &j.ResponseBodyHash, "client_ip": &j.ClientIP,
		"server_ip": &j.ServerIP, "created_at": &j.CreatedAt, "op_hash": &j.OpHash, "signer": &j.Signer,
	}
	optional := map[string]bool{"created_at": true, "op_hash": true, "signer": true}
	var raw map[string]string
	for _, f := range in.textFields() {
		s := *f.p
		switch {
		case !utf8.ValidString(s):
			if raw == nil {
				raw = map[string]string{}
			}
			raw[f.name] = hex.EncodeToString([]byte(s))
		case s != "" || !optional[f.name]:
			*ptrs[f.name] = &s
		}
	}
	if len(in.Sign) > 0 {
		s := hex.EncodeToString(in.Sign)
		j.SignHex = &s
	}
	return j, raw
}

// fromJSON is the inverse of toJSON.
func fromJSON(j jsonInput, raw map[string]string) (vectorInput, error) {
	var in vectorInput
	vals := map[string]*string{
		"op_id": j.OpID, "op_source": j.Source, "op_type": j.Type, "doid": j.DOID, "do_prefix": j.DOPrefix,
		"do_repository": j.DORepository, "op_actor": j.Actor, "producer_id": j.ProducerID, "hash_alg": j.HashAlg,
		"request_body_hash": j.RequestBodyHash, "response_body_hash": j.ResponseBodyHash, "client_ip": j.ClientIP,
		"server_ip": j.ServerIP, "created_at": j.CreatedAt, "op_hash": j.OpHash, "signer": j.Signer,
	}
	known := map[string]bool{}
	for _, f := range in.textFields() {
		known[f.name] = true
		if v := vals[f.name]; v != nil {
			*f.p = *v
		}
		if h, ok := raw[f.name]; ok {
			b, err := hex.DecodeString(h)
			if err != nil {
				return in, fmt.Errorf("input_hex %s: %w", f.name, err)
			}
			*f.p = string(b)
		}
	}
	for name := range raw {
		if !known[name] {
			return in, fmt.Errorf("input_hex names an unknown field %q", name)
		}
	}
	if j.SignHex != nil {
		b, err := hex.DecodeString(*j.SignHex)
		if err != nil {
			return in, fmt.Errorf("sign_hex: %w", err)
		}
		in.Sign = b
	}
	return in, nil
}

func parseNow(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func normalisedOf(op *Operation) normalisedFields {
	return normalisedFields{
		OpID: op.OpID, Source: string(op.Source), Type: op.Type, DOID: op.DOID, DOPrefix: op.DOPrefix,
		DORepository: op.DORepository, Actor: op.Actor, ProducerID: op.ProducerID, HashAlg: string(op.HashAlg),
		RequestBodyHash: op.RequestBodyHash, ResponseBodyHash: op.ResponseBodyHash,
		ClientIP: op.ClientIP, ServerIP: op.ServerIP, CreatedAt: op.CreatedAt.UTC().Format(vectorTime),
	}
}

// unsetCreatedAt reports whether the input leaves created_at to the time
// of recording.
func unsetCreatedAt(in vectorInput) bool {
	if in.CreatedAt == "" {
		return true
	}
	t, err := time.Parse(time.RFC3339Nano, in.CreatedAt)
	return err == nil && t.IsZero()
}

// frame is the framing of both encodings: magic and version, then each
// field as a u32 big-endian length and its bytes.
func frame(magic string, fields [][]byte) []byte {
	b := []byte(magic)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// buildVectors runs the tables through the code and returns the file.
func buildVectors(t *testing.T) vectorFile {
	t.Helper()
	f := vectorFile{
		Comment: []string{
			"Test vectors of the trustlog message format, version 1 (docs/message-format.md). Generated: do not edit.",
			"accept: input is an operation as an application gives it (absent created_at = unset, then now is the time of recording;",
			"  absent op_hash/signer/sign_hex = empty). normalised is the result of normalisation, created_at in UTC with 6 digits;",
			"  created_at_micros (a decimal string) is what the content encodes; content_hex is the TLOP content, op_hash its SHA-256,",
			"  sealed_hex the TLOS encoding with empty signer and sign.",
			"reject: input breaks the rules of exactly one field, the field it is refused for. input_hex holds, in hex, the raw bytes of",
			"  fields that are not valid UTF-8 (JSON cannot carry them), and replaces them in input.",
			"malformed: sealed_hex is a TLOS payload a decoder must reject.",
		},
		Spec:          "docs/message-format.md",
		FormatVersion: FormatVersion,
		Generator:     "go test ./core -run '^TestMessageFormatVectors$' -update",
		Checkers:      []string{"go test ./core -run '^TestMessageFormatVectors'", "python3 scripts/vectors/check_vectors.py"},
	}
	var worked *Operation
	for _, c := range acceptCases() {
		in := baseInput()
		c.edit(&in)
		require.Equal(t, unsetCreatedAt(in), c.now != "", "%s: now is given exactly when created_at is unset", c.name)
		now, err := parseNow(c.now)
		require.NoError(t, err, c.name)
		if c.supplyOpHash {
			op, err := in.operation()
			require.NoError(t, err, c.name)
			require.NoError(t, op.seal(0, now, nil), c.name)
			in.OpHash = strings.ToUpper(op.OpHash)
		}
		op, err := in.operation()
		require.NoError(t, err, c.name)
		require.NoError(t, op.seal(0, now, nil), c.name)
		sealed, err := op.AppendSealed(nil)
		require.NoError(t, err, c.name)
		j, raw := in.toJSON()
		require.Empty(t, raw, "%s: an accepted input is valid UTF-8", c.name)
		f.Accept = append(f.Accept, acceptVector{
			Name: c.name, Rule: c.rule, Now: c.now, Input: j,
			Normalised:      normalisedOf(op),
			CreatedAtMicros: op.CreatedAt.UnixMicro(),
			ContentHex:      hex.EncodeToString(op.AppendCanonical(nil)),
			OpHash:          op.OpHash,
			SealedHex:       hex.EncodeToString(sealed),
		})
		if c.name == "worked-example" {
			worked = op
		}
	}
	for _, c := range rejectCases() {
		in := baseInput()
		c.edit(&in)
		require.False(t, unsetCreatedAt(in) && c.now == "", "%s: created_at unset needs now", c.name)
		now, err := parseNow(c.now)
		require.NoError(t, err, c.name)
		op, err := in.operation()
		require.NoError(t, err, c.name)
		var ve *ValidationError
		require.ErrorAs(t, op.seal(0, now, nil), &ve, c.name)
		require.Equal(t, c.field, ve.Field, "%s: %v", c.name, ve)
		j, raw := in.toJSON()
		f.Reject = append(f.Reject, rejectVector{Name: c.name, Rule: c.rule, Field: c.field, Now: c.now, Input: j, InputHex: raw})
	}

	require.NotNil(t, worked)
	good, err := worked.AppendSealed(nil)
	require.NoError(t, err)
	fields, err := splitFields(good, sealedMagic, sealedFields)
	require.NoError(t, err)
	content := func(fs [][]byte) [][]byte { // fs with op_hash recomputed
		out := append([][]byte(nil), fs...)
		sum := sha256.Sum256(frame("TLOP\x01", out[:contentFields]))
		out[14] = sum[:]
		return out
	}
	with := func(i int, v []byte) [][]byte {
		out := append([][]byte(nil), fields...)
		out[i] = v
		return out
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 1
		return b
	}
	actorAt := bytes.Index(good, []byte("alice"))
	require.Positive(t, actorAt)
	for _, m := range []struct {
		name, rule string
		b          []byte
	}{
		{"empty", "a payload starts with TLOS and the version", nil},
		{"bad-magic", "magic TLOS", append([]byte("TLOX"), good[4:]...)},
		{"content-magic", "a sealed payload is TLOS, not the TLOP content", worked.AppendCanonical(nil)},
		{"bad-version", "version 0x01", append([]byte("TLOS\x02"), good[5:]...)},
		{"magic-only", "17 fields", []byte("TLOS\x01")},
		{"truncated", "a length running past the end", good[:len(good)-1]},
		{"trailing-byte", "no trailing bytes", append(append([]byte(nil), good...), 0)},
		{"length-past-end", "a length running past the end", append([]byte("TLOS\x01\xff\xff\xff\xff"), good[9:]...)},
		{"sixteen-fields", "17 fields", frame("TLOS\x01", fields[:16])},
		{"eighteen-fields", "17 fields", frame("TLOS\x01", append(append([][]byte(nil), fields...), nil))},
		{"op-hash-31-bytes", "op_hash is 32 bytes", frame("TLOS\x01", with(14, fields[14][:31]))},
		{"op-hash-hex", "op_hash is 32 raw bytes, not hex", frame("TLOS\x01", with(14, []byte(worked.OpHash)))},
		{"op-hash-mismatch", "op_hash is the SHA-256 of the content", flip(len(good) - 4 - 4 - 1)},
		{"content-altered", "op_hash is the SHA-256 of the content", flip(actorAt)},
		{"created-at-7-bytes", "created_at is 8 bytes", frame("TLOS\x01", content(with(13, fields[13][1:])))},
		{"created-at-9-bytes", "created_at is 8 bytes", frame("TLOS\x01", content(with(13, append([]byte{0}, fields[13]...))))},
	} {
		_, err := DecodeSealed(m.b)
		require.ErrorIs(t, err, ErrMalformed, m.name)
		f.Malformed = append(f.Malformed, malformedVector{Name: m.name, Rule: m.rule, SealedHex: hex.EncodeToString(m.b)})
	}
	return f
}

// marshalVectors writes the file: indented JSON, ASCII only (every other
// character as a \u escape, so no editor or terminal shows a bidi control
// or an invisible character as anything but its code).
func marshalVectors(f vectorFile) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, r := range buf.String() {
		switch {
		case r == 0x7f || r >= 0x80 && r < 0x10000:
			fmt.Fprintf(&out, `\u%04x`, r)
		case r >= 0x10000:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			out.WriteRune(r)
		}
	}
	return out.Bytes(), nil
}

// TestMessageFormatVectors keeps the vector file equal to what the tables
// and the code give (-update rewrites it), then checks every vector in the
// file against the code: accepted inputs normalise, encode and hash to the
// file's values, rejected ones are refused for the file's field, malformed
// payloads do not decode.
func TestMessageFormatVectors(t *testing.T) {
	t.Parallel()
	want, err := marshalVectors(buildVectors(t))
	require.NoError(t, err)
	if *updateVectors {
		require.NoError(t, os.MkdirAll(filepath.Dir(vectorsPath), 0o755))
		require.NoError(t, os.WriteFile(vectorsPath, want, 0o644))
	}
	got, err := os.ReadFile(vectorsPath)
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got),
		"%s is out of date: run go test ./core -run '^TestMessageFormatVectors$' -update (a change of an accepted vector's bytes is a format change and needs a new version)", vectorsPath)

	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&f))
	assert.Equal(t, FormatVersion, f.FormatVersion)
	checkCoverage(t, f)

	golden, err := os.ReadFile("testdata/golden-op-v1.hex")
	require.NoError(t, err)
	lines := strings.Fields(string(golden))
	require.Len(t, lines, 2)
	for _, v := range f.Accept {
		t.Run("accept/"+v.Name, func(t *testing.T) {
			checkAccept(t, v)
			if v.Name == "worked-example" {
				assert.Equal(t, lines[0], v.ContentHex, "the worked example is the golden file's")
				assert.Equal(t, lines[1], v.OpHash)
			}
		})
	}
	for _, v := range f.Reject {
		t.Run("reject/"+v.Name, func(t *testing.T) { checkReject(t, v) })
	}
	for _, v := range f.Malformed {
		t.Run("malformed/"+v.Name, func(t *testing.T) {
			b, err := hex.DecodeString(v.SealedHex)
			require.NoError(t, err)
			_, err = DecodeSealed(b)
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
}

// checkCoverage asserts the file has a vector for each rule family of the
// page, so a table edit cannot silently drop one.
func checkCoverage(t *testing.T, f vectorFile) {
	t.Helper()
	rejected := map[string]int{}
	for _, v := range f.Reject {
		rejected[v.Field]++
	}
	for _, field := range []string{"op_id", "op_source", "op_type", "doid", "do_prefix", "do_repository", "op_actor",
		"producer_id", "hash_alg", "request_body_hash", "response_body_hash", "client_ip", "server_ip",
		"created_at", "op_hash", "signer", "sign"} {
		assert.Positive(t, rejected[field], "no rejected vector for %s", field)
	}
	names := map[string]bool{}
	for _, v := range f.Accept {
		names[v.Name] = true
	}
	for _, v := range f.Reject {
		names[v.Name] = true
	}
	for _, n := range []string{"worked-example", "hash-alg-empty-means-sha256", "created-at-unset", "ipv4-mapped-from-hex",
		"ipv6-rfc5952-tie-and-trailing-run", "text-nfd", "irp-leading-zero", "ipv6-zone", "ipv4-zero-padded-last",
		"utf8-surrogate", "op-actor-too-long-bytes", "created-at-1969-utc"} {
		assert.True(t, names[n], "vector %s is missing", n)
	}
	assert.GreaterOrEqual(t, len(f.Accept), 40)
	assert.GreaterOrEqual(t, len(f.Reject), 120)
	assert.GreaterOrEqual(t, len(f.Malformed), 15)
}

func checkAccept(t *testing.T, v acceptVector) {
	in, err := fromJSON(v.Input, nil)
	require.NoError(t, err)
	now, err := parseNow(v.Now)
	require.NoError(t, err)
	op, err := in.operation()
	require.NoError(t, err)
	require.NoError(t, op.Validate(), "the input is valid before normalisation too")
	require.NoError(t, op.seal(0, now, nil))
	require.False(t, op.CreatedAt.IsZero(), "created_at is set (a vector leaving it unset gives now)")
	assert.Equal(t, v.Normalised, normalisedOf(op))
	assert.Equal(t, v.CreatedAtMicros, op.CreatedAt.UnixMicro())
	content := op.AppendCanonical(nil)
	assert.Equal(t, v.ContentHex, hex.EncodeToString(content))
	assert.Equal(t, v.OpHash, hexDigest(sha256.Sum256(content)))
	assert.Equal(t, v.OpHash, op.OpHash)
	sealed, err := op.AppendSealed(nil)
	require.NoError(t, err)
	assert.Equal(t, v.SealedHex, hex.EncodeToString(sealed))

	decoded, err := DecodeSealed(sealed)
	require.NoError(t, err)
	assert.Equal(t, v.Normalised, normalisedOf(decoded))
	assert.Equal(t, v.OpHash, decoded.OpHash)

	// Normalisation is idempotent: the normalised fields seal to the same
	// bytes.
	again := *decoded
	again.OpHash = ""
	require.NoError(t, again.seal(0, time.Time{}, nil))
	assert.Equal(t, v.ContentHex, hex.EncodeToString(again.AppendCanonical(nil)))
}

func checkReject(t *testing.T, v rejectVector) {
	in, err := fromJSON(v.Input, v.InputHex)
	require.NoError(t, err)
	now, err := parseNow(v.Now)
	require.NoError(t, err)
	op, err := in.operation()
	require.NoError(t, err)
	validateErr := op.Validate()
	var ve *ValidationError
	require.ErrorAs(t, op.seal(0, now, nil), &ve)
	assert.True(t, errors.Is(ve, ErrInvalidOperation))
	assert.Equal(t, v.Field, ve.Field, "%v", ve)
	// Validate, on the input as given, agrees, except for an op_hash that
	// only sealing can compare.
	if v.Name != "op-hash-mismatch" {
		var vve *ValidationError
		require.ErrorAs(t, validateErr, &vve, "Validate accepts what Seal refuses")
		assert.Equal(t, v.Field, vve.Field, "%v", vve)
	}
}

// TestMessageFormatVectorsPython runs the independent implementation of
// docs/message-format.md, in Python's standard library, on the vector
// file: both implementations must agree on every vector.
func TestMessageFormatVectorsPython(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		msg := "python3 is not on PATH: the Python implementation of the message format (" + pythonChecker + ") is not checked"
		if testenv.Required() {
			t.Fatal(msg + "; TRUSTLOG_REQUIRE_SERVICES=1 makes this a failure")
		}
		t.Skip(msg)
	}
	raw, err := os.ReadFile(vectorsPath)
	require.NoError(t, err)
	var f vectorFile
	require.NoError(t, json.Unmarshal(raw, &f))
	out, err := exec.CommandContext(t.Context(), py, pythonChecker, vectorsPath).CombinedOutput()
	require.NoError(t, err, "%s", out)
	summary := fmt.Sprintf("check_vectors: ok: %d accepted, %d rejected, %d malformed vectors agree with %s",
		len(f.Accept), len(f.Reject), len(f.Malformed), f.Spec)
	assert.Equal(t, summary, strings.TrimSpace(string(out)))
}
