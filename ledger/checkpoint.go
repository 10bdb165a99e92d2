package ledger

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a commitment to the log's tree at one size, in the C2SP
// tlog-checkpoint text format: three lines, the origin (the log's
// identity, which is also the signing key's name), the tree size in
// decimal, and the root hash in standard base64. Signed, it is a note
// (golang.org/x/mod/sumdb/note), so off-the-shelf tooling verifies it.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Body returns the checkpoint's text, each line ending in a newline.
func (c Checkpoint) Body() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseCheckpoint parses a checkpoint body. Lines after the third
// (extension lines) are allowed and ignored.
func ParseCheckpoint(body []byte) (Checkpoint, error) {
	var c Checkpoint
	if !utf8.Valid(body) || !bytes.HasSuffix(body, []byte("\n")) {
		return c, fmt.Errorf("%w: checkpoint is not newline-terminated UTF-8", ErrTampered)
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		return c, fmt.Errorf("%w: checkpoint needs origin, size and root lines", ErrTampered)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return c, fmt.Errorf("%w: checkpoint size %q is not a decimal number", ErrTampered, lines[1])
	}
	h, err := decodeBase64(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return c, fmt.Errorf("%w: checkpoint root %q is not a base64 SHA-256 hash", ErrTampered, lines[2])
	}
	c.Origin, c.Size, c.Root = lines[0], n, tlog.Hash(h)
	return c, nil
}

// SignCheckpoint returns the signed note of c. The signer's name must be
// the origin.
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("ledger: key %q cannot sign checkpoints of origin %q", s.Name(), c.Origin)
	}
	return note.Sign(&note.Note{Text: string(c.Body())}, s)
}

// OpenCheckpoint verifies a signed checkpoint with the log's key and
// parses it. The checkpoint's origin must be the key's name. Signatures
// must be canonical base64 (note.Open alone accepts non-zero padding bits).
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	if err := canonicalSignatures(msg); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint signature: %v", ErrTampered, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint signature: %v", ErrTampered, err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return c, err
	}
	if c.Origin != v.Name() {
		return c, fmt.Errorf("%w: checkpoint origin %q is not the key's name %q", ErrTampered, c.Origin, v.Name())
	}
	return c, nil
}

// sigPrefix starts each signature line of a signed note.
const sigPrefix = "\u2014 "

// canonicalSignatures refuses a signed note whose signature lines ("— name
// base64") hold base64 that is not canonical. It checks only what
// note.Open leaves lenient; note.Open checks the rest of the form.
func canonicalSignatures(msg []byte) error {
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return nil
	}
	for _, line := range strings.Split(string(msg[split+2:]), "\n") {
		rest, ok := strings.CutPrefix(line, sigPrefix)
		if !ok {
			continue
		}
		_, b64, _ := strings.Cut(rest, " ")
		if _, err := decodeBase64(b64); err != nil {
			return fmt.Errorf("signature line %q is not canonical base64", line)
		}
	}
	return nil
}
