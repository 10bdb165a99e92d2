package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// serveUntilDone serves srv on ln until ctx ends, then shuts it down,
// giving requests in progress 5 s to finish.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener) error {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-stopped
	return nil
}
