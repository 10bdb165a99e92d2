package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/console"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/serve"
)

// minAdminToken is the shortest admin token serve accepts.
const minAdminToken = 16

func (a *app) serveCmd() *cobra.Command {
	var addr, logKey, tokenFile string
	var sampleEvery time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the operator console and the public log over HTTP",
		Long: `Serve two faces of the store from one process.

The operator console, under /console/: counts by state, throughput and
backlog over the last hour, each partition's cursor, backlog and owner, the
live relays; the retrying and dead operations with filters; one operation's
fields, attempts and last error; search by op_id, by DOID (an object's
history) and by actor and time range. It is read-only unless
--admin-token-file names a file holding a token (at least 16 characters):
then dead operations can be requeued by whoever logs in with the token
(/console/login: a session cookie, CSRF-checked forms) or sends it as
"Authorization: Bearer <token>". Every write is logged; the token never is.

The public log, safe to expose (with --log-key):
  /checkpoint                    the latest signed checkpoint (C2SP tlog-checkpoint)
  /tile/<L>/<N>[.p/<W>]          hash tiles of height 8 (C2SP tlog-tiles)
  /tile/entries/<N>[.p/<W>]      entry bundles: each operation's sealed encoding
  /proof/<op_id>                 the proof "trustlog prove <op_id>" writes
  /.well-known/trustlog/log.pub  the log's public key (--log-key)
  /op/<op_id>                    an HTML page showing the operation, which verifies
                                 it in the reader's browser (WebCrypto: proof,
                                 checkpoint signature, origin, entry)
  /assets/<name>                 that page's script, style sheet and icon
Tiles and entries are served up to the latest signed checkpoint, which must
verify with --log-key (the public key of the relays' --ledger-key-file); the
server holds no private key. Without --log-key only the console is served.

And /metrics (Prometheus: Go runtime and process), /healthz (200 while the
process runs) and /readyz (the store answers and its schema is current).

It binds to 127.0.0.1 unless --addr says otherwise: publish the public log
through a TLS reverse proxy or a CDN, and keep /console/ on an internal
network. Runs until SIGINT or SIGTERM, then finishes the requests in hand
(at most 5 s) and exits 0.`,
		Example: `  trustlog --store sqlite:app.db serve --log-key log.pub
  trustlog --store postgres://reader@db/app serve --addr 0.0.0.0:8080 --log-key /etc/trustlog/log.pub \
      --admin-token-file /run/secrets/trustlog-admin-token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if sampleEvery < time.Second {
				return usagef("--sample-every %s: at least 1s", sampleEvery)
			}
			token, err := readAdminToken(tokenFile)
			if err != nil {
				return err
			}
			var key string
			var v note.Verifier
			if logKey != "" {
				if key, v, err = readLogKey(logKey); err != nil {
					return err
				}
			}
			s, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			mux := http.NewServeMux()
			if v != nil {
				if err := checkLogKey(ctx, s, v, logKey); err != nil {
					return err
				}
				h, err := serve.NewPublicLog(s, serve.PublicLogOptions{LogKey: key, Logger: a.log})
				if err != nil {
					return err
				}
				mux.Handle("/", h)
			}
			con, err := console.New(s, console.Options{AdminToken: token, Logger: a.log, SampleEvery: sampleEvery,
				PublicLog: v != nil})
			if err != nil {
				return err
			}
			mux.Handle(console.Prefix, con)
			mux.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusSeeOther))
			reg, err := processRegistry()
			if err != nil {
				return err
			}
			health := &relayHealth{}
			health.attach(s, nil, nil)
			mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			mux.HandleFunc("GET /healthz", health.healthz)
			mux.HandleFunc("GET /readyz", health.readyz)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usagef("--addr %s: %v", addr, err)
			}
			srv := &http.Server{Handler: baseHeaders(mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
				WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
			sampling, stopSampling := context.WithCancel(ctx)
			defer stopSampling()
			go con.Run(sampling)
			attrs := []any{"console", fmt.Sprintf("http://%s%s", ln.Addr(), console.Prefix), "writes", token != ""}
			if v != nil {
				attrs = append(attrs, "origin", v.Name(), "checkpoint", fmt.Sprintf("http://%s/checkpoint", ln.Addr()))
			} else {
				attrs = append(attrs, "public_log", "off (no --log-key)")
			}
			a.log.Info("serving", attrs...)
			if err := serveUntilDone(ctx, srv, ln); err != nil {
				return err
			}
			a.log.Info("server stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address (loopback by default; 0.0.0.0:8080 for every interface)")
	cmd.Flags().StringVar(&logKey, "log-key", "", "the log's note-format public key file (trustlog keygen's OUT.pub): serve the public log, checking checkpoints with it")
	cmd.Flags().StringVar(&tokenFile, "admin-token-file", "", "file holding the console's admin token (at least 16 characters): enables requeue (env TRUSTLOG_ADMIN_TOKEN_FILE)")
	cmd.Flags().DurationVar(&sampleEvery, "sample-every", console.DefaultSampleEvery, "how often the console samples the store for its charts")
	return cmd
}

// readAdminToken reads the admin token file; "" gives "" (read-only).
func readAdminToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("--admin-token-file: %v", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minAdminToken || strings.ContainsAny(tok, " \t\r\n") {
		return "", usagef("--admin-token-file %s: the token must be one line of at least %d characters without spaces (e.g. openssl rand -hex 32)", path, minAdminToken)
	}
	return tok, nil
}

// readLogKey reads a note verifier key file.
func readLogKey(path string) (string, note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, usagef("--log-key: %v", err)
	}
	key := strings.TrimSpace(string(b))
	v, err := note.NewVerifier(key)
	if err != nil {
		return "", nil, usagef("--log-key %s: not a note-format public key", path)
	}
	return key, v, nil
}

// checkLogKey refuses a --log-key that does not verify the store's latest
// signed checkpoint: the server would publish a key no client could check
// the log with. A store without checkpoints yet passes.
func checkLogKey(ctx context.Context, s core.Store, v note.Verifier, path string) error {
	st, ok := s.(ledger.Storage)
	if !ok {
		return usagef("this store keeps no ledger: there is no log to serve")
	}
	cs, err := st.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
	if err != nil || len(cs) == 0 {
		return err
	}
	if _, err := ledger.OpenCheckpoint(cs[0].Note, v); err != nil {
		return usagef("--log-key %s does not verify the store's latest checkpoint (size %d): %v", path, cs[0].Size, err)
	}
	return nil
}

// baseHeaders gives every response the headers no page of this server
// goes without: nosniff, frame denial and, unless the handler sets its
// own (the console allows its script and stylesheet), a CSP that allows
// nothing.
func baseHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}
