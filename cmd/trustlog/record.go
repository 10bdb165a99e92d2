package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
)

// maxLine bounds one JSON line of `record` input.
const maxLine = 1 << 20

func (a *app) recordCmd() *cobra.Command {
	var file string
	var batch int
	var publishOnly bool
	cmd := &cobra.Command{
		Use:   "record",
		Short: "Record operations read as JSON lines",
		Long: `Record operations read as JSON lines, one operation per line, from standard
input or --file. Field names are the column names (op_source, op_type, doid,
do_prefix, op_actor, producer_id, request_body_hash, …). op_id, created_at
and op_hash are filled in when absent.

Every line is validated first: if any is wrong, the command names the line
and the field and records nothing. Valid input is stored in transactions of
--batch operations. One line of output per operation gives its op_id and
op_hash.`,
		Example: `  echo '{"op_source":"DOIP","op_type":"Op.Create","doid":"10.1000/obj-1","do_prefix":"10.1000","op_actor":"alice","producer_id":"svc"}' \
    | trustlog --store sqlite:app.db record
  trustlog --store sqlite:app.db --sign-key-file log.key record --file ops.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 1 || batch > core.MaxBatch {
				return usagef("--batch must be between 1 and %d", core.MaxBatch)
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
			ops, err := readOps(in)
			if err != nil {
				return err
			}
			if len(ops) == 0 {
				return usagef("no operations in the input")
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
			signer, err := a.signer()
			if err != nil {
				return err
			}
			// Seal everything before writing anything.
			for i, op := range ops {
				if err := op.Seal(signer); err != nil {
					return lineError(i, err)
				}
			}
			out := json.NewEncoder(a.stdout)
			for start := 0; start < len(ops); start += batch {
				chunk := ops[start:min(start+batch, len(ops))]
				if err := c.Record(cmd.Context(), chunk...); err != nil {
					return fmt.Errorf("after %d recorded operations: %w", start, err)
				}
				for _, op := range chunk {
					out.Encode(map[string]string{"op_id": op.OpID, "op_hash": op.OpHash})
				}
			}
			a.log.Info("recorded", "operations", len(ops))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read operations from this file instead of standard input")
	cmd.Flags().IntVar(&batch, "batch", 500, "operations per transaction")
	cmd.Flags().BoolVar(&publishOnly, "publish-only", false, "publish synchronously to --sink instead of storing")
	return cmd
}

// readOps decodes JSON lines into operations. Unknown fields, trailing data
// and malformed JSON are usage errors naming the line.
func readOps(r io.Reader) ([]*core.Operation, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	var ops []*core.Operation
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		op, err := DecodeOpLine(line)
		if err != nil {
			return nil, usagef("line %d: %v", n, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, usagef("line %d is longer than %d bytes", len(ops)+1, maxLine)
		}
		return nil, err
	}
	return ops, nil
}

// DecodeOpLine decodes one JSON line of `trustlog record` input.
func DecodeOpLine(line []byte) (*core.Operation, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var op core.Operation
	if err := dec.Decode(&op); err != nil {
		return nil, fmt.Errorf("not an operation: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value on the line")
	}
	return &op, nil
}

func lineError(i int, err error) error {
	var ve *core.ValidationError
	if errors.As(err, &ve) {
		return usageError{fmt.Errorf("operation %d: %s: %s: %w", i+1, ve.Field, ve.Reason, core.ErrInvalidOperation)}
	}
	return err
}
