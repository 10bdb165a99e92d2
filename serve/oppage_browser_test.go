package serve_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/browsertest"
	"github.com/go-trustlog/trustlog/serve"
)

// tamperer serves a public log and, when told, alters what it answers
// on the way out, as a malicious or broken server (or a proxy) would.
type tamperer struct {
	inner http.Handler
	mu    sync.Mutex
	// rewrite, when set, gets each response's path and body and returns
	// the body to send.
	rewrite func(path string, body []byte) []byte
	// proofOf, when set, serves the proof of this op_id whatever
	// operation is asked for.
	proofOf string
}

func (tp *tamperer) set(rewrite func(path string, body []byte) []byte, proofOf string) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.rewrite, tp.proofOf = rewrite, proofOf
}

func (tp *tamperer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tp.mu.Lock()
	rewrite, proofOf := tp.rewrite, tp.proofOf
	tp.mu.Unlock()
	if proofOf != "" && strings.HasPrefix(r.URL.Path, "/proof/") {
		r = r.Clone(r.Context())
		r.URL.Path = "/proof/" + proofOf
		r.SetPathValue("opid", proofOf)
	}
	rec := httptest.NewRecorder()
	tp.inner.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if rewrite != nil {
		body = rewrite(r.URL.Path, body)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// splitProof cuts a tlog-proof into its lines before the blank line and
// the signed checkpoint after it.
func splitProof(t *testing.T, proof []byte) ([]string, []byte) {
	t.Helper()
	head, cp, ok := bytes.Cut(proof, []byte("\n\n"))
	require.True(t, ok)
	return strings.Split(string(head), "\n"), cp
}

func joinProof(head []string, cp []byte) []byte {
	return append([]byte(strings.Join(head, "\n")+"\n\n"), cp...)
}

// flipBase64 flips a bit of byte i of a base64 line.
func flipBase64(t *testing.T, line string, i int) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(line)
	require.NoError(t, err)
	b[i] ^= 0x01
	return base64.StdEncoding.EncodeToString(b)
}

// resign returns the signed checkpoint cp with its signatures replaced
// by (keep false) or added to (keep true) those of signers.
func resign(t *testing.T, cp []byte, v note.Verifier, keep bool, signers ...note.Signer) []byte {
	t.Helper()
	n, err := note.Open(cp, note.VerifierList(v))
	require.NoError(t, err)
	if !keep {
		n.Sigs = nil
	}
	out, err := note.Sign(n, signers...)
	require.NoError(t, err)
	return out
}

// newSigner returns a new note signer and its verifier key named name.
func newSigner(t *testing.T, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := core.GenerateEd25519(name)
	require.NoError(t, err)
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	return s, vkey
}

// TestOpPageInBrowser: the operation page in Chromium verifies a served
// operation with WebCrypto and shows its fields, a DOID that is HTML as
// text (no dialog, no script), with no console error and no CSP
// violation; then a server that alters the proof, the checkpoint, its
// signature, the key, the entry or the page makes it fail, naming the
// step; and an operation no checkpoint covers yet is "pending".
func TestOpPageInBrowser(t *testing.T) {
	l := newTestLog(t)
	l.record(t, 1, -1)
	l.sign(t) // a tree of one leaf first: a proof without hashes
	h, err := serve.NewPublicLog(l.st, serve.PublicLogOptions{LogKey: l.vkey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	tp := &tamperer{inner: h}
	srv := httptest.NewServer(tp)
	t.Cleanup(srv.Close)
	logVerifier, err := note.NewVerifier(l.vkey)
	require.NoError(t, err)

	ctx := browsertest.New(t)
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return s
	}
	open := func(opID, state string) {
		t.Helper()
		browsertest.Do(t, ctx,
			chromedp.Navigate(srv.URL+"/op/"+opID),
			chromedp.WaitVisible(chromedp.CSS(`#result[data-state="`+state+`"]`)),
		)
	}

	open(l.ops[0].OpID, "verified")
	assert.Equal(t, "1", text(`#proof dd[data-proof="size"]`))
	browsertest.NoProblems(t, ctx)

	l.record(t, 19, 6) // l.ops[7] has the DOID that is HTML
	l.sign(t)
	// Leaves at the edges of the tree of 20's subtrees: every shape of
	// inclusion proof, left and right siblings.
	for _, i := range []int{0, 1, 8, 15, 16, 19} {
		open(l.ops[i].OpID, "verified")
		assert.Equal(t, strconv.Itoa(i), text(`#proof dd[data-proof="index"]`))
	}

	// The happy path, in detail.
	op := l.ops[3]
	open(op.OpID, "verified")
	assert.Contains(t, text("#result"), "Verified in your browser: operation "+op.OpID+" is entry 3 of the log serve.test/log")
	browsertest.Until(t, ctx, `document.querySelectorAll('#steps li[data-state="ok"]').length === 6`)
	browsertest.Until(t, ctx, `document.querySelectorAll('#fields tr[data-check="same"]').length === 16`)
	assert.Equal(t, op.DOID, text(`#fields tr[data-field="doid"] td`))
	assert.Equal(t, op.Actor, text(`#fields tr[data-field="op_actor"] td`))
	assert.Equal(t, op.Type, text(`#fields tr[data-field="op_type"] td`))
	assert.Equal(t, op.OpHash, text(`#fields tr[data-field="op_hash"] td`))
	assert.Equal(t, op.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z"), text(`#fields tr[data-field="created_at"] td`))
	assert.Equal(t, op.RequestBodyHash, text(`#fields tr[data-field="request_body_hash"] td`))
	assert.Equal(t, "3", text(`#proof dd[data-proof="index"]`))
	assert.Equal(t, "20", text(`#proof dd[data-proof="size"]`))
	browsertest.Screenshot(t, ctx, "public-op-verified")
	browsertest.NoProblems(t, ctx)

	// The DOID that is HTML: text on the page, run nowhere.
	open(l.ops[7].OpID, "verified")
	assert.Equal(t, "10.1000/"+scriptDOID, text(`#fields tr[data-field="doid"] td`))
	browsertest.Until(t, ctx, `document.scripts.length === 1 && document.scripts[0].src.includes("/assets/verify.")`)
	browsertest.Until(t, ctx, `document.querySelectorAll("#fields script, #fields img").length === 0`)
	browsertest.NoProblems(t, ctx) // no dialog opened

	other, otherKey := newSigner(t, "serve.test/log") // the same name, another key
	elsewhere, elsewhereKey := newSigner(t, "other.example/log")
	for _, c := range []struct {
		name    string
		rewrite func(path string, body []byte) []byte
		proofOf string
		step    string
		text    string
		shot    string // a screenshot's name
	}{
		{
			name: "a flipped byte in a proof hash",
			rewrite: func(path string, body []byte) []byte {
				if !strings.HasPrefix(path, "/proof/") {
					return body
				}
				head, cp := splitProof(t, body)
				head[3] = flipBase64(t, head[3], 0) // the first hash, after header, extra, index
				return joinProof(head, cp)
			},
			step: "inclusion", text: "is not the checkpoint's", shot: "public-op-failed",
		},
		{
			name: "a flipped byte in the entry",
			rewrite: func(path string, body []byte) []byte {
				if !strings.HasPrefix(path, "/proof/") {
					return body
				}
				head, cp := splitProof(t, body)
				extra := strings.TrimPrefix(head[1], "extra ")
				head[1] = "extra " + flipBase64(t, extra, 60)
				return joinProof(head, cp)
			},
			step: "inclusion", text: "is not the checkpoint's",
		},
		{
			name: "the checkpoint signed by another key of the log's name",
			rewrite: func(path string, body []byte) []byte {
				if !strings.HasPrefix(path, "/proof/") {
					return body
				}
				head, cp := splitProof(t, body)
				return joinProof(head, resign(t, cp, logVerifier, false, other))
			},
			step: "signature", text: "no signature by the log's key serve.test/log+",
		},
		{
			name: "a log.pub that is another key",
			rewrite: func(path string, body []byte) []byte {
				if path == serve.KeyPath {
					return []byte(otherKey + "\n")
				}
				return body
			},
			step: "signature", text: "no signature by the log's key serve.test/log+",
		},
		{
			name: "a signature over another text",
			rewrite: func(path string, body []byte) []byte {
				if !strings.HasPrefix(path, "/proof/") {
					return body
				}
				head, cp := splitProof(t, body)
				// The size line, one more: the signature no longer covers the text.
				lines := strings.SplitN(string(cp), "\n", 3)
				n, err := strconv.Atoi(lines[1])
				require.NoError(t, err)
				lines[1] = strconv.Itoa(n + 1)
				return joinProof(head, []byte(strings.Join(lines, "\n")))
			},
			step: "signature", text: "does not verify",
		},
		{
			name: "a checkpoint of another origin's key",
			rewrite: func(path string, body []byte) []byte {
				switch {
				case path == serve.KeyPath:
					return []byte(elsewhereKey + "\n")
				case strings.HasPrefix(path, "/proof/"):
					head, cp := splitProof(t, body)
					return joinProof(head, resign(t, cp, logVerifier, true, elsewhere))
				}
				return body
			},
			step: "origin", text: `the checkpoint's origin "serve.test/log" is not the key's name "other.example/log"`,
		},
		{
			name:    "the proof of another operation",
			proofOf: l.ops[4].OpID,
			step:    "entry", text: "the proof is of operation " + l.ops[4].OpID + ", not of " + op.OpID,
		},
		{
			name: "a page that misstates the actor",
			rewrite: func(path string, body []byte) []byte {
				if !strings.HasPrefix(path, "/op/") {
					return body
				}
				return bytes.Replace(body, []byte("<td>"+op.Actor+"</td>"), []byte("<td>mallory</td>"), 1)
			},
			step: "entry", text: `Actor is "mallory" on this page but "` + op.Actor + `" in the signed entry`,
		},
	} {
		tp.set(c.rewrite, c.proofOf)
		open(op.OpID, "failed")
		step, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#result"), "data-step"))
		require.NoError(t, err)
		assert.Equal(t, c.step, step.Value, c.name)
		result := text("#result")
		assert.Contains(t, result, "Verification failed at step", c.name)
		assert.Contains(t, result, c.text, c.name)
		assert.Contains(t, text(fmt.Sprintf(`#steps li[data-step="%s"][data-state="failed"] .detail`, c.step)), c.text, c.name)
		if c.shot != "" {
			browsertest.Screenshot(t, ctx, c.shot)
		}
	}
	tp.set(nil, "")
	browsertest.NoProblems(t, ctx) // a failed check is not a broken page

	// An operation no checkpoint covers yet: its proof is 404.
	late := conformance.NewOp("late", 100)
	require.NoError(t, l.client.Record(t.Context(), late))
	open(late.OpID, "pending")
	assert.Contains(t, text("#result"), "no signed checkpoint of the log covers this operation")
	for _, p := range browsertest.Problems(t, ctx) {
		assert.Contains(t, p.String(), "404", "only the proof's 404 is reported")
	}
}
