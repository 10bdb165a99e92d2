package witness_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// request is a C2SP tlog-witness add-checkpoint body.
func request(old int64, proof tlog.TreeProof, msg []byte) []byte {
	b := fmt.Appendf(nil, "old %d\n", old)
	for _, h := range proof {
		b = append(b, base64.StdEncoding.EncodeToString(h[:])+"\n"...)
	}
	return append(append(b, '\n'), msg...)
}

// TestWitnessHandler: the C2SP tlog-witness add-checkpoint API: a 200 with
// the cosignature line, and each rejection's status code.
func TestWitnessHandler(t *testing.T) {
	t.Parallel()
	signer, logKey := newLogKey(t, "log.example/http")
	w, key, _ := newWitness(t, t.TempDir(), "witness.example/http", logKey)
	var logs testenv.Buffer
	srv := httptest.NewServer(w.Handler(slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(srv.Close)
	post := func(body []byte) (int, string, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}

	l := newMemLog(t, signer).add(6, "leaf")
	cp6 := l.checkpoint()
	code, _, body := post(request(0, nil, cp6))
	require.Equal(t, http.StatusOK, code, body)
	require.True(t, strings.HasPrefix(body, "— witness.example/http ") && strings.HasSuffix(body, "\n"), body)
	n, err := note.Open(append(bytes.Clone(cp6), body...), note.VerifierList(key.Verifier()))
	require.NoError(t, err, "the response line appended to the checkpoint verifies (what a client does)")
	assert.Len(t, n.Sigs, 1)

	grown := l.clone(6).add(4, "leaf")
	forked := l.clone(5).add(5, "fork")
	badProof := grown.proof(6)
	badProof[0][0] ^= 1
	otherSigner, _ := newLogKey(t, "log.example/http")
	strangerSigner, _ := newLogKey(t, "log.example/stranger")
	for _, c := range []struct {
		name string
		body []byte
		code int
		want string
	}{
		{"conflict: stale old size", request(0, nil, grown.checkpoint()), http.StatusConflict, "6\n"},
		{"rollback below the old size", request(6, nil, l.clone(3).checkpoint()), http.StatusBadRequest, "rollback"},
		{"rollback with its own old size", request(3, nil, l.clone(3).checkpoint()), http.StatusConflict, "6\n"},
		{"fork at the same size", request(6, nil, l.clone(5).add(1, "fork").checkpoint()), http.StatusConflict, "6\n"},
		{"fork: the proof does not verify", request(6, badProof, grown.checkpoint()), http.StatusUnprocessableEntity, "fork"},
		{"fork: rewritten history", request(6, forked.proof(6), forked.checkpoint()), http.StatusUnprocessableEntity, "fork"},
		{"old size beyond the checkpoint", request(11, nil, grown.checkpoint()), http.StatusBadRequest, "larger"},
		{"unknown log", request(0, nil, newMemLog(t, strangerSigner).add(1, "x").checkpoint()), http.StatusNotFound, "unknown log"},
		{"bad log signature", request(6, grown.proof(6), newMemLog(t, otherSigner).add(10, "leaf").checkpoint()), http.StatusForbidden, "bad log signature"},
		{"malformed body", []byte("old x\n\n" + string(cp6)), http.StatusBadRequest, "malformed"},
		{"too large", bytes.Repeat([]byte("a"), 65<<10), http.StatusRequestEntityTooLarge, "64 KiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, ctype, body := post(c.body)
			assert.Equal(t, c.code, code, body)
			assert.Contains(t, body, c.want)
			if code == http.StatusConflict {
				assert.Equal(t, "text/x.tlog.size", ctype)
				assert.Equal(t, "6\n", body)
			}
		})
	}
	resp, err := http.Get(srv.URL + "/add-checkpoint")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	code, _, body = post(request(6, grown.proof(6), grown.checkpoint()))
	require.Equal(t, http.StatusOK, code, body)
	st, _, err := w.Latest(logKey.Name())
	require.NoError(t, err)
	assert.Equal(t, int64(10), st.Size)
	assert.Contains(t, logs.String(), "level=WARN msg=\"witness: checkpoint rejected\"", "a fork or a rollback is a warning")
	assert.NotContains(t, logs.String(), "PRIVATE")
}
