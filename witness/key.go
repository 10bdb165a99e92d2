package witness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Key algorithm bytes of the signed-note key format (C2SP signed-note).
const (
	algEd25519            = 0x01 // a plain Ed25519 note key
	algCosignatureEd25519 = 0x04 // an Ed25519 cosignature/v1 key (C2SP tlog-cosignature)
)

// Sizes of a cosignature/v1 signature: timestamp || Ed25519 signature.
const (
	timestampSize   = 8
	cosignatureSize = timestampSize + ed25519.SignatureSize
)

// Key errors. They never quote the key.
var (
	// ErrPrivateKey: the text is not a witness private key.
	ErrPrivateKey = errors.New("witness: not a note-format Ed25519 private key (PRIVATE+KEY+name+id+key, key type 0x04 or 0x01)")
	// ErrPublicKey: the text is not a witness public key.
	ErrPublicKey = errors.New("witness: not a note-format Ed25519 cosignature public key (name+id+key, key type 0x04 or 0x01)")
)

// GenerateKey creates a witness key pair named name (by convention a
// schema-less URL, e.g. witness.example.com/w1), in the signed-note key
// format with key type 0x04, Ed25519 cosignature/v1:
//
//	skey: PRIVATE+KEY+<name>+<key ID>+base64(0x04 || 32-byte seed)
//	vkey: <name>+<key ID>+base64(0x04 || 32-byte public key)
//
// The key ID (8 hex digits) is SHA-256(name || "\n" || 0x04 || public
// key)[:4], as C2SP tlog-cosignature requires. The vkey is what verifiers
// configure; transparency-dev/formats' NewVerifierForCosignatureV1 reads
// it too. rand is the randomness source (crypto/rand.Reader).
func GenerateKey(rand io.Reader, name string) (skey, vkey string, err error) {
	if !validName(name) {
		return "", "", fmt.Errorf("witness: key name %q: want a non-empty name without spaces or '+'", name)
	}
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return "", "", err
	}
	id := keyID(name, pub)
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, id,
		base64.StdEncoding.EncodeToString(append([]byte{algCosignatureEd25519}, priv.Seed()...)))
	return skey, verifierKey(name, id, pub), nil
}

// keyID is the C2SP tlog-cosignature key ID of an Ed25519 cosigner.
func keyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algCosignatureEd25519})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// noteKeyHash is the key hash of a plain Ed25519 note key (type 0x01).
func noteKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algEd25519})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func verifierKey(name string, id uint32, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureEd25519}, pub...)))
}

// validName is the signed-note rule for key names.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// parseKey splits a key "name+id+base64(alg || key)" (a private key
// without its PRIVATE+KEY+ prefix) and checks that the key ID is the one
// of its algorithm: a plain note key's hash for type 0x01, the
// cosignature key ID for type 0x04. It returns the name and the 32 key
// bytes; pub derives the public key from them.
func parseKey(text string, pub func(key []byte) ed25519.PublicKey) (name string, key []byte, err error) {
	name, rest, _ := strings.Cut(text, "+")
	id, key64, _ := strings.Cut(rest, "+")
	_, err1 := strconv.ParseUint(id, 16, 32)
	raw, err2 := base64.StdEncoding.Strict().DecodeString(key64)
	if len(id) != 8 || err1 != nil || err2 != nil || !validName(name) || len(raw) != 1+32 {
		return "", nil, errors.New("the layout is not name+keyID+base64(type || 32-byte key)")
	}
	alg, key := raw[0], raw[1:]
	var want uint32
	switch alg {
	case algEd25519:
		want = noteKeyHash(name, pub(key))
	case algCosignatureEd25519:
		want = keyID(name, pub(key))
	default:
		return "", nil, fmt.Errorf("key type 0x%02x is not Ed25519", alg)
	}
	if id != fmt.Sprintf("%08x", want) {
		return "", nil, errors.New("its key ID does not match the key")
	}
	return name, key, nil
}

// Signer is a witness's cosigning key: a note.Signer whose signatures are
// C2SP tlog-cosignature Ed25519 cosignature/v1 signatures over a note's
// text (timestamp || Ed25519 signature), under the cosignature key ID.
type Signer struct {
	name string
	id   uint32
	key  ed25519.PrivateKey
}

