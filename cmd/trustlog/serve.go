package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/serve"
)

func (a *app) serveCmd() *cobra.Command {
	var addr, logKey string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the public log over HTTP: checkpoints, tiles, entries, proofs and operation pages",
		Long: `Serve the store's Merkle log read-only over HTTP, so that anyone can fetch and
check it with standard tooling (C2SP tlog-tiles clients, golang.org/x/mod/sumdb/tlog):

  /checkpoint                    the latest signed checkpoint (C2SP tlog-checkpoint)
  /tile/<L>/<N>[.p/<W>]          hash tiles of height 8 (C2SP tlog-tiles)
  /tile/entries/<N>[.p/<W>]      entry bundles: each operation's sealed encoding
  /proof/<op_id>                 the proof "trustlog prove <op_id>" writes
  /.well-known/trustlog/log.pub  the log's public key (--log-key)
  /op/<op_id>                    an HTML page showing the operation, which verifies
                                 it in the reader's browser (WebCrypto: proof,
                                 checkpoint signature, origin, entry)
  /assets/<name>                 that page's script, style sheet and icon
  /healthz                       200 "ok" while the process runs

Tiles and entries are served up to the latest signed checkpoint, which must
verify with --log-key (the public key of the relays' --ledger-key-file); the
server holds no private key and writes nothing. Only GET and HEAD are
allowed. It binds to 127.0.0.1 unless --addr says otherwise: put a TLS
reverse proxy or a CDN in front of it to publish the log. Runs until SIGINT
or SIGTERM, then finishes the requests in hand (at most 5 s) and exits 0.`,
		Example: `  trustlog --store sqlite:app.db serve --log-key log.pub
  trustlog --store postgres://reader@db/app serve --addr 0.0.0.0:8080 --log-key /etc/trustlog/log.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if logKey == "" {
				return usagef("--log-key (the log's public key file, trustlog keygen's OUT.pub) is required")
			}
			b, err := os.ReadFile(logKey)
			if err != nil {
				return usagef("--log-key: %v", err)
			}
			key := strings.TrimSpace(string(b))
			v, err := note.NewVerifier(key)
			if err != nil {
				return usagef("--log-key %s: not a note-format public key", logKey)
			}
			s, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := checkLogKey(ctx, s, v, logKey); err != nil {
				return err
			}
			h, err := serve.NewPublicLog(s, serve.PublicLogOptions{LogKey: key, Logger: a.log})
			if err != nil {
				return err
			}
			mux := http.NewServeMux()
			mux.Handle("/", h)
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Cache-Control", "no-store")
				io.WriteString(w, "ok\n")
			})
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usagef("--addr %s: %v", addr, err)
			}
			srv := &http.Server{Handler: serve.Secure(mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
				WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
			a.log.Info("serving the public log", "origin", v.Name(), "url", fmt.Sprintf("http://%s/checkpoint", ln.Addr()))
			if err := serveUntilDone(ctx, srv, ln); err != nil {
				return err
			}
			a.log.Info("public log server stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address (loopback by default; 0.0.0.0:8080 for every interface)")
	cmd.Flags().StringVar(&logKey, "log-key", "", "the log's note-format public key file (trustlog keygen's OUT.pub), published and used to check checkpoints before serving them")
	return cmd
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
