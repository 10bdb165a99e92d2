package witness

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-trustlog/trustlog/ledger"
)

// maxRequestSize bounds an add-checkpoint request: a checkpoint with its
// signatures and at most 63 proof hashes is a few kilobytes.
const maxRequestSize = 64 << 10

// Handler serves the witness's C2SP tlog-witness HTTP API
// (https://c2sp.org/tlog-witness), to be mounted at its submission prefix:
//
//	POST /add-checkpoint
//
// The request body is "old <size>\n", the consistency proof (one base64
// hash a line), an empty line and the signed checkpoint (what `trustlog
// prove --consistency` writes); a success is 200 with the cosignature line
// as the body. Rejections, in the specification's order: 400 malformed
// (or an old size larger than the checkpoint's), 404 unknown log, 403 bad
// log signature, 409 Conflict when the old size is not the witness's
// latest size for the log (body: that size and a newline, Content-Type
// text/x.tlog.size) or the same size has another root, 422 a consistency
// proof that does not verify, 413 a body over 64 KiB, 500 the state file
// could not be read or written. log (slog.Default when nil) records every
// outcome; a rejected fork or rollback is a warning: evidence of a
// misbehaving log.
func (w *Witness) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxRequestSize))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(rw, "request body over 64 KiB", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(rw, "cannot read the request body", http.StatusBadRequest)
			return
		}
		req, err := ledger.ParseConsistencyProof(body)
		if err != nil {
			log.Info("witness: malformed add-checkpoint request", "remote", r.RemoteAddr, "err", err)
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		c, err := w.AddCheckpoint(req.OldSize, req.Hashes, req.Checkpoint)
		var re *RejectError
		switch {
		case errors.As(err, &re):
			code := httpStatus(re)
			level := slog.LevelInfo
			if errors.Is(re, ErrFork) || errors.Is(re, ErrRollback) {
				level = slog.LevelWarn
			}
			log.Log(r.Context(), level, "witness: checkpoint rejected", "origin", re.Origin, "size", re.Size,
				"old", re.OldSize, "latest", re.Latest, "status", code, "err", re)
			if code == http.StatusConflict {
				rw.Header().Set("Content-Type", "text/x.tlog.size")
				rw.WriteHeader(code)
				io.WriteString(rw, strconv.FormatInt(re.Latest, 10)+"\n")
				return
			}
			http.Error(rw, re.Error(), code)
		case err != nil:
			log.Error("witness: add-checkpoint failed", "err", err)
			http.Error(rw, "the witness could not record the checkpoint", http.StatusInternalServerError)
		default:
			log.Info("witness: cosigned", "origin", c.Checkpoint.Origin, "size", c.Checkpoint.Size, "old", req.OldSize)
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.Write(c.Line)
		}
	})
	return mux
}

// httpStatus is the C2SP tlog-witness status code of a rejection. The
// rollback, fork and conflict findings map to what the specification's
// checks, made in its order, would answer.
func httpStatus(e *RejectError) int {
	switch {
	case errors.Is(e, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(e, ErrUnknownLog):
		return http.StatusNotFound
	case errors.Is(e, ErrBadSignature):
		return http.StatusForbidden
	case e.OldSize > e.Size:
		return http.StatusBadRequest
	case e.OldSize != e.Latest:
		return http.StatusConflict
	case errors.Is(e, ErrFork) && e.Size == e.Latest:
		return http.StatusConflict // same size, another root
	}
	return http.StatusUnprocessableEntity
}
