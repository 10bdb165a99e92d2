package core

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Signer signs operations. KeyName identifies the key in a way a Verifier
// of the same key reports too; it is stored with each signature.
type Signer interface {
	KeyName() string
	Sign(msg []byte) ([]byte, error)
}

// Verifier checks signatures made by one key.
type Verifier interface {
	KeyName() string
	Verify(msg, sig []byte) bool
}

// ErrBadSignature is wrapped when an operation's signature does not verify.
var ErrBadSignature = errors.New("trustlog: bad signature")

// noteKey adapts golang.org/x/mod/sumdb/note's Ed25519 signers and
// verifiers: the key name is note's "name+hash" (hash as 8 hex digits), so a
// verifier key file names exactly the key that signed.
type noteSigner struct{ note.Signer }

func (s noteSigner) KeyName() string { return keyName(s.Name(), s.KeyHash()) }

type noteVerifier struct{ note.Verifier }

func (v noteVerifier) KeyName() string { return keyName(v.Name(), v.KeyHash()) }

func keyName(name string, hash uint32) string { return fmt.Sprintf("%s+%08x", name, hash) }

// NewEd25519Signer returns a Signer for a note-format private key
// ("PRIVATE+KEY+name+hash+base64", as written by GenerateEd25519 and
// `trustlog keygen`). The error never contains the key.
func NewEd25519Signer(skey string) (Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("trustlog: not an Ed25519 note private key: %v", redactKeyErr(err))
	}
	return noteSigner{s}, nil
}

// NewEd25519Verifier returns a Verifier for a note-format public key
// ("name+hash+base64").
func NewEd25519Verifier(vkey string) (Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("trustlog: not an Ed25519 note public key: %v", err)
	}
	return noteVerifier{v}, nil
}

// GenerateEd25519 creates a key pair in note format for the given key name
// (typically the log's origin, e.g. "example.com/trustlog").
func GenerateEd25519(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// VerifyOperation checks that op's op_hash is the hash of its content and,
// when verifiers are given or requireSig is set, its signature: one of the
// verifiers (matched by KeyName) must accept it. An unsigned operation
// passes only if requireSig is false.
func VerifyOperation(op *Operation, requireSig bool, verifiers ...Verifier) error {
	if got := op.ComputeHash(); got != op.OpHash {
		return fmt.Errorf("%w: op_hash %s does not match the content (computed %s)", ErrBadSignature, op.OpHash, got)
	}
	if len(verifiers) == 0 && !requireSig {
		return nil
	}
	if len(op.Sign) == 0 {
		if requireSig {
			return fmt.Errorf("%w: operation %s is not signed", ErrBadSignature, op.OpID)
		}
		return nil
	}
	h, _ := hex.DecodeString(op.OpHash)
	for _, v := range verifiers {
		if v.KeyName() == op.Signer {
			if v.Verify(SignedMessage(h), op.Sign) {
				return nil
			}
			return fmt.Errorf("%w: operation %s: signature by %s does not verify", ErrBadSignature, op.OpID, op.Signer)
		}
	}
	return fmt.Errorf("%w: operation %s: no verifier for key %q", ErrBadSignature, op.OpID, op.Signer)
}

// redactKeyErr drops anything after the first colon of note's error, which
// never includes key material today but might quote input in the future.
func redactKeyErr(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, ':'); i >= 0 {
		return msg[:i]
	}
	return msg
}
