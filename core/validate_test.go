package core_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
)

func validOp() *core.Operation {
	return &core.Operation{
		Source:           core.SourceDOIP,
		Type:             core.OpCreate,
		DOID:             "10.1000/my-repo/object-001",
		DOPrefix:         "10.1000",
		DORepository:     "my-repo",
		Actor:            "alice",
		ProducerID:       "repo-service",
		RequestBodyHash:  strings.Repeat("ab", 32),
		ResponseBodyHash: strings.Repeat("cd", 32),
		ClientIP:         "192.0.2.1",
		ServerIP:         "2001:db8::2",
	}
}

// TestValidateRefuses is the bad-input table: each case is refused with a
// *ValidationError naming the field.
func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name  string
		field string
		mut   func(*core.Operation)
	}{
		{"empty operation", "op_source", func(o *core.Operation) { *o = core.Operation{} }},
		{"op_id not a uuid", "op_id", func(o *core.Operation) { o.OpID = "not-a-uuid" }},
		{"op_id urn form", "op_id", func(o *core.Operation) { o.OpID = "urn:uuid:0190a000-0000-7000-8000-000000000001" }},
		{"op_id braces", "op_id", func(o *core.Operation) { o.OpID = "{0190a000-0000-7000-8000-000000000001}" }},
		{"op_id sql", "op_id", func(o *core.Operation) { o.OpID = "1' OR '1'='1" }},
		{"op_id nul", "op_id", func(o *core.Operation) { o.OpID = "0190a000-0000-7000-8000-00000000000\x00" }},
		{"op_id nil uuid", "op_id", func(o *core.Operation) { o.OpID = "00000000-0000-0000-0000-000000000000" }},
		{"actor C1 control (NEL)", "op_actor", func(o *core.Operation) { o.Actor = "alice\u0085" }},
		{"actor C1 control (CSI)", "op_actor", func(o *core.Operation) { o.Actor = "alice\u009b" }},
		{"actor line separator", "op_actor", func(o *core.Operation) { o.Actor = "alice\u2028bob" }},
		{"actor paragraph separator", "op_actor", func(o *core.Operation) { o.Actor = "alice\u2029" }},
		{"doid right-to-left override", "doid", func(o *core.Operation) { o.DOID = o.DOPrefix + "/txt.\u202egpj" }},
		{"producer bidi isolate", "producer_id", func(o *core.Operation) { o.ProducerID = "svc\u2066x\u2069" }},
		{"repository left-to-right mark", "do_repository", func(o *core.Operation) { o.DORepository = "repo\u200e" }},
		{"actor arabic letter mark", "op_actor", func(o *core.Operation) { o.Actor = "a\u061c" }},
		{"source empty", "op_source", func(o *core.Operation) { o.Source = "" }},
		{"source unknown", "op_source", func(o *core.Operation) { o.Source = "HTTP" }},
		{"source lower case", "op_source", func(o *core.Operation) { o.Source = "doip" }},
		{"type empty", "op_type", func(o *core.Operation) { o.Type = "" }},
		{"type too long", "op_type", func(o *core.Operation) { o.Type = long(core.MaxTypeLen + 1) }},
		{"type with space", "op_type", func(o *core.Operation) { o.Type = "Op. Create" }},
		{"type control char", "op_type", func(o *core.Operation) { o.Type = "Op.Create\n" }},
		{"irp type not numeric", "op_type", func(o *core.Operation) { o.Source, o.Type = core.SourceIRP, "CREATE_HANDLE" }},
		{"irp type zero", "op_type", func(o *core.Operation) { o.Source, o.Type = core.SourceIRP, "0" }},
		{"irp type negative", "op_type", func(o *core.Operation) { o.Source, o.Type = core.SourceIRP, "-100" }},
		{"irp type leading zero", "op_type", func(o *core.Operation) { o.Source, o.Type = core.SourceIRP, "0100" }},
		{"irp type overflow", "op_type", func(o *core.Operation) { o.Source, o.Type = core.SourceIRP, "2147483648" }},
		{"prefix empty", "do_prefix", func(o *core.Operation) { o.DOPrefix = "" }},
		{"prefix with slash", "do_prefix", func(o *core.Operation) { o.DOPrefix = "10.1000/x" }},
		{"prefix too long", "do_prefix", func(o *core.Operation) { o.DOPrefix = long(core.MaxDOPrefixLen + 1) }},
		{"prefix invalid utf8", "do_prefix", func(o *core.Operation) { o.DOPrefix = "10.\xc3\x28" }},
		{"doid empty", "doid", func(o *core.Operation) { o.DOID = "" }},
		{"doid without slash", "doid", func(o *core.Operation) { o.DOID = "10.1000" }},
		{"doid without prefix", "doid", func(o *core.Operation) { o.DOID = "object-001" }},
		{"doid other prefix", "doid", func(o *core.Operation) { o.DOID = "10.2000/object-001" }},
		{"doid prefix of prefix", "doid", func(o *core.Operation) { o.DOID = "10.10001/object-001" }},
		{"doid empty local part", "doid", func(o *core.Operation) { o.DOID = "10.1000/" }},
		{"doid too long", "doid", func(o *core.Operation) { o.DOID = "10.1000/" + long(core.MaxDOIDLen) }},
		{"doid nul byte", "doid", func(o *core.Operation) { o.DOID = "10.1000/a\x00b" }},
		{"doid invalid utf8", "doid", func(o *core.Operation) { o.DOID = "10.1000/\xff\xfe" }},
		{"doid del char", "doid", func(o *core.Operation) { o.DOID = "10.1000/a\x7f" }},
		{"repository too long", "do_repository", func(o *core.Operation) { o.DORepository = long(core.MaxRepositoryLen + 1) }},
		{"repository tab", "do_repository", func(o *core.Operation) { o.DORepository = "my\trepo" }},
		{"actor empty", "op_actor", func(o *core.Operation) { o.Actor = "" }},
		{"actor too long", "op_actor", func(o *core.Operation) { o.Actor = long(core.MaxActorLen + 1) }},
		{"actor invalid utf8", "op_actor", func(o *core.Operation) { o.Actor = "\xed\xa0\x80" }},
		{"actor nul", "op_actor", func(o *core.Operation) { o.Actor = "\x00" }},
		{"producer empty", "producer_id", func(o *core.Operation) { o.ProducerID = "" }},
		{"producer too long", "producer_id", func(o *core.Operation) { o.ProducerID = long(core.MaxProducerIDLen + 1) }},
		{"hash alg unknown", "hash_alg", func(o *core.Operation) { o.HashAlg = "md5" }},
		{"request hash short", "request_body_hash", func(o *core.Operation) { o.RequestBodyHash = "abc" }},
		{"request hash long", "request_body_hash", func(o *core.Operation) { o.RequestBodyHash += "00" }},
		{"request hash not hex", "request_body_hash", func(o *core.Operation) { o.RequestBodyHash = strings.Repeat("zz", 32) }},
		{"request hash with 0x", "request_body_hash", func(o *core.Operation) { o.RequestBodyHash = "0x" + strings.Repeat("a", 62) }},
		{"request hash sha512 length for sha256", "request_body_hash", func(o *core.Operation) { o.RequestBodyHash = strings.Repeat("a", 128) }},
		{"response hash sha256 length for sha512", "response_body_hash", func(o *core.Operation) { o.HashAlg = core.HashSHA512; o.RequestBodyHash = "" }},
		{"response hash sql", "response_body_hash", func(o *core.Operation) { o.ResponseBodyHash = "'; DROP TABLE operation; --" }},
		{"client ip impossible", "client_ip", func(o *core.Operation) { o.ClientIP = "256.256.256.256" }},
		{"client ip hostname", "client_ip", func(o *core.Operation) { o.ClientIP = "localhost" }},
		{"client ip with port", "client_ip", func(o *core.Operation) { o.ClientIP = "192.0.2.1:8080" }},
		{"client ip cidr", "client_ip", func(o *core.Operation) { o.ClientIP = "192.0.2.0/24" }},
		{"server ip zone", "server_ip", func(o *core.Operation) { o.ServerIP = "fe80::1%eth0" }},
		{"server ip garbage", "server_ip", func(o *core.Operation) { o.ServerIP = "::::" }},
		{"op hash wrong length", "op_hash", func(o *core.Operation) { o.OpHash = "abcd" }},
		{"signer too long", "signer", func(o *core.Operation) { o.Signer = long(core.MaxSignerLen + 1) }},
		{"sign without signer", "signer", func(o *core.Operation) { o.Sign = []byte{1, 2, 3} }},
		{"sign too long", "sign", func(o *core.Operation) { o.Signer, o.Sign = "k", make([]byte, core.MaxSignLen+1) }},
		{"created before 1970", "created_at", func(o *core.Operation) { o.CreatedAt = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) }},
		{"created after 9999", "created_at", func(o *core.Operation) { o.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	require.GreaterOrEqual(t, len(cases), 50)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := validOp()
			tc.mut(op)
			for _, err := range []error{op.Validate(), op.Seal(nil)} {
				var ve *core.ValidationError
				require.ErrorAs(t, err, &ve)
				assert.True(t, errors.Is(err, core.ErrInvalidOperation))
				assert.Equal(t, tc.field, ve.Field, "error: %v", err)
				assert.Contains(t, err.Error(), tc.field)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	for name, mut := range map[string]func(*core.Operation){
		"minimal": func(o *core.Operation) {
			o.DORepository, o.RequestBodyHash, o.ResponseBodyHash, o.ClientIP, o.ServerIP = "", "", "", "", ""
		},
		"irp op code": func(o *core.Operation) { o.Source, o.Type = core.SourceIRP, core.IRPType(core.IRPCreateHandle) },
		"extended op": func(o *core.Operation) { o.Type = "20.5000.1234/Op.Custom" },
		"upper hex":   func(o *core.Operation) { o.RequestBodyHash = strings.Repeat("AB", 32) },
		"sha512": func(o *core.Operation) {
			o.HashAlg, o.RequestBodyHash, o.ResponseBodyHash = core.HashSHA512, strings.Repeat("a", 128), ""
		},
		"sm3":           func(o *core.Operation) { o.HashAlg = core.HashSM3 },
		"unicode actor": func(o *core.Operation) { o.Actor = "张三 <zhang@example.cn>" },
		"sql as data":   func(o *core.Operation) { o.Actor = `Robert'); DROP TABLE operation;--` },
		"max lengths": func(o *core.Operation) {
			o.Actor = strings.Repeat("é", core.MaxActorLen/2)
			o.DOID = "10.1000/" + strings.Repeat("x", core.MaxDOIDLen-8)
		},
		"uuid v4 id": func(o *core.Operation) { o.OpID = "F47AC10B-58CC-4372-A567-0E02B2C3D479" },
	} {
		t.Run(name, func(t *testing.T) {
			op := validOp()
			mut(op)
			require.NoError(t, op.Validate())
			require.NoError(t, op.Seal(nil))
			assert.Len(t, op.OpHash, 64)
			assert.Equal(t, strings.ToLower(op.RequestBodyHash), op.RequestBodyHash, "hashes are normalised")
			assert.Equal(t, strings.ToLower(op.OpID), op.OpID)
		})
	}
}

func TestSealFills(t *testing.T) {
	t.Parallel()
	op := validOp()
	op.ClientIP = "::FFFF:192.0.2.1"
	op.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))
	require.NoError(t, op.Seal(nil))
	assert.Len(t, op.OpID, 36)
	assert.Equal(t, "7", op.OpID[14:15], "generated ids are UUIDv7")
	assert.Equal(t, core.HashSHA256, op.HashAlg)
	assert.Equal(t, "::ffff:192.0.2.1", op.ClientIP)
	assert.Equal(t, time.Date(2026, 1, 2, 2, 4, 5, 678901000, time.UTC), op.CreatedAt)
	assert.Equal(t, op.ComputeHash(), op.OpHash)

	again := *op
	require.NoError(t, again.Seal(nil), "sealing twice is stable")
	assert.Equal(t, op.OpHash, again.OpHash)

	forged := *op
	forged.Actor = "mallory"
	var ve *core.ValidationError
	require.ErrorAs(t, forged.Seal(nil), &ve, "a supplied op_hash must match")
	assert.Equal(t, "op_hash", ve.Field)
}
