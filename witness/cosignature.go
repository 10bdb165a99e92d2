package witness

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Errors of the verifier's side.
var (
	// ErrPolicy: the cosignature requirement itself is wrong (K out of
	// range, a witness key given twice). A configuration error.
	ErrPolicy = errors.New("witness: invalid cosignature policy")
	// ErrQuorum: fewer valid cosignatures than required (see QuorumError).
	ErrQuorum = errors.New("witness: too few witness cosignatures")
	// ErrBadCosignature: a signature line names a trusted witness's key but
	// does not verify: the note was tampered with or forged.
	ErrBadCosignature = errors.New("witness: invalid cosignature")
	// ErrMalformedNote: the text is not a signed note.
	ErrMalformedNote = errors.New("witness: malformed signed note")
)

// Cosignature is a verified cosignature of a note.
type Cosignature struct {
	// Name is the witness's name, KeyHash its cosignature key ID.
	Name    string
	KeyHash uint32
	// Time is when the witness cosigned (the signature's timestamp).
	Time time.Time
}

// QuorumError is the ErrQuorum finding: how many valid cosignatures were
// required and found, from which witnesses, and which were missing.
type QuorumError struct {
	Want, Got int
	// Valid and Missing name the trusted witnesses whose cosignature was
	// and was not on the note.
	Valid, Missing []string
}

// Error says how many cosignatures were found and whose were missing.
func (e *QuorumError) Error() string {
	msg := fmt.Sprintf("%v: %d valid of the %d required", ErrQuorum, e.Got, e.Want)
	if len(e.Valid) > 0 {
		msg += " (cosigned by " + strings.Join(e.Valid, ", ") + ")"
	}
	if len(e.Missing) > 0 {
		msg += "; no cosignature from " + strings.Join(e.Missing, ", ")
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrQuorum) hold.
func (e *QuorumError) Unwrap() error { return ErrQuorum }

// Cosignatures returns the valid cosignatures on the signed note msg by
// the given witnesses (verifiers from NewVerifier, or any note.Verifier of
// cosignature/v1 signatures, such as transparency-dev/formats'
// NewVerifierForCosignatureV1), one per witness, in the note's order.
//
// Signature lines of other keys (the log's own signature, witnesses not
// listed) are ignored, as C2SP tlog-witness requires. A line that names a
// listed witness's key (name and key ID) but does not verify is an error
// wrapping ErrBadCosignature, as is one whose base64 is not canonical: a
// trusted key's line can only be forged. It checks no log signature: open
// the checkpoint with the log's key (ledger.OpenCheckpoint) for that.
func Cosignatures(msg []byte, witnesses []note.Verifier) ([]Cosignature, error) {
	if err := distinct(witnesses); err != nil {
		return nil, err
	}
	n, err := note.Open(msg, note.VerifierList(witnesses...))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return nil, nil
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("%w: the signature line of witness %s (key ID %08x) does not verify", ErrBadCosignature, invalid.Name, invalid.Hash)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrMalformedNote, err)
	}
	out := make([]Cosignature, 0, len(n.Sigs))
	for _, s := range n.Sigs {
		raw, err := base64.StdEncoding.Strict().DecodeString(s.Base64)
		if err != nil || base64.StdEncoding.EncodeToString(raw) != s.Base64 || len(raw) != 4+cosignatureSize {
			return nil, fmt.Errorf("%w: the signature line of witness %s is not canonical base64", ErrBadCosignature, s.Name)
		}
		ts := binary.BigEndian.Uint64(raw[4:])
		if ts > math.MaxInt64 {
			return nil, fmt.Errorf("%w: the cosignature of witness %s has a timestamp beyond 2^63-1", ErrBadCosignature, s.Name)
		}
		out = append(out, Cosignature{Name: s.Name, KeyHash: s.Hash, Time: time.Unix(int64(ts), 0).UTC()})
	}
	return out, nil
}

// VerifyCosignatures requires at least k valid cosignatures on the signed
// note msg (a cosigned checkpoint) from k different witnesses among
// witnessKeys: the check a verifier makes, after checking the log's own
// signature, to know that k witnesses it trusts saw this tree as the
// append-only continuation of every tree they saw before.
//
// witnessKeys are the trusted witnesses' verifiers (NewVerifier of each
// witness's vkey); each must be a different key, and 1 ≤ k ≤
// len(witnessKeys), else the error wraps ErrPolicy (a configuration
// error). Then:
//   - nil: at least k listed witnesses cosigned the note's text;
//   - an error wrapping ErrQuorum (a *QuorumError naming the witnesses
//     that did and did not cosign): fewer did;
//   - an error wrapping ErrBadCosignature: a line under a listed
//     witness's key does not verify, whatever k;
//   - an error wrapping ErrMalformedNote: msg is not a signed note.
//
// Signatures by unlisted keys never count and never fail the check.
// Cosignature timestamps are not compared to the clock; Cosignatures
// returns them.
func VerifyCosignatures(msg []byte, witnessKeys []note.Verifier, k int) error {
	if len(witnessKeys) == 0 {
		return fmt.Errorf("%w: no witness keys", ErrPolicy)
	}
	if k < 1 || k > len(witnessKeys) {
		return fmt.Errorf("%w: cannot require %d cosignatures from %d witness keys (want 1 to %d)", ErrPolicy, k, len(witnessKeys), len(witnessKeys))
	}
	sigs, err := Cosignatures(msg, witnessKeys)
	if err != nil {
		return err
	}
	if len(sigs) >= k {
		return nil
	}
	qe := &QuorumError{Want: k, Got: len(sigs)}
	signed := make(map[string]bool)
	for _, s := range sigs {
		signed[keyLabel(s.Name, s.KeyHash)] = true
		qe.Valid = append(qe.Valid, s.Name)
	}
	for _, v := range witnessKeys {
		if !signed[keyLabel(v.Name(), v.KeyHash())] {
			qe.Missing = append(qe.Missing, v.Name())
		}
	}
	return qe
}

// distinct refuses a witness key listed twice: it would count twice.
func distinct(witnesses []note.Verifier) error {
	seen := make(map[string]bool, len(witnesses))
	for _, v := range witnesses {
		if v == nil {
			return fmt.Errorf("%w: a nil witness key", ErrPolicy)
		}
		l := keyLabel(v.Name(), v.KeyHash())
		if seen[l] {
			return fmt.Errorf("%w: witness key %s is listed twice", ErrPolicy, l)
		}
		seen[l] = true
	}
	return nil
}

func keyLabel(name string, hash uint32) string { return fmt.Sprintf("%s+%08x", name, hash) }
