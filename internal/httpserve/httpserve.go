// Package httpserve runs an HTTPS server for the life of a context, with a
// bounded graceful shutdown: the one lifecycle of every policyca listener
// (CA node, RA).
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// RunTLS serves srv (whose TLSConfig holds the certificates) on ln until the
// server fails or ctx is done; then it shuts srv down, waiting at most
// timeout for requests in flight, and calls drain (e.g. to wait for work the
// requests started). It returns the server's error, or nil after a clean
// shutdown.
func RunTLS(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, drain func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if drain != nil {
		drain()
	}
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
