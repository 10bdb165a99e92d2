package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/core"
)

// maxLine bounds one JSON line of `record` input.
const maxLine = 1 << 20

func (a *app) recordCmd() *cobra.Command {
	var file string
	var batch int
	var publishOnly, archive bool
	var opKeys []string
	cmd := &cobra.Command{
		Use:   "record",
		Short: "Record operations read as JSON lines",
		Long: `Record operations read as JSON lines, one operation per line, from standard
input or --file. Field names are the column names (op_source, op_type, doid,
do_prefix, op_actor, producer_id, request_body_hash, …), spelled exactly,
each at most once. op_id, created_at and op_hash are filled in when absent.
Blank lines and lines starting with # are skipped.

The whole input is one transaction: if any line is wrong (malformed JSON,
invalid UTF-8, an unknown or repeated key, a field that does not validate,
an op_id repeated in the input or already stored), the command names the
line, the field or op_id, and records nothing. The input is read as a
stream; --batch operations go to the database per statement. One line of
output per operation gives its op_id and op_hash, printed once the
transaction has committed.

A line that carries a signature (sign and signer) is recorded only if it
verifies under one of the --op-key public keys (matched by key name), and
never together with --sign-key-file, which would replace it.

With --publish-only nothing is stored and each --batch is published as it
is read: a failure stops the command, and what was published before it
stays published.

With --archive the input is a prune archive ('trustlog prune --archive'):
each line is an operation as above with its op_id, created_at and op_hash,
plus the leaf_index and seq it had in the store it was
pruned from (all six required; the last three must be well-formed and are
not stored). A line whose content does not match its op_hash is refused,
naming the line. The operations are recorded with the same op_id, content,
op_hash and signature (never re-signed: --sign-key-file is refused), as
new rows of this store: they get its next seq, are pending (a relay
publishes them again, under the same op_id), and a ledger here gives them
leaf indices of its own. (With --publish-only they are published
instead.) A line with the same op_id, op_hash and leaf_index as an earlier
one is skipped: a prune that archived a batch and failed before deleting
it archives that batch again when run again, and the operation is
recorded once.`,
		Example: `  echo '{"op_source":"DOIP","op_type":"Op.Create","doid":"10.1000/obj-1","do_prefix":"10.1000","op_actor":"alice","producer_id":"svc"}' \
    | trustlog --store sqlite:app.db record
  trustlog --store sqlite:app.db --sign-key-file log.key record --file ops.jsonl
  trustlog --store sqlite:restored.db record --archive --file old.jsonl --op-key ops.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 1 || batch > core.MaxBatch {
				return usagef("--batch must be between 1 and %d", core.MaxBatch)
			}
			if archive && a.signKeyFile != "" {
				return usagef("--archive records operations as they were archived; --sign-key-file would sign them: leave it out")
			}
			in := a.stdin
			if file != "" && file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return usagef("--file: %v", err)
				}
				defer f.Close()
				in = f
			}
			strategy := core.StoreOnly
			if publishOnly {
				strategy = core.PublishOnly
			}
			c, err := a.openClient(cmd.Context(), strategy, core.EngineConfig{}, false)
			if err != nil {
				return err
			}
			defer c.Close()
			verifiers, err := readOpVerifiers(opKeys)
			if err != nil {
				return err
			}
			r := &recorder{c: c, batch: batch, seen: map[string]int{}, verifiers: verifiers, signing: a.signKeyFile != ""}
			if archive {
				r.archived = map[string]archiveKey{}
			}
			n, err := r.run(cmd.Context(), in, a.stdout)
			if err != nil {
				return err
			}
			if r.repeats > 0 {
				a.log.Info("archive lines that repeat an earlier line were recorded once", "lines", r.repeats)
			}
			a.log.Info("recorded", "operations", n)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read operations from this file instead of standard input")
	cmd.Flags().IntVar(&batch, "batch", 500, "operations per INSERT statement (with --publish-only: per publish)")
	cmd.Flags().BoolVar(&publishOnly, "publish-only", false, "publish synchronously to --sink instead of storing")
	cmd.Flags().StringArrayVar(&opKeys, "op-key", nil, "public key (note format) that signed lines must verify under (repeatable)")
	cmd.Flags().BoolVar(&archive, "archive", false, "read a prune archive: lines also carry leaf_index and seq (and, from earlier versions, published_at), and must carry op_id, created_at and op_hash")
	return cmd
}

// recorder streams JSON lines into the store in one transaction (or, with
// PublishOnly, to the sink batch by batch).
type recorder struct {
	c         *core.Client
	batch     int
	verifiers []core.Verifier // --op-key
	signing   bool            // --sign-key-file: the client signs
	seen      map[string]int  // op_id given in the input → its line
	// archived is set with --archive: op_id → what identifies its line.
	archived map[string]archiveKey
	repeats  int // --archive lines skipped as repeats of earlier ones
	ops      []*core.Operation
	lines    []int // ops[i] came from line lines[i]
	out      []byte
}

func (r *recorder) run(ctx context.Context, in io.Reader, stdout io.Writer) (int, error) {
	var tx *bun.Tx
	if r.c.Strategy() != core.PublishOnly {
		db, ok := r.c.Store().(interface{ Bun() *bun.DB })
		if !ok {
			return 0, fmt.Errorf("record: the store's driver does not expose its database handle, so the input cannot be one transaction")
		}
		t, err := db.Bun().BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		defer t.Rollback()
		tx = &t
	}
	n := 0
	flush := func() error {
		if len(r.ops) == 0 {
			return nil
		}
		if err := r.write(ctx, tx); err != nil {
			return err
		}
		n += len(r.ops)
		if tx == nil { // published: say so now
			if _, err := stdout.Write(r.out); err != nil {
				return err
			}
			r.out = r.out[:0]
		}
		r.ops, r.lines = r.ops[:0], r.lines[:0]
		return nil
	}
	err := readLines(in, func(line int, text []byte) error {
		var op *core.Operation
		var key archiveKey
		var err error
		if r.archived != nil {
			var a *archived
			a, err = decodeArchiveLine(text)
			if a != nil {
				op, key = a.Operation, archiveKey{opHash: strings.ToLower(a.OpHash), leafIndex: a.LeafIndex}
			}
		} else {
			op, err = DecodeOpLine(text)
		}
		if err != nil {
			return usagef("line %d: %v", line, err)
		}
		if op.OpID != "" {
			id := strings.ToLower(op.OpID)
			if first, ok := r.seen[id]; ok {
				if r.archived != nil && r.archived[id] == key {
					r.repeats++
					return nil
				}
				return usagef("line %d: op_id %s is already on line %d", line, op.OpID, first)
			}
			r.seen[id] = line
			if r.archived != nil {
				r.archived[id] = key
			}
		}
		if len(op.Sign) > 0 || op.Signer != "" {
			if err := r.checkSignature(op); err != nil {
				return usagef("line %d: sign: %v", line, err)
			}
		}
		r.ops, r.lines = append(r.ops, op), append(r.lines, line)
		if len(r.ops) == r.batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, usagef("no operations in the input")
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	_, err = stdout.Write(r.out)
	return n, err
}

// checkSignature verifies the signature a line carries: record stores no
// signature it has not checked under a key it was given.
func (r *recorder) checkSignature(op *core.Operation) error {
	if r.signing {
		return errors.New("the line is signed, and --sign-key-file would sign it again: record signed lines without it")
	}
	if len(r.verifiers) == 0 {
		return fmt.Errorf("signed by %q, and no --op-key to verify it with", op.Signer)
	}
	if op.Seal(nil) != nil { // its op_hash, which the signature covers
		return nil // invalid: the write refuses it, naming the field
	}
	return core.VerifyOperation(op, true, r.verifiers...)
}

// write records r.ops through tx (or publishes them) and keeps their
// output lines. An error names the input line it came from.
func (r *recorder) write(ctx context.Context, tx *bun.Tx) error {
	var err error
	if tx != nil {
		err = r.c.RecordTx(ctx, tx, r.ops...)
	} else {
		err = r.c.Record(ctx, r.ops...)
	}
	var ve *core.ValidationError
	switch {
	case errors.As(err, &ve):
		return usageError{fmt.Errorf("line %d: %s: %s: %w", r.lines[min(ve.Index, len(r.lines)-1)], ve.Field, ve.Reason, core.ErrInvalidOperation)}
	case err != nil && tx != nil:
		// Most likely an op_id the store already holds: say which.
		for i, op := range r.ops {
			if _, gerr := r.c.Store().Get(ctx, op.OpID); gerr == nil {
				return usagef("line %d: op_id %s is already stored", r.lines[i], op.OpID)
			}
		}
		return fmt.Errorf("recording the operations of lines %d to %d (nothing was recorded): %w", r.lines[0], r.lines[len(r.lines)-1], err)
	case err != nil:
		return fmt.Errorf("publishing the operations of lines %d to %d (those before line %d were published): %w", r.lines[0], r.lines[len(r.lines)-1], r.lines[0], err)
	}
	for _, op := range r.ops {
		b, _ := json.Marshal(map[string]string{"op_id": op.OpID, "op_hash": op.OpHash})
		r.out = append(append(r.out, b...), '\n')
	}
	return nil
}

// readLines calls fn with each line of r that is not blank or a comment,
// with its line number counting every line. A line over maxLine bytes is
// a usage error naming it.
func readLines(r io.Reader, fn func(line int, text []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return usagef("line %d is longer than %d bytes", n+1, maxLine)
		}
		return err
	}
	return nil
}

// DecodeOpLine decodes one JSON line of `trustlog record` input. It refuses
// what encoding/json would silently accept or change: invalid UTF-8 (raw,
// overlong or a lone surrogate escape, which it would store as U+FFFD), a
// key that matches a field only case-insensitively, a repeated key (where
// the last would win), unknown keys, an explicit created_at of the zero
// time (which would become "now"), and trailing data. A refused field is
// named in the error.
func DecodeOpLine(line []byte) (*core.Operation, error) {
	var op core.Operation
	if _, err := decodeLine(line, opKeys, &op); err != nil {
		return nil, err
	}
	return &op, nil
}

// archiveRequired are the keys every line of a prune archive has: what
// makes a re-imported operation the same one (op_id, created_at, op_hash),
// and its place in the store it was pruned from.
var archiveRequired = []string{"op_id", "created_at", "op_hash", "leaf_index", "seq"}

// decodeArchiveLine decodes one line of a prune archive, as `trustlog
// record --archive` reads it: what DecodeOpLine accepts, plus the keys
// leaf_index and seq (published_at in earlier versions) that `trustlog prune --archive` adds,
// with every key of archiveRequired given. It does not check the op_hash
// against the content: recording the operation does.
func decodeArchiveLine(line []byte) (*archived, error) {
	a := &archived{Operation: new(core.Operation)}
	keys, err := decodeLine(line, archiveKeys, a)
	if err != nil {
		return nil, err
	}
	for _, k := range archiveRequired {
		if !keys[k] {
			return nil, fmt.Errorf("%s: missing; every line of a prune archive has one", k)
		}
	}
	switch {
	case a.OpID == "":
		return nil, errors.New("op_id: empty; every line of a prune archive has one")
	case a.OpHash == "":
		return nil, errors.New("op_hash: empty; every line of a prune archive has one")
	case a.LeafIndex < 0:
		return nil, fmt.Errorf("leaf_index: %d is not a leaf index", a.LeafIndex)
	case a.Seq < 1:
		return nil, fmt.Errorf("seq: %d is not a record sequence number", a.Seq)
	}
	return a, nil
}

// archiveKey is what identifies an archive line beside its op_id: a line
// that repeats all three is the same archived operation.
type archiveKey struct {
	opHash    string
	leafIndex int64
}

// decodeLine decodes line into v (a *core.Operation or an *archived)
// after checkKeys with the allowed keys, and returns the keys given.
func decodeLine(line []byte, allowed map[string]bool, v any) (map[string]bool, error) {
	keys, err := checkKeys(line, allowed)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("not an operation: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value on the line")
	}
	if keys["created_at"] {
		var zero bool
		switch v := v.(type) {
		case *core.Operation:
			zero = v.CreatedAt.IsZero()
		case *archived:
			zero = v.CreatedAt.IsZero()
		}
		if zero {
			return nil, errors.New("created_at: the zero time is not between 1970 and 9999 (leave the key out for the time of recording)")
		}
	}
	return keys, nil
}

// jsonKeys returns the JSON names of the fields of T.
func jsonKeys[T any]() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[T]()
	for i := range t.NumField() {
		if t.Field(i).Anonymous {
			continue
		}
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// opKeys are the JSON names of core.Operation's fields; archiveKeys add
// those of a prune archive's line.
var opKeys, archiveKeys = func() (map[string]bool, map[string]bool) {
	op, archive := jsonKeys[core.Operation](), jsonKeys[archived]()
	for k := range op {
		archive[k] = true
	}
	return op, archive
}()

// checkKeys checks that line is one JSON object whose keys are in allowed
// (field names of an operation, or of an archive line), spelled exactly
// and each given once, and whose values hold only valid UTF-8 (no invalid
// bytes, no lone surrogate escape). It returns the keys.
func checkKeys(line []byte, allowed map[string]bool) (map[string]bool, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an operation: the line is not a JSON object")
	}
	keys := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not an operation: %v", err)
		}
		key, _ := tok.(string)
		if !allowed[key] {
			for k := range allowed {
				if strings.EqualFold(k, key) {
					return nil, fmt.Errorf("unknown field %q (names are case-sensitive: %q)", key, k)
				}
			}
			if archiveKeys[key] {
				return nil, fmt.Errorf("unknown field %q: a prune archive's line? record reads those with --archive", key)
			}
			return nil, fmt.Errorf("unknown field %q", key)
		}
		if keys[key] {
			return nil, fmt.Errorf("%s: given more than once", key)
		}
		keys[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %v", key, err)
		}
		if msg := checkJSONText(raw); msg != "" {
			return nil, fmt.Errorf("%s: %s", key, msg)
		}
	}
	return keys, nil
}

// checkJSONText reports what in a raw JSON value would not survive
// decoding unchanged: invalid UTF-8, or a \u escape of half a surrogate
// pair (both become U+FFFD).
func checkJSONText(raw []byte) string {
	if !utf8.Valid(raw) {
		return "is not valid UTF-8"
	}
	hex4 := func(i int) (rune, bool) { // the \uXXXX at raw[i:]
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(v), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // another escape: skip the escaped character
			continue
		}
		switch {
		case 0xd800 <= r && r <= 0xdbff:
			if lo, ok := hex4(i + 6); ok && 0xdc00 <= lo && lo <= 0xdfff {
				i += 11
				continue
			}
			return "holds half a surrogate pair (\\u" + strings.ToLower(string(raw[i+2:i+6])) + "), which is not a character"
		case 0xdc00 <= r && r <= 0xdfff:
			return "holds half a surrogate pair (\\u" + strings.ToLower(string(raw[i+2:i+6])) + "), which is not a character"
		}
		i += 5
	}
	return ""
}