// NewSigner parses a witness private key: one from GenerateKey (key type
// 0x04) or a plain Ed25519 note key (type 0x01, as `trustlog keygen`
// writes), whose public half then cosigns under the cosignature key ID.
// Surrounding white space is ignored. The error never contains the key.
func NewSigner(skey string) (*Signer, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(skey), "PRIVATE+KEY+")
	if !ok {
		return nil, ErrPrivateKey
	}
	seedPub := func(seed []byte) ed25519.PublicKey {
		return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	}
	name, seed, err := parseKey(rest, seedPub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPrivateKey, err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Signer{name: name, id: keyID(name, priv.Public().(ed25519.PublicKey)), key: priv}, nil
}

// Name returns the witness's name.
func (s *Signer) Name() string { return s.name }

// KeyHash returns the cosignature key ID: SHA-256(name || "\n" || 0x04 ||
// public key)[:4].
func (s *Signer) KeyHash() uint32 { return s.id }

// Sign returns the cosignature of a note's text at the current time:
// an 8-byte big-endian Unix timestamp followed by the Ed25519 signature of
// "cosignature/v1\ntime <timestamp>\n" || msg.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	return s.signAt(time.Now(), msg)
}

func (s *Signer) signAt(t time.Time, msg []byte) ([]byte, error) {
	ts := t.Unix()
	if ts < 0 {
		return nil, fmt.Errorf("witness: cannot cosign at %v, before 1970", t)
	}
	sig := binary.BigEndian.AppendUint64(make([]byte, 0, cosignatureSize), uint64(ts))
	return append(sig, ed25519.Sign(s.key, cosignedMessage(uint64(ts), msg))...), nil
}

// PublicKey returns the witness's public key in vkey form (key type 0x04),
// what verifiers configure.
func (s *Signer) PublicKey() string {
	return verifierKey(s.name, s.id, s.key.Public().(ed25519.PublicKey))
}

// Verifier returns the verifier of the witness's cosignatures.
func (s *Signer) Verifier() note.Verifier {
	return &verifier{name: s.name, id: s.id, key: s.key.Public().(ed25519.PublicKey)}
}

// cosignedMessage is the message an Ed25519 cosignature/v1 signs (C2SP
// tlog-cosignature, "Ed25519 signed message"): the header line, the
// timestamp line, then the whole note text (body lines, final newline, no
// signature lines).
func cosignedMessage(ts uint64, text []byte) []byte {
	m := fmt.Appendf(make([]byte, 0, 40+len(text)), "cosignature/v1\ntime %d\n", ts)
	return append(m, text...)
}

// verifier checks Ed25519 cosignature/v1 signatures.
type verifier struct {
	name string
	id   uint32
	key  ed25519.PublicKey
}

// NewVerifier parses a witness public key: a vkey of key type 0x04
// (GenerateKey, C2SP tlog-cosignature) or a plain Ed25519 note vkey (type
// 0x01), whose key then verifies cosignatures under the cosignature key
// ID. The returned note.Verifier verifies cosignature/v1 signatures only:
// use it with VerifyCosignatures, not to check a log's own signature.
func NewVerifier(vkey string) (note.Verifier, error) {
	name, pub, err := parseKey(strings.TrimSpace(vkey), func(key []byte) ed25519.PublicKey { return key })
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPublicKey, err)
	}
	return &verifier{name: name, id: keyID(name, pub), key: pub}, nil
}

// Name returns the witness's name.
func (v *verifier) Name() string { return v.name }

// KeyHash returns the cosignature key ID.
func (v *verifier) KeyHash() uint32 { return v.id }

// Verify checks a cosignature (timestamp || signature) of a note's text.
func (v *verifier) Verify(msg, sig []byte) bool {
	if len(sig) != cosignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig)
	if ts > math.MaxInt64 {
		return false // C2SP tlog-cosignature: MUST NOT exceed 2^63 - 1
	}
	return ed25519.Verify(v.key, cosignedMessage(ts, msg), sig[timestampSize:])
}
